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

STATE_NAMES: tuple[str, ...] = (*REG_NAMES, "CMPL", "CMPR")
"""Names of the SSA state variables: registers 0..4, then CMP lhs and rhs."""
NSTATE = len(STATE_NAMES)
CMPL, CMPR = 5, 6
ENTRY = -1
"""Pseudo predecessor of a function's entry block: the function's parameters."""

I64 = "i64"
I32 = "i32"


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


Terminator = Jump | Branch | Ret | Call | TailCall


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

    @property
    def successors(self) -> tuple[int, ...]:
        """Leaders control may reach next inside this function."""
        t = self.term
        if isinstance(t, Jump):
            return (t.target,)
        if isinstance(t, Branch):
            return (t.taken,) if t.taken == t.fallthrough else (t.taken, t.fallthrough)
        if isinstance(t, Call):
            return (t.next,)
        return ()

    @property
    def is_tail(self) -> bool:
        """True for the stand-in block of another function's entry (a tail call:
        no cost, no checks, no instructions)."""
        return type(self.term) is TailCall


@dataclass(slots=True)
class IRFunction:
    """A guest function: blocks in reverse post-order, entry block first."""

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


def format_term(t: Terminator) -> str:
    """A terminator as text."""
    if isinstance(t, Jump):
        return f"jr al -> {t.target:#x}" if t.pc is not None else f"fallthrough -> {t.target:#x}"
    if isinstance(t, Branch):
        return (f"jr {COND_NAMES[t.cond]} {t.lhs}, {t.rhs} -> {t.taken:#x} "
                f"else {t.fallthrough:#x}")
    if isinstance(t, Ret):
        return f"ret {_ops(t.state)}"
    if isinstance(t, TailCall):
        return f"tail call {func_name(t.callee)}({_ops(t.args)})"
    rec = " recursive" if t.cyclic else ""
    outs = ", ".join(f"{STATE_NAMES[v]}={d}" for v, d in zip(t.mods, t.dests, strict=True))
    return f"{outs or 'nothing'} = call{rec} {func_name(t.callee)}({_ops(t.args)}) then {t.next:#x}"


def format_function(fn: IRFunction, has_readonly: bool = True) -> str:
    """A function as text (``zjit disasm --ir``)."""
    names = f" ({', '.join(fn.names)})" if fn.names else ""
    params = ", ".join(f"{STATE_NAMES[i]} {v}" for i, v in enumerate(fn.params))
    mods = ", ".join(STATE_NAMES[v] for v in fn.modifies) or "nothing"
    cold = " cold" if fn.cold else ""
    lines = [f"function {fn.name}{names} entry {fn.entry:#x} params({params}) modifies({mods}){cold}:"]
    for b in fn.blocks.values():
        preds = ", ".join("entry" if p == ENTRY else f"{p:#x}" for p in b.preds)
        flags = (" loop-header" if b.loop_header else "") + (" interrupt-check" if b.check_interrupt else "")
        lines.append(f"  block {b.pc:#x}..{b.end:#x} cost {b.cost} preds [{preds}]{flags}")
        for phi in b.phis:
            inc = ", ".join(f"{'entry' if p == ENTRY else f'{p:#x}'}: {v}" for p, v in phi.incoming)
            lines.append(f"    {'':8}{phi.dest} = phi {STATE_NAMES[phi.var]} [{inc}]")
        for ins in b.insts:
            lines.append(f"    {ins.pc:#06x}  {format_inst(ins, has_readonly)}")
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
