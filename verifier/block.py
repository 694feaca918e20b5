"""The basic block record (``isa.md`` 4.1)."""

from __future__ import annotations

from dataclasses import dataclass

from zjit.encoding import Instr


@dataclass(frozen=True, slots=True)
class Block:
    """A basic block of ``isa.md`` 4.1: ``instrs`` run from leader ``start``.

    ``cost`` is the fuel charged on entry (number of instructions). ``end`` is the
    pc after the last instruction. ``successors`` are the pcs control may reach next
    inside the same run (fall-through, branch target, call target and return point);
    a RET block has none.
    """

    start: int
    end: int
    instrs: tuple[Instr, ...]
    cost: int
    successors: tuple[int, ...]
