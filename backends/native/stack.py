"""Native stack sizing for JIT code: guest CALLs are native calls.

A guest call depth of ``d`` uses ``d + 2`` native frames (entry wrapper, entry
function, one per call), so a run may need ``(max_call_depth + 2) * frame``
bytes of stack plus room for host callbacks into Python. This module

* measures an upper bound of the frame size of compiled code
  (:func:`frame_bound`, from the x86-64 machine code: the largest ``sub rsp``
  plus every callee-saved push, the return address and outgoing arguments),
* finds the current thread's stack bounds (:func:`thread_stack`, via
  ``pthread_getattr_np``), and
* runs a function on a fresh thread with a big enough stack when the current one
  is too small (:func:`run_with_stack`).

Generated code also checks the stack pointer against ``ctx.stack_limit`` at
every CALL; that guard only exists to turn a sizing mistake into an error
instead of a crash.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable

from ..targets import EM_X86_64

TYPE_CHECKING = False  # typing stays unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

CALLBACK_RESERVE = 512 << 10
"""Stack kept free below the guest's frames for memmove and host callbacks."""
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


# --------------------------------------------------------------------------- bounds

_libc = ctypes.CDLL(None)
_local = threading.local()


def thread_stack() -> tuple[int, int] | None:
    """``(low, high)`` addresses of the calling thread's stack, or None if unknown."""
    cached: tuple[int, int] | None = getattr(_local, "bounds", None)
    if cached is not None:
        return cached
    try:
        attr = ctypes.create_string_buffer(256)
        _libc.pthread_self.restype = ctypes.c_ulong
        self_id = ctypes.c_ulong(_libc.pthread_self())
        if _libc.pthread_getattr_np(self_id, attr) != 0:
            return None
        addr, size = ctypes.c_void_p(), ctypes.c_size_t()
        rc = _libc.pthread_attr_getstack(attr, ctypes.byref(addr), ctypes.byref(size))
        _libc.pthread_attr_destroy(attr)
        if rc != 0 or not addr.value:
            return None
        bounds = (addr.value, addr.value + size.value)
    except (AttributeError, OSError):
        return None
    _local.bounds = bounds
    return bounds


_spawn_lock = threading.Lock()


class NoStack(MemoryError):
    """A thread with the stack a run needs could not be created."""


def run_with_stack(size: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a new thread whose stack is at least ``size`` bytes; return its
    result or raise its exception in the caller. :class:`NoStack` when the thread
    cannot be created (the stack is committed lazily, but the system may still
    refuse to reserve that much address space)."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            error.append(exc)

    size = (size + 0xFFFF) & ~0xFFFF
    with _spawn_lock:
        old = threading.stack_size(size)
        try:
            t = threading.Thread(target=body, name="zjit-big-stack", daemon=True)
            t.start()
        except RuntimeError as exc:  # pthread_create failed
            raise NoStack(f"cannot create a thread with a {size >> 20} MiB stack: {exc}") from None
        finally:
            threading.stack_size(old)
    t.join()
    if error:
        raise error[0]
    return result[0]
