"""Constant folding for the lifter: evaluate pure instructions whose inputs are all
constants (``isa.md`` 2.1, 2.2), so the LLVM lowering never sees them.

Written independently of the interpreter on purpose: the differential tests
compare the two, so sharing code would hide a common mistake.
"""

from __future__ import annotations

from zjit.isa import MASK32, Family, OpInfo


def _signed(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) & 1 else x


def _div_trunc(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _alu(op: str, a: int, b: int, w: int) -> int | None:
    m = (1 << w) - 1
    a, b = a & m, b & m
    if op == "add":
        return (a + b) & m
    if op == "sub":
        return (a - b) & m
    if op == "mul":
        return (a * b) & m
    if op == "and":
        return a & b
    if op == "or":
        return a | b
    if op == "xor":
        return a ^ b
    if b == 0:
        return None  # DIV0 traps: leave it to the guarded lowering
    if op == "divu":
        return a // b
    if op == "remu":
        return a % b
    sa, sb = _signed(a, w), _signed(b, w)
    if op == "divs":
        return _div_trunc(sa, sb) & m
    if op == "rems":
        return (sa - _div_trunc(sa, sb) * sb) & m
    return None


def _shift(op: str, a: int, c: int, w: int) -> int:
    m = (1 << w) - 1
    a &= m
    if op == "sla":
        return (a << c) & m
    if op == "srl":
        return a >> c
    if op == "sra":
        return (_signed(a, w) >> c) & m
    if op == "rol":
        return ((a << c) | (a >> (w - c))) & m if c else a
    return ((a >> c) | (a << (w - c))) & m if c else a  # ror


def _bitcount(op: str, a: int, w: int) -> int:
    a &= (1 << w) - 1
    if op == "clz":
        return w - a.bit_length()
    if op == "popc":
        return a.bit_count()
    return (a & -a).bit_length() - 1 if a else w  # ctz


_CMP = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "lts": lambda a, b: a < b, "les": lambda a, b: a <= b,
    "gts": lambda a, b: a > b, "ges": lambda a, b: a >= b,
    "ltu": lambda a, b: a < b, "leu": lambda a, b: a <= b,
    "gtu": lambda a, b: a > b, "geu": lambda a, b: a >= b,
}


def fold(op: OpInfo, args: list[int], imm: int) -> list[int] | None:
    """The values an instruction of ``op`` writes (in IR destination order) when its
    inputs are the constants ``args``; None when it cannot be folded (it may trap
    or is not pure)."""
    fam, name, w = op.family, op.operation, op.width
    if fam in (Family.ALU, Family.DIV):
        r = _alu(name, args[0], args[1], w)
        return None if r is None else [r]
    if fam is Family.INCDEC:
        return [(args[0] + (1 if name == "inc" else -1)) & MASK32]
    if fam is Family.SHIFT:
        return [_shift(name, args[0], imm, w)]
    if fam is Family.BITCOUNT:
        return [_bitcount(name, args[0], w)]
    if fam is Family.CMPSET:
        m = (1 << w) - 1
        a, b = args[0] & m, args[1] & m
        if name in ("lts", "les", "gts", "ges"):
            a, b = _signed(a, w), _signed(b, w)
        return [1 if _CMP[name](a, b) else 0]
    if fam is Family.CP:
        return [x & MASK32 for x in args]
    return None
