"""Assembler and disassembler for ZASM text."""
