"""Drive the family emitters: IR module -> LLVM IR text for one target.

The text is produced with f-strings (``llvmlite.ir`` is an order of magnitude
slower to build and print). The module contains

* one internal function per guest function (``f_<pc>``) with the guest calling
  convention (:mod:`.abi`);
* per run entry (module entry and exports) an internal C-ABI ``body_<pc>(ctx)``
  that loads S from the context (registers, fuel, ``max_depth`` as room, CMP 0),
  calls the guest function and stores registers and fuel back, and the exported
  ``int32_t <prefix>entry_<pc>(zjit_ctx *ctx)`` = ``rt_enter(ctx, body_<pc>)``:
  0 when the run ended, 1 when it trapped (the trap helper has written the trap
  record, registers and fuel);
* the trap helper (:mod:`.emit_traps`), the C-call adapters (x86-64, :mod:`.abi`),
  the runtime routines (:mod:`.runtime_asm`) and, when needed, the read-only scan.

Nothing refers to a global variable or an external symbol; on x86-64 the object
has no relocations, on aarch64 only the ADRP/ADD pairs that pass a body's
address to ``rt_enter``.
"""

from __future__ import annotations

from dataclasses import dataclass

from zjit.isa import NUM_REGS, OPS, Family

from ..context import OFFSETS
from ..middle.guest import LIFTER_ONLY
from ..middle.ir import CMPL, CMPR, ENTRY, IRFunction, IRModule, func_name, state_type
from ..targets import data_layout
from . import call_sites, emit_alu, emit_memory, emit_prims
from .abi import FUEL, REG0, adapters_text, guest_abi
from .emit_alu import Emitter
from .emit_control import CONTROL_OPS, TERMINATORS, block_label, emit_block_entry
from .emit_loops import LOOP_TERMINATORS
from .emit_traps import trap_helper_text, trap_intrinsics, trap_stubs
from .function import FAST_UNROLL, INVARIANT, LIKELY, LSTATE, NO_UNROLL, PARAMS, UNLIKELY, FnEmitter
from .options import CodegenOptions
from .runtime_asm import KEEP, RT_ENTER, runtime_text

LOOPS_MARK = "!zjit.loops = !{!0}"
"""Named metadata that asks the compile worker for the loop pipeline (the same
text as :data:`zjit.backends.objfile.compile_worker.LOOPS_MARK`)."""

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
    options: CodegenOptions


def entry_symbol(pc: int, opts: CodegenOptions) -> str:
    """Exported symbol that runs the guest from ``pc``."""
    return f"{opts.symbol_prefix}entry_{pc:x}"


def lower_function(fn: IRFunction, opts: CodegenOptions, has_readonly: bool,
                   md_counter: list[int] | None = None,
                   functions: dict[int, IRFunction] | None = None,
                   ftab_ids: dict[int, int] | None = None, dbg: str | None = None) -> FnEmitter:
    """Emit one guest function; the result holds its chunks and requirements.
    ``md_counter`` numbers loop metadata nodes across a module; ``functions`` are
    the module's functions (callees); ``ftab_ids`` the function table slots of
    the functions outside it (see :class:`FnEmitter`); ``dbg`` its subprogram
    node (:mod:`.call_sites`)."""
    fe = FnEmitter(fn, opts, has_readonly, functions, ftab_ids)
    fe.dbg = dbg
    if md_counter is not None:
        fe.md_counter = md_counter
    order = list(fn.blocks.values())
    fe.emit(f"br label %{block_label(fn.start)}")
    phi_names: dict[int, dict[str, str]] = {}
    for b in order:
        fe.start(block_label(b.pc))
        fe.block = b
        if b.preds == [ENTRY]:
            fe.st = _entry_state(fe)
        elif len(b.preds) == 1:
            fe.st = dict(fe.exit_st[b.preds[0]])
        else:
            fe.st = _entry_state(fe)
            names = {v: f"%{v}.b{b.pc:x}" for v in LSTATE if v in fe.varying}
            fe.st.update(names)
            phi_names[b.pc] = names
        emit_block_entry(fe, b)
        for ins in b.insts:
            EMITTERS[(ins.op.family, ins.op.operation)](fe, ins)
        (TERMINATORS.get(type(b.term)) or LOOP_TERMINATORS[type(b.term)])(fe, b.term)
        fe.exit_label[b.pc] = fe.current
        fe.exit_st[b.pc] = dict(fe.st)
    fe.chunks.append(fe.cur)
    by_label = {c.label: c for c in fe.chunks}
    entry_st = _entry_state(fe)

    def src(p: int) -> str:
        return "entry" if p == ENTRY else fe.exit_label[p]

    for b in order:
        chunk = by_label[block_label(b.pc)]
        for phi in b.phis:
            inc = ", ".join(f"[ {fe.val(v)}, %{src(p)} ]" for p, v in phi.incoming)
            chunk.phis.append(f"  {fe.dest(phi.dest)} = phi {state_type(phi.var)} {inc}")
        for var, name in phi_names.get(b.pc, {}).items():
            inc = ", ".join(
                f"[ {(entry_st if p == ENTRY else fe.exit_st[p])[var]}, %{src(p)} ]" for p in b.preds
            )
            chunk.phis.append(f"  {name} = phi {'ptr' if var in ('ctx', 'mem') else 'i64'} {inc}")
    return fe


def _entry_state(fe: FnEmitter) -> dict[str, str]:
    st = dict(PARAMS)
    if not fe.opts.fuel:
        st["fuel"] = "undef"
    return st


def function_text(fe: FnEmitter) -> str:
    """The complete ``define`` of an emitted guest function."""
    fn = fe.fn
    abi = fe.abi
    regs = ", ".join(f"i64 %v{fn.params[i].id}" for i in range(NUM_REGS))
    # Cold functions are compiled optnone, except on aarch64: LLVM 22's AArch64
    # FastISel (which optnone functions get inside an optimising compile) lowers
    # calls to preserve_none functions with the C convention.
    cold = fn.cold and abi.cc != "preserve_nonecc"
    linkage = "dso_local" if fe.ftab_ids is not None else "internal"  # tier-up objects export them
    lines = [f"define {linkage} {abi.cc} {abi.ret} @{func_name(fn.entry)}"
             f"(ptr noalias %ctx, ptr noalias %mem, i64 %room, {regs}, i64 %cmp, i64 %fuel.in) "
             f"{'#5' if cold else '#0' if fe.dbg is None else '#7'}{'' if fe.dbg is None else ' !dbg ' + fe.dbg} {{"]
    entry = fe.chunks[0]
    assert entry.label == "entry"
    lines.append("entry:")
    lines += fe.entry_lines()
    lines.append(f"  %v{fn.params[CMPL].id} = trunc i64 %cmp to i32")
    lines.append("  %cmp.hi = lshr i64 %cmp, 32")
    lines.append(f"  %v{fn.params[CMPR].id} = trunc i64 %cmp.hi to i32")
    lines += entry.lines
    for c in fe.chunks[1:]:
        lines.append(f"{c.label}:")
        lines += c.phis
        lines += c.lines
    lines += trap_stubs(fe)
    lines.append("}")
    return "\n".join(lines)


def body_name(pc: int) -> str:
    """The internal C-ABI function ``rt_enter`` runs for the entry at ``pc``."""
    return f"body_{pc:x}"


def _entry_text(pc: int, opts: CodegenOptions) -> str:
    """``body_<pc>`` and the exported entry point for runs starting at ``pc``."""
    abi = guest_abi(opts.triple)

    def gep(name: str, field: str, extra: int = 0) -> str:
        return f"  %{name} = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[field] + extra}"

    lines = [f"define internal void @{body_name(pc)}(ptr noalias %ctx) #1 {{", "entry:",
             gep("pk", "trap_kind"), "  store i64 0, ptr %pk, align 8",
             gep("pm", "mem_base"), "  %mem = load ptr, ptr %pm, align 8",
             gep("pmd", "max_depth"), "  %room = load i64, ptr %pmd, align 8"]
    for i in range(NUM_REGS):
        lines += [gep(f"pr{i}", "regs", 8 * i), f"  %r{i} = load i64, ptr %pr{i}, align 8"]
    if opts.fuel:
        lines += [gep("pf", "fuel"), "  %f = load i64, ptr %pf, align 8"]
    regs = ", ".join(f"i64 %r{i}" for i in range(NUM_REGS))
    fuel = "%f" if opts.fuel else "undef"
    lines.append(f"  %res = call {abi.cc} {abi.ret} @{func_name(pc)}"
                 f"(ptr %ctx, ptr %mem, i64 %room, {regs}, i64 0, i64 {fuel})")
    for i in range(NUM_REGS):
        lines.append(f"  %o{i} = extractvalue {abi.ret} %res, {abi.ret_index(REG0 + i)}")
        lines.append(f"  store i64 %o{i}, ptr %pr{i}, align 8")
    if opts.fuel:
        lines.append(f"  %of = extractvalue {abi.ret} %res, {abi.ret_index(FUEL)}")
        lines.append("  store i64 %of, ptr %pf, align 8")
    lines += ["  ret void", "}", "",
              f"define i32 @{entry_symbol(pc, opts)}(ptr %ctx) #1 {{", "entry:",
              f"  %s = tail call i32 @{RT_ENTER}(ptr %ctx, ptr @{body_name(pc)})",
              "  ret i32 %s", "}"]
    return "\n".join(lines)


def lower(module: IRModule, opts: CodegenOptions, ftab_ids: dict[int, int] | None = None) -> LoweredModule:
    """LLVM IR text for ``module`` under ``opts``. With ``ftab_ids`` (entry pc ->
    function table slot) the module is a tier-up object: its functions are
    exported (``f_<pc>``, the guest calling convention), calls and tail calls to
    functions outside it go through ``ctx.ftab``, and it has no entry points."""
    abi = guest_abi(opts.triple)
    intrinsics: set[str] = set(trap_intrinsics(opts.triple))
    helpers: set[str] = set()
    adapters: set[str] = set()
    bodies: list[str] = []
    loop_nodes: list[int] = []
    fast_nodes: set[int] = set()
    has_fast = False
    md_counter = [100]
    debug: list[str] = []
    for k, fn in enumerate(module.functions.values()):
        dbg = f"!{call_sites.FIRST_SUBPROGRAM + k}" if opts.call_sites else None
        fe = lower_function(fn, opts, module.has_readonly, md_counter, module.functions, ftab_ids, dbg)
        bodies.append(function_text(fe))
        if dbg is not None:
            debug.append(call_sites.subprogram(dbg, func_name(fn.entry)))
        loop_nodes += fe.loop_ids.values()
        fast_nodes |= fe.fast_loop_ids
        has_fast = has_fast or bool(fe.fast_header)
        intrinsics |= fe.intrinsics
        helpers |= fe.helpers
        adapters |= fe.adapters
    entries = {} if ftab_ids is not None else {pc: entry_symbol(pc, opts) for pc in module.entry_points}
    bodies += [_entry_text(pc, opts) for pc in entries]
    bodies.append(trap_helper_text(abi, opts.triple))
    bodies += adapters_text(abi, adapters)
    if emit_memory.WP_HELPER in helpers:
        bodies.append(emit_memory.wp_helper_text(abi.cc))
    bodies.append(runtime_text(opts.triple))
    head = [
        f"; zjit module {module.name!r} digest {module.digest[:16]} fuel={opts.fuel}",
        f'target datalayout = "{data_layout(opts.triple)}"',
        f'target triple = "{opts.triple}"',
        "",
        *abi.type_defs(),
        "",
        KEEP,
        "",
        *sorted(intrinsics),
        "",
    ]
    tail = [
        "",
        'attributes #0 = { nounwind "no-builtins" }',
        'attributes #1 = { nounwind "no-builtins" }',
        'attributes #2 = { nounwind noinline "no-builtins" }',
        'attributes #3 = { nounwind noinline ' + ('' if opts.call_sites and opts.triple.startswith("aarch64") else 'noreturn ') + 'nomerge "no-builtins" }',
        'attributes #4 = { nounwind noinline "no-builtins" }',
        'attributes #5 = { nounwind noinline optnone "no-builtins" }',
        "attributes #6 = { noreturn nounwind }",
        # guest functions with call sites (.call_sites): never inlined, so every
        # guest CALL stays one native call in the function of its pc
        'attributes #7 = { nounwind noinline "no-builtins" }',
        "",
        f"{INVARIANT} = !{{}}",
        f'{LIKELY} = !{{!"branch_weights", i32 2000, i32 1}}',
        f'{UNLIKELY} = !{{!"branch_weights", i32 1, i32 2000}}',
        f'{NO_UNROLL} = !{{!"llvm.loop.unroll.disable"}}',
        f'{FAST_UNROLL} = !{{!"llvm.loop.unroll.count", i32 {max(opts.fast_unroll, 1)}}}',
        *([LOOPS_MARK] if has_fast and opts.loop_pipeline else []),
        *(f"!{n} = distinct !{{!{n}, {FAST_UNROLL if n in fast_nodes else NO_UNROLL}}}"
          for n in sorted(loop_nodes)),
        *(call_sites.module_lines(module.name) + debug if opts.call_sites else []),
        "",
    ]
    text = "\n".join(head) + "\n" + "\n\n".join(bodies) + "\n" + "\n".join(tail)
    return LoweredModule(text, entries, opts)
