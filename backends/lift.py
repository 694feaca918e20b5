"""Lifter: VerifiedProgram -> SSA IR (:mod:`zjit.backends.ir`).

For each guest function (``VerifiedProgram.functions``) the lifter collects the
verifier blocks reachable from its entry through jumps, fall-through and CALL
return points, orders them in reverse post-order, and renames the guest state
into SSA values. A path that reaches the entry of another guest function (a
jump into another function, falling into an exported label, a CALL returning to
one) stops there with a :class:`~zjit.backends.ir.TailCall` block: the other
function is entered as a tail call rather than lifted again, so no code is
lifted twice because of exported mid-function entries or tail jumps.

* a block with one predecessor starts with that predecessor's final state;
* the function entry and every join start with one phi per state variable;
* pure instructions whose inputs are all constants are folded
  (:mod:`zjit.backends.fold`) and produce no IR instruction;
* after lifting, trivial phis (all inputs the same value, or the phi itself) are
  removed until none is left (the classic simplification of Braun et al.).

Loop headers (targets of back edges) and the entries of functions that make
calls or tail calls are marked for interrupt polling.
"""

from __future__ import annotations

from zjit.verifier import Block, VerifiedProgram

from zjit.encoding import Instr
from zjit.isa import BC, DE, HL, IX, MASK32, MASK64, A, Family, OpInfo

from .fold import fold
from .ir import (
    CMPL,
    CMPR,
    ENTRY,
    I32,
    I64,
    NSTATE,
    Branch,
    Call,
    Const,
    Inst,
    IRBlock,
    IRFunction,
    IRModule,
    Jump,
    Operand,
    Phi,
    Ret,
    TailCall,
    Terminator,
    Value,
    state_type,
)

_PRIM_OPERANDS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "in": ((HL, DE), (HL,)),
    "out": ((HL, DE), ()),
    "log": ((HL, DE, BC, IX), ()),
    "alloc": ((HL,), (HL,)),
    "free": ((HL,), ()),
    "ctl": ((HL, DE, BC, IX), (HL,)),
}
_BULK_OPERANDS: dict[str, tuple[int, ...]] = {"ldir": (HL, DE, BC), "fill": (HL, BC, A)}


def operands_of(ins: Instr) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """State variables an instruction reads and writes, in IR operand order.

    Indices 0..4 are registers, 5 and 6 the CMP halves. MOV, LD and DROP are
    renamings (no IR instruction) and terminators are handled separately; for
    them this returns the variables involved all the same.
    """
    op = ins.op
    fam = op.family
    if fam in (Family.ALU, Family.DIV, Family.CMPSET):
        return (ins.rs1, ins.rs2), (ins.rd,)
    if fam is Family.SHIFT or fam is Family.MOV:
        return (ins.rs1,), (ins.rd,)
    if fam in (Family.BITCOUNT, Family.INCDEC):
        return (ins.rd,), (ins.rd,)
    if fam is Family.LDI:
        return (), (ins.rd,)
    if fam is Family.CP:
        return ((ins.rs1, ins.rs2) if op.operation == "cp" else (ins.rs1,)), (CMPL, CMPR)
    if fam is Family.LOAD:
        return (ins.rs1,), (ins.rd,)
    if fam is Family.STORE:
        return (ins.rs1, ins.rs2), ()
    if fam is Family.BULK:
        return _BULK_OPERANDS[op.operation], ()
    if fam is Family.PRIM:
        return _PRIM_OPERANDS[op.operation]
    if fam is Family.JR:
        return ((CMPL, CMPR) if ins.rs1 else ()), ()
    if fam in (Family.CALL, Family.RET):
        return tuple(range(NSTATE)), (tuple(range(NSTATE)) if fam is Family.CALL else ())
    return (), ()  # DROP


_FOLDABLE = frozenset({Family.ALU, Family.DIV, Family.INCDEC, Family.SHIFT, Family.BITCOUNT,
                       Family.CMPSET, Family.CP})
_MAY_TRAP = frozenset({Family.DIV, Family.LOAD, Family.STORE, Family.BULK, Family.PRIM})

LIFTER_ONLY: frozenset[tuple[Family, str]] = frozenset(
    {(Family.MOV, "mov"), (Family.LDI, "ld"), (Family.NOP, "drop")}
)
"""(family, operation) pairs the lifter resolves by renaming (no IR instruction)."""


def intra_successors(block: Block) -> tuple[int, ...]:
    """Leaders reachable from ``block`` inside the same guest function."""
    last = block.instrs[-1]
    fam = last.op.family
    if fam is Family.RET:
        return ()
    if fam is Family.CALL:
        return (last.next_pc,)
    if fam is Family.JR:
        if last.rs1 == 0 or last.target == last.next_pc:
            return (last.target,)
        return (last.target, last.next_pc)
    return (block.end,)


def _rpo(program: VerifiedProgram, entry: int) -> tuple[list[int], set[int]]:
    """Reverse post-order of the blocks reachable from ``entry`` (stopping at the
    entries of other functions), and the targets of back edges (loop headers)."""
    blocks = program.blocks
    funcs = program.functions
    post: list[int] = []
    state: dict[int, int] = {entry: 1}  # 1 = on the DFS stack, 2 = finished
    headers: set[int] = set()
    stack: list[tuple[int, list[int]]] = [(entry, list(reversed(intra_successors(blocks[entry]))))]
    while stack:
        pc, todo = stack[-1]
        if todo:
            nxt = todo.pop()
            st = state.get(nxt)
            if st is None:
                state[nxt] = 1
                succ = [] if nxt in funcs else list(reversed(intra_successors(blocks[nxt])))
                stack.append((nxt, succ))
            elif st == 1:
                headers.add(nxt)
            continue
        stack.pop()
        state[pc] = 2
        post.append(pc)
    post.reverse()
    return post, headers


class _FunctionLifter:
    def __init__(self, program: VerifiedProgram, entry: int) -> None:
        self.program = program
        self.entry = entry
        self.next_id = 0

    def new(self, ty: str) -> Value:
        v = Value(self.next_id, ty)
        self.next_id += 1
        return v

    def lift(self) -> IRFunction:
        program = self.program
        order, headers = _rpo(program, self.entry)
        funcs = program.functions
        foreign = {pc for pc in order if pc in funcs and pc != self.entry}
        preds: dict[int, list[int]] = {pc: [] for pc in order}
        preds[self.entry].append(ENTRY)
        for pc in order:
            if pc in foreign:
                continue
            for s in intra_successors(program.blocks[pc]):
                if pc not in preds[s]:
                    preds[s].append(pc)
        params = [self.new(state_type(v)) for v in range(NSTATE)]
        out_state: dict[int, list[Operand]] = {}
        blocks: dict[int, IRBlock] = {}
        for pc in order:
            vblock = program.blocks[pc]
            phis: list[Phi] = []
            entry_state: list[Operand]
            if len(preds[pc]) == 1 and preds[pc][0] != ENTRY:
                entry_state = list(out_state[preds[pc][0]])
            else:
                phis = [Phi(self.new(state_type(v)), v) for v in range(NSTATE)]
                entry_state = [p.dest for p in phis]
            cur = list(entry_state)
            insts: list[Inst] = []
            if pc in foreign:
                out_state[pc] = cur
                blocks[pc] = IRBlock(pc, pc, 0, preds[pc], phis, entry_state, insts, TailCall(pc, cur))
                continue
            body = vblock.instrs
            last = body[-1]
            if last.op.ends_block:
                body = body[:-1]
            for ins in body:
                self.lift_inst(ins, cur, insts)
            term: Terminator
            if last.op.ends_block:
                term = self.lift_term(last, cur)
            else:
                term = Jump(vblock.end)
            out_state[pc] = list(term.dests) if isinstance(term, Call) else cur
            blocks[pc] = IRBlock(pc, vblock.end, vblock.cost, preds[pc], phis, entry_state, insts,
                                 term, check_interrupt=pc == self.entry or pc in headers,
                                 loop_header=pc in headers)
        for b in blocks.values():
            for phi in b.phis:
                phi.incoming = [
                    (p, params[phi.var] if p == ENTRY else out_state[p][phi.var]) for p in b.preds
                ]
        fn = IRFunction(self.entry, params, blocks)
        if not fn.callees() and not foreign:
            blocks[self.entry].check_interrupt = self.entry in headers
        _simplify_phis(fn)
        fn.nvalues = self.next_id
        return fn

    def lift_inst(self, ins: Instr, cur: list[Operand], out: list[Inst]) -> None:
        op = ins.op
        fam = op.family
        if fam is Family.NOP:
            return
        if fam is Family.MOV:
            cur[ins.rd] = cur[ins.rs1]
            return
        if fam is Family.LDI:
            cur[ins.rd] = Const(ins.imm & MASK64, I64)
            return
        reads, writes = operands_of(ins)
        args = [cur[r] for r in reads]
        if fam in _FOLDABLE and all(type(a) is Const for a in args):
            values = fold(op, [a.value for a in args], ins.imm)  # type: ignore[union-attr]
            if values is not None:
                if fam is Family.CP:
                    cur[CMPL] = Const(values[0], I32)
                    cur[CMPR] = Const(values[1] if len(values) > 1 else ins.imm & MASK32, I32)
                else:
                    for w, v in zip(writes, values, strict=True):
                        cur[w] = Const(v, state_type(w))
                return
        regs = cur[:5] if fam in _MAY_TRAP else []
        if fam is Family.CP:
            cl = self.new(I32)
            if op.operation == "cp":
                cr = self.new(I32)
                out.append(Inst(ins.pc, op, args, [cl, cr], 0, regs))
                cur[CMPL], cur[CMPR] = cl, cr
            else:
                out.append(Inst(ins.pc, op, args, [cl], ins.imm & MASK32, regs))
                cur[CMPL], cur[CMPR] = cl, Const(ins.imm & MASK32, I32)
            return
        dests = [self.new(state_type(w)) for w in writes]
        out.append(Inst(ins.pc, op, args, dests, ins.imm, regs))
        for w, d in zip(writes, dests, strict=True):
            cur[w] = d

    def lift_term(self, ins: Instr, cur: list[Operand]) -> Terminator:
        fam = ins.op.family
        if fam is Family.JR:
            if ins.rs1 == 0 or ins.target == ins.next_pc:
                return Jump(ins.target, ins.pc)
            return Branch(ins.pc, ins.rs1, cur[CMPL], cur[CMPR], ins.target, ins.next_pc)
        if fam is Family.RET:
            return Ret(ins.pc, list(cur), list(cur[:5]))
        assert fam is Family.CALL
        dests = [self.new(state_type(v)) for v in range(NSTATE)]
        return Call(ins.pc, ins.target, list(cur), dests, ins.next_pc, list(cur[:5]))


def _simplify_phis(fn: IRFunction, initial: dict[int, Operand] | None = None) -> None:
    """Remove trivial phis and rewrite every use (to a fixpoint); ``initial`` maps
    value ids to operands that replace them as well."""
    repl: dict[int, Operand] = dict(initial or {})

    def res(x: Operand) -> Operand:
        while type(x) is Value:
            r = repl.get(x.id)
            if r is None:
                break
            x = r
        return x

    def key(x: Operand) -> object:
        return x.id if isinstance(x, Value) else (x.value, x.ty)

    changed = True
    while changed:
        changed = False
        for b in fn.blocks.values():
            if not b.phis:
                continue
            keep: list[Phi] = []
            for phi in b.phis:
                me = phi.dest.id
                first: Operand | None = None
                trivial = True
                for _, v in phi.incoming:
                    v = res(v)
                    if type(v) is Value and v.id == me:
                        continue
                    if first is None:
                        first = v
                    elif key(v) != key(first):
                        trivial = False
                        break
                if trivial and first is not None:
                    repl[me] = first
                    changed = True
                else:
                    keep.append(phi)
            b.phis = keep
    if not repl:
        return

    def rs(xs: list[Operand]) -> list[Operand]:
        return [res(x) for x in xs]

    for b in fn.blocks.values():
        for phi in b.phis:
            phi.incoming = [(p, res(v)) for p, v in phi.incoming]
        b.entry_state = rs(b.entry_state)
        for ins in b.insts:
            ins.args = rs(ins.args)
            ins.regs = rs(ins.regs)
        t = b.term
        if isinstance(t, Branch):
            t.lhs, t.rhs = res(t.lhs), res(t.rhs)
        elif isinstance(t, Ret):
            t.state, t.regs = rs(t.state), rs(t.regs)
        elif isinstance(t, Call):
            t.args, t.regs = rs(t.args), rs(t.regs)
        elif isinstance(t, TailCall):
            t.args = rs(t.args)


def _mark_cyclic_calls(funcs: dict[int, IRFunction]) -> None:
    """Set ``Call.cyclic`` for calls whose callee can reach the caller again
    (through calls and tail calls)."""
    graph = {pc: fn.callees() | fn.tail_callees() for pc, fn in funcs.items()}
    reach: dict[int, set[int]] = {}
    for start in graph:
        seen: set[int] = set()
        todo = list(graph[start])
        while todo:
            f = todo.pop()
            if f not in seen:
                seen.add(f)
                todo.extend(graph.get(f, ()))
        reach[start] = seen
    for pc, fn in funcs.items():
        for b in fn.blocks.values():
            if isinstance(b.term, Call):
                b.term.cyclic = pc in reach.get(b.term.callee, set()) or b.term.callee == pc


def _names_by_pc(program: VerifiedProgram) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    names.setdefault(program.entry, []).append("<entry>")
    for name, pc in sorted(program.exports.items()):
        names.setdefault(pc, []).append(name)
    return names


def lift_function(program: VerifiedProgram, entry: int) -> IRFunction:
    """The IR of the guest function entered at ``entry``."""
    fn = _FunctionLifter(program, entry).lift()
    fn.names = tuple(_names_by_pc(program).get(entry, ()))
    return fn


def modified_vars(program: VerifiedProgram, funcs: dict[int, IRFunction]) -> dict[int, tuple[int, ...]]:
    """State variables each function may change, itself or through its callees
    and tail callees (a fixpoint over the call graph)."""
    own: dict[int, set[int]] = {}
    for pc, fn in funcs.items():
        written: set[int] = set()
        for b in fn.blocks.values():
            if b.is_tail:
                continue
            for ins in program.blocks[b.pc].instrs:
                if ins.op.family is not Family.CALL:
                    written.update(operands_of(ins)[1])
        own[pc] = written
    changed = True
    while changed:
        changed = False
        for pc, fn in funcs.items():
            for callee in fn.callees() | fn.tail_callees():
                extra = own[callee] - own[pc]
                if extra:
                    own[pc] |= extra
                    changed = True
    return {pc: tuple(sorted(v)) for pc, v in own.items()}


def cmp_needed_after_return(program: VerifiedProgram, funcs: dict[int, IRFunction]) -> dict[int, bool]:
    """For each function, whether some caller may read CMP after a call to it
    returns, before writing it again (conditional JR reads CMP, CP/CPI write it).

    When no caller can, the CMP a function leaves behind is unobservable and is
    not returned (callers keep their own). A fixpoint over the call graph: a CALL
    reads CMP when the callee may read its incoming CMP (directly, or by returning
    it to a caller that needs it).
    """
    need = {pc: False for pc in funcs}
    reads_first = {pc: False for pc in funcs}
    first: dict[int, tuple[str, int | None]] = {}
    for fn in funcs.values():
        for b in fn.blocks.values():
            if b.pc in first or b.is_tail:
                continue
            event: tuple[str, int | None] = ("none", None)
            for ins in program.blocks[b.pc].instrs:
                fam = ins.op.family
                if fam is Family.CP:
                    event = ("write", None)
                    break
                if fam is Family.JR and ins.rs1 != 0:
                    event = ("read", None)
                    break
                if fam is Family.CALL:
                    event = ("call", ins.target)
                    break
                if fam is Family.RET:
                    event = ("ret", None)
                    break
            first[b.pc] = event
    changed = True
    while changed:
        changed = False
        for pc, fn in funcs.items():
            live: dict[int, bool] = {}
            for _ in range(len(fn.blocks) + 1):  # iterate to a fixpoint inside fn
                stable = True
                for b in reversed(list(fn.blocks.values())):
                    kind, callee = ("tail", b.term.callee) if type(b.term) is TailCall else first[b.pc]
                    if kind == "tail" and callee is not None:
                        v = reads_first[callee]  # the callee's return is ours
                    elif kind == "read":
                        v = True
                    elif kind == "write":
                        v = False
                    elif kind == "ret":
                        v = need[pc]
                    elif kind == "call" and callee is not None and reads_first[callee]:
                        v = True
                    else:
                        v = any(live.get(s, False) for s in b.successors)
                    if live.get(b.pc) != v:
                        live[b.pc] = v
                        stable = False
                if stable:
                    break
            if live.get(fn.entry, False) and not reads_first[pc]:
                reads_first[pc] = changed = True
            for b in fn.blocks.values():
                t = b.term
                if isinstance(t, Call):
                    passes_on = live.get(t.next, False)
                elif isinstance(t, TailCall):
                    passes_on = need[pc]  # the callee's return is ours
                else:
                    continue
                if passes_on and not need[t.callee]:
                    need[t.callee] = changed = True
    return need


def _narrow_calls(fn: IRFunction, mods_of: dict[int, tuple[int, ...]]) -> None:
    """Keep only the callee's modified variables as call results; the others keep
    the caller's values (rewritten everywhere)."""
    repl: dict[int, Operand] = {}
    for b in fn.blocks.values():
        t = b.term
        if isinstance(t, Call):
            mods = mods_of[t.callee]
            for v, d in enumerate(t.dests):
                if v not in mods:
                    repl[d.id] = t.args[v]
            t.dests = [t.dests[v] for v in mods]
            t.mods = mods
    _simplify_phis(fn, repl)


def tail_groups(funcs: dict[int, IRFunction]) -> dict[int, int]:
    """Function entry -> the smallest entry of its group: functions linked by tail
    calls (in either direction) share one return type, which a guaranteed tail
    call (``musttail``) requires."""
    parent = {pc: pc for pc in funcs}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pc, fn in funcs.items():
        for callee in fn.tail_callees():
            a, b = find(pc), find(callee)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {pc: find(pc) for pc in funcs}


def lift(program: VerifiedProgram) -> IRModule:
    """The IR of every guest function of ``program``."""
    funcs = {pc: lift_function(program, pc) for pc in program.functions}
    _mark_cyclic_calls(funcs)
    mods_of = modified_vars(program, funcs)
    needed = cmp_needed_after_return(program, funcs)
    mods_of = {pc: m if needed[pc] else tuple(v for v in m if v not in (CMPL, CMPR))
               for pc, m in mods_of.items()}
    group = tail_groups(funcs)
    union: dict[int, set[int]] = {}
    for pc, m in mods_of.items():
        union.setdefault(group[pc], set()).update(m)
    mods_of = {pc: tuple(sorted(union[group[pc]])) for pc in mods_of}
    for pc, fn in funcs.items():
        fn.modifies = mods_of[pc]
        _narrow_calls(fn, mods_of)
    return IRModule(funcs, program.entry, dict(program.exports), program.has_readonly,
                    program.prims_used, program.digest, program.image.name)


def op_key(op: OpInfo) -> tuple[Family, str]:
    """Key used by emitter registries."""
    return (op.family, op.operation)


def ir_listing(program: VerifiedProgram) -> str:
    """The printed IR of every function (``zjit disasm --ir``)."""
    from .ir import format_module

    return format_module(lift(program))
