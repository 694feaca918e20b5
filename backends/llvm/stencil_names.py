"""Names and facts of the baseline tier's stencils that the code generator,
the assembler and the engines share (a leaf module: nothing heavy is imported
here, so loading cached baseline code imports none of the stencil IR generator).

:mod:`.stencils` writes the stencils these functions name; the assembler
(:mod:`zjit.backends.baseline.assembler`) looks them up by the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

from zjit.isa import Family, OpInfo

from ..context import RT_HOST_REQUEST, RT_THREAD_MAIN
from .abi import HOST_CALL, MEMMOVE, MEMSET
from .runtime_asm import RT_ENTER

CONT = "_JIT_CONT"
TARGET = "_JIT_TARGET"
TIERUP = "_JIT_TIERUP"
TRAP = "_JIT_TRAP"
"""Trap exits are ``_JIT_TRAP0``, ``_JIT_TRAP1``... in the order of the guards."""

_U31 = (0, 1 << 31)
_FULL = (-1, -1)  # LLVM's notation for the full range
VALUE_HOLES: dict[str, tuple[int, int]] = {
    "_JIT_DISP": (-2048, 2048),    # a load's or store's displacement
    "_JIT_LIMIT": _U31,            # mem_size - n + 1 for an n-byte access (0 if smaller)
    "_JIT_MEMSIZE": _U31,          # mem_size
    "_JIT_ROLO": _U31,             # lowest read-only start
    "_JIT_ROHI": _U31,             # highest read-only end
    "_JIT_IMM": _U31,              # LD with a value in 0 .. 2**31 - 1
    "_JIT_NEG": (-(1 << 31), 0),   # LD with a value in -2**31 .. -1
    "_JIT_IMM64": _FULL,           # LD with a 64-bit value
    "_JIT_CPI": (0, 1 << 32),      # CPI: lo32(immediate)
    "_JIT_COST": _U31,             # a block's fuel cost
    "_JIT_FID8": _U31,             # 8 * entry id: a function table slot
    "_JIT_CNT8": _U31,             # the slot of an entry's tier-up counter
    "_JIT_ID": _U31,               # an entry id
    "_JIT_PC": _U31,               # the pc a trap reports
    "_JIT_KIND": (0, 256),         # the trap kind
    "_JIT_LEN": (0, 16),           # a fixed access length
    "_JIT_SH": (0, 64),            # a shift count
    "_JIT_SHN": (0, 64),           # x86-64: width - count (a rotate the other way)
}
"""Value hole symbol -> the range of its values (the hole's ``!absolute_symbol``)."""
SHIFT_PROBES = (13, 21)
"""The two shift counts an x86-64 shift stencil is compiled with (the byte that
differs is the count's hole)."""
SHIFT_HOLE = "_JIT_SH"
SHIFT_NEG_HOLE = "_JIT_SHN"


@dataclass(frozen=True, slots=True)
class TrapExit:
    """What a trap exit of a stencil reports: the kind, and where the failing
    address and length come from, given the registers at the trap and the
    instruction (``n``: 0; ``c``: the access width; ``r<i>``: register i;
    ``z<i>``: its low 32 bits; ``d<i>``: register i plus the displacement)."""

    kind: int
    addr: str
    length: str


def rrr_name(op: OpInfo, rd: int, rs1: int, rs2: int) -> str:
    """Stencil of a three-register operation."""
    return f"{op.mnemonic}_{rd}{rs1}{rs2}"


def shift_name(op: OpInfo, rd: int, rs1: int) -> str:
    """Stencil of a shift or rotate by a constant."""
    return f"{op.mnemonic}_{rd}{rs1}"


def unary_name(op: OpInfo, rd: int) -> str:
    """Stencil of a one-register operation (bit counts, INC, DEC)."""
    return f"{op.mnemonic}_{rd}"


def mem_name(op: OpInfo, r1: int, r2: int, readonly: bool = False) -> str:
    """Stencil of a load (``r1`` = destination, ``r2`` = base) or a store
    (``r1`` = base, ``r2`` = source; ``readonly``: with the write-protect check).
    Stores of the same size share stencils (``ST8_64`` is ``ST8``)."""
    if op.family is Family.STORE:
        return f"ST{op.width}{'W' if readonly else ''}_{r1}{r2}"
    return f"{op.mnemonic}_{r1}{r2}"


def fixed_name(op: OpInfo, readonly: bool = False) -> str:
    """Stencil of an operation on fixed registers (LDIR, FILL, primitives)."""
    return op.mnemonic + ("W" if readonly else "")


def cp_name(a: int, b: int | None, cond: int = 0) -> str:
    """Stencil of CP a, b (``b`` None: CPI a), fused with a following ``JR cond``."""
    base = f"CP_{a}{b}" if b is not None else f"CPI_{a}"
    return f"{base}_JR{cond}" if cond else base


def jr_name(cond: int) -> str:
    """Stencil of a conditional JR (``JMP`` for an unconditional jump)."""
    return f"JR_{cond}" if cond else "JMP"


TRAP_SITE_FN = "zjit.trap_site"
"""Runtime routine every trap stub calls: it passes its return address (which
says which stub, so which site, trapped) to the trap helper as the pc, with the
kind :data:`~zjit.backends.context.TRAP_SITE`; the engine decodes the site."""


BL_ENTRY = "zjit.bl_entry"
"""The baseline code's run entry (``run_entry``): ``rt_enter(ctx, body)`` where the
body calls the function table slot ``ctx.run_id``."""
WP_CONFLICT = "zjit.wp_conflict"
"""The read-only scan (``emit_memory.WP_HELPER``)."""
RUNTIME_SYMBOLS = (TRAP_SITE_FN, HOST_CALL, MEMMOVE, MEMSET, WP_CONFLICT, BL_ENTRY,
                   RT_ENTER, RT_HOST_REQUEST, RT_THREAD_MAIN)
"""Runtime routines stencils and engines refer to by name."""


def field_keys(op: OpInfo) -> list[tuple[int, int, int]]:
    """``(rd, rs1, rs2)`` of every instruction of ``op`` the field rules allow
    (``isa.md`` 1.4): what the baseline tier must have a stencil for."""
    regs = range(5)
    fam = op.family
    if fam in (Family.ALU, Family.DIV, Family.CMPSET):
        return [(a, b, c) for a in regs for b in regs for c in regs]
    if fam is Family.SHIFT or fam is Family.LOAD:
        return [(a, b, b) for a in regs for b in regs]
    if fam is Family.STORE:
        return [(c, b, c) for b in regs for c in regs]
    if fam is Family.BITCOUNT:
        return [(a, a, a) for a in regs]
    if fam is Family.INCDEC:
        return [(a, a, 0) for a in regs]
    if fam is Family.MOV:
        return [(a, b, 0) for a in regs for b in regs]
    if fam is Family.CP:
        return [(a, a, b) for a in regs for b in (regs if op.operation == "cp" else (0,))]
    if fam is Family.NOP or fam is Family.LDI:
        return [(a, 0, 0) for a in regs]
    if fam is Family.JR:
        return [(0, cond, 0) for cond in range(11)]
    return [(0, 0, 0)]


def instruction_stencils(op: OpInfo, rd: int, rs1: int, rs2: int) -> tuple[str, ...]:
    """Every stencil an instruction may be emitted with, the main one first (none:
    the instruction needs no code). After the main one: the write-protecting twin
    (stores, LDIR, FILL, IN, CTL), LDN and LDQ (LD with a negative or a 64-bit
    value), the compares fused with each JR condition 1..10 (CP, CPI), ROOM (CALL)."""
    fam = op.family
    if fam in (Family.ALU, Family.DIV, Family.CMPSET):
        return (rrr_name(op, rd, rs1, rs2),)
    if fam is Family.SHIFT:
        return (shift_name(op, rd, rs1),)
    if fam in (Family.BITCOUNT, Family.INCDEC):
        return (unary_name(op, rd),)
    if fam is Family.MOV:
        return () if rd == rs1 else (f"MOV_{rd}{rs1}",)
    if fam is Family.NOP:
        return ()
    if fam is Family.CP:
        b = rs2 if op.operation == "cp" else None
        return (cp_name(rs1, b), *(cp_name(rs1, b, cond) for cond in range(1, 11)))
    if fam is Family.LDI:
        return (f"LDI_{rd}", f"LDN_{rd}", f"LDQ_{rd}")
    if fam is Family.LOAD:
        return (mem_name(op, rd, rs1),)
    if fam is Family.STORE:
        return (mem_name(op, rs1, rs2), mem_name(op, rs1, rs2, True))
    if fam in (Family.BULK, Family.PRIM):
        return (fixed_name(op), fixed_name(op, True)) if op.operation in WP_TWINS else (fixed_name(op),)
    if fam is Family.JR:
        return (jr_name(rs1),)
    if fam is Family.CALL:
        return ("CALL", "ROOM")
    return ("RET",)


WP_TWINS = ("ldir", "fill", "in", "ctl")
"""Operations on fixed registers that write guest memory: they have a stencil
with the write-protect check (the module has read-only segments) besides the plain one."""
