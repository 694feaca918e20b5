"""Hypothesis strategies for generated programs (shrink towards simpler programs)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from zjit.isa import TrapKind

from .choosers import DrawChooser
from .generators import GenConfig, generate, trap_program
from .program import GenProgram


@st.composite
def programs(draw: Any, cfg: GenConfig | None = None) -> GenProgram:
    """Random valid, terminating programs (some carry a trap trigger)."""
    return generate(DrawChooser(draw), cfg)


@st.composite
def trapping_programs(draw: Any, kind: TrapKind, cfg: GenConfig | None = None) -> GenProgram:
    """Programs whose run ends with a ``kind`` trap."""
    return trap_program(DrawChooser(draw), kind, cfg)
