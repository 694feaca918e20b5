"""Drive the family emitters: IR module -> LLVM IR text for one target.

The text is produced with f-strings (``llvmlite.ir`` is an order of magnitude
slower to build and print). The module contains

* one internal ``fastcc`` function per guest function (``f_<pc>``),
* one external entry point per run entry (module entry and exports),
  ``int32_t <prefix>entry_<pc>(zjit_ctx *ctx)``, which reads the initial registers
  from the context, runs the guest function and writes the registers it changed
  back (on a trap the trap exit has written them; fuel is kept in ``ctx.fuel``),
* ``int64_t <prefix>stack_pointer(void)`` (the native engine uses it to size the
  stack), and the internal read-only scan when the module needs it.

Nothing refers to a global or an external symbol, so the object has no
relocations.
"""

from __future__ import annotations

from dataclasses import dataclass

from zjit.isa import NUM_REGS, OPS, Family

from ..context import OFFSETS, STATUS_OK, STATUS_TRAPPED, reg_offset
from ..middle.guest import LIFTER_ONLY
from ..middle.ir import ENTRY, NSTATE, IRFunction, IRModule, func_name, state_type
from ..targets import data_layout
from . import emit_alu, emit_memory, emit_prims
from .emit_alu import Emitter
from .emit_control import CONTROL_OPS, TERMINATORS, block_label, emit_block_entry
from .emit_traps import trap_helper_text, trap_stubs
from .function import INVARIANT, LIKELY, NO_UNROLL, UNLIKELY, FnEmitter, ret_layout
from .options import CodegenOptions

EMITTERS: dict[tuple[Family, str], Emitter] = {
    **emit_alu.EMITTERS, **emit_memory.EMITTERS, **emit_prims.EMITTERS,
}
"""(Family, operation) -> emitter for every non-terminator IR instruction."""


def missing_emitters() -> list[str]:
    """ISA mnemonics whose (family, operation) nothing lowers (must be empty)."""
    covered = set(EMITTERS) | set(LIFTER_ONLY) | set(CONTROL_OPS)
    return [o.mnemonic for o in OPS if (o.family, o.operation) not in covered]


def check_coverage() -> None:
    """Raise AssertionError when some ISA operation has no emitter."""
    missing = missing_emitters()
    if missing:
        raise AssertionError(f"no LLVM emitter for: {', '.join(missing)}")


check_coverage()


@dataclass(frozen=True)
class LoweredModule:
    """LLVM IR text plus the symbols the engine needs."""

    text: str
    entries: dict[int, str]
    """Entry pc -> exported symbol."""
    stack_symbol: str
    options: CodegenOptions


def entry_symbol(pc: int, opts: CodegenOptions) -> str:
    """Exported symbol that runs the guest from ``pc``."""
    return f"{opts.symbol_prefix}entry_{pc:x}"


def lower_function(fn: IRFunction, opts: CodegenOptions, has_readonly: bool,
                   md_counter: list[int] | None = None,
                   modifies: dict[int, tuple[int, ...]] | None = None) -> FnEmitter:
    """Emit one guest function; the result holds its chunks and requirements.
    ``md_counter`` numbers loop metadata nodes across a module; ``modifies`` gives
    every function's modified state variables (for call sites)."""
    fe = FnEmitter(fn, opts, has_readonly, modifies)
    if md_counter is not None:
        fe.md_counter = md_counter
    order = list(fn.blocks.values())
    fe.emit(f"br label %{block_label(fn.entry)}")
    fuel_phi: dict[int, str] = {}
    for b in order:
        fe.start(block_label(b.pc))
        fe.block = b
        b_chunk = fe.cur
        if opts.fuel:
            if len(b.preds) == 1 and b.preds[0] != ENTRY:
                fe.fuel = fe.exit_fuel[b.preds[0]]
            else:
                fe.fuel = f"%fuel.b{b.pc:x}"
                fuel_phi[b.pc] = fe.fuel
        b_chunk.phis = []  # filled below, once every exit label is known
        emit_block_entry(fe, b)
        for ins in b.insts:
            EMITTERS[(ins.op.family, ins.op.operation)](fe, ins)
        TERMINATORS[type(b.term)](fe, b.term)
        fe.exit_label[b.pc] = fe.current
        fe.exit_fuel[b.pc] = fe.fuel
    fe.chunks.append(fe.cur)
    by_label = {c.label: c for c in fe.chunks}

    def src(p: int) -> str:
        return "entry" if p == ENTRY else fe.exit_label[p]

    for b in order:
        chunk = by_label[block_label(b.pc)]
        for phi in b.phis:
            inc = ", ".join(f"[ {fe.val(v)}, %{src(p)} ]" for p, v in phi.incoming)
            chunk.phis.append(f"  {fe.dest(phi.dest)} = phi {state_type(phi.var)} {inc}")
        if b.pc in fuel_phi:
            inc = ", ".join(
                f"[ {'%fuel.in' if p == ENTRY else fe.exit_fuel[p]}, %{src(p)} ]" for p in b.preds
            )
            chunk.phis.append(f"  {fuel_phi[b.pc]} = phi i64 {inc}")
    return fe


def function_text(fe: FnEmitter) -> str:
    """The complete ``define`` of an emitted guest function."""
    fn = fe.fn
    params = ", ".join(
        f"{'i32' if state_type(i) == 'i32' else 'i64'} %v{fn.params[i].id}" for i in range(NSTATE)
    )
    lines = [f"define internal fastcc {fe.ret} @{func_name(fn.entry)}"
             f"(ptr noalias %ctx, i64 %room, {params}, i64 %fuel.in) {'#5' if fn.cold else '#0'} {{"]
    entry = fe.chunks[0]
    assert entry.label == "entry"
    lines.append("entry:")
    lines += fe.entry_lines()
    lines += entry.lines
    for c in fe.chunks[1:]:
        lines.append(f"{c.label}:")
        lines += c.phis
        lines += c.lines
    lines += trap_stubs(fe)
    lines.append("}")
    return "\n".join(lines)


def _wrapper_text(pc: int, opts: CodegenOptions, modifies: tuple[int, ...]) -> str:
    """The exported entry point for runs starting at ``pc``: registers the entry
    function does not modify are left as they are in the context."""
    sym = entry_symbol(pc, opts)
    lines = [f"define i32 @{sym}(ptr noalias %ctx) #1 {{", "entry:",
             f"  %pk = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS['trap_kind']}",
             "  store i64 0, ptr %pk, align 8"]
    for i in range(NUM_REGS):
        lines.append(f"  %pr{i} = getelementptr inbounds i8, ptr %ctx, i64 {reg_offset(i)}")
        lines.append(f"  %r{i} = load i64, ptr %pr{i}, align 8")
    regs = ", ".join(f"i64 %r{i}" for i in range(NUM_REGS))
    layout = ret_layout(modifies, opts.triple)
    rt = layout.type
    if opts.fuel:
        lines.append(f"  %pf = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS['fuel']}")
        lines.append("  %f = load i64, ptr %pf, align 8")
    fuel = "%f" if opts.fuel else "0"
    lines.append(f"  %pmd = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS['max_depth']}")
    lines.append("  %room = load i64, ptr %pmd, align 8")
    lines.append(f"  %res = call fastcc {rt} @{func_name(pc)}(ptr %ctx, i64 %room, {regs}, i32 0, i32 0, i64 {fuel})")
    lines.append("  %k = load i64, ptr %pk, align 8")
    lines.append("  %ok = icmp eq i64 %k, 0")
    lines.append(f"  %s = select i1 %ok, i32 {STATUS_OK}, i32 {STATUS_TRAPPED}")
    lines.append(f"  br i1 %ok, label %done, label %out, !prof {LIKELY}")
    lines.append("done:")
    for k, v in enumerate(layout.fields):  # spilled registers are in ctx.regs already
        if v < NUM_REGS:
            lines.append(f"  %o{v} = extractvalue {rt} %res, {k}")
            lines.append(f"  store i64 %o{v}, ptr %pr{v}, align 8")
    lines += ["  br label %out", "out:", "  ret i32 %s", "}"]
    return "\n".join(lines)


def lower(module: IRModule, opts: CodegenOptions) -> LoweredModule:
    """LLVM IR text for ``module`` under ``opts``."""
    intrinsics: set[str] = {"declare ptr @llvm.stacksave.p0()"}
    helpers: set[str] = set()
    bodies: list[str] = []
    loop_nodes: list[int] = []
    md_counter = [100]
    modifies = {pc: fn.modifies for pc, fn in module.functions.items()}
    types = sorted({ret_layout(mods, opts.triple).type_def() for mods in modifies.values()})
    for fn in module.functions.values():
        fe = lower_function(fn, opts, module.has_readonly, md_counter, modifies)
        bodies.append(function_text(fe))
        loop_nodes += fe.loop_ids.values()
        intrinsics |= fe.intrinsics
        helpers |= fe.helpers
    entries = {pc: entry_symbol(pc, opts) for pc in module.entry_points}
    bodies += [_wrapper_text(pc, opts, modifies[pc]) for pc in entries]
    sp_sym = f"{opts.symbol_prefix}stack_pointer"
    bodies.append(
        f"define i64 @{sp_sym}() #2 {{\nentry:\n  %p = call ptr @llvm.stacksave.p0()\n"
        f"  %i = ptrtoint ptr %p to i64\n  ret i64 %i\n}}"
    )
    bodies.append(trap_helper_text(opts.fuel))
    if emit_memory.WP_HELPER in helpers:
        bodies.append(emit_memory.wp_helper_text())
    head = [
        f"; zjit module {module.name!r} digest {module.digest[:16]} fuel={opts.fuel}",
        f'target datalayout = "{data_layout(opts.triple)}"',
        f'target triple = "{opts.triple}"',
        "",
        *types,
        "",
        *sorted(intrinsics),
        "",
    ]
    tail = [
        "",
        'attributes #0 = { nounwind "no-builtins" }',
        'attributes #1 = { nounwind "no-builtins" }',
        'attributes #2 = { nounwind noinline "no-builtins" }',
        'attributes #3 = { nounwind noinline nomerge "no-builtins" }',
        'attributes #5 = { nounwind noinline optnone "no-builtins" }',
        "",
        f"{INVARIANT} = !{{}}",
        f'{LIKELY} = !{{!"branch_weights", i32 2000, i32 1}}',
        f'{UNLIKELY} = !{{!"branch_weights", i32 1, i32 2000}}',
        f'{NO_UNROLL} = !{{!"llvm.loop.unroll.disable"}}',
        *(f"!{n} = distinct !{{!{n}, {NO_UNROLL}}}" for n in sorted(loop_nodes)),
        "",
    ]
    text = "\n".join(head) + "\n" + "\n\n".join(bodies) + "\n" + "\n".join(tail)
    return LoweredModule(text, entries, sp_sym, opts)
