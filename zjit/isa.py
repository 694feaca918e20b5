"""The ZASM instruction-set table: the single source of truth.

Every component (decoder, encoder, verifier, assembler, disassembler, interpreter
dispatch, JIT lowering coverage) reads opcode facts from :data:`OPS` and the lookup
tables derived from it. Nothing else hard-codes opcode numbers.

Word layout: ``op<<24 | rd<<20 | rs1<<16 | rs2<<12 | (imm12 & 0xFFF)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

WORD_BYTES = 4
MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF

REG_NAMES: tuple[str, ...] = ("HL", "DE", "A", "BC", "IX")
"""Register names by index; indices 5..15 are invalid."""
NUM_REGS = len(REG_NAMES)
REG_INDEX: dict[str, int] = {name: i for i, name in enumerate(REG_NAMES)}
HL, DE, A, BC, IX = range(NUM_REGS)

COND_NAMES: tuple[str, ...] = (
    "al", "eq", "ne", "lt", "le", "gt", "ge", "ltu", "leu", "gtu", "geu",
)
"""JR condition names by code (RS1 field of JR)."""
COND_INDEX: dict[str, int] = {name: i for i, name in enumerate(COND_NAMES)}

LD_IMM32 = -2048
"""LD's IMM12 sentinel: one extension word, sign-extended from 32 bits."""
LD_IMM64 = -2047
"""LD's IMM12 sentinel: two extension words, low then high."""


class Fmt(enum.Enum):
    """Field-rule classes of ``isa.md`` 1.4 (one per table row)."""

    CALL = "call"      # RD=RS1=RS2=0, IMM12 = displacement (words)
    NONE = "none"      # all fields 0 (RET, LDIR, FILL, primitives)
    JR = "jr"          # RS1 = condition 0..10, IMM12 = displacement
    CP = "cp"          # RD = RS1 = lhs, RS2 = rhs, IMM12 = 0
    CPI = "cpi"        # RD = RS1 = lhs, RS2 = 0, IMM12 = immediate
    DROP = "drop"      # RD = reg, rest 0
    INCDEC = "incdec"  # RD = RS1 = reg, rest 0
    MOV = "mov"        # RD = dst, RS1 = src, rest 0
    RRR = "rrr"        # RD, RS1, RS2 registers, IMM12 = 0
    SHIFT = "shift"    # RD, RS1 = src, RS2 = RS1, IMM12 = count 0..width-1
    UNARY = "unary"    # RD = RS1 = RS2 = reg, IMM12 = 0
    LDI = "ldi"        # RD = dst, RS1 = RS2 = 0, IMM12 = immediate or sentinel
    LOAD = "load"      # RD = dst, RS1 = base, RS2 = RS1, IMM12 = displacement
    STORE = "store"    # RD = RS2, RS1 = base, RS2 = src, IMM12 = displacement


class Family(enum.Enum):
    """Semantic families; the interpreter and the JIT lowering dispatch on these."""

    CALL = "call"
    RET = "ret"
    JR = "jr"
    CP = "cp"
    NOP = "nop"          # DROP
    INCDEC = "incdec"
    MOV = "mov"
    ALU = "alu"          # add sub mul and or xor
    DIV = "div"          # divs divu rems remu
    SHIFT = "shift"      # sla sra srl rol ror
    BITCOUNT = "bitcount"  # clz ctz popc
    CMPSET = "cmpset"    # eq ne lts ... geu
    LDI = "ldi"
    LOAD = "load"
    STORE = "store"
    BULK = "bulk"        # LDIR, FILL
    PRIM = "prim"        # host primitives F0..F5


@dataclass(frozen=True, slots=True)
class OpInfo:
    """One row of the ISA table.

    ``operation`` names the semantic operation inside the family (``"add"``,
    ``"divs"``, ``"lts"``, ``"clz"``, ``"ldir"``, ``"in"`` ...). ``width`` is the
    operand width in bits for arithmetic (32 or 64), the access size in bytes for
    loads/stores, and 0 where it does not apply. ``signed`` marks sign-extending
    loads (``ext64`` tells whether the sign/zero extension goes to 64 bits).
    """

    mnemonic: str
    opcode: int
    fmt: Fmt
    family: Family
    operation: str
    width: int = 0
    signed: bool = False
    ext64: bool = False

    @property
    def ends_block(self) -> bool:
        """CALL, JR and RET end a basic block (``isa.md`` 4.1)."""
        return self.family in (Family.CALL, Family.JR, Family.RET)

    @property
    def is_primitive(self) -> bool:
        """True for host primitives F0..F5."""
        return self.family is Family.PRIM

    @property
    def prim_bit(self) -> int:
        """IMPT mask bit for a primitive (opcode - 0xF0)."""
        return self.opcode - 0xF0


def _build() -> tuple[OpInfo, ...]:
    ops: list[OpInfo] = [
        OpInfo("CALL", 0x00, Fmt.CALL, Family.CALL, "call"),
        OpInfo("RET", 0x01, Fmt.NONE, Family.RET, "ret"),
        OpInfo("JR", 0x02, Fmt.JR, Family.JR, "jr"),
        OpInfo("CP", 0x03, Fmt.CP, Family.CP, "cp"),
        OpInfo("DROP", 0x04, Fmt.DROP, Family.NOP, "drop"),
        OpInfo("INC", 0x05, Fmt.INCDEC, Family.INCDEC, "inc", 32),
        OpInfo("DEC", 0x06, Fmt.INCDEC, Family.INCDEC, "dec", 32),
        OpInfo("MOV", 0x07, Fmt.MOV, Family.MOV, "mov", 64),
        OpInfo("CPI", 0x08, Fmt.CPI, Family.CP, "cpi"),
    ]
    arith = ("add", "sub", "mul", "divs", "divu", "rems", "remu", "and", "or", "xor")
    for width, base in ((32, 0x10), (64, 0x20)):
        for i, op in enumerate(arith):
            fam = Family.DIV if op in ("divs", "divu", "rems", "remu") else Family.ALU
            suffix = "" if width == 32 else "64"
            ops.append(OpInfo(op.upper() + suffix, base + i, Fmt.RRR, fam, op, width))
    shifts = ("sla", "sra", "srl", "rol", "ror")
    counts = ("clz", "ctz", "popc")
    for width, base in ((32, 0x30), (64, 0x40)):
        suffix = "" if width == 32 else "64"
        for i, op in enumerate(shifts):
            ops.append(OpInfo(op.upper() + suffix, base + i, Fmt.SHIFT, Family.SHIFT, op, width))
        for i, op in enumerate(counts):
            ops.append(
                OpInfo(op.upper() + suffix, base + 5 + i, Fmt.UNARY, Family.BITCOUNT, op, width)
            )
    compares = ("eq", "ne", "lts", "les", "gts", "ges", "ltu", "leu", "gtu", "geu")
    for width, base in ((32, 0x50), (64, 0x60)):
        suffix = "" if width == 32 else "64"
        for i, op in enumerate(compares):
            ops.append(OpInfo(op.upper() + suffix, base + i, Fmt.RRR, Family.CMPSET, op, width))
    ops.append(OpInfo("LD", 0x70, Fmt.LDI, Family.LDI, "ld", 64))
    # (mnemonic, size in bytes, signed, extends to 64)
    loads = (
        ("LD8U", 1, False, False), ("LD8S", 1, True, False),
        ("LD16U", 2, False, False), ("LD16S", 2, True, False),
        ("LD32", 4, False, False), ("LD64", 8, False, True),
        ("LD8U64", 1, False, True), ("LD8S64", 1, True, True),
        ("LD16U64", 2, False, True), ("LD16S64", 2, True, True),
        ("LD32U64", 4, False, True), ("LD32S64", 4, True, True),
    )
    for i, (name, size, signed, ext64) in enumerate(loads):
        ops.append(OpInfo(name, 0x71 + i, Fmt.LOAD, Family.LOAD, "load", size, signed, ext64))
    stores = (("ST8", 1), ("ST8_64", 1), ("ST16", 2), ("ST16_64", 2),
              ("ST32", 4), ("ST32_64", 4), ("ST64", 8))
    for i, (name, size) in enumerate(stores):
        ops.append(OpInfo(name, 0x80 + i, Fmt.STORE, Family.STORE, "store", size))
    ops.append(OpInfo("LDIR", 0x90, Fmt.NONE, Family.BULK, "ldir"))
    ops.append(OpInfo("FILL", 0x91, Fmt.NONE, Family.BULK, "fill"))
    for i, prim in enumerate(("in", "out", "log", "alloc", "free", "ctl")):
        ops.append(OpInfo(prim.upper(), 0xF0 + i, Fmt.NONE, Family.PRIM, prim))
    return tuple(ops)


OPS: tuple[OpInfo, ...] = _build()
"""All valid opcodes, in opcode order."""

_ROW_OF = {o.opcode: o for o in reversed(OPS)}  # the first row wins, as a scan would
BY_OPCODE: tuple[OpInfo | None, ...] = tuple(_ROW_OF.get(code) for code in range(256))
"""Opcode byte -> row, or None for an invalid opcode."""

BY_MNEMONIC: dict[str, OpInfo] = {o.mnemonic: o for o in OPS}
"""Upper-case mnemonic -> row."""

PRIM_NAMES: tuple[str, ...] = ("in", "out", "log", "alloc", "free", "ctl")
"""Primitive names by IMPT bit (``_in`` is bit 0)."""
PRIM_MASK_ALL = (1 << len(PRIM_NAMES)) - 1


class TrapKind(enum.IntEnum):
    """Trap kinds and their stable numeric codes (``isa.md`` 4)."""

    FUEL = 1
    OOB = 2
    DIV0 = 3
    CALL_DEPTH = 8
    WRITE_PROTECT = 9
    TIMEOUT = 10
    HOST = 11


CTL_NO_HANDLER = -7
"""CTL result when the embedder installed no control handler."""
CTL_RESP_TOO_LONG = -1
"""CTL result when the handler's response exceeds the response capacity."""
DEFAULT_MAX_CALL_DEPTH = 1024


def sext(value: int, bits: int) -> int:
    """Interpret the low ``bits`` of ``value`` as two's complement."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value
