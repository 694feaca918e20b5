"""ZASM verifier (``isa.md`` 3): ModuleImage -> VerifiedProgram."""

from .program import Block, VerifiedProgram

__all__ = ["Block", "VerifiedProgram"]
