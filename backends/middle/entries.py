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
_LD_EXT = {_LD << 24 | (LD_IMM32 & 0xFFF): 1, _LD << 24 | (LD_IMM64 & 0xFFF): 2}
"""An LD word masked to its opcode and IMM12 -> its extension words."""
_JR_BYTE = bytes([_JR])


def loop_headers(program: VerifiedProgram) -> tuple[int, ...]:
    """Targets of backward (or self) JRs that are not function entries, sorted.

    Only candidate words are looked at, found with ``bytes.find`` on one byte
    of every word: JRs by their opcode byte, and LDs with an extension-word
    sentinel (IMM12 0x800 or 0x801) by their second byte. Those LDs mark the
    words after them as extension words, in pc order, so an extension word that
    looks like an LD or a JR is never taken for one."""
    code = program.image.code
    words = memoryview(code).cast("I")
    extension: set[int] = set()
    second = code[1::4]  # rs2 << 4 | IMM12 bits 8..11 of every word
    k = second.find(b"\x08")
    while k >= 0:
        ext = _LD_EXT.get(words[k] & 0xFF000FFF)
        if ext is not None and k not in extension:
            extension.update(range(k + 1, k + 1 + ext))
        k = second.find(b"\x08", k + 1)
    found: set[int] = set()
    ops = code[3::4]  # the opcode byte of every word
    k = ops.find(_JR_BYTE)
    while k >= 0:
        imm = words[k] & 0xFFF
        if (imm == 0 or imm & 0x800) and k not in extension:  # displacement <= 0
            found.add(4 * k + 4 * (imm - 0x1000 if imm else 0))
        k = ops.find(_JR_BYTE, k + 1)
    return tuple(sorted(found.difference(program.functions)))


def entry_ids(program: VerifiedProgram) -> dict[int, int]:
    """Entry pc -> ftab slot: function entries in pc order, then loop headers."""
    out = {pc: i for i, pc in enumerate(program.functions)}
    base = len(out)
    for k, pc in enumerate(loop_headers(program)):
        out[pc] = base + k
    return out
