"""The arm64 engine (backend ``"arm64"``): the JIT's AArch64 code, run in unicorn.

The program is lifted and lowered exactly as for the native JIT, with the
AArch64 triple, per :class:`~zjit.machine.Specialisation` (metered or not,
memory size and read-only ranges compiled in), compiled in the compile worker,
cached in memory and on disk like JIT code (the shared
:class:`~zjit.backends.engine.CompilingBackend`), linked at a fixed guest
address (:func:`~zjit.backends.objfile.linker.link_image`) and run on an
emulated CPU (:mod:`.emulator`) on a helper thread while the calling thread
waits (:meth:`~zjit.backends.run.CodeRun.wait`: deadlines, interrupts and
Ctrl-C reach the guest). The run context is the same structure as the JIT's;
its ``host_call`` leads to a trampoline whose ``svc`` is handled in the hook,
synchronously, by the engines' shared
:meth:`~zjit.backends.run.CodeRun.host_call`. So Results and final memory match
the interpreter and the JIT bit for bit.

Timeouts and :meth:`~zjit.machine.Machine.interrupt` set the context's
interrupt flag from another thread, so the generated code's own poll traps
TIMEOUT at the right block leader; only when that does not happen within
:data:`FORCE_STOP_AFTER` seconds is the CPU stopped from outside (then the
TIMEOUT is reported at the entry of the guest function that was running, with
the registers the run started with).

Use: ``zjit.Engine(policy, backend="arm64")``; see docs/arm64.md.
"""

from __future__ import annotations

import bisect
import ctypes
import re
import threading

from zjit.verifier import VerifiedProgram

from zjit.isa import NUM_REGS, TrapKind
from zjit.machine import Machine, Outcome

from ..context import HOST_TIERUP, Ctx
from ..engine import CodeInfo, CompilingBackend
from ..objfile.linker import LinkedImage, link_image
from ..run import CodeRun
from ..targets import AARCH64_TRIPLE
from . import emulator as emu_mod
from .emulator import CODE_BASE, OUT_BASE, OUT_BUFFER_BYTES, TABLE_BASE, Emulator
from .runtime import frame_bound

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

FORCE_STOP_AFTER = 1.0
"""Seconds after an interrupt before the CPU is stopped from outside."""
STACK_RESERVE = 64 << 10
"""Stack kept below the guest frames (the stack guard trips before it is used)."""
_FUNC = re.compile(r"(?:f_|\w*entry_)([0-9a-f]+)$")


def _available() -> bool:
    try:
        import unicorn  # noqa: F401
    except ImportError:
        return False
    return True


class _Placed:
    """Where tiered code lives in an emulator's address space: baseline code at
    CODE_BASE, tier-up objects after it (linked there, one after another)."""

    _ALIGN = 1 << 20

    def __init__(self, size: int) -> None:
        self.base = CODE_BASE
        self._next = CODE_BASE + (size + self._ALIGN - 1) // self._ALIGN * self._ALIGN
        self._lock = threading.Lock()

    def place(self, obj: bytes, symbol: str) -> tuple[int, LinkedImage]:
        """Link ``obj`` at the next free place."""
        from ..objfile.linker import plan

        p = plan(obj)
        with self._lock:
            at = self._next
            self._next += (p.size + 0xFFFF) & ~0xFFFF
        image = p.link(at)
        return int(image.symbols[symbol]), image


class Arm64Code:
    """One compiled specialisation: the object linked at CODE_BASE plus its metadata."""

    def __init__(self, obj: bytes, info: CodeInfo) -> None:
        self.info = info
        self.obj = obj
        """The object (its frame table is read at a trap, :mod:`zjit.backends.backtrace`)."""
        self.frames: Any = None
        self.image: LinkedImage = link_image(obj, CODE_BASE)
        self.entries = {pc: self.image.symbols[sym] for pc, sym in info.entries.items()}
        starts = sorted((addr, int(m.group(1), 16)) for name, addr in self.image.symbols.items()
                        if (m := _FUNC.match(name)))
        self._starts = [a for a, _ in starts]
        self._pcs = [pc for _, pc in starts]

    def call_stack(self, ctx: Any, word: Any, x86: bool, limit: int) -> list[int] | None:
        """The guest call stack at a trap (:func:`zjit.backends.backtrace.call_stack`)."""
        from ..backtrace import O2Code, call_stack

        if self.frames is None:
            start, end = self.image.code_range()
            self.frames = O2Code(start, end, self.obj)
        return call_stack(ctx, [self.frames], word, x86, limit)

    def guest_function_at(self, address: int) -> int | None:
        """Guest pc of the function whose native code contains ``address``."""
        text = self.image.region("text")
        if text is None or not 0 <= address - CODE_BASE - text.offset < self.image.code_size:
            return None
        k = bisect.bisect_right(self._starts, address)
        return self._pcs[k - 1] if k else None


def measure_frames(obj: bytes) -> int:
    """:func:`~zjit.backends.arm64.runtime.frame_bound` of an AArch64 object."""
    from ..objfile import elf

    parsed = elf.parse_elf(obj)
    best = 0
    for sec in parsed.sections:
        if sec.flags & elf.SHF_EXECINSTR:
            funcs = [(s.value, s.size) for s in parsed.symbols if s.shndx == sec.index and s.type == elf.STT_FUNC]
            best = max(best, frame_bound(sec.data, funcs or [(0, len(sec.data))]))
    return best


class Arm64Backend(CompilingBackend):
    """Backend factory for AArch64 code run in unicorn (registry name ``"arm64"``)."""

    name = "arm64"
    triple = AARCH64_TRIPLE

    @staticmethod
    def available() -> bool:
        """True when unicorn can be imported."""
        return _available()

    def measure_frames(self, obj: bytes) -> int:
        """:func:`measure_frames` of the object."""
        return measure_frames(obj)

    def from_object(self, obj: bytes, info: CodeInfo) -> Arm64Code:
        """Link the object at the emulator's code base."""
        return Arm64Code(obj, info)

    def release(self, code: Any) -> None:
        """Forget the compiled code (idle emulators unbind it)."""
        emu_mod.forget(code)
        if hasattr(code, "table"):
            code.close()

    def map_baseline(self, image: Any) -> Any:
        """Baseline code runs at CODE_BASE (emulators map it per run)."""
        return _Placed(len(image.code))

    def table_memory(self, count: int) -> tuple[Any, int]:
        """The table: kept here, copied into each emulator at TABLE_BASE."""
        return (ctypes.c_uint64 * count)(), TABLE_BASE

    def map_function(self, baseline: Any, obj: bytes, symbol: str) -> tuple[int, Any]:
        """Link a tier-up object after the code placed before it."""
        placed: _Placed = baseline
        return placed.place(obj, symbol)

    def release_mapping(self, handle: Any) -> None:
        """Nothing to free: emulators unmap code when they bind other code."""

    def run(self, program: VerifiedProgram, machine: Machine, code: Any, entry: Any,
            registers: list[int]) -> Outcome:
        """Run ``code`` from the guest address ``entry`` on a pooled emulator."""
        emu = emu_mod.acquire(code)
        try:
            return _Run(program, machine, code, emu, registers).go(entry)
        finally:
            emu_mod.release(emu)


class _Run(CodeRun):
    """One run on one emulator: the context and buffers live in its address space;
    a run the code does not stop in time is stopped from outside."""

    stack_kind = "emulated"
    code: Arm64Code

    def __init__(self, program: VerifiedProgram, machine: Machine, code: Arm64Code, emu: Emulator,
                 registers: list[int]) -> None:
        self.emu = emu
        self._state_lock = threading.RLock()  # re-entered by a signal handler (Ctrl-C) in interrupt()
        self._running = False
        self._forced: threading.Timer | None = None
        self.stopped = False
        super().__init__(program, machine, code, registers)

    # -- where things live --------------------------------------------------------------
    def bind(self) -> Ctx:
        emu = self.emu
        if hasattr(self.code, "table"):  # tiered code
            emu.bind_tiered(self.code)
        else:
            emu.bind_code(self.code, self.code.image)
        self.memory = emu.bind_memory(self.machine.memory)
        ro_table = emu.reset_ctx(self.machine.readonly)  # may replace emu.ctx
        ctx = emu.ctx
        ctx.ro_ranges = ro_table
        ctx.mem_base = emu_mod.MEM_BASE
        return ctx

    def bind_input(self, data: bytes) -> int:
        return self.emu.bind_input(data)

    def bind_output(self) -> tuple[int, int]:
        self.out = self.emu.out
        return OUT_BASE, OUT_BUFFER_BYTES

    def host_functions(self) -> dict[str, int]:
        return self.emu.functions

    def release(self) -> None:
        self.emu.copy_back(self.machine.memory)

    def stack_word(self, address: int) -> int:
        """A word of the emulated stack (read after the run stopped, at a trap)."""
        return self.emu.stack_word(address)

    # -- interrupts ---------------------------------------------------------------------
    def interrupt(self) -> None:
        """Set the flag the generated code polls; stop the CPU if it does not react."""
        self.ctx.interrupt = 1
        with self._state_lock:
            if self._running and self._forced is None:
                self._forced = threading.Timer(FORCE_STOP_AFTER, self._force_stop)
                self._forced.daemon = True
                self._forced.start()

    def _force_stop(self) -> None:
        with self._state_lock:
            if self._running:
                self.stopped = True
                self.emu.stop()

    def running(self, flag: bool) -> None:
        with self._state_lock:
            self._running = flag
            forced = None if flag else self._forced
            if not flag:
                self._forced = None
        if forced is not None:
            forced.cancel()

    # -- the run ------------------------------------------------------------------------------
    def attach(self) -> None:
        need = self.stack_need(2 * STACK_RESERVE)
        try:
            low = self.emu.ensure_stack(need)
        except MemoryError as exc:
            raise self.stack_error(need) from exc
        self.set_stack_limit(low, STACK_RESERVE)
        self.emu.handler = self.host_call

    def host_call(self, op: int, a: int, b: int, c: int, d: int) -> int:
        """The shared host calls; after a tier-up request the emulator takes
        over what tier-up installed (O2 code and table slots)."""
        status = super().host_call(op, a, b, c, d)
        if op == HOST_TIERUP:
            self.emu.bind_tiered(self.code)
        return status

    def detach(self) -> None:
        self.emu.handler = None

    def prepare_entry(self, entry: Any) -> int:
        """The address to start at (tiered code: also the entry id and table)."""
        if isinstance(entry, tuple):
            address, self.ctx.run_id = entry
            self.ctx.ftab = TABLE_BASE
            return int(address)
        return int(entry)

    def call(self, entry: Any) -> int | None:
        """Emulate on a helper thread (``svc`` host calls are served there, in the
        hook) while this thread waits, so it sees deadlines and signals."""
        done = threading.Event()
        out: list[int | None] = []
        error: list[BaseException] = []

        start = self.prepare_entry(entry)

        def emulate() -> None:
            try:
                out.append(self.emu.run(start))
            except RuntimeError as exc:
                if self.stopped:
                    out.append(None)
                else:
                    error.append(exc)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                error.append(exc)
            finally:
                done.set()

        worker = threading.Thread(target=emulate, name="zjit-arm64", daemon=True)
        worker.start()
        self.wait(done.wait)
        worker.join()
        if error:
            raise error[0]
        return out[0]

    def outcome(self, status: int | None) -> Outcome:
        if self.stopped and (status is None or self.emu.pc() != emu_mod.SENTINEL):
            return self._stopped_outcome()
        return super().outcome(status)

    def _stopped_outcome(self) -> Outcome:
        """TIMEOUT after an outside stop: the entry pc of the running function (of
        the caller when the CPU was in the runtime page, a leaf routine)."""
        pc = self.code.guest_function_at(self.emu.pc())
        if pc is None:
            pc = self.code.guest_function_at(self.emu.lr())
        regs = [int(self.ctx.regs[i]) for i in range(NUM_REGS)]
        return Outcome(regs, TrapKind.TIMEOUT, pc if pc is not None else 0)
