"""ZASM -> WebAssembly text: the Wasmtime twin of a verified module.

:func:`translate` turns a loaded :class:`zjit.Module` into a WAT module that
computes the same thing (compile-latency bench: Wasmtime compiles the twin of each
generated program; ``tests/test_bench_wasm.py`` runs twins of small programs
against zjit's interpreter). The mapping:

* **Functions.** Guest function entries (the module entry and every CALL target)
  become wasm functions; each owns the blocks reachable from its entry without
  entering another function's entry (shared blocks are copied). An edge into
  another function's entry (a jump or fall-through) is a ``return_call``: the
  call stack stays as it was, as for a ZASM ``JR``. Exports inside a function's
  blocks start that function at their block; other exports get a function of
  their own.
* **Registers and CMP** are the locals ``$hl $de $a $bc $ix`` (i64) and
  ``$cl $cr`` (i32); since ZASM registers are global, every wasm function takes
  all seven as parameters and returns them (multi-value), plus ``$start``, the
  index of the block to begin with.
* **Control flow** inside a function: ``loop`` + ``br_table`` block dispatcher on
  ``$next``; a fall-through to the next block in pc order is a plain fall-through.
* **Calls**: the depth counter ``$depth`` (a global) is checked against
  ``max_call_depth`` (trap CALL_DEPTH) and the callee is a direct ``call``.
* **Memory**: guest memory is linear memory (same size rounded up to 64 KiB
  pages, data segments from the module's segments); every access is checked
  explicitly against the guest size (``a + n <= mem_size`` in 64 bits) and stores
  against the read-only ranges, as ZASM requires, so the twin traps where the
  guest traps whatever Wasmtime's own bounds strategy is. LDIR and FILL check
  their spans first, then use ``memory.copy`` / ``memory.fill``.
* **Primitives** are imports ``zasm.in/out/log/alloc/free/ctl`` with the
  signature ``(pc: i32, hl, de, a, bc, ix: i64) -> hl: i64``: the host checks
  spans and does the work (:mod:`wasm_twin_host`). Guest traps call the import
  ``zasm.trap(kind, pc, hl, de, a, bc, ix)``, which does not return.

Not modelled: fuel and TIMEOUT (the twin runs unmetered and uninterruptible).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import zjit
from zjit.encoding import Instr
from zjit.isa import MASK32, MASK64, REG_NAMES, Family, TrapKind, sext
from zjit.memory import build_memory

REGS = tuple(f"${name.lower()}" for name in REG_NAMES)
"""Locals of the five guest registers, in register-index order."""
STATE = (*REGS, "$cl", "$cr")
STATE_TYPES = "i64 i64 i64 i64 i64 i32 i32"
PRIM_SIG = "(param i32 i64 i64 i64 i64 i64) (result i64)"
PAGE = 1 << 16

_COND = ("", "i32.eq", "i32.ne", "i32.lt_s", "i32.le_s", "i32.gt_s", "i32.ge_s",
         "i32.lt_u", "i32.le_u", "i32.gt_u", "i32.ge_u")
"""JR condition code -> i32 comparison of ($cl, $cr)."""
_ALU = {"add": "add", "sub": "sub", "mul": "mul", "and": "and", "or": "or", "xor": "xor"}
_SHIFT = {"sla": "shl", "sra": "shr_s", "srl": "shr_u", "rol": "rotl", "ror": "rotr"}
_CMPSET = {"eq": "eq", "ne": "ne", "lts": "lt_s", "les": "le_s", "gts": "gt_s", "ges": "ge_s",
           "ltu": "lt_u", "leu": "le_u", "gtu": "gt_u", "geu": "ge_u"}
_LOAD = {  # (bytes, signed, to 64 bits) -> instructions producing the i64 value
    (1, False, False): ["i64.load8_u"], (1, True, False): ["i32.load8_s", "i64.extend_i32_u"],
    (2, False, False): ["i64.load16_u"], (2, True, False): ["i32.load16_s", "i64.extend_i32_u"],
    (4, False, False): ["i64.load32_u"], (8, False, True): ["i64.load"],
    (1, False, True): ["i64.load8_u"], (1, True, True): ["i64.load8_s"],
    (2, False, True): ["i64.load16_u"], (2, True, True): ["i64.load16_s"],
    (4, False, True): ["i64.load32_u"], (4, True, True): ["i64.load32_s"],
}
_STORE = {1: "i64.store8", 2: "i64.store16", 4: "i64.store32", 8: "i64.store"}


@dataclass(frozen=True, slots=True)
class WasmTwin:
    """The WAT text plus what a host needs to run it.

    ``exports`` maps the module entry (``None``) and each export name to the wasm
    export that starts there. ``mem_size`` is the guest memory size, ``heap_start``
    the first ALLOC address, ``readonly`` the write-protected ranges.
    """

    wat: str
    exports: dict[str | None, str]
    mem_size: int
    heap_start: int
    readonly: tuple[tuple[int, int], ...]
    functions: int


@dataclass(slots=True)
class _Func:
    root: int
    blocks: list[int]
    index: dict[int, int]


def _i64(value: int) -> str:
    return f"i64.const {sext(value & MASK64, 64)}"


def _i32(value: int) -> str:
    return f"i32.const {sext(value & MASK32, 32)}"


class _Translator:
    def __init__(self, module: zjit.Module) -> None:
        prog = module.program
        self.prog = prog
        memory = build_memory(module.image, module.policy)
        self.mem_size = memory.mem_size
        self.heap_start = memory.heap_start
        self.readonly = memory.readonly
        self.max_depth = module.policy.max_call_depth
        self.entries: set[int] = {prog.entry}
        self.entries.update(i.target for i in prog.instrs if i.op.family is Family.CALL)
        self.funcs: dict[int, _Func] = {}
        for root in sorted(self.entries):
            self.funcs[root] = self.region(root)
        self.starts: dict[str | None, tuple[int, int]] = {None: (prog.entry, self.funcs[prog.entry].index[prog.entry])}
        for name, pc in sorted(prog.exports.items(), key=lambda kv: kv[1]):
            home = next((f for f in self.funcs.values() if pc in f.index), None)
            if home is None:
                self.entries.add(pc)
                home = self.funcs[pc] = self.region(pc)
            self.starts[name] = (home.root, home.index[pc])
        self.out: list[str] = []

    # -- layout --------------------------------------------------------------------
    def successors(self, leader: int) -> Iterable[int]:
        """Successors inside the guest function (a CALL's target is not)."""
        block = self.prog.blocks[leader]
        calls = block.instrs[-1].op.family is Family.CALL
        return block.successors[1:] if calls else block.successors

    def region(self, root: int) -> _Func:
        seen = {root}
        todo = [root]
        while todo:
            for s in self.successors(todo.pop()):
                if s not in seen and s not in self.entries:
                    seen.add(s)
                    todo.append(s)
        blocks = sorted(seen)
        return _Func(root, blocks, {pc: i for i, pc in enumerate(blocks)})

    # -- emission helpers ----------------------------------------------------------
    def emit(self, *lines: str) -> None:
        self.out.extend(lines)

    def start_of(self, root: int) -> str:
        """The ``$start`` argument that enters function ``root`` at its entry."""
        return _i32(self.funcs[root].index[root])

    def trap(self, kind: TrapKind, pc: int) -> None:
        self.emit(_i32(kind.value), _i32(pc), *(f"local.get {r}" for r in REGS), "call $trap",
                  "unreachable")

    def trap_if(self, kind: TrapKind, pc: int) -> None:
        """Trap when the i32 on the stack is non-zero."""
        self.emit("if")
        self.trap(kind, pc)
        self.emit("end")

    def goto(self, fn: _Func, pc: int, fallthrough: int | None) -> None:
        """Continue at ``pc``: fall through, dispatch, or tail-call another function."""
        if pc in fn.index:
            if pc != fallthrough:
                self.emit(_i32(fn.index[pc]), "local.set $next", "br $dispatch")
            return
        self.emit(self.start_of(pc), *(f"local.get {r}" for r in STATE), f"return_call $f{pc}")

    def span_check(self, addr: str, length: str | int, write: bool, pc: int) -> None:
        """Trap OOB unless ``addr + length <= mem_size`` (no overflow), then, for a
        write, WRITE_PROTECT if the span touches a read-only range. ``addr`` and a
        non-constant ``length`` are locals; a constant length is known non-zero."""
        size = self.mem_size
        if isinstance(length, int):
            if length > size:
                self.emit("i32.const 1")
            else:
                self.emit(f"local.get {addr}", _i64(size - length), "i64.gt_u")
        else:
            self.emit(f"local.get {length}", _i64(size), "i64.gt_u",
                      f"local.get {addr}", _i64(size), f"local.get {length}", "i64.sub", "i64.gt_u",
                      "i32.or")
        self.trap_if(TrapKind.OOB, pc)
        if not write:
            return
        for lo, hi in self.readonly:
            # overlap: addr < hi and addr + length > lo (addr + length <= mem_size here)
            self.emit(f"local.get {addr}", _i64(hi), "i64.lt_u")
            if isinstance(length, int):
                self.emit(f"local.get {addr}", _i64(lo - length), "i64.gt_s" if lo < length else "i64.gt_u")
            else:
                self.emit(f"local.get {addr}", f"local.get {length}", "i64.add", _i64(lo), "i64.gt_u")
            self.emit("i32.and")
            self.trap_if(TrapKind.WRITE_PROTECT, pc)

    def address(self, ins: Instr) -> None:
        self.emit(f"local.get {REGS[ins.rs1]}")
        if ins.imm:
            self.emit(_i64(ins.imm), "i64.add")
        self.emit("local.set $t")

    # -- instructions --------------------------------------------------------------
    def instr(self, fn: _Func, ins: Instr, fallthrough: int | None) -> None:
        op, fam = ins.op, ins.op.family
        d, a, b = (REGS[r] if r < len(REGS) else "" for r in (ins.rd, ins.rs1, ins.rs2))  # JR: RS1 = cond
        w = "i64" if op.width == 64 else "i32"
        wrap = () if w == "i64" else ("i32.wrap_i64",)
        widen = () if w == "i64" else ("i64.extend_i32_u",)
        if fam is Family.ALU:
            self.emit(f"local.get {a}", f"local.get {b}", f"i64.{_ALU[op.operation]}")
            if op.width == 32:
                self.emit(_i64(MASK32), "i64.and")
            self.emit(f"local.set {d}")
        elif fam is Family.DIV:
            self.emit(f"local.get {b}", *wrap, f"{w}.eqz")
            self.trap_if(TrapKind.DIV0, pc=ins.pc)
            signed = op.operation in ("divs", "rems")
            kind = op.operation[:3] + ("_s" if signed else "_u")
            if op.operation == "divs":  # INT_MIN / -1 wraps (wasm would trap): negate instead
                self.emit(f"local.get {b}", *wrap, f"{w}.const -1", f"{w}.eq", f"if (result {w})",
                          f"{w}.const 0", f"local.get {a}", *wrap, f"{w}.sub", "else",
                          f"local.get {a}", *wrap, f"local.get {b}", *wrap, f"{w}.div_s", "end")
            else:  # rem_s of INT_MIN by -1 is 0 in wasm, as in ZASM
                self.emit(f"local.get {a}", *wrap, f"local.get {b}", *wrap, f"{w}.{kind}")
            self.emit(*widen, f"local.set {d}")
        elif fam is Family.SHIFT:
            self.emit(f"local.get {a}", *wrap, f"{w}.const {ins.imm}", f"{w}.{_SHIFT[op.operation]}",
                      *widen, f"local.set {d}")
        elif fam is Family.BITCOUNT:
            name = "popcnt" if op.operation == "popc" else op.operation
            self.emit(f"local.get {d}", *wrap, f"{w}.{name}", *widen, f"local.set {d}")
        elif fam is Family.CMPSET:
            self.emit(f"local.get {a}", *wrap, f"local.get {b}", *wrap, f"{w}.{_CMPSET[op.operation]}",
                      "i64.extend_i32_u", f"local.set {d}")
        elif fam is Family.INCDEC:
            self.emit(f"local.get {d}", "i64.const 1", "i64.add" if op.operation == "inc" else "i64.sub",
                      _i64(MASK32), "i64.and", f"local.set {d}")
        elif fam is Family.MOV:
            self.emit(f"local.get {a}", f"local.set {d}")
        elif fam is Family.LDI:
            self.emit(_i64(ins.imm), f"local.set {d}")
        elif fam is Family.NOP:
            pass
        elif fam is Family.CP:
            rhs = (f"local.get {b}", "i32.wrap_i64") if op.operation == "cp" else (_i32(ins.imm),)
            self.emit(f"local.get {a}", "i32.wrap_i64", "local.set $cl", *rhs, "local.set $cr")
        elif fam is Family.LOAD:
            self.address(ins)
            self.span_check("$t", op.width, False, ins.pc)
            self.emit("local.get $t", "i32.wrap_i64", *_LOAD[(op.width, op.signed, op.ext64)],
                      f"local.set {d}")
        elif fam is Family.STORE:
            self.address(ins)
            self.span_check("$t", op.width, True, ins.pc)
            self.emit("local.get $t", "i32.wrap_i64", f"local.get {b}", _STORE[op.width])
        elif fam is Family.BULK:
            self.bulk(ins)
        elif fam is Family.PRIM:
            self.emit(_i32(ins.pc), *(f"local.get {r}" for r in REGS), f"call $prim_{op.operation}",
                      "local.set $hl")
        elif fam is Family.JR:
            if ins.rs1 == 0:
                self.goto(fn, ins.target, fallthrough)
                return
            self.emit("local.get $cl", "local.get $cr", _COND[ins.rs1], "if")
            self.goto(fn, ins.target, None)
            self.emit("end")
            self.goto(fn, ins.next_pc, fallthrough)
        elif fam is Family.CALL:
            self.call(fn, ins, fallthrough)
        elif fam is Family.RET:
            self.emit(*(f"local.get {r}" for r in STATE), "return")
        else:  # pragma: no cover - every family is handled above
            raise AssertionError(op)

    def bulk(self, ins: Instr) -> None:
        self.emit("local.get $bc", "i64.eqz", "i32.eqz", "if")
        if ins.op.operation == "ldir":
            self.span_check("$hl", "$bc", False, ins.pc)
            self.span_check("$de", "$bc", True, ins.pc)
            self.emit("local.get $de", "i32.wrap_i64", "local.get $hl", "i32.wrap_i64",
                      "local.get $bc", "i32.wrap_i64", "memory.copy")
        else:
            self.span_check("$hl", "$bc", True, ins.pc)
            self.emit("local.get $hl", "i32.wrap_i64", "local.get $a", "i32.wrap_i64",
                      "local.get $bc", "i32.wrap_i64", "memory.fill")
        self.emit("end")

    def call(self, fn: _Func, ins: Instr, fallthrough: int | None) -> None:
        self.emit("global.get $depth", _i32(self.max_depth), "i32.ge_u")
        self.trap_if(TrapKind.CALL_DEPTH, ins.pc)
        self.emit("global.get $depth", "i32.const 1", "i32.add", "global.set $depth",
                  self.start_of(ins.target), *(f"local.get {r}" for r in STATE), f"call $f{ins.target}",
                  *(f"local.set {r}" for r in reversed(STATE)),
                  "global.get $depth", "i32.const 1", "i32.sub", "global.set $depth")
        self.goto(fn, ins.next_pc, fallthrough)

    # -- functions and module ------------------------------------------------------
    def function(self, fn: _Func) -> None:
        params = " ".join(f"(param {r} {'i32' if r in ('$cl', '$cr') else 'i64'})" for r in STATE)
        self.emit(f"(func $f{fn.root} (param $start i32) {params} (result {STATE_TYPES})",
                  "(local $next i32) (local $t i64)",
                  "local.get $start", "local.set $next", "loop $dispatch")
        self.emit(*(f"block $b{k}" for k in reversed(range(len(fn.blocks)))))
        self.emit("local.get $next", "br_table " + " ".join(f"$b{k}" for k in range(len(fn.blocks))) + " $b0")
        for k, leader in enumerate(fn.blocks):
            self.emit(f"end ;; block {k} at pc {leader:#x}")
            nxt = fn.blocks[k + 1] if k + 1 < len(fn.blocks) else None
            block = self.prog.blocks[leader]
            for ins in block.instrs[:-1]:
                self.instr(fn, ins, None)
            self.instr(fn, block.instrs[-1], nxt)
            if not block.instrs[-1].op.ends_block:
                self.goto(fn, block.end, nxt)
        self.emit("end", "unreachable", ")")

    def module(self) -> WasmTwin:
        pages = max(1, -(-self.mem_size // PAGE))
        self.emit("(module",
                  '(import "zasm" "trap" (func $trap (param i32 i32 i64 i64 i64 i64 i64)))')
        for bit, name in enumerate(("in", "out", "log", "alloc", "free", "ctl")):
            if self.prog.prims_used >> bit & 1:
                self.emit(f'(import "zasm" "{name}" (func $prim_{name} {PRIM_SIG}))')
        self.emit(f'(memory (export "memory") {pages} {pages})',
                  '(global $depth (export "depth") (mut i32) (i32.const 0))')
        for seg in self.prog.image.segments:
            if seg.init:
                text = "".join(f"\\{b:02x}" for b in seg.init)
                self.emit(f'(data (i32.const {seg.base}) "{text}")')
        for root in sorted(self.funcs):
            self.function(self.funcs[root])
        exports: dict[str | None, str] = {}
        for name, (root, start) in self.starts.items():
            export = "entry" if name is None else f"export:{name}"
            exports[name] = export
            args = " ".join(f"(param {r} i64)" for r in REGS)
            self.emit(f'(func (export "{export}") {args} (result {STATE_TYPES})',
                      "i32.const 0", "global.set $depth", _i32(start),
                      *(f"local.get {r}" for r in REGS), "i32.const 0", "i32.const 0",
                      f"call $f{root})")
        self.emit(")")
        return WasmTwin("\n".join(self.out) + "\n", exports, self.mem_size, self.heap_start,
                        self.readonly, len(self.funcs))


def translate(module: zjit.Module) -> WasmTwin:
    """The WebAssembly twin of ``module`` (see the module docstring)."""
    return _Translator(module).module()
