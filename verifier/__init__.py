"""ZASM verifier (``isa.md`` 3): ModuleImage -> VerifiedProgram.

:func:`verify` is the only way to obtain a :class:`VerifiedProgram`, which is the
only input engines accept.
"""

from .program import Block, VerifiedProgram
from .verify import verify, verify_all

__all__ = ["Block", "VerifiedProgram", "verify", "verify_all"]
