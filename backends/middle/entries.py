"""Entry ids: the slots of the function table (``ctx.ftab``) that tiers switch.

Code that may be replaced while a program runs (the baseline tier's code, and
per-function O2 code from tier-up) reaches other code through ``ftab[id]``; an
aligned 8-byte store into one slot switches the next call or jump there to
other code. :func:`entry_ids` numbers the slots, the same way for every tier:

* every guest function entry (``VerifiedProgram.functions``: the module entry,
  the exports and every CALL target), in pc order, then
* every *loop header* that may serve as an on-stack-replacement entry, in pc
  order: the target of a JR that jumps backwards or to itself
  (:func:`loop_headers`). Every cycle of jumps and fall-throughs contains such a
  JR (fall-through only goes forward), so every loop has one of these headers;
  the baseline tier polls for interrupts and counts iterations there.

Both are linear in the size of the program (one pass over its instructions).
"""

from __future__ import annotations

from zjit.verifier import VerifiedProgram

from zjit.isa import BY_OPCODE, LD_IMM32, LD_IMM64, Family

_JR = next(o.opcode for o in BY_OPCODE if o is not None and o.family is Family.JR)
_LD = next(o.opcode for o in BY_OPCODE if o is not None and o.family is Family.LDI)
_LD_EXT = {LD_IMM32 & 0xFFF: 1, LD_IMM64 & 0xFFF: 2}


def loop_headers(program: VerifiedProgram) -> tuple[int, ...]:
    """Targets of backward (or self) JRs that are not function entries, sorted."""
    code = memoryview(program.image.code).cast("I")
    n = len(code)
    found: set[int] = set()
    k = 0
    while k < n:
        word = code[k]
        op = word >> 24
        if op == _JR:
            imm = word & 0xFFF
            if imm == 0 or imm & 0x800:  # displacement <= 0
                found.add(4 * k + 4 * (imm - 0x1000 if imm else 0))
        elif op == _LD:
            k += _LD_EXT.get(word & 0xFFF, 0)  # skip LD's extension words
        k += 1
    return tuple(sorted(found.difference(program.functions)))


def entry_ids(program: VerifiedProgram) -> dict[int, int]:
    """Entry pc -> ftab slot: function entries in pc order, then loop headers."""
    out = {pc: i for i, pc in enumerate(program.functions)}
    base = len(out)
    for k, pc in enumerate(loop_headers(program)):
        out[pc] = base + k
    return out
