"""``zjit run`` as a new user meets it: the example programs, assembled here, run
through the real command line in a subprocess (exit codes, stdout/stderr split)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zjit.asm import assemble
from zjit.container.detect import dump_image
from zjit.encoding import pack, words_to_bytes
from zjit.runtime import available_backends

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def build(tmp_path: Path, name: str, text: str | None = None) -> Path:
    """Assemble ``examples/<name>.s`` (or ``text``) into a .zasm.bin in tmp_path."""
    source = text if text is not None else (EXAMPLES / f"{name}.s").read_text()
    out = tmp_path / f"{name}.zasm.bin"
    out.write_bytes(dump_image(assemble(source, f"{name}.s"), "zasm"))
    return out


def zjit_run(*args: str | Path, stdin: bytes = b"", engine: str | None = "interp",
             timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "zjit", "run", *map(str, args)]
    if engine is not None:
        cmd += ["--engine", engine]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)


def test_hello_prints_and_exits_0(tmp_path: Path) -> None:
    p = zjit_run(build(tmp_path, "hello"))
    assert (p.returncode, p.stdout, p.stderr) == (0, b"Hello, world!\n", b"")


def test_loop_and_call(tmp_path: Path) -> None:
    assert zjit_run(build(tmp_path, "loop")).stdout == b"5050\n"
    p = zjit_run(build(tmp_path, "call"))
    assert p.returncode == 0 and p.stdout == b"calling a function\n7 squared is 49\n"


def test_reads_stdin_and_stdin_file(tmp_path: Path) -> None:
    mod = build(tmp_path, "upper")
    text = b"hello, World 123\n" * 50    # several IN chunks
    p = zjit_run(mod, stdin=text)
    assert p.returncode == 0 and p.stdout == text.upper() and p.stderr == b""
    (tmp_path / "in.txt").write_bytes(b"from a file\n")
    p = zjit_run(mod, "--stdin", tmp_path / "in.txt", stdin=b"ignored")
    assert p.returncode == 0 and p.stdout == b"FROM A FILE\n"


def test_trap_exits_1_with_location(tmp_path: Path) -> None:
    p = zjit_run(build(tmp_path, "loop"), "--fuel", "20")
    assert p.returncode == 1 and p.stdout == b""
    assert p.stderr.decode().startswith("zjit: trap: FUEL at pc=0x")
    assert "[loop.s:" in p.stderr.decode()


def test_oob_trap_message(tmp_path: Path) -> None:
    text = "PUBLIC main\nmain:\n  LD HL, -1\n  LD8U A, (HL)\n  RET\n"
    p = zjit_run(build(tmp_path, "oob", text))
    assert p.returncode == 1
    assert p.stderr.decode() == ("zjit: trap: OOB at pc=0x4 [oob.s:4]: "
                                 "address 0xffffffffffffffff, length 1\n")


def test_output_before_trap_is_streamed(tmp_path: Path) -> None:
    text = ('PUBLIC main\nmain:\n LD HL, msg\n LD DE, 3\n OUT\n DIVU A, A, BC\n RET\n'
            'msg: DB "hi", 10\n')
    p = zjit_run(build(tmp_path, "partial", text))
    assert p.returncode == 1 and p.stdout == b"hi\n" and b"trap: DIV0" in p.stderr


def test_rejected_modules_exit_3(tmp_path: Path) -> None:
    good = build(tmp_path, "hello").read_bytes()
    bad = tmp_path / "bad.zasm.bin"
    bad.write_bytes(good[:4] + b"\x03\x00" + good[6:])    # container version 3
    p = zjit_run(bad)
    assert p.returncode == 3 and p.stdout == b""
    assert p.stderr.decode().startswith("zjit: rejected: BAD_VERSION at offset 0x4")
    raw = tmp_path / "unverified.bin"
    raw.write_bytes(words_to_bytes([pack(0x09), pack(0x01)]))   # invalid opcode, then RET
    p = zjit_run(raw)
    assert p.returncode == 3 and p.stderr.decode().startswith("zjit: rejected: BAD_OPCODE at ")
    assert zjit_run(tmp_path / "missing.zasm.bin").returncode == 3


def test_rejected_when_memory_does_not_fit(tmp_path: Path) -> None:
    p = zjit_run(build(tmp_path, "hello"), "--mem-size", "256")
    assert p.returncode == 3 and b"zjit: rejected: OUT_OF_BOUNDS" in p.stderr


@pytest.mark.parametrize("engine", available_backends())
def test_policy_out_of_range_exits_3(tmp_path: Path, engine: str) -> None:
    mod = build(tmp_path, "hello")
    p = zjit_run(mod, "--fuel", str(1 << 64), engine=engine)
    assert p.returncode == 3 and p.stdout == b""
    assert p.stderr == b"zjit: rejected: BAD_POLICY at Policy.fuel: must be None or an int in 0 ..= 2**64-1, " \
                       b"not 18446744073709551616\n"
    p = zjit_run(mod, "--timeout", "inf", engine=engine)
    assert p.returncode == 3 and b"BAD_POLICY at Policy.timeout" in p.stderr
    assert zjit_run(mod, "--fuel", str((1 << 64) - 1), engine=engine).stdout == b"Hello, world!\n"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    mod = build(tmp_path, "hello")
    assert zjit_run(mod, "--fuel", "-3").returncode == 2
    assert zjit_run(mod, "--timeout", "0").returncode == 2
    assert zjit_run(mod, "--engine", "nope", engine=None).returncode == 2
    assert zjit_run(mod, "--stdin", tmp_path / "no-such-file").returncode == 2
    assert zjit_run(engine=None).returncode == 2


def test_json_result(tmp_path: Path) -> None:
    p = zjit_run(build(tmp_path, "call"), "--json", "--fuel", "1000")
    assert p.returncode == 0
    doc = json.loads(p.stdout)
    assert doc["status"] == "ok" and doc["stdout"] == "calling a function\n7 squared is 49\n"
    assert doc["trap"] is None and 0 < doc["fuel_left"] < 1000 and set(doc["registers"]) == {
        "HL", "DE", "A", "BC", "IX"}
    t = zjit_run(build(tmp_path, "loop"), "--json", "--fuel", "20")
    assert t.returncode == 1 and json.loads(t.stdout)["trap"]["kind"] == "FUEL"


def test_call_export(tmp_path: Path) -> None:
    mod = build(tmp_path, "call")
    p = zjit_run(mod, "--call", "square", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["stdout"] == ""
    p = zjit_run(mod, "--call", "cube")
    assert p.returncode == 3 and p.stderr.decode().startswith("zjit: rejected: NO_EXPORT")


def test_timeout(tmp_path: Path) -> None:
    p = zjit_run(build(tmp_path, "spin", "PUBLIC main\nmain:\n JR main\n"), "--timeout", "0.3")
    assert p.returncode == 1 and p.stderr.decode().startswith("zjit: trap: TIMEOUT at pc=0x0")


def test_log_goes_to_stderr(tmp_path: Path) -> None:
    text = ('PUBLIC main\nmain:\n LD HL, t\n LD DE, 4\n LD BC, m\n LD IX, 2\n LOG\n'
            ' LD HL, m\n LD DE, 2\n OUT\n RET\nt: DB "note"\nm: DB "ok"\n')
    p = zjit_run(build(tmp_path, "logger", text))
    assert (p.returncode, p.stdout, p.stderr) == (0, b"ok", b"[note] ok\n")


LOGGER = ('PUBLIC main\nmain:\n LD HL, t\n LD DE, 4\n LD BC, m\n LD IX, 2\n LOG\n'
          ' LD HL, m\n LD DE, 2\n OUT\n RET\nt: DB "note"\nm: DB "ok"\n')


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_max_output_counts_what_zjit_keeps(tmp_path: Path, engine: str) -> None:
    if engine not in available_backends():
        pytest.skip(f"{engine} not available")
    mod = build(tmp_path, "logger", LOGGER)
    p = zjit_run(mod, "--max-output", "22", engine=engine)       # the record (6 bytes + 16) fits; stdout is not kept
    assert (p.returncode, p.stdout, p.stderr) == (0, b"ok", b"[note] ok\n")
    p = zjit_run(mod, "--max-output", "21", engine=engine)       # the LOG would pass it
    assert p.returncode == 1 and p.stdout == b""
    assert p.stderr.decode().startswith("zjit: trap: HOST at pc=0x18 [logger.s:7]: OutputLimitError")
    assert "OutputLimitError" in p.stderr.decode() and "max_output_bytes (21 bytes)" in p.stderr.decode()
    p = zjit_run(mod, "--max-output", "23", "--json", engine=engine)  # with --json the output is kept too
    assert p.returncode == 1 and json.loads(p.stdout)["trap"]["kind"] == "HOST"
    assert json.loads(p.stdout)["log"] and "OutputLimitError" in json.loads(p.stdout)["trap"]["cause"]
    p = zjit_run(build(tmp_path, "hello"), "--max-output", "0", engine=engine)   # streamed: not counted
    assert (p.returncode, p.stdout) == (0, b"Hello, world!\n")
    p = zjit_run(mod, "--max-output", "-1", engine=engine)
    assert p.returncode == 2


def test_module_json_example(tmp_path: Path) -> None:
    p = zjit_run(EXAMPLES / "segments" / "module.json", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["registers"]["HL"] == 42


def test_default_engine_is_jit(tmp_path: Path) -> None:
    p = zjit_run(build(tmp_path, "hello"), engine=None)
    if "jit" in available_backends():
        assert p.returncode == 0 and p.stdout == b"Hello, world!\n"
    else:
        assert p.returncode == 3 and b"zjit: rejected: BAD_BACKEND" in p.stderr


@pytest.mark.parametrize("tier", ["auto", "baseline", "optimized"])
def test_tier_options(tmp_path: Path, tier: str) -> None:
    if "jit" not in available_backends():
        pytest.skip("needs the jit engine")
    p = zjit_run(build(tmp_path, "hello"), "--tier", tier, "--tier-threshold", "1", engine="jit")
    assert (p.returncode, p.stdout) == (0, b"Hello, world!\n"), p.stderr


@pytest.mark.parametrize("bad", [["--tier", "fast"], ["--tier-threshold", "0"], ["--tier-threshold", "x"]])
def test_bad_tier_options_are_usage_errors(tmp_path: Path, bad: list[str]) -> None:
    p = zjit_run(build(tmp_path, "hello"), *bad, engine="jit")
    assert p.returncode == 2 and b"usage" in p.stderr


def test_interp_run_does_not_import_llvmlite(tmp_path: Path) -> None:
    mod = build(tmp_path, "hello")
    code = ("import sys\nfrom zjit.cli import main\n"
            f"rc = main(['run', {str(mod)!r}, '--engine', 'interp'])\n"
            "sys.stdout.flush()\nprint(rc, 'llvmlite' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert p.stdout.endswith(b"0 False\n")


@pytest.mark.parametrize("size", ["0x20000", "131072"])
def test_mem_size_accepts_hex(tmp_path: Path, size: str) -> None:
    text = "PUBLIC main\nmain:\n LD HL, 0x1FFFF\n ST8 (HL), HL\n RET\n"
    assert zjit_run(build(tmp_path, "edge", text), "--mem-size", size).returncode == 0
    assert zjit_run(build(tmp_path, "edge", text), "--mem-size", "0x1FFFF").returncode == 1
