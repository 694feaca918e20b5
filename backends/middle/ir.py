"""zjit's own small SSA IR: the data model between the lifter and LLVM lowering.

One :class:`IRFunction` per guest function. Its blocks are exactly the verifier's
basic blocks (``isa.md`` 4.1) reachable from the function entry by jumps,
fall-through and return points (a CALL's callee is another function); reaching
the entry of another function that way ends the path with a :class:`TailCall`
block instead of lifting that function again. The seven
pieces of guest state -- the five registers and the two CMP halves -- are SSA
values: each block starts with phis (:class:`Phi`) where paths with different
values meet, instructions (:class:`Inst`) consume and produce values, and the
terminator passes the state on. Register values are ``i64``; CMP halves ``i32``.

``MOV``, ``LD`` (immediate) and ``DROP`` produce no instruction: the lifter only
renames values. Fuel, interrupt checks and guards are not explicit here; they are
implied by :attr:`IRBlock.cost`, :attr:`IRBlock.check_interrupt` and
:meth:`Inst.traps`, and added by the lowering.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from zjit.isa import COND_NAMES, REG_NAMES, Family, OpInfo, TrapKind

from .loopplan import LoopPlan

STATE_NAMES: tuple[str, ...] = (*REG_NAMES, "CMPL", "CMPR")
"""Names of the SSA state variables: registers 0..4, then CMP lhs and rhs."""
NSTATE = len(STATE_NAMES)
CMPL, CMPR = 5, 6
ENTRY = -1
"""Pseudo predecessor of a function's entry block: the function's parameters."""

I64 = "i64"
I32 = "i32"

ORIGINAL, FAST, ENTRY_COPY, GUARD, TAIL = 0, 1, 2, 3, 4
"""Kinds of IR block (:attr:`IRBlock.kind`): a guest block as lifted (in a
versioned loop: its checked copy), its copy in a versioned loop's fast version,
the copy of a rotated loop's test block that enters the loop, a versioned loop's
guard, and the exit test that ends a chunk of the fast version."""
KIND_NAMES = ("", "fast", "entry-copy", "guard", "tail")
KEY_SHIFT = 40
"""Blocks are keyed by ``kind << KEY_SHIFT | leader pc`` (pcs are far below 2**40),
so a guest block keeps its leader as key."""


def block_key(pc: int, kind: int = ORIGINAL) -> int:
    """The key of the ``kind`` block standing for the guest block led by ``pc``."""
    return kind << KEY_SHIFT | pc


def leader_of(key: int) -> int:
    """The guest leader pc of the block with ``key``."""
    return key & ((1 << KEY_SHIFT) - 1)


def kind_of(key: int) -> int:
    """The kind of the block with ``key``."""
    return key >> KEY_SHIFT


def key_text(key: int) -> str:
    """A block key as text: the leader, and the kind unless it is a guest block."""
    kind = key >> KEY_SHIFT
    return f"{leader_of(key):#x}" + (f"/{KIND_NAMES[kind]}" if kind else "")


def state_type(var: int) -> str:
    """IR type of state variable ``var``."""
    return I32 if var >= CMPL else I64


class Value:
    """An SSA value, unique inside its function (compared by identity: the lifter
    creates exactly one object per id)."""

    __slots__ = ("id", "ty")

    def __init__(self, id: int, ty: str) -> None:  # noqa: A002 - the IR's own name
        self.id = id
        self.ty = ty

    def __str__(self) -> str:
        return f"%{self.id}"

    def __repr__(self) -> str:
        return f"Value({self.id}, {self.ty!r})"


@dataclass(frozen=True, slots=True)
class Const:
    """A constant; ``value`` is kept in the unsigned range of ``ty``."""

    value: int
    ty: str

    def __str__(self) -> str:
        return f"#{self.value:#x}" if self.value > 9 else f"#{self.value}"


Operand = Value | Const


@dataclass(slots=True)
class Phi:
    """``dest`` merges state variable ``var`` from each predecessor block (by leader
    pc, or :data:`ENTRY` for the function parameters)."""

    dest: Value
    var: int
    incoming: list[tuple[int, Operand]] = field(default_factory=list)


@dataclass(slots=True)
class Inst:
    """One guest instruction (not a terminator) as an IR operation.

    ``args``/``dests`` are the state values it reads and writes, in the order of
    :func:`zjit.backends.middle.guest.operands_of` for its operation. ``imm`` is
    the shift count, memory displacement or CPI immediate. ``regs`` are the five registers before the
    instruction, kept for trap exits.
    """

    pc: int
    op: OpInfo
    args: list[Operand]
    dests: list[Value]
    imm: int = 0
    regs: list[Operand] = field(default_factory=list)
    unchecked: bool = False
    """Sandbox-critical: a load or store in a versioned loop's fast copy whose
    guard has checked the bounds (and write protection) of every iteration of the
    chunk (:mod:`zjit.backends.middle.ivs`); the lowering emits no check."""
    exact: bool = False
    """A 32-bit INC/DEC/ADD/SUB in a fast copy whose guard proved the 64-bit
    result below 2**32: the lowering may leave out the wrap."""

    def traps(self, has_readonly: bool = True) -> tuple[TrapKind, ...]:
        """Trap kinds this instruction can raise."""
        return inst_traps(self.op, has_readonly)


@dataclass(slots=True)
class Jump:
    """Unconditional transfer (``JR al`` at ``pc``, or fall-through when None)."""

    target: int
    pc: int | None = None


@dataclass(slots=True)
class Branch:
    """Conditional ``JR``: to ``taken`` when condition ``cond`` holds on (lhs, rhs)."""

    pc: int
    cond: int
    lhs: Operand
    rhs: Operand
    taken: int
    fallthrough: int


@dataclass(slots=True)
class Ret:
    """``RET``: return the whole state to the caller (or end the run)."""

    pc: int
    state: list[Operand]
    regs: list[Operand] = field(default_factory=list)


@dataclass(slots=True)
class Call:
    """``CALL``: run function ``callee`` on the state, continue at ``next`` with the
    state it returns; ``regs`` are the registers before the CALL (depth trap).
    ``cyclic`` is true when the callee can call back into this function (the call
    is part of a recursion and the native stack may grow with the guest's depth).
    """

    pc: int
    callee: int
    args: list[Operand]
    dests: list[Value]
    next: int
    regs: list[Operand] = field(default_factory=list)
    cyclic: bool = True
    mods: tuple[int, ...] = tuple(range(7))
    """State variables the call defines anew (``dests`` holds their values, in
    this order): those the callee may change and every other one that is not a
    constant, since the callee hands the whole state back (the caller keeps
    nothing live across the call). The others keep their constant values."""


@dataclass(slots=True)
class TailCall:
    """Control reaches the entry of another guest function ``callee`` by a jump,
    a fall-through or a CALL's return point: the rest of the run is that
    function's, so it is entered as a tail call (same depth, its result is this
    function's result) instead of being lifted again into this function.
    ``args`` is the whole state."""

    callee: int
    args: list[Operand]


@dataclass(slots=True)
class Countdown:
    """The end of an iteration of a versioned loop's fast copy (in place of the
    exit test): continue at ``next`` while the chunk has iterations left, else
    at ``done`` (the loop's own exit test, which leaves the loop or starts the
    next chunk)."""

    next: int
    done: int


@dataclass(slots=True)
class LoopGuard:
    """A versioned loop's guard, entered from outside the loop and after every
    chunk: polls for interrupts (TIMEOUT at the header), computes the chunk and
    runs it in the fast copy (``fast``) when every check of ``plan`` holds, else
    continues in the checked loop (``slow``)."""

    fast: int
    slow: int
    plan: LoopPlan


Terminator = Jump | Branch | Ret | Call | TailCall | Countdown | LoopGuard


@dataclass(slots=True)
class IRBlock:
    """A verifier block inside one function.

    ``entry_state`` is the state on entry (phi results or the single
    predecessor's values); ``preds`` lists predecessor leaders (and
    :data:`ENTRY` for the function entry). ``check_interrupt`` marks loop headers
    and the entries of functions on a cycle of calls or tail calls, where the
    lowering polls for TIMEOUT (every unbounded execution passes one of them).
    """

    pc: int
    end: int
    cost: int
    preds: list[int]
    phis: list[Phi]
    entry_state: list[Operand]
    insts: list[Inst]
    term: Terminator
    check_interrupt: bool = False
    loop_header: bool = False
    kind: int = ORIGINAL
    """:data:`ORIGINAL`, :data:`FAST`, :data:`ENTRY_COPY`, :data:`GUARD` or
    :data:`TAIL` (``pc`` is then the block's key, :func:`block_key`)."""

    @property
    def leader(self) -> int:
        """The guest pc this block starts at (where its FUEL and TIMEOUT traps
        report; for a guard the loop header's)."""
        return leader_of(self.pc)

    @property
    def successors(self) -> tuple[int, ...]:
        """Keys of the blocks control may reach next inside this function."""
        t = self.term
        if isinstance(t, Jump):
            return (t.target,)
        if isinstance(t, Branch):
            return (t.taken,) if t.taken == t.fallthrough else (t.taken, t.fallthrough)
        if isinstance(t, Call):
            return (t.next,)
        if isinstance(t, Countdown):
            return (t.next, t.done)
        if isinstance(t, LoopGuard):
            return (t.fast, t.slow)
        return ()

    @property
    def is_tail(self) -> bool:
        """True for the stand-in block of another function's entry (a tail call:
        no cost, no checks, no instructions)."""
        return type(self.term) is TailCall


@dataclass(slots=True)
class IRFunction:
    """A guest function: blocks in reverse post-order, the block control enters
    first (the entry block, or the guard of a versioned loop at the entry)."""

    entry: int
    params: list[Value]
    blocks: dict[int, IRBlock]
    names: tuple[str, ...] = ()
    nvalues: int = 0
    modifies: tuple[int, ...] = tuple(range(7))
    """State variables a call of this function may change (itself or through its
    callees); only these are returned to the caller."""
    cmp_returned: bool = True
    """Some caller may read CMP after this function returns (else it returns no CMP)."""
    cmp_read: bool = True
    """The function may read the CMP it is called with (else callers pass none)."""
    cold: bool = False
    """Runs a bounded number of times per run (no loop, not called from a loop or
    a recursion): compiled for compile speed (:mod:`zjit.backends.middle.plan`)."""

    @property
    def name(self) -> str:
        """Symbol-safe name (``f_<pc hex>``)."""
        return func_name(self.entry)

    @property
    def start(self) -> int:
        """Key of the block control enters first."""
        return next(iter(self.blocks))

    def callees(self) -> set[int]:
        """Entry pcs of the functions this one calls."""
        return {b.term.callee for b in self.blocks.values() if isinstance(b.term, Call)}

    def tail_callees(self) -> set[int]:
        """Entry pcs of the functions this one continues in (:class:`TailCall`)."""
        return {b.term.callee for b in self.blocks.values() if isinstance(b.term, TailCall)}

    def instructions(self) -> Iterator[Inst]:
        """All non-terminator instructions, block by block."""
        for b in self.blocks.values():
            yield from b.insts


@dataclass(slots=True)
class IRModule:
    """Every guest function of one verified program."""

    functions: dict[int, IRFunction]
    entry: int
    exports: dict[str, int]
    has_readonly: bool
    prims_used: int
    digest: str
    name: str = "module"

    @property
    def entry_points(self) -> dict[int, tuple[str, ...]]:
        """Pcs a run may start at -> the export names (entry has ``<entry>``)."""
        out: dict[int, list[str]] = {self.entry: ["<entry>"]}
        for name, pc in sorted(self.exports.items()):
            out.setdefault(pc, []).append(name)
        return {pc: tuple(v) for pc, v in sorted(out.items())}


def func_name(pc: int) -> str:
    """Symbol-safe name of the function entered at ``pc``."""
    return f"f_{pc:x}"


def inst_traps(op: OpInfo, has_readonly: bool = True) -> tuple[TrapKind, ...]:
    """Trap kinds an instruction of ``op`` can raise (block-entry FUEL/TIMEOUT apart)."""
    fam = op.family
    wp = (TrapKind.WRITE_PROTECT,) if has_readonly else ()
    if fam is Family.DIV:
        return (TrapKind.DIV0,)
    if fam is Family.LOAD:
        return (TrapKind.OOB,)
    if fam in (Family.STORE, Family.BULK):
        return (TrapKind.OOB, *wp)
    if fam is Family.CALL:
        return (TrapKind.CALL_DEPTH,)
    if fam is Family.PRIM:
        return {
            "in": (TrapKind.OOB, *wp, TrapKind.HOST),
            "out": (TrapKind.OOB, TrapKind.HOST),
            "log": (TrapKind.OOB, TrapKind.HOST),
            "ctl": (TrapKind.OOB, *wp, TrapKind.HOST),
        }.get(op.operation, ())
    return ()


# --------------------------------------------------------------------------- printer

def _ops(xs: list[Operand]) -> str:
    return ", ".join(str(x) for x in xs)


def _regs(xs: list[Operand]) -> str:
    return " ".join(f"{n}={v}" for n, v in zip(REG_NAMES, xs, strict=False))


def format_inst(ins: Inst, has_readonly: bool = True) -> str:
    """One instruction as text (without the pc column)."""
    op = ins.op
    lhs = f"{_ops(list(ins.dests))} = " if ins.dests else ""
    name = op.mnemonic.lower()
    fam = op.family
    if fam in (Family.LOAD, Family.STORE):
        base = ins.args[0]
        mem = f"[{base}{ins.imm:+d}]" if ins.imm else f"[{base}]"
        text = f"{lhs}{name} {mem}" + (f", {ins.args[1]}" if fam is Family.STORE else "")
    elif fam is Family.SHIFT:
        text = f"{lhs}{name} {ins.args[0]}, #{ins.imm}"
    else:
        text = f"{lhs}{name} {_ops(ins.args)}"
    traps = ins.traps(has_readonly)
    if traps:
        text += f"    ; may trap {'/'.join(t.name for t in traps)}; regs {_regs(ins.regs)}"
    return text


def _format_plan(plan: LoopPlan) -> str:
    ivs = ", ".join(f"{STATE_NAMES[v]}+={s.const}" + (f"+{STATE_NAMES[s.var]}" if s.var is not None else "")
                    for v, s in sorted(plan.steps.items()))
    unchecked = ", ".join(f"{pc:#x}" for pc in sorted(plan.unchecked)) or "none"
    return (f"ivs({ivs}) test {plan.test.kind} checks {len(plan.checks)} unchecked({unchecked}) "
            f"chunk {plan.chunk} max-cost {plan.max_cost}")


def format_term(t: Terminator) -> str:
    """A terminator as text."""
    k = key_text
    if isinstance(t, Jump):
        return f"jr al -> {k(t.target)}" if t.pc is not None else f"fallthrough -> {k(t.target)}"
    if isinstance(t, Branch):
        return (f"jr {COND_NAMES[t.cond]} {t.lhs}, {t.rhs} -> {k(t.taken)} "
                f"else {k(t.fallthrough)}")
    if isinstance(t, Ret):
        return f"ret {_ops(t.state)}"
    if isinstance(t, TailCall):
        return f"tail call {func_name(t.callee)}({_ops(t.args)})"
    if isinstance(t, Countdown):
        return f"countdown -> {k(t.next)} else {k(t.done)}"
    if isinstance(t, LoopGuard):
        return f"loop guard -> {k(t.fast)} else {k(t.slow)}: {_format_plan(t.plan)}"
    rec = " recursive" if t.cyclic else ""
    outs = ", ".join(f"{STATE_NAMES[v]}={d}" for v, d in zip(t.mods, t.dests, strict=True))
    return f"{outs or 'nothing'} = call{rec} {func_name(t.callee)}({_ops(t.args)}) then {k(t.next)}"


def format_function(fn: IRFunction, has_readonly: bool = True) -> str:
    """A function as text (``zjit disasm --ir``)."""
    names = f" ({', '.join(fn.names)})" if fn.names else ""
    params = ", ".join(f"{STATE_NAMES[i]} {v}" for i, v in enumerate(fn.params))
    mods = ", ".join(STATE_NAMES[v] for v in fn.modifies) or "nothing"
    cold = " cold" if fn.cold else ""
    lines = [f"function {fn.name}{names} entry {fn.entry:#x} params({params}) modifies({mods}){cold}:"]
    for b in fn.blocks.values():
        preds = ", ".join("entry" if p == ENTRY else key_text(p) for p in b.preds)
        flags = (" loop-header" if b.loop_header else "") + (" interrupt-check" if b.check_interrupt else "")
        lines.append(f"  block {key_text(b.pc)}..{b.end:#x} cost {b.cost} preds [{preds}]{flags}")
        for phi in b.phis:
            inc = ", ".join(f"{'entry' if p == ENTRY else key_text(p)}: {v}" for p, v in phi.incoming)
            lines.append(f"    {'':8}{phi.dest} = phi {STATE_NAMES[phi.var]} [{inc}]")
        for ins in b.insts:
            flag = " (unchecked)" if ins.unchecked else " (exact)" if ins.exact else ""
            lines.append(f"    {ins.pc:#06x}  {format_inst(ins, has_readonly)}{flag}")
        tpc = getattr(b.term, "pc", None)
        col = f"{tpc:#06x}" if isinstance(tpc, int) else ""
        lines.append(f"    {col:<8}{format_term(b.term)}")
    return "\n".join(lines)


def format_module(mod: IRModule) -> str:
    """The whole module as text."""
    head = [f"; zjit IR of {mod.name!r} (digest {mod.digest[:16]}), {len(mod.functions)} function(s)",
            f"; entry {mod.entry:#x}; read-only segments: {'yes' if mod.has_readonly else 'no'}"]
    body = [format_function(f, mod.has_readonly) for f in mod.functions.values()]
    return "\n".join(head) + "\n\n" + "\n\n".join(body) + "\n"
