"""Instruction words: field extraction, encoding, and the decoded-instruction record.

Decoding here is purely mechanical (fields of a word, LD extension words); the
field *rules* of ``isa.md`` 1.4 are enforced by the verifier.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .isa import LD_IMM32, LD_IMM64, MASK64, OpInfo, sext


@dataclass(frozen=True, slots=True)
class Instr:
    """A decoded instruction.

    ``pc`` is the byte offset of the base word; ``imm`` is IMM12 sign-extended, except
    for LD where it is the 64-bit value loaded (unsigned, 0..2^64-1 is *not* used:
    it is kept signed as decoded, callers mask to 64 bits). ``nwords`` counts the base
    word plus extension words.
    """

    pc: int
    op: OpInfo
    rd: int
    rs1: int
    rs2: int
    imm: int
    nwords: int = 1

    @property
    def next_pc(self) -> int:
        """pc of the following instruction."""
        return self.pc + 4 * self.nwords

    @property
    def target(self) -> int:
        """Branch/call target ``pc + 4*imm12`` (meaningful for CALL and JR)."""
        return self.pc + 4 * self.imm


def fields(word: int) -> tuple[int, int, int, int, int]:
    """Split a word into (opcode, rd, rs1, rs2, imm12 sign-extended)."""
    return (
        (word >> 24) & 0xFF,
        (word >> 20) & 0xF,
        (word >> 16) & 0xF,
        (word >> 12) & 0xF,
        sext(word & 0xFFF, 12),
    )


def pack(opcode: int, rd: int = 0, rs1: int = 0, rs2: int = 0, imm12: int = 0) -> int:
    """Build one word; ``imm12`` must fit in -2048..2047 (or 0..4095 as raw bits)."""
    if not -2048 <= imm12 <= 4095:
        raise ValueError(f"imm12 {imm12} does not fit 12 bits")
    return (opcode << 24) | (rd << 20) | (rs1 << 16) | (rs2 << 12) | (imm12 & 0xFFF)


def ld_words(rd: int, value: int, opcode: int = 0x70) -> list[int]:
    """Encode ``LD rd, value`` choosing the shortest correct form.

    Values in -2046..2047 use the plain form; -2048 and -2047 (the sentinels) and
    other values that fit in signed 32 bits use the 1-word IMM32 form; everything
    else uses the 2-word IMM64 form.
    """
    value = sext(value & MASK64, 64)
    if -2046 <= value <= 2047:
        return [pack(opcode, rd, 0, 0, value)]
    if -(1 << 31) <= value < (1 << 31):
        return [pack(opcode, rd, 0, 0, LD_IMM32), value & 0xFFFF_FFFF]
    u = value & MASK64
    return [pack(opcode, rd, 0, 0, LD_IMM64), u & 0xFFFF_FFFF, u >> 32]


def ld_ext_count(imm12: int) -> int:
    """Number of extension words following an LD with this IMM12."""
    if imm12 == LD_IMM32:
        return 1
    if imm12 == LD_IMM64:
        return 2
    return 0


def words_to_bytes(words: list[int]) -> bytes:
    """Little-endian serialisation of words."""
    return struct.pack(f"<{len(words)}I", *words)


def bytes_to_words(code: bytes) -> tuple[int, ...]:
    """Little-endian words of ``code`` (length must be a multiple of 4)."""
    return struct.unpack(f"<{len(code) // 4}I", code[: len(code) - len(code) % 4])
