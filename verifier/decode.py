"""Decoding CODE (``isa.md`` 1): which words start instructions, which decode, and
the :class:`~zjit.encoding.Instr` of one instruction on demand.

The scan keeps one byte per word and creates no per-instruction object: a word is
an LD extension word, the start of an instruction that failed to decode, or the
start of a valid instruction (its opcode). Validity is one table lookup per word
(:func:`~zjit.verifier.fields.word_bounds`); error messages for the rare bad words
come from :func:`~zjit.verifier.fields.check_fields`, the rules' own text.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field

from zjit.encoding import Instr, fields, ld_ext_count
from zjit.errors import VerifyError
from zjit.isa import BY_OPCODE, LD_IMM32, LD_IMM64, MASK64, Family, Fmt, sext

from .fields import check_fields, word_bounds

EXTENSION = 0xFF
"""Scan marker: an LD extension word (not an instruction start)."""
INVALID = 0xFE
"""Scan marker: an instruction start whose word failed to decode."""
_NOT_OPCODE = 0xFD
assert BY_OPCODE[EXTENSION] is None and BY_OPCODE[INVALID] is None and BY_OPCODE[_NOT_OPCODE] is None
# Opcode bytes that equal a marker are invalid opcodes anyway; they become another
# invalid opcode so that only the scan's own markers carry the marker values.
_UNMARK = bytes(_NOT_OPCODE if b in (INVALID, EXTENSION) else b for b in range(256))

_LD = next(op for op in BY_OPCODE if op is not None and op.family is Family.LDI)
# A valid LD (RS1 = RS2 = 0, RD a register) whose IMM12 is a sentinel, byte by byte:
# IMM12 bits 0..7 (LD_IMM32: one extension word, LD_IMM64: two), RS2 << 4 | IMM12
# bits 8..11 (the sentinels share them), RD << 4 | RS1, the opcode.
_IMM32_LOW, _IMM64_LOW = LD_IMM32 & 0xFF, LD_IMM64 & 0xFF
_SENTINEL_HIGH = (LD_IMM32 & 0xFFF) >> 8
assert _LD.fmt is Fmt.LDI and _SENTINEL_HIGH == (LD_IMM64 & 0xFFF) >> 8 and _IMM32_LOW != _IMM64_LOW
_LD_RD_BYTES = bytes(rd << 4 for rd in range(16) if check_fields(_LD, rd, 0, 0, 0) is None)


def _is_byte(*values: int) -> bytes:
    """A translate table mapping ``values`` to 1 and every other byte to 0."""
    return bytes(int(b in values) for b in range(256))


_IS_LD = _is_byte(_LD.opcode)
_IS_SENTINEL_HIGH = _is_byte(_SENTINEL_HIGH)
_IS_LD_RD = _is_byte(*_LD_RD_BYTES)
_IS_IMM32, _IS_IMM64 = _is_byte(_IMM32_LOW), _is_byte(_IMM64_LOW)


def words_of(code: bytes) -> memoryview | array[int]:
    """The little-endian u32 words of ``code`` (a multiple of 4 bytes) without a
    copy on little-endian hosts."""
    if sys.byteorder == "little":
        return memoryview(code).cast("I")
    words = array("I", code)  # pragma: no cover - big-endian hosts
    words.byteswap()  # pragma: no cover
    return words  # pragma: no cover


@dataclass(slots=True)
class Scan:
    """Per-word facts of CODE: ``kinds[i]`` is the opcode of the valid instruction
    starting at word ``i``, :data:`INVALID` or :data:`EXTENSION`; ``errors`` are
    the decoding errors in pc order."""

    words: memoryview | array[int]
    kinds: bytearray
    errors: list[VerifyError] = field(default_factory=list)

    def instruction_count(self) -> int:
        """Instruction starts (valid or not)."""
        return len(self.kinds) - self.kinds.count(EXTENSION)


def _byte_flags(column: bytes, table: bytes) -> int:
    """One byte per word, 1 where ``table`` maps the word's byte to 1, as an integer
    (word ``i`` is byte ``i``: shifting by 8 moves a flag to the next word)."""
    return int.from_bytes(column.translate(table), "little")


def _mark_extensions(code: bytes, kinds: bytearray, code_offset: int) -> VerifyError | None:
    """Mark the extension words of every valid sentinel LD; an LD cut short by the
    end of CODE is TRUNCATED_EXT, and nothing after it is decoded.

    All words at once with integers as byte vectors; when one candidate LD lies in
    another's extension words or at the end of CODE, :func:`_mark_extensions_in_order`
    settles who owns what.
    """
    n = len(kinds)
    ld = (_byte_flags(code[3::4], _IS_LD) & _byte_flags(code[2::4], _IS_LD_RD)
          & _byte_flags(code[1::4], _IS_SENTINEL_HIGH))
    if not ld:
        return None
    low = code[0::4]
    one, two = ld & _byte_flags(low, _IS_IMM32), ld & _byte_flags(low, _IS_IMM64)
    ext = (one | two) << 8 | two << 16
    if ext & (one | two) or ext >> (8 * n):
        return _mark_extensions_in_order(code, kinds, code_offset)
    marked = int.from_bytes(kinds, "little") | ext * EXTENSION  # flag bytes are 0/1: no carries
    kinds[:] = marked.to_bytes(n, "little")
    return None


def _mark_extensions_in_order(code: bytes, kinds: bytearray, code_offset: int) -> VerifyError | None:
    """:func:`_mark_extensions` one LD after the other, as a sequential decoder does."""
    import re  # only here: the start-up path avoids it (docs/startup.md)

    pattern = b"".join((b"[", re.escape(bytes([_IMM32_LOW, _IMM64_LOW])), b"]", re.escape(bytes([_SENTINEL_HIGH])),
                        b"[", re.escape(_LD_RD_BYTES), b"]", re.escape(bytes([_LD.opcode]))))
    n = len(kinds)
    free = 0  # first word not consumed by an earlier LD
    for m in re.finditer(pattern, code):
        at = m.start()
        i = at >> 2
        if at & 3 or i < free:
            continue
        ext = ld_ext_count(sext(code[at] | (code[at + 1] & 0xF) << 8, 12))
        if i + ext >= n:
            kinds[i + 1:] = bytes([EXTENSION]) * (n - i - 1)
            kinds[i] = INVALID
            return VerifyError("TRUNCATED_EXT", f"LD needs {ext} extension word(s) but CODE ends",
                               pc=4 * i, offset=code_offset + 4 * i, opcode=_LD.opcode)
        kinds[i + 1:i + 1 + ext] = bytes([EXTENSION]) * ext
        free = i + 1 + ext
    return None


def decode_error(word: int, pc: int, code_offset: int) -> VerifyError:
    """The error of a word that does not decode (BAD_OPCODE or the first field rule broken)."""
    opcode, rd, rs1, rs2, imm = fields(word)
    op = BY_OPCODE[opcode]
    if op is None:
        return VerifyError("BAD_OPCODE", f"invalid opcode {opcode:#04x} in word {word:#010x}",
                           pc=pc, offset=code_offset + pc, opcode=opcode)
    problem = check_fields(op, rd, rs1, rs2, imm)
    assert problem is not None, "word_bounds disagrees with check_fields"
    return VerifyError(problem[0], problem[1], pc=pc, offset=code_offset + pc, opcode=opcode)


_CHUNK = 1 << 16
"""Words checked per step (bounds the list of rejected word indices)."""


def scan_code(code: bytes, code_offset: int = 0, max_errors: int | None = None) -> Scan:
    """Classify every word of ``code`` (non-empty, a multiple of 4 bytes).

    A word that is not an extension word starts an instruction; if it fails to
    decode it is reported and decoding resumes at the next word, so every error
    is listed (in pc order; only the first ``max_errors`` when given, though every
    bad word is still marked).
    """
    words = words_of(code)
    kinds = bytearray(code[3::4].translate(_UNMARK))  # opcode bytes; markers overwrite them below
    truncated = _mark_extensions(code, kinds, code_offset)
    bounds = word_bounds()
    scan = Scan(words, kinds)
    errors = scan.errors
    room = len(kinds) if max_errors is None else max_errors
    for lo in range(0, len(words), _CHUNK):
        bad = [i for i, w in enumerate(words[lo:lo + _CHUNK], lo) if (w & 0xFFF) >= bounds[w >> 12]]
        for i in bad:
            if kinds[i] != EXTENSION and kinds[i] != INVALID:
                kinds[i] = INVALID
                if len(errors) < room:
                    errors.append(decode_error(words[i], 4 * i, code_offset))
    if truncated is not None and len(errors) < room:
        errors.append(truncated)
    return scan


def decode_at(words: memoryview | array[int], i: int) -> Instr:
    """The instruction starting at word ``i`` (which the scan found valid)."""
    opcode, rd, rs1, rs2, imm = fields(words[i])
    op = BY_OPCODE[opcode]
    assert op is not None
    nwords = 1
    if op.fmt is Fmt.LDI:
        ext = ld_ext_count(imm)
        if ext == 1:
            imm = sext(words[i + 1], 32)
        elif ext == 2:
            imm = sext((words[i + 1] | words[i + 2] << 32) & MASK64, 64)
        nwords = 1 + ext
    return Instr(4 * i, op, rd, rs1, rs2, imm, nwords)
