"""One instance of a loaded module: guest memory, host I/O and runs.

Nothing here is engine specific: an :class:`Instance` builds the per-run state of
``isa.md`` 2.4, hands it to the module's Executable and turns the engine's
:class:`~zjit.machine.Outcome` into a :class:`~zjit.result.Result`.
"""

from __future__ import annotations

import time

from .errors import PolicyError, TrapError
from .isa import MASK64, NUM_REGS, REG_INDEX, REG_NAMES
from .machine import DEFAULT, HostIO, Machine
from .policy import check_fuel
from .result import Frame, Result, Trap
from .sigint import SigintGuard

TYPE_CHECKING = False  # typing stays unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from typing import BinaryIO

    from .machine import CtlHandler, LogSink, Outcome
    from .runtime import Module


class Instance:
    """Guest memory plus host I/O of one module; runs are sequential.

    Create with :meth:`zjit.runtime.Module.instantiate`. Memory (and the ALLOC
    heap top) persist across runs; registers, CMP and the call stack do not.
    Use one instance per thread; :meth:`interrupt` may be called from any thread.
    """

    def __init__(
        self,
        module: Module,
        *,
        stdin: bytes | BinaryIO | None = None,
        stdout: BinaryIO | None = None,
        log: LogSink | None | object = DEFAULT,
        ctl: CtlHandler | None = None,
    ) -> None:
        from .memory import build_memory

        self.module = module
        policy = module.policy
        image = build_memory(module.image, policy)
        self.host = HostIO(stdin=stdin, stdout=stdout, log=log, ctl=ctl,
                           max_output_bytes=policy.max_output_bytes)
        self.machine = Machine(
            memory=image.memory,
            readonly=image.readonly,
            heap_top=image.heap_start,
            host=self.host,
            max_call_depth=policy.max_call_depth,
        )

    @property
    def memory(self) -> memoryview:
        """Writable view of guest memory (persists across runs)."""
        return memoryview(self.machine.memory)

    @property
    def heap_top(self) -> int:
        """Current top of the ALLOC bump allocator."""
        return self.machine.heap_top

    def interrupt(self) -> None:
        """Stop the running guest (or the next run, if none is running) with a
        TIMEOUT trap at its next block entry. Thread-safe."""
        self.machine.interrupt()

    def run(self, *, fuel: int | None = None, raise_on_trap: bool = False, **registers: int) -> Result:
        """Run the module entry. ``fuel`` overrides ``Policy.fuel`` for this run;
        registers may be preset as for :meth:`call` (``hl=5``)."""
        return self._run(self.module.entry, fuel, raise_on_trap, registers)

    def call(self, name: str, *, fuel: int | None = None, raise_on_trap: bool = False,
             **registers: int) -> Result:
        """Run the export ``name`` with some registers preset (``hl=..``, case-insensitive).

        Raises PolicyError NO_EXPORT for an unknown export name.
        """
        pc = self.module.exports.get(name)
        if pc is None:
            raise PolicyError("NO_EXPORT", f"module has no export named {name!r}", path=f"export {name}")
        return self._run(pc, fuel, raise_on_trap, registers)

    # --- internals -------------------------------------------------------------------
    def _run(self, pc: int, fuel: int | None, raise_on_trap: bool, given: dict[str, int]) -> Result:
        regs = _registers(given)
        policy = self.module.policy
        if fuel is None:
            fuel = policy.fuel
        else:
            check_fuel(fuel, "run(fuel=)")
        m, host = self.machine, self.host
        m.fuel = fuel
        m.deadline = None if policy.timeout is None else time.monotonic() + policy.timeout
        host.begin_run()
        guard = SigintGuard.install(m)  # Ctrl-C -> TIMEOUT on every engine (zjit/sigint.py)
        try:
            outcome = self.module.executable.execute(m, pc, regs)
        except BaseException:
            if guard is not None and guard.count:
                m.interrupted = False  # our request: the run is over
            raise
        finally:
            if guard is not None:
                guard.restore()
        timed_out = outcome.trap is not None and outcome.trap.name == "TIMEOUT"
        if guard is not None:
            cause = guard.cause(timed_out)
            if cause is not None:
                outcome.cause = cause
        if timed_out:
            m.interrupted = False  # the pending interrupt was delivered
        result = self._result(outcome)
        if raise_on_trap and result.trap is not None:
            raise TrapError(result) from result.trap.cause
        return result

    def _result(self, out: Outcome) -> Result:
        trap = None
        if out.trap is not None:
            assert out.pc is not None
            source_of = self.module.source_of
            trap = Trap(out.trap, out.pc, out.address, out.length, source_of(out.pc), out.cause,
                        None if out.backtrace is None else tuple(Frame(pc, source_of(pc)) for pc in out.backtrace),
                        out.omitted)
        return Result(
            trap=trap,
            registers={REG_NAMES[i]: out.registers[i] & MASK64 for i in range(NUM_REGS)},
            fuel_left=self.machine.fuel,
            stdout=self.host.take_output(),
            log=tuple(self.host.log_records),
        )


def _registers(given: dict[str, int]) -> list[int]:
    regs = [0] * NUM_REGS
    for key, value in given.items():
        index = REG_INDEX.get(key.upper())
        if index is None:
            raise TypeError(f"unknown register {key!r} (expected one of {', '.join(REG_NAMES)})")
        if isinstance(value, bool) or not isinstance(value, int) or not -(1 << 63) <= value <= MASK64:
            raise ValueError(f"register {key} must be an int in -2**63 .. 2**64-1")
        regs[index] = value & MASK64
    return regs


def source_lookup(debug_pcs: list[int], pc: int) -> int | None:
    """The nearest debug pc at or before ``pc`` (None if there is none)."""
    from bisect import bisect_right  # only traps need it

    k = bisect_right(debug_pcs, pc)
    return debug_pcs[k - 1] if k else None
