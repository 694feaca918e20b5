"""Translate verified basic blocks into Python source, one function per block.

A generated block function has the signature ``B_<pc>(S, M, K)`` (state list,
guest memory, call stack) and returns the next block's function, or None when
the run ended (normal end or trap, see ``S[TRAP]``). Instruction semantics come
from :data:`zjit.interp.templates.TEMPLATES`; this module adds the fuel prologue
and the fall-through exit, and formats a comment per instruction.
"""

from __future__ import annotations

from collections.abc import Iterable

from zjit.isa import TrapKind
from zjit.machine import Specialisation
from zjit.verifier.program import Block

from .emitter import BlockEmitter
from .helpers import FUEL
from .templates import TEMPLATES, block_name


def block_source(block: Block, spec: Specialisation) -> str:
    """Python source of the function for ``block``."""
    e = BlockEmitter(spec)
    e.line(f"# block {block.start:#x}..{block.end:#x}, cost {block.cost}")
    if spec.metered:
        e.line(f"f = S[{FUEL}]")
        e.trap_if(f"f < {block.cost}", TrapKind.FUEL, block.start)
        e.line(f"S[{FUEL}] = f - {block.cost}")
    for ins in block.instrs:
        e.line(f"# {ins.pc:#06x}  {ins.op.mnemonic}")
        TEMPLATES[ins.op.family](e, ins)
    if not block.instrs[-1].op.ends_block:
        e.flush()
        e.line(f"return {block_name(block.end)}")
    body = "\n".join("    " + text for text in e.lines)
    return f"def {block_name(block.start)}(S, M, K):\n{body}\n"


def chunk_source(blocks: Iterable[Block], spec: Specialisation) -> str:
    """Source defining the functions of several blocks."""
    return "\n".join(block_source(b, spec) for b in blocks)
