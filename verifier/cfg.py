"""Control flow: targets, leaders, basic blocks (``isa.md`` 4.1) and guest functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zjit.encoding import Instr
from zjit.isa import Family

from .program import Block


def leaders_of(instrs: Sequence[Instr], roots: Iterable[int]) -> tuple[int, ...]:
    """Block leaders: ``roots`` (entry, exports), every CALL/JR target, and every
    instruction following a CALL, JR or RET."""
    code_end = instrs[-1].next_pc if instrs else 0
    leaders = set(roots)
    for ins in instrs:
        fam = ins.op.family
        if fam is Family.CALL or fam is Family.JR:
            leaders.add(ins.target)
        if ins.op.ends_block and ins.next_pc < code_end:
            leaders.add(ins.next_pc)
    return tuple(sorted(leaders))


def build_blocks(instrs: Sequence[Instr], leaders: Sequence[int]) -> dict[int, Block]:
    """Partition into blocks: from each leader up to (not including) the next leader,
    or through the first CALL, JR or RET."""
    index = {ins.pc: k for k, ins in enumerate(instrs)}
    leader_set = set(leaders)
    blocks: dict[int, Block] = {}
    for start in leaders:
        k = index[start]
        body: list[Instr] = []
        while k < len(instrs):
            ins = instrs[k]
            body.append(ins)
            k += 1
            if ins.op.ends_block or ins.next_pc in leader_set:
                break
        last = body[-1]
        fam = last.op.family
        succ: tuple[int, ...]
        if fam is Family.RET:
            succ = ()
        elif fam is Family.CALL:
            succ = (last.target, last.next_pc)
        elif fam is Family.JR:
            succ = (last.target,) if last.rs1 == 0 else (last.target, last.next_pc)
        else:
            succ = (last.next_pc,)
        blocks[start] = Block(start, last.next_pc, tuple(body), len(body), succ)
    return blocks


def functions_of(instrs: Sequence[Instr], roots: Iterable[int]) -> tuple[int, ...]:
    """Guest function entries: the roots (entry and exports) plus every CALL target."""
    funcs = set(roots)
    funcs.update(ins.target for ins in instrs if ins.op.family is Family.CALL)
    return tuple(sorted(funcs))
