"""Guards and trap exits.

Every check branches *before* the operation it protects (LLVM treats a division
by zero, for instance, as undefined behaviour and would delete a check placed
after it). A failing check jumps to its own small cold block, the trap stub,
which calls the module's trap helper ``@zjit.trap`` with the trap kind, pc,
address and length and the exact guest registers and fuel at the trapping
instruction. The helper never returns: it stores the trap record (and where
the trap happened: ``trap_sp``, ``trap_ret``) into the context and leaves the
run through ``rt_trap_exit`` (:mod:`.runtime_asm`), straight back to the entry's
caller. So nothing after a trap runs, and no caller tests anything after a CALL.

The helper has the guest calling convention (:mod:`.abi`: ``x86_regcallcc`` /
``preserve_nonecc``), so a stub passes everything in registers, and its
parameters are ordered so that the guest registers and fuel sit where S keeps
them (:data:`TRAP_PARAMS`): a stub only sets the kind, pc, address and length.

(One stub per site measured cheaper to compile than a single exit block whose
phis merge every site's registers, which makes the register coalescer slow in
large functions.)
"""

from __future__ import annotations

from ..context import OFFSETS
from ..middle.ir import Operand
from .abi import GuestABI
from .function import LIKELY, FnEmitter, TrapSite
from .runtime_asm import RT_TRAP_EXIT

TRAP_HELPER = "zjit.trap"
"""Name of the internal function that writes a trap record and leaves the run."""
TRAP_PARAMS = ("ctx", "kind", "pc", "HL", "DE", "A", "BC", "IX", "addr", "fuel", "len")
"""The trap helper's parameters, in order (all i64 but ctx): the guest registers
and fuel at their positions in S (HL..IX 3..7, fuel 9), kind/pc/addr/len in the
places of mem, room and CMP and one more. With the order ``(ctx, kind, pc, addr,
len, HL, ...)`` every stub moves all registers, and the register allocator
shuffled values on hot paths to prepare for that: fib_rec ran 17% slower
(docs/jit.md)."""
_STORES = {"kind": ("trap_kind", 0), "pc": ("trap_pc", 0), "addr": ("trap_addr", 0),
           "len": ("trap_len", 0), "fuel": ("fuel", 0),
           **{r: ("regs", 8 * i) for i, r in enumerate(("HL", "DE", "A", "BC", "IX"))}}


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
    fe.traps.append(TrapSite(fe.current, kind, pc, [fe.val(r) for r in regs], addr, length,
                             fe.fuel if fe.opts.fuel else "0", fe.ctx, fe.mem()))
    fe.emit(f"br i1 {ok}, label %{cont}, label %{stub}, !prof {LIKELY}")
    fe.start(cont)


def trap_call(abi: GuestABI, s: TrapSite) -> str:
    """The call of the trap helper for one site (``unreachable`` follows it)."""
    values = {"kind": str(s.kind), "pc": str(s.pc), "addr": s.addr, "len": s.length, "fuel": s.fuel,
              **dict(zip(("HL", "DE", "A", "BC", "IX"), s.regs, strict=True))}
    args = [f"ptr {s.ctx}"] + [f"i64 {values[p]}" for p in TRAP_PARAMS[1:]]
    return f'call {abi.cc} void @"{TRAP_HELPER}"({", ".join(args)}) #6'


def trap_stubs(fe: FnEmitter) -> list[str]:
    """One cold block per trap site (empty when the function has none). On
    AArch64 with call sites a stub first stores the function's own return
    address in ``ctx.trap_lr``: a function whose only calls are trap exits has
    no frame and keeps it in x30 alone, which the call of the (noreturn) trap
    helper overwrites, and the backtrace walk needs it to leave that frame."""
    lines: list[str] = []
    keep_lr = fe.opts.call_sites and fe.opts.triple.startswith(("aarch64", "arm64"))
    for n, s in enumerate(fe.traps):
        lines.append(f"trap{n}:")
        # Guest memory is a noalias parameter and the trap helper never sees it,
        # so to LLVM a store before a trap exit (noreturn, then unreachable) is
        # dead: dead-store elimination drops it, and the trapped run's memory
        # would miss it. An empty asm that takes the pointer and clobbers memory
        # makes every store before the trap observable (no instruction emitted).
        lines.append(f'  call void asm sideeffect "", "r,~{{memory}}"(ptr {s.mem})')
        if keep_lr:
            lines += [f"  %trap{n}.lr = call ptr @llvm.returnaddress(i32 0)",
                      f"  %trap{n}.plr = getelementptr inbounds i8, ptr {s.ctx}, i64 {OFFSETS['trap_lr']}",
                      f"  store ptr %trap{n}.lr, ptr %trap{n}.plr, align 8"]
        lines += ["  " + trap_call(fe.abi, s), "  unreachable"]
    return lines


def trap_helper_text(abi: GuestABI, triple: str) -> str:
    """``void @zjit.trap(TRAP_PARAMS)``: store a trap record and leave the run."""
    params = ", ".join(("ptr noalias %ctx" if p == "ctx" else f"i64 %{p}") for p in TRAP_PARAMS)
    lines = [f'define internal {abi.cc} void @"{TRAP_HELPER}"({params}) #3 {{', "entry:"]
    for k, p in enumerate(TRAP_PARAMS[1:]):
        name, extra = _STORES[p]
        lines.append(f"  %p{k} = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[name] + extra}")
        lines.append(f"  store i64 %{p}, ptr %p{k}, align 8")
    if triple.startswith(("aarch64", "arm64")):
        lines.append("  %sp = call ptr @llvm.sponentry.p0()")  # the caller's sp (bl pushes nothing)
    else:
        lines += ["  %ra.at = call ptr @llvm.addressofreturnaddress.p0()",  # the caller's sp - 8
                  "  %sp = getelementptr i8, ptr %ra.at, i64 8"]
    lines += [
        "  %ret = call ptr @llvm.returnaddress(i32 0)",
        f"  %psp = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS['trap_sp']}",
        "  store ptr %sp, ptr %psp, align 8",
        f"  %pret = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS['trap_ret']}",
        "  store ptr %ret, ptr %pret, align 8",
        f"  call void @{RT_TRAP_EXIT}(ptr %ctx) #6",
        "  unreachable",
        "}",
    ]
    return "\n".join(lines)


def trap_intrinsics(triple: str) -> list[str]:
    """Declarations the trap helper needs."""
    sp = ("declare ptr @llvm.sponentry.p0()" if triple.startswith(("aarch64", "arm64"))
          else "declare ptr @llvm.addressofreturnaddress.p0()")
    return [sp, "declare ptr @llvm.returnaddress(i32)"]
