"""ZASM -> WebAssembly text: the Wasmtime twin of a verified module.

:func:`translate` turns a loaded :class:`zjit.Module` into a WAT module that
computes the same thing, translated the way a ZASM-to-WebAssembly compiler would
(compile-latency bench: Wasmtime compiles the twin of each generated program;
``tests/test_bench_wasm.py`` runs twins against zjit's interpreter). The mapping:

* **Functions.** Every guest function entry (the module entry, each export and
  each CALL target: the verified program's ``functions``) becomes a wasm
  function ``$f<pc>`` that owns the blocks reachable from its entry without
  entering another entry (a block reachable from two entries is copied). An
  edge into another entry (a jump or fall-through) is a ``return_call``: the
  call stack stays as it was, as for a ZASM ``JR``.
* **Registers and CMP** are the locals ``$hl $de $a $bc $ix`` (i64) and
  ``$cl $cr`` (i32); since ZASM registers are global, every wasm function takes
  all seven as parameters and returns them (multi-value).
* **Control flow** inside a function is structured: for a reducible graph,
  Ramsey's translation ("Beyond Relooper", ICFP 2022; :mod:`cfg_structure`):
  a node of the dominator tree is emitted inside one ``block`` per dominator
  tree child that is a merge node (two or more forward in-edges; the child of
  highest reverse postorder outermost) and its code follows the ``end`` of its
  block; a loop header's code is wrapped in a ``loop``. A back edge is
  ``br $L<header>``, an edge to a merge node ``br $B<node>`` (``br_if`` when
  conditional), an edge to any other node places that node's code right there.
  An irreducible graph falls back to a ``loop`` + ``br_table`` block dispatcher
  (:attr:`WasmTwin.dispatched` counts those functions).
* **Instructions** (:mod:`wasm_lower`): every check ZASM requires is explicit
  (bounds and write protection on every access, DIV0, the call depth against
  ``max_call_depth`` around a direct ``call``); primitives are imports
  ``zasm.in/out/log/alloc/free/ctl`` ``(pc: i32, hl, de, a, bc, ix: i64) -> hl``
  whose host checks spans and does the work (:mod:`wasm_twin_host`); guest traps
  call the import ``zasm.trap(kind, pc, hl, de, a, bc, ix)``, which does not
  return. Guest memory is linear memory (the guest size rounded up to 64 KiB
  pages, data segments from the module's segments).

Not modelled: fuel and TIMEOUT (the twin runs unmetered and uninterruptible).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cfg_structure import Shape, analyse
from wasm_lower import REGS, STATE, STATE_TYPES, Lowering, condition, get_state, i32
from zjit.backends.middle.guest import intra_successors

import zjit
from zjit.isa import Family
from zjit.memory import build_memory

PRIM_SIG = "(param i32 i64 i64 i64 i64 i64) (result i64)"
PAGE = 1 << 16
_Task = str | tuple[str, int]
"""Structured emission work item: a line, or ("tree" | "end_block", pc)."""


@dataclass(frozen=True, slots=True)
class WasmTwin:
    """The WAT text plus what a host needs to run it.

    ``exports`` maps the module entry (``None``) and each export name to the wasm
    export that starts there. ``mem_size`` is the guest memory size, ``heap_start``
    the first ALLOC address, ``readonly`` the write-protected ranges.
    ``functions`` counts the wasm functions made from guest code, ``dispatched``
    those whose control flow is irreducible (block dispatcher, not structured).
    """

    wat: str
    exports: dict[str | None, str]
    mem_size: int
    heap_start: int
    readonly: tuple[tuple[int, int], ...]
    functions: int
    dispatched: int


class _Translator:
    def __init__(self, module: zjit.Module) -> None:
        prog = module.program
        self.prog = prog
        memory = build_memory(module.image, module.policy)
        self.mem_size = memory.mem_size
        self.heap_start = memory.heap_start
        self.readonly = memory.readonly
        self.low = Lowering(memory.mem_size, memory.readonly, module.policy.max_call_depth)
        self.out = self.low.out
        self.entries = frozenset(prog.functions)
        self.dispatched = 0

    def inner(self, root: int, pc: int) -> tuple[int, ...]:
        """Successors of block ``pc`` inside the function of ``root``."""
        return tuple(s for s in intra_successors(self.prog.blocks[pc]) if s == root or s not in self.entries)

    # -- one block -----------------------------------------------------------------
    def body(self, leader: int) -> tuple[int, ...]:
        """Emit a block's code up to its control transfer (a RET returns); its exits."""
        block = self.prog.blocks[leader]
        *straight, last = block.instrs
        for ins in straight:
            self.low.instr(ins)
        fam = last.op.family
        if fam is Family.CALL:
            self.low.call(last, f"$f{last.target}")
        elif fam is Family.RET:
            self.out.extend([*get_state(), "return"])
        elif fam is not Family.JR:
            self.low.instr(last)
        return intra_successors(block)

    def tail_call(self, pc: int) -> list[str]:
        """Continue at another function's entry, the call stack unchanged."""
        return [*get_state(), f"return_call $f{pc}"]

    # -- structured control flow (reducible graphs) ----------------------------------
    def structured(self, shape: Shape) -> None:
        """Ramsey's translation, iterative: a stack of lines and subtrees to emit."""
        stack: list[_Task] = [("tree", shape.root)]
        out = self.out
        while stack:
            task = stack.pop()
            if isinstance(task, str):
                out.append(task)
                continue
            kind, x = task
            if kind == "end_block":
                if out[-1] == f"br $B{x}":  # a jump to the code right after the block
                    out.pop()
                out.append("end")
                continue
            merges = shape.merge_children.get(x, ())
            if x in shape.headers:
                out.append(f"loop $L{x}")
                stack.append("end")
            for y in reversed(merges):  # the highest reverse postorder outermost
                out.append(f"block $B{y}")
                stack.append(("tree", y))
                stack.append(("end_block", y))
            stack.extend(reversed(self.transfer(shape, x, self.body(x))))

    def edge(self, shape: Shape, src: int, dst: int) -> list[_Task]:
        """Code for the edge ``src -> dst``: a branch, a tail call, or ``dst`` itself."""
        if dst not in shape.rpo:
            return list(self.tail_call(dst))
        if shape.is_back_edge(src, dst):
            return [f"br $L{dst}"]
        if dst in shape.merges:
            return [f"br $B{dst}"]
        return [("tree", dst)]

    def transfer(self, shape: Shape, src: int, targets: tuple[int, ...]) -> list[_Task]:
        """Code leaving block ``src`` for its ``targets`` (none, one, or a
        conditional JR's taken and not-taken successors)."""
        if len(targets) < 2:
            return self.edge(shape, src, targets[0]) if targets else []
        cond = condition(self.prog.blocks[src].instrs[-1])
        taken, other = (self.edge(shape, src, t) for t in targets)
        if len(taken) == 1 and isinstance(taken[0], str) and taken[0].startswith("br "):
            return [*cond, "br_if" + taken[0][2:], *other]
        if len(other) == 1 and isinstance(other[0], str) and other[0].startswith("br "):
            return [*cond, "i32.eqz", "br_if" + other[0][2:], *taken]
        return [*cond, "if", *taken, "else", *other, "end"]

    # -- block dispatcher (irreducible graphs) ---------------------------------------
    def region(self, root: int) -> list[int]:
        """The blocks of the function of ``root``, in pc order."""
        seen = {root}
        todo = [root]
        while todo:
            for s in self.inner(root, todo.pop()):
                if s not in seen:
                    seen.add(s)
                    todo.append(s)
        return sorted(seen)

    def dispatcher(self, root: int) -> None:
        """``loop`` + ``br_table`` on ``$next`` (a fall-through to the next block in
        pc order is a plain fall-through)."""
        blocks = self.region(root)
        index = {pc: k for k, pc in enumerate(blocks)}

        def goto(pc: int, fallthrough: int | None) -> None:
            if pc not in index:
                self.out.extend(self.tail_call(pc))
            elif pc != fallthrough:
                self.out.extend([i32(index[pc]), "local.set $next", "br $dispatch"])

        self.out.extend([i32(index[root]), "local.set $next", "loop $dispatch",
                         *(f"block $b{k}" for k in reversed(range(len(blocks)))),
                         "local.get $next", "br_table " + " ".join(f"$b{k}" for k in range(len(blocks))) + " $b0"])
        for k, leader in enumerate(blocks):
            self.out.append("end")
            nxt = blocks[k + 1] if k + 1 < len(blocks) else None
            targets = self.body(leader)
            if len(targets) == 2:
                self.out.extend([*condition(self.prog.blocks[leader].instrs[-1]), "if"])
                goto(targets[0], None)
                self.out.append("end")
            if targets:
                goto(targets[-1], nxt)
        self.out.append("end")

    # -- functions and module ------------------------------------------------------
    def function(self, root: int) -> None:
        params = " ".join(f"(param {r} {'i32' if r in ('$cl', '$cr') else 'i64'})" for r in STATE)
        self.out.append(f"(func $f{root} {params} (result {STATE_TYPES}) (local $t i64)")
        shape = analyse(root, lambda pc: self.inner(root, pc))
        if shape is None:
            self.dispatched += 1
            self.out.append("(local $next i32)")
            self.dispatcher(root)
        else:
            self.structured(shape)
        self.out.extend(["unreachable", ")"])

    def preamble(self) -> Iterator[str]:
        pages = max(1, -(-self.mem_size // PAGE))
        yield '(import "zasm" "trap" (func $trap (param i32 i32 i64 i64 i64 i64 i64)))'
        for bit, name in enumerate(("in", "out", "log", "alloc", "free", "ctl")):
            if self.prog.prims_used >> bit & 1:
                yield f'(import "zasm" "{name}" (func $prim_{name} {PRIM_SIG}))'
        yield f'(memory (export "memory") {pages} {pages})'
        yield '(global $depth (export "depth") (mut i32) (i32.const 0))'
        for seg in self.prog.image.segments:
            if seg.init:
                text = "".join(f"\\{b:02x}" for b in seg.init)
                yield f'(data (i32.const {seg.base}) "{text}")'

    def module(self) -> WasmTwin:
        self.out.extend(["(module", *self.preamble()])
        for root in sorted(self.entries):
            self.function(root)
        exports: dict[str | None, str] = {}
        starts: list[tuple[str | None, int]] = [(None, self.prog.entry), *self.prog.exports.items()]
        for name, pc in starts:
            export = exports[name] = "entry" if name is None else f"export:{name}"
            args = " ".join(f"(param {r} i64)" for r in REGS)
            self.out.extend([f'(func (export "{export}") {args} (result {STATE_TYPES})',
                             "i32.const 0", "global.set $depth",
                             *(f"local.get {r}" for r in REGS), "i32.const 0", "i32.const 0",
                             f"call $f{pc})"])
        self.out.append(")")
        return WasmTwin("\n".join(self.out) + "\n", exports, self.mem_size, self.heap_start,
                        self.readonly, len(self.entries), self.dispatched)


def translate(module: zjit.Module) -> WasmTwin:
    """The WebAssembly twin of ``module`` (see the module docstring)."""
    return _Translator(module).module()
