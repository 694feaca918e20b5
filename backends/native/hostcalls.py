"""Serving a guest thread's host requests (native engine).

The generated code's ``host_call`` is ``rt_host_request`` in the compiled
object: it posts the operation and its arguments in the context (``hc_op``,
``hc_args``), sets ``hc_state`` to REQUEST, wakes the engine thread and sleeps
until the state says SERVED or FAILED. The engine thread, the one that called
``run()``, runs :func:`serve_step` in a loop (:meth:`~zjit.backends.run.CodeRun.wait`):
it serves a posted request with the engines' shared
:meth:`~zjit.backends.run.CodeRun.host_call` (reading and writing guest memory
through the run's buffer), answers, and otherwise sleeps on the state word
until the guest thread posts again or reports FINISHED.

So no Python code ever runs on the guest thread, no ctypes callback (libffi
closure) exists, and an exception from a handler stays in the run
(:attr:`~zjit.backends.run.CodeRun.error`): the generated code traps HOST at
the primitive, which has had no effect, and the engine chains the exception
into the trap (``Outcome.cause``) or re-raises it if it is not an
``Exception`` (KeyboardInterrupt, SystemExit) once the guest has stopped.

Ordering: the guest thread publishes with release stores and reads the answer
with an acquire load; this side's plain stores rely on x86-64 keeping stores in
order (the only host the native engine runs on today).
"""

from __future__ import annotations

from ..context import HC_FAILED, HC_FINISHED, HC_REQUEST, HC_SERVED, OFFSETS
from ..run import CodeRun
from .thread import futex_wait, futex_wake

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from collections.abc import Callable


def server(run: CodeRun, ctx_address: int) -> Callable[[float], bool]:
    """The :meth:`~zjit.backends.run.CodeRun.wait` step of ``run`` (its context at
    ``ctx_address``): serve a pending request or sleep; True once FINISHED."""
    ctx = run.ctx
    word = ctx_address + OFFSETS["hc_state"]
    args = ctx.hc_args

    answer: list[int] = []  # served, not yet delivered (a signal handler raised in between)

    def serve_step(timeout: float) -> bool:
        state = ctx.hc_state
        if state == HC_REQUEST:
            if not answer:
                answer.append(run.host_call(ctx.hc_op, args[0], args[1], args[2], args[3]))
            failed = answer.pop()
            ctx.hc_state = HC_FAILED if failed else HC_SERVED
            futex_wake(word)
            return False
        if state == HC_FINISHED:
            return True
        futex_wait(word, state, timeout)
        return False

    return serve_step
