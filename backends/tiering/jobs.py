"""Background compiles for tier-up: a queue, a few daemon threads, a worker pool.

:func:`submit` queues work for the tier-up threads (one per core; they spend
their time waiting on a compile worker, the GIL released). Compiles go to a
pool of compile workers of their own (:func:`pool`, one per core), so tier-up
never waits behind, nor holds up, the compiles ``Engine.load`` asks for.
:func:`compile_function` runs one tier-up job (:mod:`.job`) in that pool.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from zjit.verifier import VerifiedProgram

    from ..llvm.options import CodegenOptions
    from ..objfile.compiler import CompilerPool

WORKERS = max(1, os.cpu_count() or 1)
"""Tier-up threads and compile workers."""


class Refused(Exception):
    """A function tier-up does not compile (over its budget)."""


_lock = threading.Lock()
_queue: queue.Queue[Callable[[], None]] = queue.Queue()
_threads: list[threading.Thread] = []
_pool: CompilerPool | None = None


def pool() -> CompilerPool:
    """The tier-up compile workers (started on first use)."""
    from ..objfile.compiler import CompilerPool

    global _pool
    with _lock:
        if _pool is None:
            _pool = CompilerPool(max_workers=WORKERS)
        return _pool


def _shutdown() -> None:
    """At exit: stop the workers (a compile under way is of no use any more)."""
    global _pool
    with _lock:
        p, _pool = _pool, None
    if p is not None:
        p.shutdown(kill_busy=True)


def _forget_in_child() -> None:
    # A forked child has none of its parent's threads, and must not share its workers' pipes.
    global _lock, _queue, _pool
    _lock = threading.Lock()
    _queue = queue.Queue()
    _threads.clear()
    _pool = None


atexit.register(_shutdown)
os.register_at_fork(after_in_child=_forget_in_child)


def warm() -> None:
    """Start the tier-up workers (on the first tier-up request), in the
    background: the request returns to the guest at once."""
    with _lock:
        started = _pool is not None
    if not started:
        threading.Thread(target=pool().prestart, name="zjit-tierup-start", daemon=True).start()


def _serve() -> None:
    while True:
        work = _queue.get()
        try:
            work()
        except Exception:  # noqa: BLE001, S110 - a failed promotion leaves the entry baseline
            pass
        finally:
            _queue.task_done()


def submit(work: Callable[[], None]) -> None:
    """Run ``work`` on a tier-up thread, after the work queued before it."""
    with _lock:
        if len(_threads) < WORKERS:
            t = threading.Thread(target=_serve, name=f"zjit-tierup-{len(_threads)}", daemon=True)
            t.start()
            _threads.append(t)
    _queue.put(work)


def run_all(works: list[Callable[[], None]], seconds: float) -> None:
    """Run ``works`` on the tier-up threads and wait for them, at most ``seconds``."""
    done = threading.Semaphore(0)

    def wrap(w: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                w()
            finally:
                done.release()
        return run

    for w in works:
        submit(wrap(w))
    deadline = time.monotonic() + seconds
    for _ in works:
        if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return


def compile_function(program: VerifiedProgram, entry: int, opts: CodegenOptions, budget: int,
                     seconds: float) -> bytes:
    """The O2 object of the function of ``program`` entered at ``entry`` (a
    tier-up job in a worker). Raises :class:`Refused` over budget and
    ``PolicyError("COMPILE_FAILED")`` when the worker fails or runs out of time."""
    return run(pool(), program, entry, opts, budget, seconds)[1]


def run(p: CompilerPool, program: VerifiedProgram, entry: int | None, opts: CodegenOptions, budget: int,
        seconds: float) -> tuple[dict[str, object], bytes]:
    """Run a compile job (:mod:`.job`) in ``p``: (metadata, object)."""
    from . import job

    status, meta, data = job.decode_result(p.run_job(job.MODULE, job.encode(program, entry, opts, budget, False),
                                                     timeout=seconds))
    if status == job.NEED_CODE:
        status, meta, data = job.decode_result(
            p.run_job(job.MODULE, job.encode(program, entry, opts, budget, True), timeout=seconds))
    if status == job.OVER_BUDGET:
        raise Refused(data.decode("utf-8", "replace"))
    if status != job.OK:
        raise Refused("the worker did not have the program")
    return meta, data
