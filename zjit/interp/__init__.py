"""The reference interpreter: the oracle every other engine is compared with.

It runs the verifier's decoded instructions, never the JIT's IR. Each basic
block is translated once into a small Python function (semantics per ISA family
in :mod:`zjit.interp.templates`, rare operations in :mod:`zjit.interp.helpers`)
and a dispatch loop calls one block after the other.
"""

from __future__ import annotations

from zjit.policy import Policy
from zjit.verifier.program import VerifiedProgram

from .executable import InterpExecutable


class InterpBackend:
    """Backend factory for the interpreter (registry name ``"interp"``)."""

    name = "interp"

    @staticmethod
    def available() -> bool:
        """The interpreter is pure Python and always available."""
        return True

    def prepare(self, program: VerifiedProgram, policy: Policy) -> InterpExecutable:
        """Wrap ``program``; block code is generated lazily on first entry."""
        return InterpExecutable(program, policy)


__all__ = ["InterpBackend", "InterpExecutable"]
