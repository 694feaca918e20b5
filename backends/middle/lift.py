"""Lifter: VerifiedProgram -> SSA IR (:mod:`zjit.backends.middle.ir`).

For each guest function (``VerifiedProgram.functions``) the lifter collects the
verifier blocks reachable from its entry through jumps, fall-through and CALL
return points, orders them in reverse post-order, and renames the guest state
into SSA values. A path that reaches the entry of another guest function (a
jump into another function, falling into an exported label, a CALL returning to
one) stops there with a :class:`~zjit.backends.middle.ir.TailCall` block: the other
function is entered as a tail call rather than lifted again, so no code is
lifted twice because of exported mid-function entries or tail jumps.

* a block with one predecessor starts with that predecessor's final state;
* the function entry and every join start with one phi per state variable;
* pure instructions whose inputs are all constants are folded
  (:mod:`zjit.backends.middle.fold`) and produce no IR instruction;
* after lifting, trivial phis (all inputs the same value, or the phi itself) are
  removed until none is left (the classic simplification of Braun et al.).

Loop headers (targets of back edges) and the entries of functions on a cycle of
calls and tail calls are marked for interrupt polling: every unbounded execution
passes one of them (a function off such cycles runs its loops' polls and its
callees, which are bounded the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from zjit.verifier import VerifiedProgram

from zjit.encoding import Instr
from zjit.isa import MASK32, MASK64, OPS, Family

from .effects import call_components, effects
from .fold import fold
from .graphs import on_cycles
from .guest import intra_successors, operands_of
from .ir import (
    CMPL,
    CMPR,
    ENTRY,
    FAST,
    GUARD,
    I32,
    I64,
    NSTATE,
    ORIGINAL,
    TAIL,
    Branch,
    Call,
    Const,
    Countdown,
    Inst,
    IRBlock,
    IRFunction,
    IRModule,
    Jump,
    LoopGuard,
    Operand,
    Phi,
    Ret,
    TailCall,
    Terminator,
    Value,
    block_key,
    format_module,
    kind_of,
    leader_of,
    state_type,
)
from .ivs import analyse_loop
from .layout import Layout, loop_candidates, rotations
from .plan import cold_functions, split_entries, verifier_shape

# Per mnemonic (a str: hashing an enum member runs Python code): how the lifter
# treats each operation.
_FOLDABLE = frozenset(o.mnemonic for o in OPS if o.family in (
    Family.ALU, Family.DIV, Family.INCDEC, Family.SHIFT, Family.BITCOUNT, Family.CMPSET, Family.CP))
_MAY_TRAP = frozenset(o.mnemonic for o in OPS if o.family in (
    Family.DIV, Family.LOAD, Family.STORE, Family.BULK, Family.PRIM))
_ENDS_BLOCK = frozenset(o.mnemonic for o in OPS if o.ends_block)

def _rpo(entry: int, successors: Callable[[int], Sequence[int]]) -> tuple[list[int], set[int]]:
    """Reverse post-order of the blocks reachable from ``entry`` (``successors``
    gives a block's successors, none for the other function entries where paths
    stop), and the targets of back edges (loop headers)."""
    post: list[int] = []
    state: dict[int, int] = {entry: 1}  # 1 = on the DFS stack, 2 = finished
    headers: set[int] = set()
    stack: list[tuple[int, list[int]]] = [(entry, list(reversed(successors(entry))))]
    while stack:
        pc, todo = stack[-1]
        if todo:
            nxt = todo.pop()
            st = state.get(nxt)
            if st is None:
                state[nxt] = 1
                stack.append((nxt, list(reversed(successors(nxt)))))
            elif st == 1:
                headers.add(nxt)
            continue
        stack.pop()
        state[pc] = 2
        post.append(pc)
    post.reverse()
    return post, headers


_ALL_VARS = tuple(range(NSTATE))


class _FunctionLifter:
    def __init__(self, program: VerifiedProgram, entry: int, entries: Collection[int],
                 mods_of: dict[int, tuple[int, ...]] | None, comp: dict[int, int] | None,
                 recursive: Collection[int] | None, layout: Layout | None = None) -> None:
        self.program = program
        self.layout = layout
        self.entry = entry
        self.entries = entries
        self.mods_of = mods_of
        self.comp = comp
        self.recursive = recursive
        self.next_id = 0

    def new(self, ty: str) -> Value:
        v = Value(self.next_id, ty)
        self.next_id += 1
        return v

    def successors(self, key: int) -> Sequence[int]:
        """Keys of the blocks after block ``key`` (none after another function's entry)."""
        if key in self.entries and key != self.entry:
            return ()
        if self.layout is None:
            return intra_successors(self.program.blocks[key])
        return self.layout.successors(self.program, key)

    def lift(self) -> IRFunction:
        funcs = self.entries
        lay = self.layout
        start = self.entry if lay is None else lay.edge(None, self.entry)
        order, headers = _rpo(start, self.successors)
        foreign = {pc for pc in order if pc in funcs and pc != self.entry}
        preds: dict[int, list[int]] = {pc: [] for pc in order}
        preds[start].append(ENTRY)
        for pc in order:
            for s in self.successors(pc):
                if pc not in preds[s]:
                    preds[s].append(pc)
        params = [self.new(state_type(v)) for v in range(NSTATE)]
        out_state: dict[int, list[Operand]] = {}
        blocks: dict[int, IRBlock] = {}
        pending: list[IRBlock] = []  # blocks with phis whose inputs are not all known yet
        for pc in order:
            ps = preds[pc]
            phis: list[Phi] = []
            entry_state: list[Operand]
            if len(ps) == 1:
                entry_state = list(params if ps[0] == ENTRY else out_state[ps[0]])
            elif all(p == ENTRY or p in out_state for p in ps):
                # a join whose inputs are all known: phis only where they differ
                ins_by_pred = [params if p == ENTRY else out_state[p] for p in ps]
                entry_state = []
                for v in range(NSTATE):
                    first = ins_by_pred[0][v]
                    if all(_same(x[v], first) for x in ins_by_pred):
                        entry_state.append(first)
                    else:
                        phi = Phi(self.new(state_type(v)), v, [(p, x[v]) for p, x in zip(ps, ins_by_pred, strict=True)])
                        phis.append(phi)
                        entry_state.append(phi.dest)
            else:  # a loop header: a phi per variable, inputs filled in below
                phis = [Phi(self.new(state_type(v)), v) for v in range(NSTATE)]
                entry_state = [p.dest for p in phis]
            cur = list(entry_state)
            insts: list[Inst] = []
            if pc in foreign:
                out_state[pc] = cur
                b = blocks[pc] = IRBlock(pc, pc, 0, ps, phis, entry_state, insts, TailCall(pc, cur))
                if phis and not phis[0].incoming:
                    pending.append(b)
                continue
            if lay is None:
                b = self.lift_block(pc, pc, ps, phis, entry_state, cur, insts, pc in headers)
            else:
                b = self.lift_copy(lay, pc, ps, phis, entry_state, cur, insts, pc in headers)
            out_state[pc] = cur if not isinstance(b.term, Call) else _after_call(cur, b.term)
            blocks[pc] = b
            if phis and not phis[0].incoming:
                pending.append(b)
        for b in pending:
            for phi in b.phis:
                phi.incoming = [
                    (p, params[phi.var] if p == ENTRY else out_state[p][phi.var]) for p in b.preds
                ]
        fn = IRFunction(self.entry, params, blocks)
        if self.recursive is None:
            polled = bool(fn.callees() or foreign)
        else:
            polled = self.entry in self.recursive
        if polled:
            blocks[start].check_interrupt = True
        if pending:
            _simplify_phis(fn)
        fn.nvalues = self.next_id
        return fn

    def lift_block(self, key: int, pc: int, ps: list[int], phis: list[Phi], entry_state: list[Operand],
                   cur: list[Operand], insts: list[Inst], header: bool,
                   target: Callable[[int], int] | None = None) -> IRBlock:
        """Lift guest block ``pc`` as IR block ``key`` (``target`` maps the guest
        pcs it continues at to block keys; identity by default)."""
        vblock = self.program.blocks[pc]
        body = vblock.instrs
        last = body[-1]
        ends = last.op.mnemonic in _ENDS_BLOCK
        if ends:
            body = body[:-1]
        for ins in body:
            self.lift_inst(ins, cur, insts)
        term: Terminator
        if ends:
            term = self.lift_term(last, cur)
        else:
            term = Jump(vblock.end)
        if target is not None:
            _retarget(term, target)
        return IRBlock(key, vblock.end, vblock.cost, ps, phis, entry_state, insts,
                       term, check_interrupt=header, loop_header=header)

    def lift_copy(self, lay: Layout, key: int, ps: list[int], phis: list[Phi], entry_state: list[Operand],
                  cur: list[Operand], insts: list[Inst], header: bool) -> IRBlock:
        """Lift block ``key`` of a function with rotated or versioned loops."""
        kind, pc = kind_of(key), leader_of(key)
        plan = lay.plan_at(key)
        if kind == GUARD:
            assert plan is not None
            return IRBlock(key, pc, 0, ps, phis, entry_state, insts,
                           LoopGuard(block_key(pc, FAST), pc, plan), kind=GUARD)
        if kind == TAIL:
            term = self.lift_term(self.program.blocks[pc].instrs[-1], cur)
            _retarget(term, lambda t: lay.edge(key, t))
            return IRBlock(key, pc, 0, ps, phis, entry_state, insts, term, kind=TAIL)
        b = self.lift_block(key, pc, ps, phis, entry_state, cur, insts,
                            header and kind == ORIGINAL, lambda t: lay.edge(key, t))
        b.kind = kind
        if kind == FAST:
            assert plan is not None
            b.loop_header = header
            for ins in insts:
                ins.unchecked = ins.pc in plan.unchecked
                ins.exact = ins.pc in plan.exact
            if pc == plan.latch:
                b.term = Countdown(block_key(plan.header, FAST), block_key(pc, TAIL))
        return b

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
        mnem = op.mnemonic
        if mnem in _FOLDABLE and all(type(a) is Const for a in args):
            values = fold(op, [a.value for a in args], ins.imm)  # type: ignore[union-attr]
            if values is not None:
                if fam is Family.CP:
                    cur[CMPL] = Const(values[0], I32)
                    cur[CMPR] = Const(values[1] if len(values) > 1 else ins.imm & MASK32, I32)
                else:
                    for w, v in zip(writes, values, strict=True):
                        cur[w] = Const(v, state_type(w))
                return
        regs = cur[:5] if mnem in _MAY_TRAP else []
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
        changed = _ALL_VARS if self.mods_of is None else self.mods_of[ins.target]
        # The callee hands the whole state back in registers: continue with what
        # it returns, except constants it does not change (they stay constants).
        mods = tuple(v for v in _ALL_VARS if v in changed or type(cur[v]) is not Const)
        dests = [self.new(state_type(v)) for v in mods]
        comp = self.comp
        cyclic = comp is None or comp[ins.target] == comp[self.entry]
        return Call(ins.pc, ins.target, list(cur), dests, ins.next_pc, list(cur[:5]), cyclic, mods)


def _after_call(cur: list[Operand], term: Call) -> list[Operand]:
    """The state after a CALL: what the callee hands back."""
    out = list(cur)
    for v, d in zip(term.mods, term.dests, strict=True):
        out[v] = d
    return out


def _retarget(term: Terminator, target: Callable[[int], int]) -> None:
    """Map the guest pcs a terminator continues at to block keys."""
    if isinstance(term, Jump):
        term.target = target(term.target)
    elif isinstance(term, Branch):
        term.taken, term.fallthrough = target(term.taken), target(term.fallthrough)
    elif isinstance(term, Call):
        term.next = target(term.next)


def _same(a: Operand, b: Operand) -> bool:
    """The same SSA value or equal constants."""
    if a is b:
        return True
    return type(a) is Const and type(b) is Const and a == b


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


def _names_by_pc(program: VerifiedProgram) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    names.setdefault(program.entry, []).append("<entry>")
    for name, pc in sorted(program.exports.items()):
        names.setdefault(pc, []).append(name)
    return names


def lift_function(program: VerifiedProgram, entry: int, entries: Collection[int] | None = None,
                  mods_of: dict[int, tuple[int, ...]] | None = None,
                  comp: dict[int, int] | None = None,
                  recursive: Collection[int] | None = None,
                  versioning: bool = False) -> IRFunction:
    """The IR of the guest function entered at ``entry``. ``entries`` are all
    function entries (``program.functions`` by default), where it stops;
    ``mods_of`` what each function may change (default: everything); ``comp`` the
    components of the call graph (:func:`~zjit.backends.middle.effects.call_components`;
    default: every call counts as recursive); ``recursive`` the functions on a
    cycle of calls and tail calls, whose entries poll for interrupts (default:
    every function that calls or tail-calls). With ``versioning`` the innermost
    loops :func:`~zjit.backends.middle.ivs.analyse_loop` can plan are rotated
    and versioned (:mod:`~zjit.backends.middle.layout`)."""
    funcs = program.functions if entries is None else entries

    def lifted(layout: Layout | None) -> IRFunction:
        return _FunctionLifter(program, entry, funcs, mods_of, comp, recursive, layout).lift()

    fn = lifted(None)
    if versioning:
        fn = _versioned(fn, lifted, program.has_readonly)
    fn.names = tuple(_names_by_pc(program).get(entry, ()))
    return fn


def _versioned(fn: IRFunction, lifted: Callable[[Layout | None], IRFunction], has_readonly: bool) -> IRFunction:
    """``fn`` lifted again with its plannable innermost loops versioned (itself
    when there are none): the loops tested at the header are rotated first, so
    the analysis sees every loop tested at its latch."""
    rot = rotations(fn)
    rotated = lifted(Layout(rotated=rot)) if rot else fn
    plans = {}
    for loop in loop_candidates(rotated):
        plan = analyse_loop(rotated, loop, has_readonly)
        if plan is not None:
            plans[plan.header] = plan
    if not plans:
        return fn
    keep = {old: (new, body) for old, (new, body) in rot.items() if new in plans}
    return lifted(Layout(rotated=keep, plans=plans))


def lift(program: VerifiedProgram, versioning: bool = False) -> IRModule:
    """The IR of every guest function of ``program`` (``versioning``: with
    versioned loops, for optimised code)."""
    extra = split_entries(program)
    entries = set(program.functions) | extra
    order = [*program.functions, *sorted(extra)]
    shapes = {e: verifier_shape(program, e, entries) for e in order}
    facts = effects(program, shapes)
    mods_of = facts.modifies
    comp = call_components(shapes)
    recursive = on_cycles({e: [c for _, c in sh.calls + sh.tails] for e, sh in shapes.items()}, comp)
    cold = cold_functions(shapes)
    funcs: dict[int, IRFunction] = {}
    for e in order:
        fn = funcs[e] = lift_function(program, e, entries, mods_of, comp, recursive,
                                      versioning and e not in cold)
        fn.modifies = mods_of[e]
        fn.cmp_returned = facts.cmp_returned[e]
        fn.cmp_read = facts.cmp_read[e]
        fn.cold = e in cold
    return IRModule(funcs, program.entry, dict(program.exports), program.has_readonly,
                    program.prims_used, program.digest, program.image.name)


def ir_listing(program: VerifiedProgram, versioning: bool = False) -> str:
    """The printed IR of every function (``zjit disasm --ir``)."""
    return format_module(lift(program, versioning))
