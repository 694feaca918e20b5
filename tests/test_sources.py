"""Assembly sources wherever a module is accepted, and text never taken for raw code:
``zjit run/verify/disasm/compile`` and ``Engine.load``/``load_image`` (paths and bytes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli_tools import run

import zjit
from zjit.asm import assemble
from zjit.container.detect import dump_image, load_image
from zjit.container.text import looks_like_text
from zjit.encoding import pack, words_to_bytes
from zjit.errors import AsmError, ZjitError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

FIB = """\
; fib: print the 10th Fibonacci number's low byte as a character, then divide by BC = 0
        PUBLIC main
main:   LD HL, 0
        LD DE, 1
        LD BC, 10
next:   ADD64 IX, HL, DE
        MOV HL, DE
        MOV DE, IX
        DEC BC
        CPI BC, 0
        JR ne, next
        ST8 (BC), HL      ; 55 = '7' at address 0
        LD HL, 0
        LD DE, 1
        OUT
        DIVU A, A, BC
        RET
"""


def zjit_run(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "zjit", "run", "--engine", "interp", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, timeout=120)


@pytest.fixture()
def fib(tmp_path: Path) -> Path:
    path = tmp_path / "fib.s"
    path.write_text(FIB)
    return path


def test_run_assembles_sources_and_traps_name_the_line(fib: Path) -> None:
    p = zjit_run(fib)
    assert p.returncode == 1 and p.stdout == b"7"
    assert p.stderr.decode().startswith(f"zjit: trap: DIV0 at pc=0x34 [{fib}:16]")
    p = zjit_run(EXAMPLES / "hello.s")
    assert (p.returncode, p.stdout, p.stderr) == (0, b"Hello, world!\n", b"")


@pytest.mark.parametrize("suffix", [".asm", ".zasm", ".S"])
def test_every_source_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str) -> None:
    path = tmp_path / f"fib{suffix}"
    path.write_text(FIB)
    rc, out, _ = run(["verify", str(path)], capsys)
    assert rc == 0 and out.startswith("ok: ")


def test_text_is_never_raw_code(fib: Path) -> None:
    for name in ("fib.txt", "fib"):
        other = fib.with_name(name)
        other.write_bytes(fib.read_bytes())
        p = zjit_run(other)
        err = p.stderr.decode()
        assert p.returncode == 3 and p.stdout == b""
        assert err.startswith(f"zjit: rejected: UNKNOWN_FORMAT at offset 0x0: {other} is UTF-8 text "
                              "(17 lines)"), err
        assert f"`zjit asm {other}`" in err and "--format asm" in err
    as_bin = fib.with_name("fib.bin")
    as_bin.write_bytes(fib.read_bytes())
    p = zjit_run(as_bin)
    assert p.returncode == 3 and "UNKNOWN_FORMAT" in p.stderr.decode() and "--format raw" in p.stderr.decode()
    p = zjit_run(as_bin, "--format", "raw")  # asked for: the verifier judges the bytes
    assert p.returncode == 3 and b"UNKNOWN_FORMAT" not in p.stderr and b"zjit: rejected: " in p.stderr
    p = zjit_run(fib.with_name("fib.txt"), "--format", "asm")
    assert p.returncode == 1 and p.stdout == b"7" and b"fib.txt:16]" in p.stderr


def test_raw_code_only_by_name_or_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = words_to_bytes([pack(0x01)])  # RET
    for name in ("p.bin", "p.code", "p.raw", "P.BIN"):
        (tmp_path / name).write_bytes(code)
        assert run(["verify", str(tmp_path / name)], capsys)[0] == 0
    (tmp_path / "p.data").write_bytes(code)
    rc, _, err = run(["verify", str(tmp_path / "p.data")], capsys)
    assert rc == 3 and "UNKNOWN_FORMAT" in err and ".bin, .code or .raw, or with --format raw" in err
    assert run(["verify", str(tmp_path / "p.data"), "--format", "raw"], capsys)[0] == 0
    (tmp_path / "odd.bin").write_bytes(b"\x01\x00\x00")
    rc, _, err = run(["verify", str(tmp_path / "odd.bin")], capsys)
    assert rc == 3 and "CODE_ALIGN" in err


def test_container_names_without_their_magic(tmp_path: Path) -> None:
    (tmp_path / "x.zasm.bin").write_bytes(words_to_bytes([pack(0x01)]))
    with pytest.raises(ZjitError) as info:
        load_image(tmp_path / "x.zasm.bin")
    assert info.value.code == "BAD_MAGIC"
    (tmp_path / "x.rom").write_bytes(b"\0" * 64)
    with pytest.raises(ZjitError) as info:
        load_image(tmp_path / "x.rom")
    assert info.value.code == "BAD_MAGIC"
    # a container named like a source is still read by its magic
    blob = dump_image(assemble(FIB, "fib.s"), "zasm")
    (tmp_path / "c.s").write_bytes(blob)
    assert load_image(tmp_path / "c.s").source_format == "zasm"


def test_engine_load_sources_and_bytes(fib: Path) -> None:
    engine = zjit.Engine(zjit.Policy(), backend="interp")
    r = engine.load(str(fib)).instantiate().run()
    assert r.stdout == b"7" and r.trap is not None and r.trap.source == f"{fib}:16"
    assert engine.load(fib).name == "fib"
    # bytes: containers and binary raw code are sniffed as before; text is not raw code
    assert engine.load(words_to_bytes([pack(0x01)])).image.source_format == "raw"
    with pytest.raises(ZjitError) as info:
        engine.load(FIB.encode())
    assert info.value.code == "UNKNOWN_FORMAT" and "format='asm'" in info.value.message
    mod = engine.load(FIB.encode(), format="asm")
    assert mod.instantiate().run().trap.source == "module:16"  # type: ignore[union-attr]
    with pytest.raises(ZjitError) as info:
        engine.load(FIB.encode()[:40], format="raw")
    assert info.value.code != "UNKNOWN_FORMAT"
    with pytest.raises(ValueError):
        engine.load(FIB.encode(), format="elf")


def test_source_errors_through_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.s"
    bad.write_text("main: FROB\nJR nowhere\n")
    with pytest.raises(AsmError) as info:
        load_image(bad)
    assert [e.line for e in info.value.errors] == [1, 2] and info.value.path == str(bad)
    bad.write_bytes(b"RET\n\xff\n")
    with pytest.raises(AsmError) as info:
        load_image(bad)
    assert (info.value.code, info.value.line) == ("ASM_SYNTAX", 2)


def test_looks_like_text() -> None:
    assert looks_like_text(FIB.encode()) and looks_like_text("naïve € text\r\n\tend".encode())
    assert not looks_like_text(b"") and not looks_like_text(b"text\x00") and not looks_like_text(b"\xff")
    assert not looks_like_text(b"esc \x1b[0m")
    # a multi-byte character cut by the 64 KiB sample is still text
    assert looks_like_text(b"a" * 65535 + "é".encode())
    for name in ("hello", "loop", "upper", "call"):
        img = assemble((EXAMPLES / f"{name}.s").read_text(), name)
        assert not looks_like_text(img.code)  # RET/JR words hold zero bytes


def test_verify_disasm_and_compile_take_sources(fib: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["verify", str(fib)], capsys)
    assert rc == 0 and out.startswith("ok: 15 instructions")
    rc, out, _ = run(["disasm", str(fib)], capsys)
    assert rc == 0 and "DIVU A, A, BC" in out and f"{fib}:16" in out
    rc, _, err = run(["compile", str(fib), "--target", "x86_64", "-o", str(tmp_path / "aot")], capsys)
    assert rc == 0 and (tmp_path / "aot" / "fib.o").exists(), err


def test_warnings_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "st.s"
    src.write_text("buf: RESB 8\ntop:\nmain: LD HL, top\nRET\n")
    for argv in (["asm", str(src)], ["verify", str(src)], ["disasm", str(src)]):
        rc, _, err = run(argv, capsys)
        assert rc == 0
        assert err.startswith(f"{src}:2: warning: ASM_LABEL_BINDING: label 'top' stands alone"), err
    p = zjit_run(src)
    assert p.returncode == 0 and p.stderr.decode().startswith(f"{src}:2: warning: ASM_LABEL_BINDING")


def test_all_errors_are_printed_up_to_a_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "many.s"
    src.write_text("RET\n" + "".join(f"LD{i} A, (HL)\n" for i in range(25)))
    rc, _, err = run(["asm", str(src)], capsys)
    lines = err.splitlines()
    assert rc == 3 and len(lines) == 21
    assert lines[0].startswith(f"{src}:2: ASM_SYNTAX: unknown mnemonic or directive 'LD0'")
    assert lines[19].startswith(f"{src}:21: ASM_SYNTAX") and lines[20] == f"zjit: {src}: ... 5 more error(s)"
    rc, _, err = run(["verify", str(src)], capsys)
    assert rc == 3 and err.splitlines()[-2:] == [f"zjit: {src}: ... 5 more error(s)",
                                                  f"zjit: {src}: rejected (25 error(s))"]
    rc, out, _ = run(["verify", str(src), "--json"], capsys)
    assert rc == 3 and out.count('"ASM_SYNTAX"') == 25
    p = zjit_run(src)
    assert p.returncode == 3 and p.stderr.decode().count("zjit: rejected: ASM_SYNTAX") == 20
    assert p.stderr.decode().endswith("zjit: rejected: ... 5 more error(s)\n")


def test_every_error_line_names_a_code(fib: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(["asm", "-"], capsys)
    assert rc == 2 and err == "zjit: asm: USAGE: reading stdin needs -o OUT\n"
    assert err.split(": ")[2] == "USAGE"
    rc, _, err = run(["disasm", str(fib), "--native", "x86_64", "--ir"], capsys)
    assert rc == 2 and err == "zjit: disasm: USAGE: choose one of --native and --ir\n"
    rc, _, err = run(["verify", str(fib), "--format", "elf"], capsys)
    assert rc == 2 and "zjit: error: USAGE: argument --format: invalid choice" in err
    rc, _, err = run(["disasm", str(fib.with_name("nope.s"))], capsys)
    assert rc == 3 and err == f"{fib.with_name('nope.s')}: BAD_PATH: cannot read '{fib.with_name('nope.s')}': " \
        "No such file or directory\n"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=120), st.text(max_size=120).map(str.encode)),
       st.sampled_from(["auto", "asm", "raw"]))
def test_any_bytes_in_any_format_load_or_fail_with_a_code(data: bytes, fmt: str) -> None:
    try:
        image = load_image(data, format=fmt)
    except ZjitError as err:
        assert err.code
        if fmt == "auto" and looks_like_text(data) and data[:4] not in (b"ZASB", b"ROM!"):
            # text is never code; a container magic wins over looking like text
            assert err.code == "UNKNOWN_FORMAT" or data.lstrip()[:1] == b"{"
        return
    assert image.source_format != "raw" or fmt == "raw" or not looks_like_text(data)
