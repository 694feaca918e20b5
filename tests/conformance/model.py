"""An independent, deliberately plain model of ZASM data operations (isa.md 2.1).

Written from the spec in a different style from the interpreter's templates
(signed Python ints, explicit truncation) so the two can check each other.
"""

from __future__ import annotations

M64 = (1 << 64) - 1


def to_signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def to_unsigned(v: int, bits: int) -> int:
    return v % (1 << bits)


class Div0(Exception):
    """The operation traps DIV0."""


def binop(op: str, width: int, x: int, y: int) -> int:
    """Result register value of a 3-register operation (ALU, DIV, compare-set)."""
    ux, uy = to_unsigned(x, width), to_unsigned(y, width)
    sx, sy = to_signed(x, width), to_signed(y, width)
    if op in ("divs", "divu", "rems", "remu") and uy == 0:
        raise Div0
    if op == "add":
        r = ux + uy
    elif op == "sub":
        r = ux - uy
    elif op == "mul":
        r = ux * uy
    elif op == "and":
        r = ux & uy
    elif op == "or":
        r = ux | uy
    elif op == "xor":
        r = ux ^ uy
    elif op == "divu":
        r = ux // uy
    elif op == "remu":
        r = ux % uy
    elif op == "divs":
        q = abs(sx) // abs(sy)
        r = q if (sx >= 0) == (sy >= 0) else -q
    elif op == "rems":
        q = abs(sx) // abs(sy)
        q = q if (sx >= 0) == (sy >= 0) else -q
        r = sx - q * sy
    else:
        table = {"eq": ux == uy, "ne": ux != uy, "lts": sx < sy, "les": sx <= sy,
                 "gts": sx > sy, "ges": sx >= sy, "ltu": ux < uy, "leu": ux <= uy,
                 "gtu": ux > uy, "geu": ux >= uy}
        return int(table[op])
    return to_unsigned(r, width)


def shift(op: str, width: int, x: int, c: int) -> int:
    """SLA/SRA/SRL/ROL/ROR by constant ``c``."""
    ux = to_unsigned(x, width)
    if op == "sla":
        return to_unsigned(ux << c, width)
    if op == "srl":
        return ux >> c
    if op == "sra":
        return to_unsigned(to_signed(ux, width) >> c, width)
    bits = format(ux, f"0{width}b")
    if op == "rol":
        return int(bits[c:] + bits[:c], 2)
    return int(bits[width - c:] + bits[:width - c], 2)  # ror


def bitcount(op: str, width: int, x: int) -> int:
    """CLZ/CTZ/POPC."""
    bits = format(to_unsigned(x, width), f"0{width}b")
    if op == "clz":
        return len(bits) - len(bits.lstrip("0"))
    if op == "ctz":
        return len(bits) - len(bits.rstrip("0"))
    return bits.count("1")


EDGE = (
    0, 1, 2, 3, 5, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF,
    0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF, 0x1_0000_0000, 0x1_0000_0001,
    0x1_FFFF_FFFF, 0xDEAD_BEEF_1234_5678, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000,
    0x8000_0000_0000_0001, M64 - 1, M64,
)
"""Register values that stress wrapping, sign bits and the 32/64-bit boundary."""
