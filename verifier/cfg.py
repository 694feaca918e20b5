"""Control flow (``isa.md`` 4.1): branch targets, block leaders, guest functions,
and basic blocks decoded on demand.

Leaders and function entries are marks in one byte per word (no sets of pcs), so
the cost of the pass is one step per CALL, JR or RET.
"""

from __future__ import annotations

from itertools import compress

from zjit.errors import VerifyError
from zjit.isa import BY_OPCODE, Family

from .block import Block
from .decode import EXTENSION, Scan, decode_at

LEADER = 1
"""Mark: a block starts at this word."""
FUNCTION = 2
"""Mark bit: a guest function starts at this word (always together with LEADER)."""

_ENDS_BLOCK = bytes(int(op is not None and op.ends_block) for op in BY_OPCODE)
_FUNCTIONS_ONLY = bytes(int(k & FUNCTION != 0) for k in range(256))
_RET = next(op.opcode for op in BY_OPCODE if op is not None and op.family is Family.RET)
_CALL = next(op.opcode for op in BY_OPCODE if op is not None and op.family is Family.CALL)


def check_branches(scan: Scan, code_offset: int = 0,
                   max_errors: int | None = None) -> tuple[bytearray, list[VerifyError]]:
    """Every CALL and JR target must be an instruction start inside CODE
    (BAD_TARGET, in pc order; the first ``max_errors`` when given). Returns the
    marks: LEADER on every target and on every instruction after a CALL, JR or
    RET; FUNCTION too on CALL targets."""
    kinds, words = scan.kinds, scan.words
    n = len(kinds)
    marks = bytearray(n)
    errors: list[VerifyError] = []
    for i in compress(range(n), kinds.translate(_ENDS_BLOCK)):
        if i + 1 < n:
            marks[i + 1] |= LEADER
        word = words[i]
        opcode = word >> 24
        if opcode == _RET:
            continue
        disp = word & 0xFFF
        t = i + disp - ((disp & 0x800) << 1)
        if 0 <= t < n and kinds[t] != EXTENSION:
            marks[t] |= (LEADER | FUNCTION) if opcode == _CALL else LEADER
            continue
        op = BY_OPCODE[opcode]
        assert op is not None
        where = "outside CODE" if not 0 <= t < n else "not an instruction start"
        errors.append(VerifyError("BAD_TARGET", f"{op.mnemonic} target {4 * t:#x} is {where}",
                                  pc=4 * i, offset=code_offset + 4 * i, opcode=opcode))
        if max_errors is not None and len(errors) >= max_errors:
            break  # the marks are of no use once there are errors
    return marks, errors


def leader_words(marks: bytearray) -> compress[int]:
    """Word indices of the block leaders, ascending."""
    return compress(range(len(marks)), marks)


def function_words(marks: bytearray) -> compress[int]:
    """Word indices of the guest function entries, ascending."""
    return compress(range(len(marks)), marks.translate(_FUNCTIONS_ONLY))


def build_block(scan: Scan, start: int, end: int) -> Block:
    """The block of the instructions from word ``start`` up to word ``end`` (the next
    leader or the end of CODE)."""
    kinds, words = scan.kinds, scan.words
    body = tuple(decode_at(words, i) for i in range(start, end) if kinds[i] != EXTENSION)
    last = body[-1]
    fam = last.op.family
    succ: tuple[int, ...]
    if fam is Family.RET:
        succ = ()
    elif fam is Family.CALL:
        succ = (last.target, last.next_pc)
    elif fam is Family.JR:
        succ = (last.target,) if last.rs1 == 0 else (last.target, last.next_pc)
    else:
        succ = (last.next_pc,)
    return Block(4 * start, last.next_pc, body, len(body), succ)
