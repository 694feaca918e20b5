"""LLVM IR of the baseline tier's stencil library (copy-and-patch, docs/baseline.md).

A *stencil* is a small guest-convention function on the state S (:mod:`.abi`)
for one operation and operand shape: ``ADD64`` with HL, DE, BC is one stencil,
with DE, DE, A another. It ends in a guaranteed tail call of the continuation
(``_JIT_CONT``: the code that follows it), so a chain of stencils copied one
after another is straight-line machine code with the guest state in registers.
Everything that varies inside an operand shape is a *hole*, an external symbol:

* values (displacements, immediates, memory limits, pcs, fuel costs, entry
  ids) are ``ptrtoint`` of a global with an ``!absolute_symbol`` range
  (:data:`VALUE_HOLES`), which LLVM puts into instruction immediates;
* code addresses are called or tail-called symbols: ``_JIT_CONT``,
  ``_JIT_TARGET`` (a JR's target), ``_JIT_TRAP<k>`` (the k-th trap exit) and
  ``_JIT_TIERUP``, plus the runtime routines (trap helper, C-call adapters,
  read-only scan) that every code buffer carries once.

The instruction stencils are written by the O2 lowering's own family emitters
(:mod:`.emit_alu`, :mod:`.emit_memory`, :mod:`.emit_prims`, the block-entry and
branch emitters of :mod:`.emit_control`) on a :class:`StencilEmitter`, so an
instruction's semantics and guards are written once. Each guard becomes a
conditional tail call of a trap exit with S unchanged (x86-64 folds it into one
``jcc``); the exit leads to a per-site *trap stub* (``TRAP_*`` stencils) that
recomputes the failing address and length from S (:class:`TrapExit` says how)
and calls the trap helper with the kind and pc holes filled in.

On x86-64 a shift count cannot come from a symbol without a variable shift
(which would need RCX, part of S), so shift stencils are compiled twice with
two counts (:data:`SHIFT_PROBES`) and the byte that differs becomes the hole
(:func:`~zjit.backends.objfile.stencils.diff_hole`). AArch64 shifts take the
count in a register from a ``_JIT_SH`` value hole.

:func:`stencil_specs` lists every stencil; :func:`module_texts` groups them
into LLVM modules for the compile workers (stencil mode); :func:`runtime_module`
is the module of routines copied once into every baseline code buffer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from zjit.encoding import Instr
from zjit.isa import NUM_REGS, OPS, REG_NAMES, Family, OpInfo, TrapKind

from ..context import HOST_TIERUP, OFFSETS, RT_HOST_REQUEST, RT_THREAD_MAIN, TRAP_SITE
from ..middle.guest import operands_of
from ..middle.ir import Branch, Inst, IRBlock, IRFunction, Jump, Value
from ..targets import data_layout
from . import emit_alu, emit_memory, emit_prims
from .abi import (
    CMP,
    CTX,
    FUEL,
    HOST_CALL,
    MEM,
    MEMMOVE,
    MEMSET,
    REG0,
    ROOM,
    GuestABI,
    adapters_text,
    guest_abi,
)
from .emit_control import emit_block_entry, emit_branch
from .emit_traps import TRAP_HELPER, TRAP_PARAMS, trap_helper_text, trap_intrinsics
from .function import INVARIANT, LIKELY, NO_UNROLL, UNLIKELY, FnEmitter
from .options import CodegenOptions
from .runtime_asm import RT_ENTER, runtime_text
from .stencil_names import (
    BL_ENTRY,
    CONT,
    RUNTIME_SYMBOLS,
    SHIFT_HOLE,
    SHIFT_PROBES,
    TARGET,
    TIERUP,
    TRAP,
    TRAP_SITE_FN,
    VALUE_HOLES,
    WP_CONFLICT,
    WP_TWINS,
    TrapExit,
    cp_name,
    fixed_name,
    jr_name,
    mem_name,
    rrr_name,
    shift_name,
    unary_name,
)

assert emit_memory.WP_HELPER == WP_CONFLICT

_REG_PARAMS = tuple(f"%r{i}" for i in range(NUM_REGS))
_JR_CONDS = range(1, 11)


def hole(symbol: str) -> str:
    """The i64 constant expression of a value hole."""
    return f"ptrtoint (ptr @{symbol} to i64)"


class HoleInt(int):
    """An int that prints as a value hole, for emitters that format an immediate
    (a displacement, a block cost) into the IR text: compares unequal to 0."""

    symbol: str

    def __new__(cls, symbol: str) -> HoleInt:
        obj = super().__new__(cls, 0x7FFF_0000 + len(symbol))
        obj.symbol = symbol
        return obj

    def __str__(self) -> str:
        return hole(self.symbol)

    def __format__(self, spec: str) -> str:
        return hole(self.symbol)


@dataclass(frozen=True, slots=True)
class StencilSpec:
    """One stencil: its name, function text and the declarations it needs."""

    name: str
    text: str
    traps: tuple[TrapExit, ...] = ()
    decls: frozenset[str] = frozenset()
    shift: int | None = None
    """For an x86-64 shift probe: the count compiled in (see :data:`SHIFT_PROBES`)."""


def _params(abi: GuestABI) -> str:
    return "ptr %ctx, ptr %mem, i64 %room, " + ", ".join(f"i64 {r}" for r in _REG_PARAMS) + ", i64 %cmp, i64 %fuel.in"


class StencilEmitter(FnEmitter):
    """A :class:`FnEmitter` for one stencil: S comes in as parameters, memory
    limits and read-only bounds are holes, and every guard is a trap exit."""

    def __init__(self, opts: CodegenOptions, has_readonly: bool) -> None:
        super().__init__(IRFunction(0, [], {}), opts, has_readonly)
        self.st["fuel"] = "%fuel.in"  # always passed through (unmetered code never reads it)
        self.regs = [Value(i, "i64") for i in range(NUM_REGS)]
        for v, name in zip(self.regs, _REG_PARAMS, strict=True):
            self.bind(v, name)
        self.ntmp = 100
        self.holes: set[str] = set()
        self.calls: set[str] = set()
        self.limit_sizes: set[int] = set()

    def use(self, symbol: str) -> str:
        """A value hole as an i64 operand."""
        self.holes.add(symbol)
        return hole(symbol)

    def limit(self, n: int) -> str:
        """``mem_size - n + 1`` (0 when smaller): the ``_JIT_LIMIT`` hole."""
        self.limit_sizes.add(n)
        assert len(self.limit_sizes) == 1, "one access size per stencil"
        return self.use("_JIT_LIMIT")

    def mem_size(self) -> str:
        """The ``_JIT_MEMSIZE`` hole."""
        return self.use("_JIT_MEMSIZE")

    def inv(self, name: str) -> str:
        """Read-only bounds are holes; other invariant fields load from ctx."""
        if name == "ro_lo":
            return self.use("_JIT_ROLO")
        if name == "ro_hi":
            return self.use("_JIT_ROHI")
        return super().inv(name)

    def new_value(self) -> Value:
        """A fresh IR value (ids above the registers')."""
        self.ntmp += 1
        return Value(self.ntmp, "i64")


# --------------------------------------------------------------------------- rendering


def _state(fe: StencilEmitter, regs: dict[int, str] | None = None, cmp: str = "%cmp",
           room: str | None = None) -> str:
    """S as an argument list: current lowering state, registers (``regs`` overrides)."""
    values = list(_REG_PARAMS)
    for i, v in (regs or {}).items():
        values[i] = v
    return (f"ptr {fe.ctx}, ptr {fe.mem()}, i64 {room or fe.room}, "
            + ", ".join(f"i64 {v}" for v in values) + f", i64 {cmp}, i64 {fe.fuel}")


_ENTRY_S = "ptr %ctx, ptr %mem, i64 %room, " + ", ".join(f"i64 {r}" for r in _REG_PARAMS) + ", i64 %cmp, i64 %fuel.in"


def _tail(fe: StencilEmitter, symbol: str, args: str) -> None:
    t = fe.tmp("x")
    fe.emit(f"{t} = musttail call {fe.abi.cc} {fe.abi.ret} @{symbol}({args})")
    fe.emit(f"ret {fe.abi.ret} {t}")


def _define(defs: dict[str, str], name: str) -> str | None:
    """The right-hand side defining ``name`` in a stencil's lines."""
    return defs.get(name)


_AND32 = re.compile(r"and i64 (%r\d), 4294967295$")
_ADD_DISP = re.compile(r"add i64 (%r\d), " + re.escape(hole("_JIT_DISP")) + "$")


def _operand_shape(text: str, defs: dict[str, str], fe: StencilEmitter) -> str:
    """How a trap stub recomputes an address or length (see :class:`TrapExit`)."""
    if text in ("0", "undef"):
        return "n"
    if text.lstrip("-").isdigit():
        return "c"
    if text in _REG_PARAMS:
        return "r" + text[2:]
    rhs = defs.get(text, "")
    m = _AND32.match(rhs)
    if m:
        return "z" + m.group(1)[2:]
    m = _ADD_DISP.match(rhs)
    if m:
        return "d" + m.group(1)[2:]
    raise AssertionError(f"trap operand {text!r} ({rhs!r}) has no stub shape")


def _render(fe: StencilEmitter, name: str, attrs: str = "#0") -> tuple[str, tuple[TrapExit, ...], int | None]:
    """The function text of a finished stencil, its trap exits and the one fixed
    access length of its memory checks (None when there is none)."""
    lines = [f"define dso_local {fe.abi.cc} {fe.abi.ret} @{name}({_ENTRY_S}) {attrs} {{", "entry:"]
    lines += fe.entry_lines()
    chunks = [*fe.chunks, fe.cur]
    defs: dict[str, str] = {}
    for c in chunks:
        for line in c.lines:
            left, sep, right = line.strip().partition(" = ")
            if sep:
                defs[left] = right
        lines += ([] if c.label == "entry" else [f"{c.label}:"]) + c.phis + c.lines
    exits: list[TrapExit] = []
    length: int | None = None
    for n, site in enumerate(fe.traps):
        assert site.regs == list(_REG_PARAMS) and site.ctx == "%ctx", "a trap reports the registers on entry"
        shape_len = _operand_shape(site.length, defs, fe)
        if shape_len == "c":
            assert length in (None, int(site.length))
            length = int(site.length)
        exits.append(TrapExit(site.kind, _operand_shape(site.addr, defs, fe), shape_len))
        lines += [f"trap{n}:",
                  f"  %tx{n} = musttail call {fe.abi.cc} {fe.abi.ret} @{TRAP}{n}({_ENTRY_S})",
                  f"  ret {fe.abi.ret} %tx{n}"]
    lines.append("}")
    return "\n".join(lines), tuple(exits), length


_SYMBOL = re.compile(r"@(_JIT_[A-Z0-9]+)\b")


def _decls(fe: StencilEmitter, text: str) -> frozenset[str]:
    """The declarations ``text`` (a stencil written with ``fe``) needs."""
    out = {f"{'hole' if s in VALUE_HOLES else 'code'}:{s}" for s in _SYMBOL.findall(text)}
    out |= {f"intrinsic:{d}" for d in fe.intrinsics}
    out |= {f"adapter:{a}" for a in fe.adapters}
    out |= {f"helper:{h}" for h in fe.helpers}
    out |= {f"call:{c}" for c in fe.calls}
    return frozenset(out)


def _finish(fe: StencilEmitter, name: str, writes: dict[int, str], cmp: str = "%cmp",
            shift: int | None = None) -> StencilSpec:
    """End a stencil with the tail call of the continuation and render it."""
    _tail(fe, CONT, _state(fe, writes, cmp))
    text, exits, _ = _render(fe, name)
    return StencilSpec(name, text, exits, _decls(fe, text), shift)


# --------------------------------------------------------------------------- instruction stencils

_EMITTERS = {**emit_alu.EMITTERS, **emit_memory.EMITTERS, **emit_prims.EMITTERS}


def _inst_stencil(opts: CodegenOptions, op: OpInfo, rd: int, rs1: int, rs2: int, name: str,
                  has_readonly: bool = False, imm: int = 0, shift: int | None = None) -> StencilSpec:
    """A stencil written by the O2 family emitter of ``op``."""
    fe = StencilEmitter(opts, has_readonly)
    reads, writes = operands_of(Instr(0, op, rd, rs1, rs2, imm))
    args = [fe.regs[r] for r in reads]
    dests = [fe.new_value() for _ in writes]
    if op.family in (Family.LOAD, Family.STORE):
        imm = HoleInt("_JIT_DISP")
    ins = Inst(0, op, list(args), dests, imm, list(fe.regs))
    _EMITTERS[(op.family, op.operation)](fe, ins)
    return _finish(fe, name, {w: fe.val(d) for w, d in zip(writes, dests, strict=True)}, shift=shift)


def _rrr(opts: CodegenOptions) -> Iterator[StencilSpec]:
    for op in OPS:
        if op.family in (Family.ALU, Family.DIV, Family.CMPSET):
            for rd in range(NUM_REGS):
                for rs1 in range(NUM_REGS):
                    for rs2 in range(NUM_REGS):
                        yield _inst_stencil(opts, op, rd, rs1, rs2, rrr_name(op, rd, rs1, rs2))


def _shifts(opts: CodegenOptions) -> Iterator[StencilSpec]:
    x86 = not opts.triple.startswith(("aarch64", "arm64"))
    for op in OPS:
        if op.family is not Family.SHIFT:
            continue
        for rd in range(NUM_REGS):
            for rs1 in range(NUM_REGS):
                name = shift_name(op, rd, rs1)
                if x86:
                    for count in SHIFT_PROBES:
                        yield _inst_stencil(opts, op, rd, rs1, rs1, f"{name}__{count}", imm=count, shift=count)
                else:
                    yield _var_shift(opts, op, rd, rs1, name)


def _var_shift(opts: CodegenOptions, op: OpInfo, rd: int, rs1: int, name: str) -> StencilSpec:
    """AArch64: the count from the ``_JIT_SH`` hole (a register shift)."""
    fe = StencilEmitter(opts, False)
    w = op.width
    count = fe.use(SHIFT_HOLE)
    src = _REG_PARAMS[rs1]
    if w == 32:
        a, c = fe.tmp(), fe.tmp()
        fe.emit(f"{a} = trunc i64 {src} to i32")
        fe.emit(f"{c} = trunc i64 {count} to i32")
    else:
        a, c = src, count
    t = fe.tmp()
    if op.operation in ("sla", "sra", "srl"):
        fe.emit(f"{t} = {dict(sla='shl', sra='ashr', srl='lshr')[op.operation]} i{w} {a}, {c}")
    else:
        fn = f"llvm.{'fshl' if op.operation == 'rol' else 'fshr'}.i{w}"
        fe.intrinsic(f"declare i{w} @{fn}(i{w}, i{w}, i{w})")
        fe.emit(f"{t} = call i{w} @{fn}(i{w} {a}, i{w} {a}, i{w} {c})")
    out = t
    if w == 32:
        out = fe.tmp()
        fe.emit(f"{out} = zext i32 {t} to i64")
    return _finish(fe, name, {rd: out})


def _unary(opts: CodegenOptions) -> Iterator[StencilSpec]:
    for op in OPS:
        if op.family in (Family.BITCOUNT, Family.INCDEC):
            for rd in range(NUM_REGS):
                yield _inst_stencil(opts, op, rd, rd, rd, unary_name(op, rd))


def _memory(opts: CodegenOptions) -> Iterator[StencilSpec]:
    sizes_done: set[int] = set()
    for op in OPS:
        if op.family is Family.LOAD:
            for rd in range(NUM_REGS):
                for base in range(NUM_REGS):
                    yield _inst_stencil(opts, op, rd, base, base, mem_name(op, rd, base))
        elif op.family is Family.STORE and op.width not in sizes_done:
            sizes_done.add(op.width)
            for base in range(NUM_REGS):
                for src in range(NUM_REGS):
                    for ro in (False, True):
                        yield _inst_stencil(opts, op, src, base, src, mem_name(op, base, src, ro), ro)


def _fixed(opts: CodegenOptions) -> Iterator[StencilSpec]:
    for op in OPS:
        if op.family in (Family.BULK, Family.PRIM):
            yield _inst_stencil(opts, op, 0, 0, 0, fixed_name(op))
            if op.operation in WP_TWINS:
                yield _inst_stencil(opts, op, 0, 0, 0, fixed_name(op, True), True)


def _moves(opts: CodegenOptions) -> Iterator[StencilSpec]:
    for rd in range(NUM_REGS):
        for rs in range(NUM_REGS):
            if rd != rs:
                fe = StencilEmitter(opts, False)
                yield _finish(fe, f"MOV_{rd}{rs}", {rd: _REG_PARAMS[rs]})
        fe = StencilEmitter(opts, False)
        yield _finish(fe, f"LDI_{rd}", {rd: fe.use("_JIT_IMM")})
        fe = StencilEmitter(opts, False)
        yield _finish(fe, f"LDN_{rd}", {rd: fe.use("_JIT_NEG")})
        fe = StencilEmitter(opts, False)
        yield _finish(fe, f"LDQ_{rd}", {rd: fe.use("_JIT_IMM64")})


def _pack(fe: StencilEmitter, a: int, b: int | None) -> str:
    """The packed CMP of CP (``b`` a register) or CPI (``b`` None: the ``_JIT_CPI`` hole)."""
    lo, hi, c = fe.tmp(), fe.tmp(), fe.tmp("cmp")
    rhs = _REG_PARAMS[b] if b is not None else fe.use("_JIT_CPI")
    fe.emit(f"{lo} = and i64 {_REG_PARAMS[a]}, 4294967295")
    fe.emit(f"{hi} = shl i64 {rhs}, 32")
    fe.emit(f"{c} = or i64 {lo}, {hi}")
    return c


def _compares(opts: CodegenOptions) -> Iterator[StencilSpec]:
    """CP and CPI, alone and fused with the conditional JR that follows them (the
    JR then compares the registers themselves; CMP is set all the same)."""
    for a in range(NUM_REGS):
        for b in (*range(NUM_REGS), None):
            fe = StencilEmitter(opts, False)
            yield _finish(fe, cp_name(a, b), {}, _pack(fe, a, b))
            for cond in _JR_CONDS:
                fe = StencilEmitter(opts, False)
                c = _pack(fe, a, b)
                lhs, rhs = Value(90, "i32"), Value(91, "i32")
                fe.emit(f"%cl = trunc i64 {_REG_PARAMS[a]} to i32")
                fe.emit(f"%ch = trunc i64 {_REG_PARAMS[b] if b is not None else fe.use('_JIT_CPI')} to i32")
                fe.bind(lhs, "%cl")
                fe.bind(rhs, "%ch")
                yield _branch(fe, cp_name(a, b, cond), Branch(0, cond, lhs, rhs, 1, 2), c)


# --------------------------------------------------------------------------- control stencils


def _branches(opts: CodegenOptions) -> Iterator[StencilSpec]:
    fe = StencilEmitter(opts, False)
    _tail(fe, TARGET, _state(fe))
    text, _, _ = _render(fe, "JMP")
    yield StencilSpec("JMP", text, (), _decls(fe, text))
    for cond in _JR_CONDS:
        fe = StencilEmitter(opts, False)
        lhs, rhs = Value(90, "i32"), Value(91, "i32")
        fe.unpack_cmp("%cmp", "%cl", "%ch")
        fe.bind(lhs, "%cl")
        fe.bind(rhs, "%ch")
        yield _branch(fe, jr_name(cond), Branch(0, cond, lhs, rhs, 1, 2))


def _branch(fe: StencilEmitter, name: str, branch: Branch, cmp: str = "%cmp") -> StencilSpec:
    """End a stencil with a conditional JR: to ``_JIT_TARGET`` or on to ``_JIT_CONT``
    (written first, so LLVM falls through to it and the jump to it is the
    stencil's last instruction)."""
    emit_branch(fe, branch)
    fe.start("b2")
    _tail(fe, CONT, _state(fe, cmp=cmp))
    fe.start("b1")
    _tail(fe, TARGET, _state(fe, cmp=cmp))
    text, _, _ = _render(fe, name)
    return StencilSpec(name, text, (), _decls(fe, text))


def _block_entries(opts: CodegenOptions) -> Iterator[StencilSpec]:
    """POLL (interrupt), FUEL (charge ``_JIT_COST``), HEAD (POLL, then the tier-up
    counter: one more execution of an entry, and at zero a request for tier-up)."""
    for name, poll, fuel in (("POLL", True, False), ("FUEL", False, True), ("HEAD", True, False)):
        fe = StencilEmitter(CodegenOptions(triple=opts.triple, fuel=fuel, cpu=opts.cpu), False)
        block = IRBlock(0, 0, HoleInt("_JIT_COST"), [], [], list(fe.regs), [], Jump(0), check_interrupt=poll)
        emit_block_entry(fe, block)
        if name != "HEAD":
            yield _finish(fe, name, {})
        else:
            yield _count(fe)


def _count(fe: StencilEmitter) -> StencilSpec:
    """End HEAD: decrement the entry's counter (``_JIT_CNT8``); at zero, store the
    entry id (``_JIT_ID``) in ``ctx.tier_id`` and jump to the module's one ``_JIT_TIERUP``."""
    ft, p, c, c1, z = fe.inv("ftab"), fe.tmp("p"), fe.tmp(), fe.tmp(), fe.tmp("c")
    fe.emit(f"{p} = getelementptr inbounds i8, ptr {ft}, i64 {fe.use('_JIT_CNT8')}")
    fe.emit(f"{c} = load i64, ptr {p}, align 8")
    fe.emit(f"{c1} = sub i64 {c}, 1")
    fe.emit(f"store i64 {c1}, ptr {p}, align 8")
    fe.emit(f"{z} = icmp eq i64 {c1}, 0")
    fe.emit(f"br i1 {z}, label %hot, label %go, !prof {UNLIKELY}")
    fe.start("go")
    _tail(fe, CONT, _state(fe))
    fe.start("hot")
    fe.store_field("tier_id", fe.use("_JIT_ID"))
    _tail(fe, TIERUP, _state(fe))
    text, exits, _ = _render(fe, "HEAD")
    return StencilSpec("HEAD", text, exits, _decls(fe, text))


def _ftab_slot(fe: StencilEmitter) -> str:
    """The code address in the function table slot ``_JIT_FID8``."""
    ft, p, f = fe.inv("ftab"), fe.tmp("p"), fe.tmp("f")
    fe.emit(f"{p} = getelementptr inbounds i8, ptr {ft}, i64 {fe.use('_JIT_FID8')}")
    fe.emit(f"{f} = load ptr, ptr {p}, align 8")
    return f


def _calls(opts: CodegenOptions) -> Iterator[StencilSpec]:
    """A CALL is two stencils: ``ROOM`` (the depth check: CALL_DEPTH when ``room``
    is 0) and ``CALL`` (the call through ``ftab``), so that each ends in its
    continuation jump and none carries cold code. No stack guard: a baseline call
    level uses two words of native stack and O2 code over :data:`~zjit.backends.tiering.code.TIERED_FRAME`
    bytes is not used (tier-up objects check their own recursive calls). And RET."""
    from .emit_traps import guard

    fe = StencilEmitter(opts, False)
    ok = fe.tmp("c")
    fe.emit(f"{ok} = icmp ne i64 %room, 0")
    guard(fe, ok, int(TrapKind.CALL_DEPTH), 0, list(fe.regs))
    yield _finish(fe, "ROOM", {})
    fe = StencilEmitter(opts, False)
    f = _ftab_slot(fe)
    d1, res, abi = fe.tmp("d"), fe.tmp("r"), fe.abi
    fe.emit(f"{d1} = sub i64 %room, 1")
    fe.emit(f"{res} = call {abi.cc} {abi.ret} {f}({_state(fe, room=d1)})")

    def field(pos: int) -> str:
        v = fe.tmp("s")
        fe.emit(f"{v} = extractvalue {abi.ret} {res}, {abi.ret_index(pos)}")
        return v

    regs = {i: field(REG0 + i) for i in range(NUM_REGS)}
    cmp, fuel, room = field(CMP), field(FUEL), fe.tmp("room")
    fe.emit(f"{room} = add i64 {field(ROOM)}, 1")
    new = {"room": room, "fuel": fuel}
    if abi.returns_ctx:
        new["ctx"], new["mem"] = field(CTX), field(MEM)
    fe.rebind(**new)
    yield _finish(fe, "CALL", regs, cmp)
    # RET: S goes back to the caller as it is
    fe = StencilEmitter(opts, False)
    values = {CTX: "ptr %ctx", MEM: "ptr %mem", ROOM: "i64 %room", CMP: "i64 %cmp", FUEL: "i64 %fuel.in"}
    values.update({REG0 + i: f"i64 {r}" for i, r in enumerate(_REG_PARAMS)})
    cur = "poison"
    for i, pos in enumerate(abi.ret_fields):
        t = fe.tmp("s")
        fe.emit(f"{t} = insertvalue {abi.ret} {cur}, {values[pos]}, {i}")
        cur = t
    fe.emit(f"ret {abi.ret} {cur}")
    text, _, _ = _render(fe, "RET")
    yield StencilSpec("RET", text, (), _decls(fe, text))


# --------------------------------------------------------------------------- stubs

def site_stub(opts: CodegenOptions) -> StencilSpec:
    """``SITE``: the stub of one trap exit, a call of :data:`TRAP_SITE_FN` with S."""
    fe = StencilEmitter(opts, False)
    fe.calls.add(TRAP_SITE_FN)
    fe.emit(f'call {fe.abi.cc} void @"{TRAP_SITE_FN}"({_ENTRY_S}) #6')
    fe.emit("unreachable")
    text, _, _ = _render(fe, "SITE")
    return StencilSpec("SITE", text, (), _decls(fe, text))


def _trap_site_text(abi: GuestABI) -> str:
    """The runtime routine behind every trap stub (see :data:`TRAP_SITE_FN`)."""
    values = {"kind": str(TRAP_SITE), "pc": "%pc", "addr": "0", "len": "0", "fuel": "%fuel",
              **{r: f"%r{i}" for i, r in enumerate(REG_NAMES)}}
    args = ", ".join(["ptr %ctx"] + [f"i64 {values[p]}" for p in TRAP_PARAMS[1:]])
    regs = ", ".join(f"i64 %r{i}" for i in range(NUM_REGS))
    return "\n".join([
        f'define internal {abi.cc} void @"{TRAP_SITE_FN}"(ptr %ctx, ptr %mem, i64 %room, {regs}, i64 %cmp, '
        "i64 %fuel) #3 {",
        "entry:",
        "  %ra = call ptr @llvm.returnaddress(i32 0)",
        "  %pc = ptrtoint ptr %ra to i64",
        f'  call {abi.cc} void @"{TRAP_HELPER}"({args}) #6',
        "  unreachable",
        "}",
    ])


def tierup_stub(opts: CodegenOptions) -> StencilSpec:
    """``TIERUP`` (one per module): tell the engine entry ``ctx.tier_id`` is hot
    (``host_call``), then continue at its function table slot (its own code
    again, or the optimised code when it is ready)."""
    fe = StencilEmitter(opts, False)
    r, eid, p, f = fe.tmp("r"), fe.load_field("tier_id"), fe.tmp("p"), fe.tmp("f")
    fe.c_call(HOST_CALL, ["ptr %ctx", f"i64 {HOST_TIERUP}", f"i64 {eid}", "i64 0", "i64 0", "i64 0"], r)
    fe.emit(f"{p} = getelementptr inbounds i64, ptr {fe.inv('ftab')}, i64 {eid}")
    fe.emit(f"{f} = load ptr, ptr {p}, align 8")
    t = fe.tmp("x")
    fe.emit(f"{t} = musttail call {fe.abi.cc} {fe.abi.ret} {f}({_ENTRY_S})")
    fe.emit(f"ret {fe.abi.ret} {t}")
    text, _, _ = _render(fe, "TIERUP")
    return StencilSpec("TIERUP", text, (), _decls(fe, text))


# --------------------------------------------------------------------------- the library


def stencil_specs(triple: str, cpu: str = "generic") -> list[StencilSpec]:
    """Every stencil of the library for ``triple``: instruction and control
    stencils, then the trap stubs they need and the tier-up stub."""
    opts = CodegenOptions(triple=triple, cpu=cpu, fuel=False)
    out: list[StencilSpec] = []
    for gen in (_rrr, _shifts, _unary, _memory, _fixed, _moves, _compares, _branches, _block_entries, _calls):
        out.extend(gen(opts))
    out += [site_stub(opts), tierup_stub(opts)]
    return out


def _declarations(abi: GuestABI, decls: set[str], triple: str) -> list[str]:
    out: list[str] = []
    params = _params(abi)
    md = 10
    ranges: dict[tuple[int, int], int] = {}
    for d in sorted(decls):
        kind, _, name = d.partition(":")
        if kind == "hole":
            rng = VALUE_HOLES[name]
            if rng not in ranges:
                ranges[rng] = md
                md += 1
            out.append(f"@{name} = external dso_local global i8, !absolute_symbol !{ranges[rng]}")
        elif kind == "code":
            out.append(f"declare dso_local {abi.cc} {abi.ret} @{name}({params})")
        elif kind == "intrinsic":
            out.append(name)
        elif kind == "adapter":
            out.append(_adapter_decl(abi, name))
        elif kind == "helper":
            out.append(f'declare dso_local {abi.cc} i1 @"{name}"(ptr, i64, i64)')
        elif kind == "call":
            out.append(f'declare dso_local {abi.cc} void @"{name}"({params}) noreturn nounwind')
    out += [f"!{n} = !{{i64 {lo}, i64 {hi}}}" for (lo, hi), n in ranges.items()]
    return out


def _adapter_decl(abi: GuestABI, name: str) -> str:
    from .abi import C_SIGS

    ret, params = C_SIGS[name]
    if name != HOST_CALL:
        params = ("ptr", *params)
    return f'declare dso_local {abi.cc} {ret} @"{name}"({", ".join(params)})'


def _module_head(abi: GuestABI, triple: str) -> list[str]:
    return [f'target datalayout = "{data_layout(triple)}"', f'target triple = "{triple}"', "",
            *abi.type_defs(), ""]


_ATTRS = [
    'attributes #0 = { nounwind "frame-pointer"="none" "no-builtins" }',
    "attributes #6 = { noreturn nounwind }",
    f"{INVARIANT} = !{{}}",
    f'{LIKELY} = !{{!"branch_weights", i32 2000, i32 1}}',
    f'{UNLIKELY} = !{{!"branch_weights", i32 1, i32 2000}}',
    f'{NO_UNROLL} = !{{!"llvm.loop.unroll.disable"}}',
]


def module_texts(specs: list[StencilSpec], triple: str, chunks: int) -> list[str]:
    """The specs as ``chunks`` LLVM modules of about equal size (for parallel compiles)."""
    abi = guest_abi(triple)
    groups: list[list[StencilSpec]] = [[] for _ in range(max(1, chunks))]
    for k, s in enumerate(specs):
        groups[k % len(groups)].append(s)
    out: list[str] = []
    for g in groups:
        decls: set[str] = set()
        for s in g:
            decls |= s.decls
        out.append("\n".join([*_module_head(abi, triple), *_declarations(abi, decls, triple), "",
                              *(s.text for s in g), "", *_ATTRS, ""]))
    return out


# --------------------------------------------------------------------------- the runtime module

def _bl_entry_text(abi: GuestABI) -> str:
    def gep(name: str, f: str, extra: int = 0) -> str:
        return f"  %{name} = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[f] + extra}"

    lines = ["define internal void @zjit.bl_body(ptr noalias %ctx) nounwind {", "entry:",
             gep("pk", "trap_kind"), "  store i64 0, ptr %pk, align 8",
             gep("pm", "mem_base"), "  %mem = load ptr, ptr %pm, align 8",
             gep("pmd", "max_depth"), "  %room = load i64, ptr %pmd, align 8",
             gep("pf", "fuel"), "  %fuel = load i64, ptr %pf, align 8",
             gep("pt", "ftab"), "  %ft = load ptr, ptr %pt, align 8",
             gep("pi", "run_id"), "  %id = load i64, ptr %pi, align 8",
             "  %ps = getelementptr inbounds i64, ptr %ft, i64 %id",
             "  %fn = load ptr, ptr %ps, align 8"]
    for i in range(NUM_REGS):
        lines += [gep(f"pr{i}", "regs", 8 * i), f"  %r{i} = load i64, ptr %pr{i}, align 8"]
    regs = ", ".join(f"i64 %r{i}" for i in range(NUM_REGS))
    lines.append(f"  %res = call {abi.cc} {abi.ret} %fn(ptr %ctx, ptr %mem, i64 %room, {regs}, i64 0, i64 %fuel)")
    for i in range(NUM_REGS):
        lines.append(f"  %o{i} = extractvalue {abi.ret} %res, {abi.ret_index(REG0 + i)}")
        lines.append(f"  store i64 %o{i}, ptr %pr{i}, align 8")
    lines += [f"  %of = extractvalue {abi.ret} %res, {abi.ret_index(FUEL)}", "  store i64 %of, ptr %pf, align 8",
              "  ret void", "}", "",
              f'define internal i32 @"{BL_ENTRY}"(ptr %ctx) nounwind {{',
              f"  %s = tail call i32 @{RT_ENTER}(ptr %ctx, ptr @zjit.bl_body)", "  ret i32 %s", "}"]
    return "\n".join(lines)


def runtime_module(triple: str) -> str:
    """The routines every baseline code buffer starts with: the runtime routines
    (:mod:`.runtime_asm`), the trap helper, the C-call adapters, the read-only
    scan and the run entry (:data:`BL_ENTRY`). Compiled as ordinary code (PIC):
    it refers only to itself."""
    abi = guest_abi(triple)
    adapters = {HOST_CALL, MEMMOVE, MEMSET} if abi.adapters else set()
    names = [n for n in RUNTIME_SYMBOLS if n in (TRAP_SITE_FN, emit_memory.WP_HELPER, BL_ENTRY,
                                                  RT_HOST_REQUEST, RT_THREAD_MAIN) or n in adapters]
    used = ", ".join(f'ptr @"{n}"' for n in names)
    parts = [*_module_head(abi, triple), *trap_intrinsics(triple), "",
             f'@llvm.compiler.used = appending global [{len(names)} x ptr] [{used}], section "llvm.metadata"', "",
             trap_helper_text(abi, triple), _trap_site_text(abi), *adapters_text(abi, adapters), emit_memory.wp_helper_text(abi.cc),
             _bl_entry_text(abi), runtime_text(triple), "",
             'attributes #2 = { nounwind noinline "no-builtins" }',
             'attributes #3 = { nounwind noinline noreturn nomerge "no-builtins" }',
             'attributes #4 = { nounwind noinline "no-builtins" }',
             "attributes #6 = { noreturn nounwind }",
             f"{INVARIANT} = !{{}}", ""]
    return "\n".join(parts)


@dataclass
class LibraryPlan:
    """What a stencil library build compiles: the runtime module and the stencil modules."""

    triple: str
    runtime: str
    modules: list[str]
    specs: list[StencilSpec] = field(default_factory=list)


def library_plan(triple: str, cpu: str = "generic", chunks: int = 4) -> LibraryPlan:
    """Everything to compile for the stencil library of ``triple``."""
    specs = stencil_specs(triple, cpu)
    return LibraryPlan(triple, runtime_module(triple), module_texts(specs, triple, chunks), specs)
