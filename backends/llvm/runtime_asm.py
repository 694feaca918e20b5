"""The runtime routines every object carries, as per-target LLVM IR text.

Generated code leaves a run in two ways: by returning from the entry, or by a
trap anywhere in a guest call chain, which does not return through the guest
frames (no caller tests anything after a CALL). The non-local exit is own code:

* ``rt_enter(ctx, body)`` (C ABI): saves the C callee-saved registers on its own
  frame (x86-64: rbx rbp r12-r15; aarch64: x19-x30, d8-d15), stores its stack
  pointer in ``ctx.exit_sp``, calls ``body(ctx)`` and returns 0 (``STATUS_OK``);
* ``rt_trap_exit(ctx)`` (C ABI, never returns): restores the stack pointer from
  ``ctx.exit_sp``, pops the saved registers and returns 1 (``STATUS_TRAPPED``)
  from ``rt_enter``'s frame;
* ``rt_syscall(nr, a, b, c, d)`` (C ABI): one system call (the native engine's
  futex waits and wakes).

Why own code: LLVM's ``llvm.eh.sjlj`` intrinsics do not exist on AArch64, and
libc's ``setjmp`` is not available in the emulator (arm64 engine) nor in AOT
hosts we do not control. Why machine code bytes rather than module-level
assembly: llvmlite's LLVM links only the host's assembly parser, so assembly
text for the other target (AArch64 objects on an x86-64 host: the arm64 engine,
``zjit compile --target aarch64``) cannot be assembled. Each routine is a
``naked`` internal function whose body is its machine code, given as the
function's ``prologue`` bytes: it lands in ``.text`` under a local symbol, needs
no relocation, and LLVM's interprocedural passes leave naked functions (their
arguments, return values and attributes) alone. The instructions are listed
next to their encodings below; ``tests/test_runtime_asm.py`` disassembles them
with capstone and runs them.

Two routines are ordinary IR on top of those (the native engine's guest thread,
``docs/jit.md``):

* ``rt_host_request(ctx, op, a, b, c, d)``: the native engine's ``host_call``;
  posts the request in ``hc_op``/``hc_args``, sets ``hc_state`` to REQUEST,
  wakes the engine thread and sleeps until the state is SERVED or FAILED;
* ``rt_thread_main(ctx)``: the start routine of a guest thread; waits until
  ``hc_state`` is RUNNING, calls ``ctx.run_entry(ctx)``, stores ``run_status``,
  sets ``hc_state`` to FINISHED, wakes the engine thread and waits for the next
  run (a null ``run_entry`` ends the thread).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..context import (
    HC_FINISHED,
    HC_REQUEST,
    HC_RUNNING,
    HC_SERVED,
    OFFSETS,
    RT_HOST_REQUEST,
    RT_THREAD_MAIN,
    STATUS_OK,
    STATUS_TRAPPED,
)

RT_ENTER = "rt_enter"
RT_TRAP_EXIT = "rt_trap_exit"
RT_SYSCALL = "rt_syscall"
ROUTINES = (RT_ENTER, RT_TRAP_EXIT, RT_SYSCALL, RT_HOST_REQUEST, RT_THREAD_MAIN)
"""Local symbols of the runtime routines (the engines look the last two up)."""

FUTEX_WAIT_PRIVATE = 128
FUTEX_WAKE_PRIVATE = 129
SYS_FUTEX = {"x86_64": 202, "aarch64": 98}
"""The futex system call number per target."""

Listing = tuple[tuple[bytes, str], ...]
"""A routine: (encoding, instruction text) pairs."""


@dataclass(frozen=True)
class Routine:
    """One hand-written routine: its signature in LLVM IR and its machine code."""

    name: str
    ret: str
    params: tuple[str, ...]
    code: Listing
    noreturn: bool = False

    @property
    def bytes(self) -> bytes:
        """The machine code."""
        return b"".join(b for b, _ in self.code)

    def ir(self) -> str:
        """The ``naked`` function carrying the code as its prologue."""
        params = ", ".join(f"{t} %a{i}" for i, t in enumerate(self.params))
        data = "".join(f"\\{b:02X}" for b in self.bytes)
        attrs = "naked noinline nounwind" + (" noreturn" if self.noreturn else "")
        return (f"define internal {self.ret} @{self.name}({params}) {attrs} "
                f'prologue [{len(self.bytes)} x i8] c"{data}" {{\n  unreachable\n}}')


# --------------------------------------------------------------------------- x86-64

_X86_SAVED = ("rbp", "rbx", "r12", "r13", "r14", "r15")
_X86_PUSH = {"rbp": b"\x55", "rbx": b"\x53", "r12": b"\x41\x54", "r13": b"\x41\x55",
             "r14": b"\x41\x56", "r15": b"\x41\x57"}


def _x86_pop(reg: str) -> bytes:
    push = _X86_PUSH[reg]
    return push[:-1] + bytes([push[-1] + 8])


def _x86_restore() -> Listing:
    """From the saved-register area to rt_enter's caller (rax holds the status)."""
    out = [(b"\x48\x83\xc4\x08", "add rsp, 8")]
    out += [(_x86_pop(r), f"pop {r}") for r in reversed(_X86_SAVED)]
    out.append((b"\xc3", "ret"))
    return tuple(out)


def _x86_routines() -> tuple[Routine, ...]:
    exit_sp = struct.pack("<i", OFFSETS["exit_sp"])
    enter: Listing = (
        *((_X86_PUSH[r], f"push {r}") for r in _X86_SAVED),
        (b"\x48\x83\xec\x08", "sub rsp, 8"),  # 16-byte alignment at the call
        (b"\x48\x89\xa7" + exit_sp, f"mov qword ptr [rdi + {OFFSETS['exit_sp']:#x}], rsp"),
        (b"\xff\xd6", "call rsi"),
        (b"\xb8" + struct.pack("<I", STATUS_OK), f"mov eax, {STATUS_OK}"),
        *_x86_restore(),
    )
    trap_exit: Listing = (
        (b"\x48\x8b\xa7" + exit_sp, f"mov rsp, qword ptr [rdi + {OFFSETS['exit_sp']:#x}]"),
        (b"\xb8" + struct.pack("<I", STATUS_TRAPPED), f"mov eax, {STATUS_TRAPPED}"),
        *_x86_restore(),
    )
    syscall: Listing = (
        (b"\x48\x89\xf8", "mov rax, rdi"),
        (b"\x48\x89\xf7", "mov rdi, rsi"),
        (b"\x48\x89\xd6", "mov rsi, rdx"),
        (b"\x48\x89\xca", "mov rdx, rcx"),
        (b"\x4d\x89\xc2", "mov r10, r8"),
        (b"\x0f\x05", "syscall"),
        (b"\xc3", "ret"),
    )
    return _common(enter, trap_exit, syscall)


# --------------------------------------------------------------------------- aarch64


def _a64(word: int, text: str) -> tuple[bytes, str]:
    return struct.pack("<I", word), text


def _a64_pair(load: bool, fp: bool, r1: int, r2: int, offset: int) -> tuple[bytes, str]:
    """``stp``/``ldp`` of two x or d registers at ``[sp, #offset]`` (signed offset form)."""
    base = (0x6D400000 if load else 0x6D000000) if fp else (0xA9400000 if load else 0xA9000000)
    word = base | ((offset // 8) & 0x7F) << 15 | r2 << 10 | 31 << 5 | r1
    p = "d" if fp else "x"
    return _a64(word, f"{'ldp' if load else 'stp'} {p}{r1}, {p}{r2}, [sp, #{offset}]")


_A64_FRAME = 160
"""rt_enter's frame: x29/x30, x19-x28, d8-d15."""
_A64_PAIRS = [(False, 19 + 2 * k, 20 + 2 * k, 16 + 16 * k) for k in range(5)] + [
    (True, 8 + 2 * k, 9 + 2 * k, 96 + 16 * k) for k in range(4)]


def _a64_restore() -> Listing:
    out = [_a64_pair(True, fp, r1, r2, off) for fp, r1, r2, off in reversed(_A64_PAIRS)]
    out.append(_a64(0xA8C00000 | ((_A64_FRAME // 8) & 0x7F) << 15 | 30 << 10 | 31 << 5 | 29,
                    f"ldp x29, x30, [sp], #{_A64_FRAME}"))
    out.append(_a64(0xD65F03C0, "ret"))
    return tuple(out)


def _a64_routines() -> tuple[Routine, ...]:
    exit_sp = OFFSETS["exit_sp"]
    assert exit_sp % 8 == 0 and exit_sp < 8 * 4096
    enter: Listing = (
        _a64(0xA9800000 | ((-_A64_FRAME // 8) & 0x7F) << 15 | 30 << 10 | 31 << 5 | 29,
             f"stp x29, x30, [sp, #-{_A64_FRAME}]!"),
        _a64(0x910003FD, "mov x29, sp"),
        *(_a64_pair(False, fp, r1, r2, off) for fp, r1, r2, off in _A64_PAIRS),
        _a64(0x910003E9, "mov x9, sp"),
        _a64(0xF9000000 | (exit_sp // 8) << 10 | 0 << 5 | 9, f"str x9, [x0, #{exit_sp}]"),
        _a64(0xD63F0020, "blr x1"),
        _a64(0x52800000 | STATUS_OK << 5, f"mov w0, #{STATUS_OK}"),
        *_a64_restore(),
    )
    trap_exit: Listing = (
        _a64(0xF9400000 | (exit_sp // 8) << 10 | 0 << 5 | 9, f"ldr x9, [x0, #{exit_sp}]"),
        _a64(0x9100013F, "mov sp, x9"),
        _a64(0x52800000 | STATUS_TRAPPED << 5, f"mov w0, #{STATUS_TRAPPED}"),
        *_a64_restore(),
    )
    syscall: Listing = (
        _a64(0xAA0003E8, "mov x8, x0"),
        _a64(0xAA0103E0, "mov x0, x1"),
        _a64(0xAA0203E1, "mov x1, x2"),
        _a64(0xAA0303E2, "mov x2, x3"),
        _a64(0xAA0403E3, "mov x3, x4"),
        _a64(0xD4000001, "svc #0"),
        _a64(0xD65F03C0, "ret"),
    )
    return _common(enter, trap_exit, syscall)


def _common(enter: Listing, trap_exit: Listing, syscall: Listing) -> tuple[Routine, ...]:
    return (
        Routine(RT_ENTER, "i32", ("ptr", "ptr"), enter),
        Routine(RT_TRAP_EXIT, "void", ("ptr",), trap_exit, noreturn=True),
        Routine(RT_SYSCALL, "i64", ("i64",) * 5, syscall),
    )


def target_name(triple: str) -> str:
    """``x86_64`` or ``aarch64`` for a supported triple."""
    return "aarch64" if triple.startswith(("aarch64", "arm64")) else "x86_64"


def routines(triple: str) -> tuple[Routine, ...]:
    """The machine-code routines for ``triple``."""
    return _a64_routines() if target_name(triple) == "aarch64" else _x86_routines()


# --------------------------------------------------------------------------- IR routines


def _gep(name: str, field: str, extra: int = 0) -> str:
    return f"  %{name} = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[field] + extra}"


def _host_request_ir(nr: int) -> str:
    lines = [f"define internal i64 @{RT_HOST_REQUEST}(ptr %ctx, i64 %op, i64 %a, i64 %b, i64 %c, i64 %d)"
             " noinline nounwind {", "entry:", _gep("pop", "hc_op"), "  store i64 %op, ptr %pop, align 8"]
    for k, v in enumerate("abcd"):
        lines += [_gep(f"p{v}", "hc_args", 8 * k), f"  store i64 %{v}, ptr %p{v}, align 8"]
    lines += [
        _gep("st", "hc_state"),
        "  %word = ptrtoint ptr %st to i64",
        f"  store atomic i64 {HC_REQUEST}, ptr %st release, align 8",
        f"  %w = call i64 @{RT_SYSCALL}(i64 {nr}, i64 %word, i64 {FUTEX_WAKE_PRIVATE}, i64 1, i64 0)",
        "  br label %wait",
        "wait:",
        "  %s = load atomic i64, ptr %st acquire, align 8",
        f"  %pending = icmp eq i64 %s, {HC_REQUEST}",
        "  br i1 %pending, label %sleep, label %done",
        "sleep:",
        f"  %z = call i64 @{RT_SYSCALL}(i64 {nr}, i64 %word, i64 {FUTEX_WAIT_PRIVATE}, i64 {HC_REQUEST}, i64 0)",
        "  br label %wait",
        "done:",
        f"  store atomic i64 {HC_RUNNING}, ptr %st monotonic, align 8",
        f"  %failed = icmp ne i64 %s, {HC_SERVED}",
        "  %r = zext i1 %failed to i64",
        "  ret i64 %r",
        "}",
    ]
    return "\n".join(lines)


def _thread_main_ir(nr: int) -> str:
    return "\n".join([
        f"define internal ptr @{RT_THREAD_MAIN}(ptr %ctx) noinline nounwind {{",
        "entry:",
        _gep("st", "hc_state"),
        "  %word = ptrtoint ptr %st to i64",
        _gep("pe", "run_entry"),
        _gep("ps", "run_status"),
        "  br label %wait",
        "wait:",
        "  %s = load atomic i64, ptr %st acquire, align 8",
        f"  %go = icmp eq i64 %s, {HC_RUNNING}",
        "  br i1 %go, label %run, label %sleep",
        "sleep:",
        f"  %z = call i64 @{RT_SYSCALL}(i64 {nr}, i64 %word, i64 {FUTEX_WAIT_PRIVATE}, i64 %s, i64 0)",
        "  br label %wait",
        "run:",
        "  %fn = load ptr, ptr %pe, align 8",
        "  %stop = icmp eq ptr %fn, null",
        "  br i1 %stop, label %done, label %call",
        "call:",
        "  %status = call i32 %fn(ptr %ctx)",
        "  %s64 = zext i32 %status to i64",
        "  store i64 %s64, ptr %ps, align 8",
        f"  store atomic i64 {HC_FINISHED}, ptr %st release, align 8",
        f"  %w = call i64 @{RT_SYSCALL}(i64 {nr}, i64 %word, i64 {FUTEX_WAKE_PRIVATE}, i64 1, i64 0)",
        "  br label %wait",
        "done:",
        "  ret ptr null",
        "}",
    ])


def runtime_text(triple: str) -> str:
    """Every runtime routine for ``triple``, as LLVM IR definitions."""
    nr = SYS_FUTEX[target_name(triple)]
    parts = [r.ir() for r in routines(triple)]
    parts += [_host_request_ir(nr), _thread_main_ir(nr)]
    return "\n\n".join(parts)


KEEP = f"@llvm.compiler.used = appending global [2 x ptr] [ptr @{RT_HOST_REQUEST}, ptr @{RT_THREAD_MAIN}], " \
       'section "llvm.metadata"'
"""Keeps the two routines only the engine calls (through their addresses)."""
