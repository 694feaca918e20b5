"""Assembler and disassembler for ZASM text (syntax: ``docs/assembly.md``)."""

from .assembler import assemble
from .disassembler import disassemble

__all__ = ["assemble", "disassemble"]
