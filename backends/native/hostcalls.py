"""Host functions called from native JIT code: stream input, output flushing, LOG and CTL.

The callbacks are created once per process (each ctypes callback costs a libffi
closure) and find the run that called them through the context address they
receive, in :data:`_RUNS`; the work itself is the engines' shared
:meth:`~zjit.backends.run.CodeRun.host_call`, which follows the
exception-capturing pattern required for code called from native frames:
nothing may propagate through the JIT code, so every exception is recorded in
the run and the callback returns 1; the generated code checks the return value
and exits with a HOST trap at the primitive's pc, the primitive having had no
effect. The engine chains the exception into the trap (``Outcome.cause``) and
re-raises exceptions that are not ``Exception`` subclasses (KeyboardInterrupt,
SystemExit) once the JIT code has returned, like the interpreter lets them
propagate.

Spans have already been checked by the generated code when a callback runs.
"""

from __future__ import annotations

import ctypes
import threading

from ..context import FIELDS, HOST_FN
from ..run import CodeRun

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

_RUNS: dict[int, CodeRun] = {}
_runs_lock = threading.Lock()


def register(run: CodeRun) -> int:
    """Make ``run`` reachable from host calls; returns the context address key."""
    key = ctypes.addressof(run.ctx)
    with _runs_lock:
        _RUNS[key] = run
    return key


def unregister(key: int) -> None:
    """Forget a finished run."""
    with _runs_lock:
        _RUNS.pop(key, None)


def _callback(name: str) -> Any:
    """The ctypes callback for context field ``name``."""

    def call(ctx: int, a: int, b: int, c: int, d: int) -> int:
        run = _RUNS.get(ctx)
        return 1 if run is None else run.host_call(name, a, b, c, d)

    return HOST_FN(call)


_CALLBACKS = {f.name: _callback(f.name) for f in FIELDS if f.kind == "fn" and f.name.startswith("host_")}


def _addr(obj: object) -> int:
    value = ctypes.cast(obj, ctypes.c_void_p).value  # type: ignore[arg-type]
    assert value is not None
    return value


ADDRESSES: dict[str, int] = {
    **{name: _addr(fn) for name, fn in _CALLBACKS.items()},
    "fn_memmove": _addr(ctypes.memmove),
    "fn_memset": _addr(ctypes.memset),
}
"""Context field -> address of the function it must hold."""
