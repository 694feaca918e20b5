"""LLVM IR text -> relocatable ELF object, compiled in a recycled worker process.

:func:`compile_ir` sends IR text to a worker process (``compile_worker.py``) and
gets the object bytes back. The worker isolates the user's process from LLVM:
llvmlite's per-module pass-manager leak (~100 KB) and any LLVM assertion abort
stay in the worker, which is retired after ``max_modules`` modules and replaced
when it dies. A worker dying while compiling becomes
``PolicyError("COMPILE_FAILED")`` carrying the worker's stderr; the next call
starts a fresh worker. Calls are thread-safe: each worker serves one request at
a time and a pool holds up to ``max_workers`` of them.

This module never imports llvmlite (only :func:`compile_ir_inprocess` does).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

from zjit.errors import PolicyError

from ..targets import bundled_llvm_version, llvmlite_version
from . import compile_worker as proto

DEFAULT_MAX_MODULES = 64
"""Modules a worker compiles before it is replaced (bounds llvmlite's leak)."""
DEFAULT_TIMEOUT = 300.0
"""Seconds one module may take before the worker is killed."""
_STDERR_TAIL = 4000

_BOOT = (
    "import json, os, sys; "
    "sys.path[:] = json.loads(os.environ.pop('ZJIT_WORKER_SYSPATH')); "
    "from zjit.backends.objfile.compile_worker import main; main()"
)


class _WorkerDied(Exception):
    pass


class _Worker:
    """One worker process and its pipes."""

    def __init__(self) -> None:
        self.stderr: IO[bytes] = tempfile.TemporaryFile(prefix="zjit-worker-")  # noqa: SIM115 (lives as long as the worker)
        env = dict(os.environ)
        env["ZJIT_WORKER_SYSPATH"] = json.dumps(sys.path)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            bufsize=0,
            close_fds=True,
        )
        self.served = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, data: bytes, timeout: float) -> tuple[int, bytes]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            view = memoryview(data)
            fd_in = self.proc.stdin.fileno()
            while view:  # the pipe is unbuffered: write until everything is sent
                view = view[os.write(fd_in, view) :]
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerDied(f"cannot send the request ({exc})") from None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        header = self._read(fd, proto.RESP_HEADER.size, deadline)
        magic, status, length = proto.RESP_HEADER.unpack(header)
        if magic != proto.RESP_MAGIC or status not in (proto.STATUS_OK, proto.STATUS_ERROR):
            raise _WorkerDied("garbled response from the worker")
        return status, self._read(fd, length, deadline)

    def _read(self, fd: int, n: int, deadline: float) -> bytes:
        buf = bytearray()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise _WorkerDied("timed out")
            if not poller.poll(left * 1000):
                continue
            chunk = os.read(fd, min(n - len(buf), 1 << 20))
            if not chunk:
                raise _WorkerDied("the worker exited")
            buf += chunk
        return bytes(buf)

    def describe_death(self) -> str:
        """How the worker ended, with the tail of its stderr."""
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.wait()
        if rc < 0:
            try:
                how = f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                how = f"killed by signal {-rc}"
        else:
            how = f"exit status {rc}"
        return f"compile worker (pid {self.pid}) {how}; stderr: {self.stderr_tail() or '(empty)'}"

    def stderr_tail(self) -> str:
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - _STDERR_TAIL))
            return self.stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def retire(self) -> None:
        """Ask the worker to exit (end of input) and reap it in the background."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        threading.Thread(target=self._reap, name="zjit-worker-reaper", daemon=True).start()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        self.close_files()

    def close_files(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


class CompilerPool:
    """Up to ``max_workers`` compile workers, each recycled after ``max_modules``."""

    def __init__(
        self,
        *,
        max_workers: int = 1,
        max_modules: int = DEFAULT_MAX_MODULES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if max_workers < 1 or max_modules < 1 or timeout <= 0:
            raise ValueError("max_workers, max_modules and timeout must be positive")
        self.max_workers = max_workers
        self.max_modules = max_modules
        self.timeout = timeout
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._live = 0
        self._closed = False
        self.started = 0
        """Workers started so far (for tests and statistics)."""

    def compile(self, ir_text: str, *, triple: str, opt_level: int, cpu: str = "generic",
                stencils: bool = False) -> bytes:
        """Compile ``ir_text`` in a worker; see :func:`compile_ir`."""
        _check_args(opt_level, triple, cpu)
        request = proto.encode_request(ir_text, triple, opt_level, cpu, proto.FLAG_STENCILS if stencils else 0)
        return self._serve(request, self.timeout)

    def run_job(self, module: str, payload: bytes, *, timeout: float | None = None) -> bytes:
        """Run job ``module`` (``run_job(payload) -> bytes``, see ``compile_worker``)
        in a worker, killing it after ``timeout`` seconds (default: the pool's)."""
        return self._serve(proto.encode_job(module, payload), timeout or self.timeout)

    def _serve(self, request: bytes, timeout: float) -> bytes:
        worker = self._acquire()
        with self._cond:
            self._busy.add(worker)
        try:
            status, payload = worker.request(request, timeout)
        except _WorkerDied as exc:
            self._unbusy(worker)
            worker.kill()
            detail = worker.describe_death()
            worker.close_files()
            self._release(None)
            raise PolicyError("COMPILE_FAILED", f"LLVM compile worker failed ({exc}): {detail}") from None
        except BaseException:
            # Interrupted between request and answer: the pipe state is unknown.
            self._unbusy(worker)
            worker.kill()
            worker.retire()
            self._release(None)
            raise
        self._unbusy(worker)
        worker.served += 1
        if worker.served >= self.max_modules:
            worker.retire()
            self._release(None, replace=True)
        else:
            self._release(worker)
        if status != proto.STATUS_OK:
            raise PolicyError("COMPILE_FAILED", payload.decode("utf-8", "replace"))
        return payload

    def _unbusy(self, worker: _Worker) -> None:
        with self._cond:
            self._busy.discard(worker)

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise PolicyError("COMPILE_FAILED", "the compiler pool has been shut down")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    # Died while idle (killed from outside): not this module's fault.
                    worker.close_files()
                    self._live -= 1
                if self._live < self.max_workers:
                    self._live += 1
                    break
                self._cond.wait()
        try:
            return self._start()
        except BaseException:
            self._release(None)
            raise

    def _start(self) -> _Worker:
        try:
            worker = _Worker()
        except OSError as exc:
            raise PolicyError("COMPILE_FAILED", f"cannot start the LLVM compile worker: {exc}") from None
        with self._cond:
            self.started += 1
        return worker

    def _release(self, worker: _Worker | None, *, replace: bool = False) -> None:
        """Return ``worker`` to the pool; None means its slot is free again."""
        fresh: _Worker | None = None
        if worker is None and replace and not self._closed:
            try:
                fresh = self._start()  # warm replacement: its llvmlite import overlaps our work
            except PolicyError:
                fresh = None
        with self._cond:
            if worker is not None and self._closed:
                worker.retire()
                self._live -= 1
            elif worker is not None:
                self._idle.append(worker)
            elif fresh is not None:
                self._idle.append(fresh)
            else:
                self._live -= 1
            self._cond.notify()

    def prestart(self) -> None:
        """Start idle workers up to :attr:`max_workers` now (their llvmlite
        import then overlaps the caller's work)."""
        while True:
            with self._cond:
                if self._closed or self._live >= self.max_workers:
                    return
                self._live += 1
            try:
                worker = self._start()
            except PolicyError:
                with self._cond:
                    self._live -= 1
                return
            with self._cond:
                self._idle.append(worker)
                self._cond.notify()

    def pids(self, *, busy: bool = False) -> list[int]:
        """Process ids of the idle (or, with ``busy``, the working) workers."""
        with self._cond:
            return [w.pid for w in (self._busy if busy else self._idle) if w.alive()]

    def shutdown(self, kill_busy: bool = False) -> None:
        """Stop every idle worker (with ``kill_busy``, the working ones too: their
        callers get COMPILE_FAILED); later calls raise COMPILE_FAILED."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            busy = list(self._busy) if kill_busy else []
            self._cond.notify_all()
        for worker in idle:
            worker.retire()
        for worker in busy:
            worker.kill()


def _check_args(opt_level: int, triple: str, cpu: str) -> None:
    if opt_level not in proto.CODEGEN_OPT:
        raise PolicyError("BAD_POLICY", f"opt_level must be 0, 1 or 2, not {opt_level!r}", path="opt_level")
    if not triple or not cpu:
        raise PolicyError("BAD_POLICY", "triple and cpu must be non-empty", path="triple")


_default_lock = threading.Lock()
_default_pool: CompilerPool | None = None


def default_pool() -> CompilerPool:
    """The process-wide pool (``ZJIT_COMPILE_WORKERS`` workers, default up to 2)."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            n = int(os.environ.get("ZJIT_COMPILE_WORKERS", "0") or 0) or min(2, os.cpu_count() or 1)
            _default_pool = CompilerPool(max_workers=n)
        return _default_pool


def _shutdown_default() -> None:
    global _default_pool
    with _default_lock:
        pool, _default_pool = _default_pool, None
    if pool is not None:
        pool.shutdown()


def _forget_default_in_child() -> None:
    # A forked child must not talk to its parent's workers over shared pipes.
    global _default_pool, _default_lock
    _default_lock = threading.Lock()
    _default_pool = None


atexit.register(_shutdown_default)
os.register_at_fork(after_in_child=_forget_default_in_child)


def compile_ir(ir_text: str, *, triple: str, opt_level: int, cpu: str = "generic",
               stencils: bool = False) -> bytes:
    """Compile LLVM IR text to a PIC, small-code-model relocatable ELF object
    (``stencils``: a stencil object, see :mod:`.stencils`).

    ``opt_level`` 0 runs no IR passes and codegen at O0; 1 runs SROA, instcombine
    and simplifycfg with codegen at O1; 2 runs ``compile_worker.O2_PASSES`` with
    codegen at O2.
    Invalid IR or a crashing worker raises ``PolicyError("COMPILE_FAILED")``.
    """
    return default_pool().compile(ir_text, triple=triple, opt_level=opt_level, cpu=cpu, stencils=stencils)


def compile_ir_inprocess(ir_text: str, *, triple: str, opt_level: int, cpu: str = "generic",
                         stencils: bool = False) -> bytes:
    """Same as :func:`compile_ir` but in this process (imports llvmlite; for tests)."""
    _check_args(opt_level, triple, cpu)
    try:
        return proto.compile_object(ir_text, triple, opt_level, cpu, proto.FLAG_STENCILS if stencils else 0)
    except proto.CompileFailure as exc:
        raise PolicyError("COMPILE_FAILED", str(exc)) from None


__all__ = [
    "CompilerPool",
    "bundled_llvm_version",
    "compile_ir",
    "compile_ir_inprocess",
    "default_pool",
    "llvm_version",
    "llvmlite_version",
]


def llvm_version() -> str:
    """``"LLVM <x.y.z> (llvmlite <v>)"``; does not import llvmlite in the caller."""
    return f"LLVM {bundled_llvm_version()} (llvmlite {llvmlite_version()})"
