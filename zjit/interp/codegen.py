"""Translate verified basic blocks into Python source, one function per block.

A generated block function has the signature ``B_<pc>(S, M, K)`` (state list,
guest memory, call stack) and returns the next block's function, or None when
the run ended (normal end or trap, see ``S[TRAP]``). Instruction semantics come
from :data:`zjit.interp.templates.TEMPLATES`; this module adds the fuel prologue
and the fall-through exit, and formats a comment per instruction.
"""

from __future__ import annotations

from collections.abc import Iterable

from zjit.encoding import Instr
from zjit.isa import COND_NAMES, REG_NAMES, Fmt, TrapKind
from zjit.verifier.program import Block

from .emitter import BlockEmitter, GenConfig
from .helpers import FUEL
from .templates import TEMPLATES, block_name


def describe(ins: Instr) -> str:
    """Short assembly-like text of an instruction (for comments)."""
    op, f = ins.op, ins.op.fmt
    r = REG_NAMES
    if f is Fmt.CALL:
        args = f"{ins.target:#x}"
    elif f is Fmt.JR:
        args = f"{COND_NAMES[ins.rs1]}, {ins.target:#x}"
    elif f in (Fmt.CP, Fmt.RRR):
        args = ", ".join(r[i] for i in ((ins.rs1, ins.rs2) if f is Fmt.CP else (ins.rd, ins.rs1, ins.rs2)))
    elif f is Fmt.CPI:
        args = f"{r[ins.rs1]}, {ins.imm}"
    elif f in (Fmt.DROP, Fmt.INCDEC, Fmt.UNARY):
        args = r[ins.rd]
    elif f is Fmt.MOV:
        args = f"{r[ins.rd]}, {r[ins.rs1]}"
    elif f is Fmt.SHIFT:
        args = f"{r[ins.rd]}, {r[ins.rs1]}, {ins.imm}"
    elif f is Fmt.LDI:
        args = f"{r[ins.rd]}, {ins.imm:#x}"
    elif f is Fmt.LOAD:
        args = f"{r[ins.rd]}, ({r[ins.rs1]}{ins.imm:+d})"
    elif f is Fmt.STORE:
        args = f"({r[ins.rs1]}{ins.imm:+d}), {r[ins.rs2]}"
    else:
        args = ""
    return f"{op.mnemonic} {args}".rstrip()


def block_source(block: Block, cfg: GenConfig) -> str:
    """Python source of the function for ``block``."""
    e = BlockEmitter(cfg)
    e.line(f"# block {block.start:#x}..{block.end:#x}, cost {block.cost}")
    if cfg.metered:
        e.line(f"f = S[{FUEL}]")
        e.trap_if(f"f < {block.cost}", TrapKind.FUEL, block.start)
        e.line(f"S[{FUEL}] = f - {block.cost}")
    for ins in block.instrs:
        e.line(f"# {ins.pc:#06x}  {describe(ins)}")
        TEMPLATES[ins.op.family](e, ins)
    if not block.instrs[-1].op.ends_block:
        e.flush()
        e.line(f"return {block_name(block.end)}")
    body = "\n".join("    " + text for text in e.lines)
    return f"def {block_name(block.start)}(S, M, K):\n{body}\n"


def chunk_source(blocks: Iterable[Block], cfg: GenConfig) -> str:
    """Source defining the functions of several blocks."""
    return "\n".join(block_source(b, cfg) for b in blocks)
