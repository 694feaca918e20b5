"""``zjit disasm --native``: capstone listings of the generated code, annotated with guest pcs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from zjit.backends.listing import compile_native, native_listing
from zjit.backends.objfile import elf
from zjit.verifier import VerifiedProgram, verify

import zjit
from zjit.asm import assemble
from zjit.cli import main
from zjit.container.zasm_bin import write_zasm_bin
from zjit.isa import TrapKind

PROGRAM = """\
        PUBLIC main
        PUBLIC oob
        PUBLIC twice
msg:    DB "hi", 10
main:   LD HL, msg
        LD DE, 3
        OUT
        LD HL, 20
        CALL twice
        CALL twice
        RET
twice:  ADD64 HL, HL, HL
        RET
oob:    LD8U DE, (HL)                   ; HL from the caller: a guarded access
        RET
"""

X86_ONLY = {"push", "pop", "jmp", "call", "movabs", "lea"}
A64_ONLY = {"stp", "ldp", "bl", "blr", "ldr", "str", "cbz", "cbnz", "adrp"}


def _program() -> VerifiedProgram:
    return verify(assemble(PROGRAM, "listing.s"))


def _mnemonics(text: str) -> set[str]:
    out = set()
    for line in text.splitlines():
        m = re.match(r"\s+[0-9a-f]+:\s+(?:[0-9a-f]{2} )+\s*(\S+)", line)
        if m:
            out.add(m.group(1))
    return out


def _headers(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^(\S+):\s+; (.*)$", text, re.M)}


@pytest.mark.parametrize("target", ["x86_64", "aarch64"])
def test_every_function_symbol_is_listed_with_its_guest_pc(target: str) -> None:
    program = _program()
    native = compile_native(program, target)
    text = native_listing(program, target)
    headers = _headers(text)
    funcs = {s.name for s in elf.parse_elf(native.obj).symbols if s.type == elf.STT_FUNC}
    assert funcs and funcs <= set(headers)
    for pc, sym in native.entries.items():
        assert f"runs the guest from pc {pc:#x}" in headers[sym]
    for name in funcs:
        m = re.fullmatch(r"f_([0-9a-f]+)", name)
        if m:
            assert f"guest function at pc {int(m.group(1), 16):#x}" in headers[name]
    assert "(entry, main, listing.s:5)" in headers[native.entries[program.entry]]
    assert "oob" in headers[native.entries[program.exports["oob"]]]


def test_x86_listing_has_x86_mnemonics() -> None:
    text = native_listing(_program(), "x86_64")
    mn = _mnemonics(text)
    assert {"ret", "mov"} <= mn and mn & X86_ONLY
    assert not mn & {"stp", "ldp", "bl", "blr"}
    assert "x86_64-unknown-linux-gnu" in text.splitlines()[0]


def test_aarch64_listing_has_aarch64_mnemonics() -> None:
    text = native_listing(_program(), "aarch64")
    mn = _mnemonics(text)
    assert "ret" in mn and mn & A64_ONLY
    assert not mn & {"push", "pop", "jmp", "movabs"}
    assert "aarch64-unknown-linux-gnu" in text.splitlines()[0]
    assert "memory size from the context" in text  # the AOT object of `zjit compile`


@pytest.mark.parametrize("target", ["x86_64", "aarch64"])
def test_trap_stub_and_its_guard_carry_the_interpreters_trap_pc(target: str) -> None:
    module = zjit.Engine(zjit.Policy(use_cache=False), backend="interp").load(assemble(PROGRAM, "t.s"))
    trap = module.instantiate().call("oob", hl=0x7FFFFFFF).trap
    assert trap is not None and trap.kind is TrapKind.OOB
    text = native_listing(_program(), target)
    want = f"trap OOB @{trap.pc:#x}"
    notes = [ln.split(" ; ", 1)[1] for ln in text.splitlines() if " ; " in ln and ln.startswith("  ")]
    assert any(n.startswith(want) for n in notes)  # the call of the trap helper
    assert any(n.startswith("guard -> " + want) for n in notes)  # the branch into the stub


@pytest.mark.parametrize("target", ["x86_64", "aarch64"])
def test_metered_listing_marks_block_leaders(target: str) -> None:
    program = _program()
    text = native_listing(program, target, zjit.Policy(fuel=1000, use_cache=False, opt_level=0))
    assert ", metered," in text.splitlines()[1]
    fuel_pcs = {int(m.group(1), 16) for m in re.finditer(r"guard -> trap FUEL @(0x[0-9a-f]+)", text)}
    assert program.entry in fuel_pcs
    assert fuel_pcs <= set(program.leaders)


@pytest.mark.parametrize("target", ["x86_64", "aarch64"])
def test_host_calls_and_guest_calls_are_named(target: str) -> None:
    text = native_listing(_program(), target)
    assert "host call through ctx.host_call" in text  # OUT with a full buffer
    assert "host call through ctx.fn_memmove" in text  # OUT into the buffer
    text = native_listing(_program(), target, zjit.Policy(opt_level=0, use_cache=False))
    assert re.search(r"<f_0> +; guest CALL of pc 0x0$", text, re.M)  # the entry wrapper


def _module(tmp_path: Path, src: str, name: str = "m.zasm.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(write_zasm_bin(assemble(src, "m.s")))
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_native_listings_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = _module(tmp_path, PROGRAM)
    rc, out, err = _run(["disasm", str(mod), "--native", "x86_64"], capsys)
    assert rc == 0 and err == "" and "zjit_entry_" in out and "ret" in _mnemonics(out)
    rc, out, _ = _run(["disasm", str(mod), "--native", "aarch64"], capsys)
    assert rc == 0 and _mnemonics(out) & A64_ONLY and "aarch64" in out.splitlines()[0]
    assert "ret" in _mnemonics(out) and not _mnemonics(out) & {"push", "pop"}
    listing = tmp_path / "out.txt"
    rc, out, _ = _run(["disasm", str(mod), "--native", "aarch64", "-o", str(listing)], capsys)
    assert rc == 0 and out == "" and "zjit_entry_" in listing.read_text()
    rc, out, _ = _run(["disasm", str(mod), "--native", "x86_64", "-O", "0", "--metered"], capsys)
    assert rc == 0 and "opt level 0, metered" in out and "trap FUEL @" in out
    rc, _, err = _run(["disasm", str(mod), "--native", "sparc"], capsys)
    assert rc == 2 and "invalid choice" in err
    rc, _, err = _run(["disasm", str(mod), "--native", "x86_64", "--ir"], capsys)
    assert rc == 2
    bad = _module(tmp_path, "WORD 0x0A000000\n", "bad.zasm.bin")
    rc, _, err = _run(["disasm", str(bad), "--native", "aarch64"], capsys)
    assert rc == 3 and "BAD_OPCODE" in err
    rc, _, err = _run(["disasm", str(tmp_path / "missing.zasm.bin"), "--native", "x86_64"], capsys)
    assert rc == 3 and "BAD_PATH" in err
