"""LLVM lowering: coverage, guard placement (also after -O2), context layout, targets."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from zjit.backends.context import CTX_SIZE, FIELDS, OFFSETS, TRAP_STACK, Ctx, c_header
from zjit.backends.llvm import CodegenOptions, lower
from zjit.backends.llvm.module import missing_emitters
from zjit.backends.middle.lift import lift
from zjit.backends.objfile.compiler import compile_ir_inprocess
from zjit.backends.objfile.elf import parse_elf
from zjit.backends.targets import AARCH64_TRIPLE, EM_AARCH64, EM_X86_64, X86_64_TRIPLE
from zjit.verifier import verify

from zjit.asm import assemble
from zjit.image import SegmentDesc
from zjit.isa import TrapKind

MEM = 1 << 20
R_AARCH64_ADR_PREL_PG_HI21 = 275
R_AARCH64_ADD_ABS_LO12_NC = 277


def lowered(src: str, segments: tuple[SegmentDesc, ...] = (), **opts: object) -> str:
    image = assemble(src)
    if segments:
        import dataclasses

        image = dataclasses.replace(image, segments=image.segments + segments)
    return str(lower(lift(verify(image)), CodegenOptions(**opts)).text)


def optimised(text: str, triple: str = X86_64_TRIPLE, pipeline: str = "zjit") -> str:
    """The module after the compile worker's O2 passes (``pipeline="zjit"``) or
    LLVM's ``default<O2>`` (``"default"``), in this process."""
    import llvmlite.binding as llvm
    from zjit.backends.objfile.compile_worker import optimise

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    tm = llvm.Target.from_triple(triple).create_target_machine(opt=2, reloc="pic", codemodel="small")
    mod = llvm.parse_assembly(text)
    mod.verify()
    if pipeline == "zjit":
        optimise(llvm, mod, tm, 2)
    else:
        pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=2))
        pb.getModulePassManager().run(mod, pb)
    return str(mod)


def trap_calls(text: str, kind: TrapKind) -> list[str]:
    return [ln for ln in text.splitlines() if "zjit.trap" in ln and "call" in ln
            and re.search(rf"\(ptr [^,]+, i64 {int(kind)}, ", ln)]


def test_every_isa_operation_has_an_emitter() -> None:
    assert missing_emitters() == []


DIV = """
    PUBLIC main
main:
    DIVS64 A, HL, DE
    REMS BC, HL, DE
    RET
"""


def test_division_guard_precedes_the_division_unoptimised() -> None:
    text = lowered(DIV)
    body = text[text.index(" @f_0("):]
    i_guard = body.index("icmp ne i64 %v1, 0")
    i_div = body.index("sdiv i64")
    assert i_guard < i_div
    assert "srem i32" in body


@pytest.mark.parametrize("pipeline", ["zjit", "default"])
@pytest.mark.parametrize("mem_size", [None, MEM])
def test_division_guard_survives_o2(mem_size: int | None, pipeline: str) -> None:
    text = optimised(lowered(DIV, mem_size=mem_size), pipeline=pipeline)
    # the guest function, or the entry wrapper it was inlined into
    fn = next(d for d in text.split("\ndefine ")[1:] if "sdiv i64" in d)
    fn = fn[: fn.index("\n}\n")]
    assert "sdiv i64" in fn and "srem i32" in fn
    assert fn.count("@zjit.trap(") >= 2, "the DIV0 exits were optimised away"
    # The zero test branches before the sdiv: the block holding sdiv is reached
    # only through a compare of the divisor with 0.
    blocks = re.split(r"\n(?=[\w.]+:)", fn)
    div_block = next(b for b in blocks if "sdiv i64" in b)
    label = div_block.split(":")[0]
    preds = [b for b in blocks if re.search(rf"label %{re.escape(label)}\b", b)]
    assert preds and all(re.search(r"icmp (eq|ne) i64 %\w+, 0", p) for p in preds)


def test_int_min_by_minus_one_is_made_safe() -> None:
    text = lowered(DIV)
    assert "icmp eq i64 %v0, -9223372036854775808" in text
    assert "icmp eq i32" in text and "-2147483648" in text


def test_bounds_check_before_every_access() -> None:
    text = lowered("""
    LD64 A, (HL+8)
    ST32 (DE-4), A
    RET
""", mem_size=MEM)
    assert f"icmp ult i64 %ea1, {MEM - 8 + 1}" in text.replace("%ea", "%ea1", 1) or \
        re.search(rf"icmp ult i64 %ea\d+, {MEM - 7}\b", text)
    assert re.search(rf"icmp ult i64 %ea\d+, {MEM - 3}\b", text)
    assert len(trap_calls(text, TrapKind.OOB)) == 2
    # the host address is formed only after the check
    i_check = text.index(f", {MEM - 7}")
    i_gep = text.index("getelementptr i8, ptr %mem")
    assert i_check < i_gep


def test_dynamic_memory_size_reads_the_context() -> None:
    text = lowered("LD8U A, (HL)\n RET\n")
    assert "%c.mem_size = load i64" in text and "!invariant.load" in text
    assert "icmp ult i64 %v0, %lim1" in text


def test_write_protect_only_with_readonly_segments() -> None:
    src = "ST8 (HL), A\n FILL\n RET\n"
    assert not trap_calls(lowered(src, mem_size=MEM), TrapKind.WRITE_PROTECT)
    ro = (SegmentDesc("rodata", 0x2000, 0x100, "r", b"x"),)
    text = lowered(src, ro, mem_size=MEM, readonly=((0x2000, 0x2100),))
    assert len(trap_calls(text, TrapKind.WRITE_PROTECT)) == 2
    assert "icmp ult i64 %v0, 8448" in text  # compiled-in range end
    dyn = lowered(src, ro)
    assert "zjit.wp_conflict" in dyn and "%c.ro_hi" in dyn


def test_constant_addresses_are_decided_at_compile_time() -> None:
    text = lowered("LD HL, 0x100\n LD8U A, (HL)\n LD HL, -1\n LD8U A, (HL)\n RET\n", mem_size=MEM)
    oob = trap_calls(text, TrapKind.OOB)
    # trap(ctx, kind, pc, HL, DE, A, BC, IX, addr, fuel, len): address -1, length 1
    assert len(oob) == 1 and re.search(r"i64 -1, i64 0, i64 1\)", oob[0])
    assert "br i1 false" in text


def test_fuel_and_interrupt_checks() -> None:
    src = """
    PUBLIC main
main:
    LD HL, 3
top:
    DEC HL
    CPI HL, 0
    JR ne, top
    RET
"""
    plain = lowered(src)
    assert "@zjit.trap" in plain or '"zjit.trap"' in plain
    assert not trap_calls(plain, TrapKind.FUEL)
    assert len(trap_calls(plain, TrapKind.TIMEOUT)) == 1  # the loop header only (leaf function)
    assert "load volatile i64" in plain
    metered = lowered(src, fuel=True)
    assert len(trap_calls(metered, TrapKind.FUEL)) == 3  # one per block
    assert metered.count("@llvm.usub.with.overflow.i64(i64 %fuel") == 3  # one charge per block
    assert "llvm.loop.unroll.disable" in plain


def test_calls_check_depth_and_recursion_checks_stack() -> None:
    src = """
    PUBLIC main
main:
    CALL f
    RET
f:
    CPI HL, 0
    JR eq, done
    DEC HL
    CALL f
done:
    RET
"""
    text = lowered(src)
    assert len(trap_calls(text, TrapKind.CALL_DEPTH)) == 2
    assert len(re.findall(r"= icmp ne i64 %room[\w.]*, 0", text)) == 2  # calls left before CALL_DEPTH
    assert len(re.findall(r"= sub i64 %room[\w.]*, 1", text)) == 2
    assert text.count("call ptr @llvm.stacksave.p0()") == 1  # the recursive call only
    assert len(trap_calls(text, TRAP_STACK)) == 1
    # guest calls pass and return the whole state S in registers, nothing is
    # tested after them (a trap leaves through the trap helper, which never returns)
    assert len(re.findall(r"= call x86_regcallcc %S @f_\w+\(ptr %ctx[\w.]*, ptr %mem[\w.]*, i64 %d\d+, "
                          r"(i64 [^,]+, ){5}i64 %?[\w.]+, i64 \w+\)", text)) == 2
    guest = [d for d in text.split("\ndefine ")[1:] if re.match(r"internal \S+ %[SR] @f_", d)]
    assert len(guest) == 2
    assert not any(re.search(rf"ptr %ctx[\w.]*, i64 {OFFSETS['trap_kind']}\n", d) for d in guest)
    a64 = lowered(src, triple=AARCH64_TRIPLE)
    assert re.search(r"= call preserve_nonecc %R @f_", a64) and "%R = type { i64, i64, i64, i64, i64, i64, i64, i64 }" in a64


def test_no_globals_and_no_relocations() -> None:
    src = """
    PUBLIC main
main:
    IN
    OUT
    LOG
    CTL
    ALLOC
    LDIR
    CALL f
    RET
f:
    LD64 A, (HL)
    RET
"""
    text = lowered(src)
    # the only global is the list that keeps the engine-only runtime routines
    assert re.findall(r"^@[\w.]+", text, re.M) == ["@llvm.compiler.used"], "no global variables"
    assert not re.search(r"^declare (?!.*@llvm\.)", text, re.M), "only LLVM intrinsics are declared"
    for level in (0, 2):
        obj = parse_elf(compile_ir_inprocess(text, triple=X86_64_TRIPLE, opt_level=level))
        assert obj.machine == EM_X86_64
        assert obj.relocations == ()


def test_aarch64_object() -> None:
    text = lowered(DIV, triple=AARCH64_TRIPLE)
    assert f'target triple = "{AARCH64_TRIPLE}"' in text
    obj = parse_elf(compile_ir_inprocess(text, triple=AARCH64_TRIPLE, opt_level=2))
    assert obj.machine == EM_AARCH64
    # only the ADRP/ADD pair that passes the entry body's address to rt_enter
    by_index = dict(enumerate(obj.symbols))
    assert sorted(r.type for r in obj.relocations) == [R_AARCH64_ADR_PREL_PG_HI21, R_AARCH64_ADD_ABS_LO12_NC]
    assert {by_index[r.sym].name for r in obj.relocations} <= {"body_0", ".text", ""}
    names = {s.name for s in obj.symbols}
    assert "zjit_entry_0" in names and {"rt_enter", "rt_trap_exit", "rt_thread_main", "body_0"} <= names


def test_context_layout_single_source() -> None:
    off = 0
    for f in FIELDS:
        assert OFFSETS[f.name] == off == getattr(Ctx, f.name).offset
        off += f.size
    assert off == CTX_SIZE
    header = c_header({"zjit_entry_0": "main"})
    for f in FIELDS:
        assert re.search(rf"\b{f.name}\b.*\+\s*{OFFSETS[f.name]}\b", header), f.name
    assert "int32_t zjit_entry_0(zjit_ctx *ctx);" in header
    assert "#define ZJIT_TRAP_OOB 2" in header


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_header_matches_offsets_in_c(tmp_path: Path) -> None:
    (tmp_path / "zjit.h").write_text(c_header())
    checks = "\n".join(
        f'_Static_assert(offsetof(zjit_ctx, {f.name}) == {OFFSETS[f.name]}, "{f.name}");' for f in FIELDS
    )
    (tmp_path / "t.c").write_text(f'#include "zjit.h"\n{checks}\nint main(void) {{ return 0; }}\n')
    res = subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-c", "t.c", "-o", "t.o"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_opt_levels_compile() -> None:
    text = lowered(DIV)
    for level in (0, 1, 2):
        assert parse_elf(compile_ir_inprocess(text, triple=X86_64_TRIPLE, opt_level=level)).symbols
