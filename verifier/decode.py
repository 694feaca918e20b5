"""Decoding CODE into instructions, collecting every decoding error."""

from __future__ import annotations

from zjit.encoding import Instr, bytes_to_words, fields, ld_ext_count
from zjit.errors import VerifyError
from zjit.isa import BY_OPCODE, LD_IMM32, MASK64, Fmt, sext

from .fields import check_fields


def decode_code(code: bytes, code_offset: int = 0) -> tuple[list[Instr], list[VerifyError]]:
    """Decode every instruction of ``code``.

    Returns the instructions that decoded and the errors found (in pc order).
    A word with an invalid opcode or fields is reported and skipped; decoding
    continues with the next word so every error is listed.
    """
    words = bytes_to_words(code)
    instrs: list[Instr] = []
    errors: list[VerifyError] = []
    i = 0
    n = len(words)
    while i < n:
        pc = 4 * i
        opcode, rd, rs1, rs2, imm = fields(words[i])
        op = BY_OPCODE[opcode]
        if op is None:
            errors.append(VerifyError(
                "BAD_OPCODE", f"invalid opcode {opcode:#04x} in word {words[i]:#010x}",
                pc=pc, offset=code_offset + pc, opcode=opcode))
            i += 1
            continue
        problem = check_fields(op, rd, rs1, rs2, imm)
        if problem is not None:
            errors.append(VerifyError(problem[0], problem[1], pc=pc, offset=code_offset + pc,
                                      opcode=opcode))
            i += 1
            continue
        nwords = 1
        if op.fmt is Fmt.LDI:
            ext = ld_ext_count(imm)
            if i + ext >= n and ext:
                errors.append(VerifyError(
                    "TRUNCATED_EXT", f"LD needs {ext} extension word(s) but CODE ends",
                    pc=pc, offset=code_offset + pc, opcode=opcode))
                break
            if ext == 1:
                imm = sext(words[i + 1], 32)
            elif ext == 2:
                imm = sext(words[i + 1] | (words[i + 2] << 32), 64)
            elif imm == LD_IMM32:  # pragma: no cover - ld_ext_count covers sentinels
                raise AssertionError
            nwords = 1 + ext
            imm &= MASK64
            imm = sext(imm, 64)
        instrs.append(Instr(pc, op, rd, rs1, rs2, imm, nwords))
        i += nwords
    return instrs, errors
