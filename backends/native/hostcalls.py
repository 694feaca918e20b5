"""Host functions called from JIT code: stream input, output flushing, LOG and CTL.

The callbacks are created once per process (each ctypes callback costs a libffi
closure) and find the state of the run that called them through the context
address they receive, in :data:`_RUNS`. Each one follows the exception-capturing
pattern required for code called from native frames: nothing may propagate
through the JIT code, so every callback catches ``BaseException``, records it in
the run state and returns 1; the generated code checks the return value and
exits with a HOST trap at the primitive's pc, the primitive having had no effect.
The engine chains the exception into the trap (``Outcome.cause``) and re-raises
exceptions that are not ``Exception`` subclasses (KeyboardInterrupt, SystemExit)
once the JIT code has returned, like the interpreter lets them propagate.

Spans have already been checked by the generated code when a callback runs.
"""

from __future__ import annotations

import ctypes
import threading

from zjit.isa import MASK64, sext
from zjit.machine import Machine

from ..context import HOST_FN, Ctx


class RunState:
    """What a running guest's host calls need: the machine, its context and the
    native output buffer; ``error`` is the first exception a handler raised."""

    __slots__ = ("machine", "ctx", "out_buf", "error")

    def __init__(self, machine: Machine, ctx: Ctx, out_buf: ctypes.Array[ctypes.c_char] | None) -> None:
        self.machine = machine
        self.ctx = ctx
        self.out_buf = out_buf
        self.error: BaseException | None = None

    def flush_output(self) -> None:
        """Hand the bytes pending in the native output buffer to the host."""
        n = self.ctx.out_len
        if n and self.out_buf is not None:
            data = self.out_buf.raw[:n]
            self.ctx.out_len = 0
            self.machine.host.write(data)


_RUNS: dict[int, RunState] = {}
_runs_lock = threading.Lock()


def register(state: RunState) -> int:
    """Make ``state`` reachable from host calls; returns the context address key."""
    key = ctypes.addressof(state.ctx)
    with _runs_lock:
        _RUNS[key] = state
    return key


def unregister(key: int) -> None:
    """Forget a finished run."""
    with _runs_lock:
        _RUNS.pop(key, None)


def _fail(state: RunState | None, exc: BaseException) -> int:
    if state is not None and state.error is None:
        state.error = exc
    return 1


def _host_in(ctx: int, dst: int, cap: int, _c: int, _d: int) -> int:
    state = _RUNS.get(ctx)
    try:
        assert state is not None, "host call from an unknown run"
        data = state.machine.host.read(cap)
        if len(data) > cap:
            raise ValueError(f"input handler returned {len(data)} bytes for a read of {cap}")
        state.machine.memory[dst:dst + len(data)] = data
        state.ctx.host_result = len(data)
        return 0
    except BaseException as exc:  # noqa: BLE001 - nothing may cross the native frames
        return _fail(state, exc)


def _host_out(ctx: int, src: int, n: int, _c: int, _d: int) -> int:
    state = _RUNS.get(ctx)
    try:
        assert state is not None, "host call from an unknown run"
        state.flush_output()
        state.machine.host.write(bytes(state.machine.memory[src:src + n]))
        return 0
    except BaseException as exc:  # noqa: BLE001
        return _fail(state, exc)


def _host_log(ctx: int, tp: int, tn: int, mp: int, mn: int) -> int:
    state = _RUNS.get(ctx)
    try:
        assert state is not None, "host call from an unknown run"
        mem = state.machine.memory
        state.machine.host.log(bytes(mem[tp:tp + tn]), bytes(mem[mp:mp + mn]))
        return 0
    except BaseException as exc:  # noqa: BLE001
        return _fail(state, exc)


def _host_ctl(ctx: int, rp: int, rn: int, bp: int, cap: int) -> int:
    state = _RUNS.get(ctx)
    try:
        assert state is not None, "host call from an unknown run"
        mem = state.machine.memory
        value, data = state.machine.host.ctl(bytes(mem[rp:rp + rn]), cap)
        if not isinstance(value, int) or len(data) > cap:
            raise ValueError("control handler result is malformed")
        mem[bp:bp + len(data)] = data
        state.ctx.host_result = sext(value & MASK64, 64)
        return 0
    except BaseException as exc:  # noqa: BLE001
        return _fail(state, exc)


HOST_IN = HOST_FN(_host_in)
HOST_OUT = HOST_FN(_host_out)
HOST_LOG = HOST_FN(_host_log)
HOST_CTL = HOST_FN(_host_ctl)


def _addr(obj: object) -> int:
    value = ctypes.cast(obj, ctypes.c_void_p).value  # type: ignore[arg-type]
    assert value is not None
    return value


ADDRESSES: dict[str, int] = {
    "host_in": _addr(HOST_IN),
    "host_out": _addr(HOST_OUT),
    "host_log": _addr(HOST_LOG),
    "host_ctl": _addr(HOST_CTL),
    "fn_memmove": _addr(ctypes.memmove),
    "fn_memset": _addr(ctypes.memset),
}
"""Context field -> address of the function it must hold."""
