"""Guards and the trap exit.

Every check branches *before* the operation it protects (LLVM treats a division
by zero, for instance, as undefined behaviour and would delete a check placed
after it). A failing check jumps to the function's single trap exit block; phis
there collect, per trap site, the trap kind, pc, address and length and the exact
guest registers (and fuel) at the trapping instruction. The exit stores them into
the context and returns status ``STATUS_TRAPPED``; callers propagate the status
unchanged, so nothing else runs after a trap.
"""

from __future__ import annotations

from zjit.isa import NUM_REGS

from ..context import OFFSETS, STATUS_TRAPPED
from ..ir import Operand
from .function import LIKELY, STATE_TYPE, FnEmitter, TrapSite

TRAP_LABEL = "trap"


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
    fe.traps.append(TrapSite(fe.current, kind, pc, [fe.val(r) for r in regs], addr, length, fe.fuel))
    fe.emit(f"br i1 {ok}, label %{cont}, label %{TRAP_LABEL}, !prof {LIKELY}")
    fe.start(cont)


def trap_block(fe: FnEmitter) -> list[str]:
    """The trap exit block (empty when the function has no trap site)."""
    sites = fe.traps
    if not sites:
        return []

    def phi(name: str, ty: str, pick: list[str]) -> str:
        inc = ", ".join(f"[ {v}, %{s.label} ]" for v, s in zip(pick, sites, strict=True))
        return f"  %{name} = phi {ty} {inc}"

    lines = [f"{TRAP_LABEL}:"]
    lines.append(phi("tk", "i64", [str(s.kind) for s in sites]))
    lines.append(phi("tpc", "i64", [str(s.pc) for s in sites]))
    lines.append(phi("taddr", "i64", [s.addr for s in sites]))
    lines.append(phi("tlen", "i64", [s.length for s in sites]))
    for i in range(NUM_REGS):
        lines.append(phi(f"tr{i}", "i64", [s.regs[i] for s in sites]))
    if fe.opts.fuel:
        lines.append(phi("tfuel", "i64", [s.fuel for s in sites]))
    stores = [("trap_kind", "%tk", 0), ("trap_pc", "%tpc", 0), ("trap_addr", "%taddr", 0),
              ("trap_len", "%tlen", 0)]
    stores += [("regs", f"%tr{i}", 8 * i) for i in range(NUM_REGS)]
    if fe.opts.fuel:
        stores.append(("fuel", "%tfuel", 0))
    for k, (name, value, extra) in enumerate(stores):
        lines.append(f"  %tp{k} = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[name] + extra}")
        lines.append(f"  store i64 {value}, ptr %tp{k}, align 8")
    lines.append(f"  %tret = insertvalue {STATE_TYPE} poison, i32 {STATUS_TRAPPED}, 0")
    lines.append(f"  ret {STATE_TYPE} %tret")
    return lines
