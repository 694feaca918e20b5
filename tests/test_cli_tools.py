"""``zjit asm``, ``zjit disasm`` and ``zjit verify``: exit codes and messages."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from zjit.asm import assemble
from zjit.cli import main
from zjit.container.zasm_bin import read_zasm_bin, write_zasm_bin

HELLO = """\
        PUBLIC main
msg:    DB "hello", 10
main:   LD HL, msg
        LD DE, 6
        OUT
        RET
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture()
def hello(tmp_path: Path) -> Path:
    src = tmp_path / "hello.s"
    src.write_text(HELLO)
    return src


def test_asm_ok_and_default_output(hello: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = hello.with_name("out.zasm.bin")
    rc, stdout, stderr = run(["asm", str(hello), "-o", str(out)], capsys)
    assert rc == 0 and stderr == ""
    assert "out.zasm.bin" in stdout and "5 code words" in stdout
    assert read_zasm_bin(out.read_bytes()).exports == {"main": 0}
    rc, _, _ = run(["asm", str(hello), "-q"], capsys)
    assert rc == 0 and hello.with_name("hello.zasm.bin").read_bytes() == out.read_bytes()


def test_asm_rom_format(hello: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = hello.with_name("hello.rom")
    rc, _, _ = run(["asm", str(hello), "-o", str(out)], capsys)
    assert rc == 0 and out.read_bytes()[:4] == b"ROM!"
    other = hello.with_name("x.bin")
    rc, _, _ = run(["asm", str(hello), "-o", str(other), "--format", "rom"], capsys)
    assert rc == 0 and other.read_bytes() == out.read_bytes()


def test_asm_syntax_error_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.s"
    src.write_text("RET\n; comment\n  ADD HL\n")
    rc, stdout, stderr = run(["asm", str(src), "-o", str(tmp_path / "o.bin")], capsys)
    assert rc == 3 and stdout == ""
    assert f"{src}:3: ASM_SYNTAX:" in stderr and "ADD" in stderr
    assert not (tmp_path / "o.bin").exists()


def test_asm_other_rejections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, stderr = run(["asm", str(tmp_path / "missing.s")], capsys)
    assert rc == 3 and "BAD_PATH" in stderr and "missing.s" in stderr
    src = tmp_path / "ro.s"
    src.write_text("SEGMENT k, r\nDB 1\nENDS\nRET\n")
    rc, _, stderr = run(["asm", str(src)], capsys)
    assert rc == 3 and "BAD_DATA" in stderr and "'k'" in stderr
    src.write_bytes(b"RET\n\xff\n")
    rc, _, stderr = run(["asm", str(src)], capsys)
    assert rc == 3 and f"{src}:2: ASM_SYNTAX" in stderr


def test_asm_warns_when_output_will_not_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "fall.s"
    src.write_text("RET\nDROP HL\n")
    rc, _, stderr = run(["asm", str(src)], capsys)
    assert rc == 0
    assert "warning" in stderr and "FALLS_OFF_END" in stderr and f"({src}:2)" in stderr


def test_usage_errors_exit_2(hello: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["verify"], capsys)[0] == 2
    assert run(["asm", str(hello), "--format", "elf"], capsys)[0] == 2
    assert run(["disasm", str(hello), "--native", "sparc"], capsys)[0] == 2
    assert run(["asm", "-"], capsys)[0] == 2


def _module(tmp_path: Path, text: str, name: str = "m.zasm.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(write_zasm_bin(assemble(text, "m.s")))
    return path


def test_verify_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = _module(tmp_path, "PUBLIC main\nmain: CALL f\nRET\nf: JR eq, g\nRET\ng: RET\n")
    rc, stdout, stderr = run(["verify", str(mod)], capsys)
    assert rc == 0 and stderr == ""
    assert stdout.strip() == "ok: 5 instructions, 5 blocks, 2 functions"


def test_verify_bad_lists_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = _module(tmp_path, "RET\nWORD 0x0A000000\nDROP HL\n")
    rc, stdout, stderr = run(["verify", str(mod)], capsys)
    assert rc == 3 and stdout == ""
    code_off = read_zasm_bin(mod.read_bytes()).code_offset
    assert f"BAD_OPCODE at offset {code_off + 4:#x} pc 0x4" in stderr
    assert "(source m.s:2)" in stderr and "rejected" in stderr


def test_verify_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = _module(tmp_path, HELLO)
    rc, stdout, _ = run(["verify", str(mod), "--json"], capsys)
    doc = json.loads(stdout)
    assert rc == 0 and doc["ok"] is True and doc["errors"] == []
    assert doc["instructions"] == 4 and doc["exports"] == {"main": 0} and doc["imports"] == 2
    bad = _module(tmp_path, "WORD 0x0A000000\n", "bad.zasm.bin")
    rc, stdout, _ = run(["verify", str(bad), "--json"], capsys)
    doc = json.loads(stdout)
    assert rc == 3 and doc["ok"] is False
    codes = [e["code"] for e in doc["errors"]]
    assert "BAD_OPCODE" in codes and doc["errors"][0]["pc"] == 0


def test_verify_unreadable_and_garbage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, stderr = run(["verify", str(tmp_path / "nope.zasm.bin")], capsys)
    assert rc == 3 and "BAD_PATH" in stderr and "nope.zasm.bin" in stderr
    junk = tmp_path / "junk.zasm.bin"
    junk.write_bytes(b"ZASB" + b"\x07" * 60)
    rc, _, stderr = run(["verify", str(junk)], capsys)
    assert rc == 3 and "offset 0x" in stderr and "Traceback" not in stderr


def test_disasm_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = _module(tmp_path, HELLO)
    listing = tmp_path / "listing.s"
    rc, stdout, _ = run(["disasm", str(mod)], capsys)
    assert rc == 0 and "OUT" in stdout and "main:" in stdout
    rc, _, _ = run(["disasm", str(mod), "-o", str(listing)], capsys)
    assert rc == 0 and listing.read_text() == stdout
    again = tmp_path / "again.zasm.bin"
    assert run(["asm", str(listing), "-o", str(again)], capsys)[0] == 0
    assert again.read_bytes() == mod.read_bytes()


def test_disasm_rejects_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, stderr = run(["disasm", str(tmp_path / "none.bin")], capsys)
    assert rc == 3 and "BAD_PATH" in stderr


def test_disasm_native_hook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = _module(tmp_path, HELLO)
    rc, _, stderr = run(["disasm", str(mod), "--native", "x86_64", "--ir"], capsys)
    assert rc == 2
    if importlib.util.find_spec("zjit.backends.listing") is None:
        rc, _, stderr = run(["disasm", str(mod), "--native", "x86_64"], capsys)
        assert rc == 2 and "not available" in stderr
    rc, stdout, stderr = run(["disasm", str(mod), "--ir"], capsys)
    assert (rc == 0 and stdout.strip()) or (rc == 2 and "not available" in stderr)
    bad = _module(tmp_path, "WORD 0x0A000000\n", "bad.zasm.bin")
    rc, _, stderr = run(["disasm", str(bad), "--ir"], capsys)
    assert rc in (2, 3) and ("BAD_OPCODE" in stderr or "not available" in stderr)


def test_subprocess_exit_codes_and_messages(tmp_path: Path) -> None:
    bad = tmp_path / "bad.s"
    bad.write_text("RET\nJR nowhere\n")
    proc = subprocess.run([sys.executable, "-m", "zjit", "asm", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3
    assert f"{bad}:2: ASM_LABEL:" in proc.stderr and "nowhere" in proc.stderr
    good = tmp_path / "good.s"
    good.write_text(HELLO)
    out = tmp_path / "good.zasm.bin"
    proc = subprocess.run([sys.executable, "-m", "zjit", "asm", str(good), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "zjit", "verify", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok: 4 instructions")
