"""Guards and trap exits.

Every check branches *before* the operation it protects (LLVM treats a division
by zero, for instance, as undefined behaviour and would delete a check placed
after it). A failing check jumps to its own small cold block, the trap stub,
which calls the module's ``@zjit.trap`` helper with the trap kind, pc, address
and length and the exact guest registers (and fuel) at the trapping instruction,
then jumps to the one block that returns. The helper stores everything into the
context, including the non-zero ``trap_kind`` that tells every caller (which
tests it after each call) to return at once: nothing else runs after a trap.

(One stub per site measured cheaper to compile than a single exit block whose
phis merge every site's registers, which makes the register coalescer slow in
large functions; and stubs that each return would make the tail-merging pass
quadratic, hence the shared return block.)
"""

from __future__ import annotations

from zjit.isa import NUM_REGS

from ..context import OFFSETS
from ..middle.ir import Operand
from .function import LIKELY, FnEmitter, TrapSite

TRAPPED_LABEL = "trapped"
"""The block returning after a trap (after a stub, or when a callee trapped)."""
TRAP_HELPER = "zjit.trap"
"""Name of the internal function that writes a trap record."""


def guard(
    fe: FnEmitter,
    ok: str,
    kind: int,
    pc: int,
    regs: list[Operand],
    addr: str = "0",
    length: str = "0",
) -> None:
    """Continue when ``ok`` (an i1) holds, else trap ``kind`` at ``pc``.

    ``regs`` are the five guest registers to report (those before the trapping
    instruction); ``addr``/``length`` the failing access or span. The branch is
    weighted so the trap edge is cold.
    """
    cont = fe.label("ok")
    stub = f"trap{len(fe.traps)}"
    fe.traps.append(TrapSite(fe.current, kind, pc, [fe.val(r) for r in regs], addr, length, fe.fuel))
    fe.emit(f"br i1 {ok}, label %{cont}, label %{stub}, !prof {LIKELY}")
    fe.start(cont)


def trap_stubs(fe: FnEmitter) -> list[str]:
    """One cold block per trap site (empty when the function has none)."""
    lines: list[str] = []
    fuel = fe.opts.fuel
    for n, s in enumerate(fe.traps):
        args = [str(s.kind), str(s.pc), s.addr, s.length, *s.regs] + ([s.fuel] if fuel else [])
        arg_text = ", ".join(f"i64 {a}" for a in args)
        lines.append(f"trap{n}:")
        lines.append(f'  call void @"{TRAP_HELPER}"(ptr %ctx, {arg_text})')
        lines.append(f"  br label %{TRAPPED_LABEL}")
    if fe.traps or fe.needs_propagate:
        lines += [f"{TRAPPED_LABEL}:",
                  f"  ret {fe.ret} poison"]
    return lines


def trap_helper_text(fuel: bool) -> str:
    """``void @zjit.trap(ctx, kind, pc, addr, len, r0..r4[, fuel])``: store a trap
    record into the context."""
    params = ["%kind", "%pc", "%addr", "%len"] + [f"%r{i}" for i in range(NUM_REGS)]
    fields = [("trap_kind", 0), ("trap_pc", 0), ("trap_addr", 0), ("trap_len", 0)]
    fields += [("regs", 8 * i) for i in range(NUM_REGS)]
    if fuel:
        params.append("%fuel")
        fields.append(("fuel", 0))
    lines = [f'define internal void @"{TRAP_HELPER}"(ptr noalias %ctx, '
             + ", ".join(f"i64 {p}" for p in params) + ") #3 {", "entry:"]
    for k, (p, (name, extra)) in enumerate(zip(params, fields, strict=True)):
        lines.append(f"  %p{k} = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[name] + extra}")
        lines.append(f"  store i64 {p}, ptr %p{k}, align 8")
    lines += ["  ret void", "}"]
    return "\n".join(lines)
