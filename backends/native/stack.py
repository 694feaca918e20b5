"""Native stacks for guest threads: guest CALLs are native calls.

A guest call depth of ``d`` uses ``d`` native frames plus a few for the entry
(``rt_thread_main``, ``rt_enter``, the entry body, the entry function), so a
run may need ``(max_call_depth + 4) * frame`` bytes of stack plus room for the
C functions guest code calls (memmove, memset, the host request). This module

* measures an upper bound of the frame size of compiled code
  (:func:`frame_bound`, from the x86-64 machine code: the largest ``sub rsp``
  plus every callee-saved push, the return address and outgoing arguments),
* maps stacks for guest threads (:func:`acquire`/:func:`release`): anonymous,
  lazily committed, with a guard page at the low end, a few kept for reuse.

Generated code also checks the stack pointer against ``ctx.stack_limit`` at
every recursive CALL; that guard only exists to turn a sizing mistake into an
error instead of a crash.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading

from ..targets import EM_X86_64

UNKNOWN_FRAME = 4096
"""Frame bound assumed for code that cannot be measured."""
_FIXED_X86 = 8 + 6 * 8 + 8 * 8 + 16
"""Return address, six callee-saved pushes, outgoing stack arguments, alignment."""


def frame_bound(obj: bytes) -> int:
    """An upper bound of the native stack one guest call level uses, in bytes."""
    from ..objfile.elf import SHF_EXECINSTR, parse_elf

    elf = parse_elf(obj)
    if elf.machine != EM_X86_64:
        return UNKNOWN_FRAME
    largest = 0
    for sec in elf.sections:
        if not sec.flags & SHF_EXECINSTR:
            continue
        largest = max(largest, _largest_rsp_sub(sec.data))
    return largest + _FIXED_X86


def _largest_rsp_sub(code: bytes) -> int:
    """Largest immediate of ``sub rsp, imm8/imm32`` byte patterns in ``code``.

    A pattern found inside another instruction only makes the bound larger; an
    implausible imm32 (negative or over 1 MiB) is confirmed with capstone.
    """
    largest = 0
    i = code.find(b"\x48\x83\xec")
    while i >= 0:
        if i + 3 < len(code):
            largest = max(largest, code[i + 3] if code[i + 3] < 0x80 else 0)
        i = code.find(b"\x48\x83\xec", i + 1)
    suspicious = False
    i = code.find(b"\x48\x81\xec")
    while i >= 0:
        if i + 7 <= len(code):
            (imm,) = struct.unpack_from("<i", code, i + 3)
            if 0 <= imm <= (1 << 20):
                largest = max(largest, imm)
            else:
                suspicious = True
        i = code.find(b"\x48\x81\xec", i + 1)
    if suspicious:
        largest = max(largest, _capstone_rsp_sub(code))
    return largest


def _capstone_rsp_sub(code: bytes) -> int:
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    largest = 0
    for _addr, _size, mnem, ops in md.disasm_lite(code, 0):
        if mnem == "sub" and ops.startswith("rsp, "):
            try:
                largest = max(largest, int(ops[5:], 0))
            except ValueError:
                continue
    return largest


# --------------------------------------------------------------------------- stacks

RESERVE = 64 << 10
"""Stack kept free below the guest's frames (memmove, adapters, the host request)."""
TLS_MARGIN = 256 << 10
"""Room at the top of a stack for what the C library keeps there (thread
control block, static TLS)."""
KEEP_STACKS = 4
"""Stacks kept mapped for reuse (process-wide)."""
KEEP_BYTES = 16 << 20
"""Larger stacks are unmapped after their run."""
GUARD = 4096
PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE, MAP_STACK = 0x02, 0x20, 0x4000, 0x20000

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_mprotect = _libc.mprotect
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class Stack:
    """One mapped stack: ``[base, base + size)``, its lowest page a guard."""

    __slots__ = ("base", "size")

    def __init__(self, size: int) -> None:
        size = (size + GUARD + 0xFFFF) & ~0xFFFF
        base = _mmap(None, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0)
        if base is None or base == ctypes.c_void_p(-1).value:
            err = ctypes.get_errno()
            raise MemoryError(f"cannot map a {size >> 20} MiB guest stack: {os.strerror(err)}")
        if _mprotect(base, GUARD, PROT_NONE) != 0:
            _munmap(base, size)
            raise MemoryError("cannot protect the guest stack's guard page")
        self.base = int(base)
        self.size = size

    @property
    def low(self) -> int:
        """Lowest usable address (above the guard page)."""
        return self.base + GUARD

    @property
    def usable(self) -> int:
        """Bytes between the guard page and the top."""
        return self.size - GUARD

    def unmap(self) -> None:
        """Give the memory back."""
        _munmap(self.base, self.size)


_pool: list[Stack] = []
_pool_lock = threading.Lock()


def acquire(need: int) -> Stack:
    """A stack with at least ``need`` usable bytes (plus :data:`TLS_MARGIN`):
    the smallest kept one that fits, or a new mapping."""
    need += TLS_MARGIN
    with _pool_lock:
        fits = [s for s in _pool if s.usable >= need]
        if fits:
            best = min(fits, key=lambda s: s.size)
            _pool.remove(best)
            return best
    return Stack(need)


def release(stack: Stack) -> None:
    """Keep ``stack`` for another run, or unmap it (large, or the pool is full)."""
    if stack.size <= KEEP_BYTES:
        with _pool_lock:
            _pool.append(stack)
            if len(_pool) <= KEEP_STACKS:
                return
            stack = min(_pool, key=lambda s: s.size)
            _pool.remove(stack)
    stack.unmap()
