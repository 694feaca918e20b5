"""Unicorn AArch64 CPUs for the arm64 engine, and a small pool to reuse them.

An :class:`Emulator` is one unicorn CPU (creating one costs milliseconds) with a
fixed guest address space:

=================  ====  ===============================================
``RT_BASE``        r-x   runtime page (:mod:`.runtime`)
``CTX_BASE``       rw-   the run context, then the read-only range table
``OUT_BASE``       rw-   output buffer (``OUT_BUFFER_BYTES``)
``CODE_BASE``      r-x   the linked object (text), then rodata (r--), data (rw-)
below ``STACK_TOP`` rw-  native stack, sized per run
``IN_BASE``        r--   in-memory input (a copy)
``MEM_BASE``       rw-   guest memory
=================  ====  ===============================================

The context and the output buffer are host mmaps mapped with ``mem_map_ptr``, so
the engine reads and writes them directly (another thread sets ``interrupt``
while guest code runs). Guest memory is the instance's own bytearray, mapped
the same way, when its size is a multiple of the 4 KiB page; otherwise a page-
rounded scratch copy is mapped and copied in and out around each run.

Emulators wait in a process-wide pool (:func:`acquire`/:func:`release`); one
that last ran the same code keeps its translated blocks warm, any other is
rebound (code remapped, translation cache flushed).
"""

from __future__ import annotations

import ctypes
import mmap
import struct
import threading
import weakref
from collections.abc import Callable
from typing import Any

from ..context import CTX_SIZE, Ctx
from ..objfile.linker import LinkedImage
from .runtime import PAGE, SENTINEL_OFFSET, host_function_offsets, runtime_page

RT_BASE = 0x10_0000
CTX_BASE = 0x20_0000
OUT_BASE = 0x100_0000
CODE_BASE = 0x1_0000_0000
STACK_TOP = 0x100_0000_0000
IN_BASE = 0x200_0000_0000
MEM_BASE = 0x1000_0000_0000
TABLE_BASE = 0x8000_0000
"""Tiered code: the function table and tier-up counters (``ctx.ftab``)."""
SENTINEL = RT_BASE + SENTINEL_OFFSET
OUT_BUFFER_BYTES = 64 << 10
TCG_BUFFER_BYTES = 64 << 20
"""Translation cache per emulator (unicorn's default reserves 1 GiB)."""
POOL_SIZE = 4
"""Idle emulators kept for reuse (process-wide)."""
KEEP_MAPPED_BYTES = 32 << 20
"""Guest memory up to this size stays mapped in an idle emulator (a rerun of the
same instance then skips the remap); larger memory is unmapped after each run."""

EXCP_SWI = 2
"""Unicorn interrupt number of ``svc``."""
HostHandler = Callable[[int, int, int, int, int], int]
"""``(op, a, b, c, d) -> status``: ``host_call``'s work (x1..x5)."""

_ARGS: tuple[int, ...] = ()
_X0 = 0
_SP = 0
_LR = 0
_PC = 0


def _page_round(n: int) -> int:
    return max(PAGE, (n + PAGE - 1) & -PAGE)


def _uc() -> Any:
    """Import unicorn lazily (an engine that is never used costs nothing)."""
    global _ARGS, _X0, _SP, _LR, _PC
    import unicorn
    from unicorn import arm64_const as a

    if not _ARGS:
        _ARGS = (a.UC_ARM64_REG_X1, a.UC_ARM64_REG_X2, a.UC_ARM64_REG_X3, a.UC_ARM64_REG_X4,
                 a.UC_ARM64_REG_X5)
        _X0, _SP = a.UC_ARM64_REG_X0, a.UC_ARM64_REG_SP
        _LR, _PC = a.UC_ARM64_REG_LR, a.UC_ARM64_REG_PC
    return unicorn


def _on_interrupt(uc: Any, intno: int, ref: weakref.ref[Emulator]) -> None:
    """The ``svc`` hook (a module function holding only a weak reference, so an
    emulator and its unicorn handle form no cycle)."""
    emu = ref()
    if emu is None:
        uc.emu_stop()
        return
    emu.on_interrupt(intno)


class Emulator:
    """One unicorn AArch64 CPU with the runtime page, context and output buffer
    mapped; code, guest memory, input and stack are bound per run."""

    def __init__(self) -> None:
        unicorn = _uc()
        from unicorn import arm64_const as a

        self.rx = unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC
        self.rw = unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE
        self.ro = unicorn.UC_PROT_READ
        uc: Any = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
        uc.ctl_set_tcg_buffer_size(TCG_BUFFER_BYTES)
        uc.reg_write(a.UC_ARM64_REG_CPACR_EL1, uc.reg_read(a.UC_ARM64_REG_CPACR_EL1) | (3 << 20))  # FP/SIMD on
        self.uc = uc
        uc.mem_map(RT_BASE, PAGE, self.rx)
        uc.mem_write(RT_BASE, runtime_page())
        self.functions = {name: RT_BASE + off for name, off in host_function_offsets().items()}
        self._ctx_map: mmap.mmap | None = None
        self.ctx: Ctx = self._map_ctx(PAGE)
        self._out_map = mmap.mmap(-1, OUT_BUFFER_BYTES)
        self.out = (ctypes.c_char * OUT_BUFFER_BYTES).from_buffer(self._out_map)
        uc.mem_map_ptr(OUT_BASE, OUT_BUFFER_BYTES, self.rw, ctypes.addressof(self.out))
        uc.hook_add(unicorn.UC_HOOK_INTR, _on_interrupt, weakref.ref(self))
        self.code: object | None = None
        self._code_regions: list[tuple[int, int]] = []
        self._installed = 0
        self._table_map: mmap.mmap | None = None
        self._table: Any = None
        self._memory: bytearray | None = None
        self._mem_export: Any = None
        self._mem_mapped = 0
        self._scratch: mmap.mmap | None = None
        self._scratch_export: Any = None
        self._input: bytes | None = None
        self._in_mapped = 0
        self._stack = 0
        self.handler: HostHandler | None = None
        self.fault: str | None = None

    # -- context ---------------------------------------------------------------------
    def _map_ctx(self, size: int) -> Ctx:
        if self._ctx_map is not None:
            self.uc.mem_unmap(CTX_BASE, len(self._ctx_map))
        self._ctx_map = mmap.mmap(-1, size)
        ctx = Ctx.from_buffer(self._ctx_map)
        self.uc.mem_map_ptr(CTX_BASE, size, self.rw, ctypes.addressof(ctx))
        return ctx

    def reset_ctx(self, ro_ranges: tuple[tuple[int, int], ...]) -> int:
        """Zero the context and write the read-only range table after it; returns
        the table's guest address (0 without ranges)."""
        table = (CTX_SIZE + 15) & -16
        need = table + 16 * len(ro_ranges)
        if need > len(self._ctx_map or b""):
            self.ctx = self._map_ctx(_page_round(need))
        ctypes.memset(ctypes.addressof(self.ctx), 0, CTX_SIZE)
        if not ro_ranges:
            return 0
        flat = [x for r in ro_ranges for x in r]
        assert self._ctx_map is not None
        struct.pack_into(f"<{len(flat)}Q", self._ctx_map, table, *flat)
        return CTX_BASE + table

    # -- code ------------------------------------------------------------------------
    def bind_code(self, key: object, image: LinkedImage) -> None:
        """Map ``image`` (linked at CODE_BASE) unless it is already the bound code."""
        if self.code is key:
            return
        self._unbind_code()
        self._map_image(image)
        self.uc.ctl_flush_tb()
        self.code = key

    def _unbind_code(self) -> None:
        for start, size in self._code_regions:
            self.uc.mem_unmap(start, size)
        self._code_regions = []
        self._installed = 0
        self._table = None
        self._table_map = None
        self.code = None

    def _map_image(self, image: LinkedImage) -> None:
        prot = {"rx": self.rx, "r": self.ro, "rw": self.rw}
        for r in image.regions:
            self.uc.mem_map(image.base + r.offset, r.size, prot[r.perms])
            self.uc.mem_write(image.base + r.offset, r.data)
            self._code_regions.append((image.base + r.offset, r.size))

    def bind_tiered(self, code: Any) -> None:
        """Map tiered code (:mod:`zjit.backends.tiering`): its baseline code at
        CODE_BASE, a table of this emulator's own at TABLE_BASE, and the O2
        code installed so far; called again (at host calls and before a run)
        it maps what was installed since and copies the table, so no table slot
        ever points at code this emulator has not mapped."""
        if self.code is not code:
            self._unbind_code()
            size = _page_round(len(code.image.code))
            self.uc.mem_map(CODE_BASE, size, self.rx)
            self.uc.mem_write(CODE_BASE, code.image.code)
            self._code_regions.append((CODE_BASE, size))
            tsize = _page_round(8 * len(code.table))
            self._table_map = mmap.mmap(-1, tsize)
            self._table = (ctypes.c_char * tsize).from_buffer(self._table_map)
            self.uc.mem_map_ptr(TABLE_BASE, tsize, self.rw, ctypes.addressof(self._table))
            self._code_regions.append((TABLE_BASE, tsize))
            self.uc.ctl_flush_tb()
            self.code = code
        with code.lock:
            for _eid, _address, image in code.installs[self._installed:]:
                self._map_image(image)
            self._installed = len(code.installs)
            ctypes.memmove(ctypes.addressof(self._table), ctypes.addressof(code.table), 8 * len(code.table))

    # -- guest memory ------------------------------------------------------------------
    def bind_memory(self, memory: bytearray) -> memoryview | bytearray:
        """Map guest memory at MEM_BASE; returns what host calls must read and write
        (the bytearray itself, or the scratch copy)."""
        n = len(memory)
        if n % PAGE == 0 and n:
            if self._memory is not memory or self._mem_mapped != n:
                self.unbind_memory()
                self._mem_export = (ctypes.c_char * n).from_buffer(memory)
                self.uc.mem_map_ptr(MEM_BASE, n, self.rw, ctypes.addressof(self._mem_export))
                self._memory, self._mem_mapped = memory, n
            return memory
        size = _page_round(n)
        if self._scratch is None or len(self._scratch) != size or self._memory is not None:
            self.unbind_memory()
            self._scratch = mmap.mmap(-1, size)
            self._scratch_export = (ctypes.c_char * size).from_buffer(self._scratch)
            self.uc.mem_map_ptr(MEM_BASE, size, self.rw, ctypes.addressof(self._scratch_export))
            self._mem_mapped = size
        ctypes.memmove(ctypes.addressof(self._scratch_export), (ctypes.c_char * n).from_buffer(memory), n)
        return memoryview(self._scratch)[:n]

    def copy_back(self, memory: bytearray) -> None:
        """After a run on the scratch copy: copy guest memory back."""
        if self._scratch is not None and self._memory is None:
            memory[:] = self._scratch[:len(memory)]

    def unbind_memory(self) -> None:
        """Unmap guest memory and release the bytearray (or the scratch copy)."""
        if self._mem_mapped:
            self.uc.mem_unmap(MEM_BASE, self._mem_mapped)
        self._mem_mapped = 0
        self._memory = self._mem_export = None
        self._scratch_export = None
        self._scratch = None

    def idle(self) -> None:
        """Drop per-run references before waiting in the pool."""
        self.handler = None
        if self._mem_mapped > KEEP_MAPPED_BYTES:
            self.unbind_memory()

    # -- input and stack -----------------------------------------------------------------
    def bind_input(self, data: bytes) -> int:
        """Copy in-memory input to IN_BASE (unless it is already there); its address."""
        if self._input is not data:
            size = _page_round(len(data))
            if self._in_mapped != size:
                if self._in_mapped:
                    self.uc.mem_unmap(IN_BASE, self._in_mapped)
                self.uc.mem_map(IN_BASE, size, self.ro)
                self._in_mapped = size
            if data:
                self.uc.mem_write(IN_BASE, data)
            self._input = data
        return IN_BASE

    def ensure_stack(self, size: int) -> int:
        """A native stack of at least ``size`` bytes below STACK_TOP; its low end.
        MemoryError when the emulator cannot map that much (pages are committed lazily)."""
        size = _page_round(size)
        if size > self._stack:
            if self._stack:
                self.uc.mem_unmap(STACK_TOP - self._stack, self._stack)
                self._stack = 0
            try:
                self.uc.mem_map(STACK_TOP - size, size, self.rw)
            except _uc().UcError as exc:
                raise MemoryError(f"cannot map {size >> 20} MiB of emulated stack: {exc}") from None
            self._stack = size
        return STACK_TOP - self._stack

    # -- running ---------------------------------------------------------------------------
    def stack_word(self, address: int) -> int:
        """The 8-byte word at ``address`` of the stack (ValueError outside it)."""
        if not STACK_TOP - self._stack <= address <= STACK_TOP - 8:
            raise ValueError(f"{address:#x} is outside the emulated stack")
        return int.from_bytes(self.uc.mem_read(address, 8), "little")

    def run(self, entry: int) -> int:
        """Call ``entry(ctx)`` with LR at the sentinel; returns w0 (the status).

        Raises RuntimeError when the emulator faults or stops elsewhere than at
        the sentinel without :meth:`stop` having been called.
        """
        uc = self.uc
        self.fault = None
        uc.reg_write(_X0, CTX_BASE)
        uc.reg_write(_SP, STACK_TOP)
        uc.reg_write(_LR, SENTINEL)
        try:
            uc.emu_start(entry, SENTINEL)
        except _uc().UcError as exc:
            raise RuntimeError(f"arm64 emulation fault at {self.pc():#x}: {exc}") from None
        if self.fault is not None:
            raise RuntimeError(self.fault)
        return int(uc.reg_read(_X0)) & 0xFFFF_FFFF

    def pc(self) -> int:
        """The emulated program counter."""
        return int(self.uc.reg_read(_PC))

    def lr(self) -> int:
        """The emulated link register."""
        return int(self.uc.reg_read(_LR))

    def stop(self) -> None:
        """Stop the running guest (from any thread)."""
        self.uc.emu_stop()

    def on_interrupt(self, intno: int) -> None:
        """``svc`` from the ``host_call`` trampoline: serve it, status into x0."""
        uc = self.uc
        if intno != EXCP_SWI or self.handler is None:
            self.fault = f"arm64 emulation: unexpected exception {intno} at {self.pc():#x}"
            uc.emu_stop()
            return
        op, a, b, c, d = uc.reg_read_batch(_ARGS)
        uc.reg_write(_X0, self.handler(op, a, b, c, d))

    def close(self) -> None:
        """Release guest memory and input (the CPU itself goes with the object)."""
        self.unbind_memory()
        self._input = None
        self.handler = None


_POOL: list[Emulator] = []
_POOL_LOCK = threading.Lock()


def acquire(key: object) -> Emulator:
    """An idle emulator, preferably one whose bound code is ``key``."""
    with _POOL_LOCK:
        for i in range(len(_POOL) - 1, -1, -1):
            if _POOL[i].code is key:
                return _POOL.pop(i)
        if _POOL:
            return _POOL.pop()
    return Emulator()


def release(emu: Emulator) -> None:
    """Return ``emu`` to the pool (the oldest idle one is closed when it is full)."""
    emu.idle()
    with _POOL_LOCK:
        _POOL.append(emu)
        dropped = _POOL.pop(0) if len(_POOL) > POOL_SIZE else None
    if dropped is not None:
        dropped.close()


def forget(key: object) -> None:
    """Unbind code ``key`` from idle emulators (its backend is closing)."""
    with _POOL_LOCK:
        for emu in _POOL:
            if emu.code is key:
                emu.code = None
