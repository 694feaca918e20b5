"""The embedding API: :class:`Engine` -> :class:`Module` -> :class:`~zjit.instance.Instance`.

An Engine pairs a :class:`~zjit.policy.Policy` with one backend. Backends are
found through :data:`BACKENDS` and imported only when asked for, so using the
interpreter never imports the JIT (or llvmlite). Nothing in this module knows how
an engine executes code; see :class:`zjit.machine.Backend`.
"""

from __future__ import annotations

import os
import sys
import threading

from .errors import PolicyError
from .image import ModuleImage
from .instance import Instance, source_lookup
from .machine import DEFAULT
from .policy import Policy

TYPE_CHECKING = False  # typing stays unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    from zjit.verifier.program import VerifiedProgram

    from .machine import Backend, CtlHandler, Executable, LogSink

BACKENDS: dict[str, str] = {
    "interp": "zjit.interp:InterpBackend",
    "jit": "zjit.backends.native.engine:JitBackend",
    "arm64": "zjit.backends.arm64.engine:Arm64Backend",
}
"""Backend name -> ``"module:attr"`` of a factory returning a :class:`Backend`.

A factory may have an ``available()`` callable; when it returns false the backend
is reported unavailable (for example a missing native toolchain)."""

def _optimized(level: int) -> dict[str, object]:
    return {"opt_level": level, "tier": "optimized"}


_TIERED: list[tuple[str, dict[str, object]]] = [("baseline", {"tier": "baseline"}),
                                               ("auto1", {"tier": "auto", "tier_threshold": 1})]
ENGINE_VARIANTS: dict[str, list[tuple[str, dict[str, object]]]] = {
    "interp": [("interp", {})],
    "jit": [(f"jit-O{n}", _optimized(n)) for n in (0, 1, 2)] + [(f"jit-{name}", over) for name, over in _TIERED],
    "arm64": [(f"arm64-O{n}", _optimized(n)) for n in (0, 2)] + [(f"arm64-{name}", over) for name, over in _TIERED],
}
"""Configurations the conformance suite runs for each backend: the whole module
at O0/O1/O2 (arm64, emulated and slower, at the two ends), baseline code alone,
and tier-up after one execution (``auto1``: mixed-tier code from the first run)."""

Source = bytes | bytearray | memoryview | str | os.PathLike[str] | ModuleImage


def _factory(name: str) -> Callable[[], Backend]:
    """Import the factory of backend ``name`` (PolicyError BAD_BACKEND if it cannot)."""
    spec = BACKENDS.get(name)
    if spec is None:
        raise PolicyError("BAD_BACKEND", f"unknown backend {name!r} (known: {', '.join(BACKENDS)})",
                          path="backend")
    module_name, attr = spec.split(":")
    try:
        __import__(module_name)
        factory: Callable[[], Backend] = getattr(sys.modules[module_name], attr)
    except (ImportError, AttributeError) as exc:
        raise PolicyError("BAD_BACKEND", f"backend {name!r} is not available: {exc}",
                          path="backend") from exc
    available = getattr(factory, "available", None)
    if callable(available) and not available():
        raise PolicyError("BAD_BACKEND", f"backend {name!r} is not available on this machine",
                          path="backend")
    return factory


def available_backends() -> list[str]:
    """Names of the backends that import and report themselves available."""
    names = []
    for name in BACKENDS:
        try:
            _factory(name)
        except PolicyError:
            continue
        names.append(name)
    return names


def engine_configs() -> list[tuple[str, str, dict[str, object]]]:
    """``(id, backend, policy overrides)`` for every configuration of every available
    backend (the parameters of the conformance suite)."""
    return [(ident, name, dict(overrides))
            for name in available_backends()
            for ident, overrides in ENGINE_VARIANTS.get(name, [(name, {})])]


class _Pending:
    """A module being prepared by one load; other loads of it wait here."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._result: Executable | None = None
        self._error: BaseException | None = None

    def done(self, executable: Executable) -> None:
        self._result = executable
        self._event.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    def wait(self) -> Executable:
        self._event.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class Engine:
    """A policy plus a backend; loads modules, compiling each distinct one once.

    Thread-safe: modules and their compiled code may be shared between threads
    (one instance per thread).
    """

    def __init__(self, policy: Policy | None = None, backend: str = "jit") -> None:
        self.policy = policy if policy is not None else Policy()
        self.backend_name = backend
        self.backend: Backend = _factory(backend)()
        self._lock = threading.Lock()
        self._compiled: dict[str, Executable] = {}
        self._pending: dict[str, _Pending] = {}

    def load(self, src: Source, format: str = "auto") -> Module:
        """Parse (unless given a ModuleImage), verify and prepare a module.

        ``src`` is a path (a container, an assembly source ``.s``/``.asm``/``.zasm``,
        raw code ``.bin``/``.code``/``.raw``), bytes or a ModuleImage; ``format``
        ``"asm"`` or ``"raw"`` says how to read a path or bytes instead of sniffing
        (docs/formats.md). Raises ContainerError, AsmError, VerifyError or
        PolicyError; code is prepared once per distinct verified module (keyed by
        its digest) and reused.
        """
        from zjit.verifier import verify

        if isinstance(src, ModuleImage):
            image = src
        else:
            from .container.detect import load_image

            image = load_image(src, format=format, policy=self.policy)
        program = verify(image, self.policy)
        digest = program.digest
        with self._lock:  # held only to look up: loads of different modules run in parallel
            executable = self._compiled.get(digest)
            pending = None if executable is not None else self._pending.get(digest)
            owner = executable is None and pending is None
            if owner:
                pending = self._pending[digest] = _Pending()
        if executable is not None:
            return Module(self, program, executable)
        assert pending is not None
        if not owner:
            return Module(self, program, pending.wait())
        try:
            executable = self.backend.prepare(program, self.policy)
        except BaseException as exc:
            with self._lock:
                del self._pending[digest]
            pending.fail(exc)
            raise
        with self._lock:
            self._compiled[digest] = executable
            del self._pending[digest]
        pending.done(executable)
        return Module(self, program, executable)

    def __repr__(self) -> str:
        return f"Engine(backend={self.backend_name!r}, policy={self.policy!r})"


class Module:
    """A verified, prepared module; create instances with :meth:`instantiate`."""

    def __init__(self, engine: Engine, program: VerifiedProgram, executable: Executable) -> None:
        self.engine = engine
        self.program = program
        self.executable = executable
        self.image: ModuleImage = program.image
        self.entry: int = program.entry
        self.exports: dict[str, int] = dict(program.exports)
        self._debug_pcs = sorted(self.image.debug)

    @property
    def policy(self) -> Policy:
        """The engine's policy."""
        return self.engine.policy

    @property
    def name(self) -> str:
        """The module's name (from its container or source file)."""
        return self.image.name

    def instantiate(
        self,
        stdin: bytes | BinaryIO | None = None,
        stdout: BinaryIO | None = None,
        log: LogSink | None | object = DEFAULT,
        ctl: CtlHandler | None = None,
    ) -> Instance:
        """New instance with fresh guest memory (SegmentError/PolicyError if the
        segments do not fit the policy's memory). ``stdout=None`` captures output
        in ``Result.stdout``; ``log`` defaults to ``[topic] msg`` lines on stderr
        (records are always in ``Result.log``; pass None to only record)."""
        return Instance(self, stdin=stdin, stdout=stdout, log=log, ctl=ctl)

    def inspect_ir(self) -> str:
        """The JIT lifter's SSA IR of this module, as ``zjit disasm --ir`` prints it
        (docs/jit.md); the same for every engine."""
        from .inspection import ir_text

        return ir_text(self.program)

    def inspect_llvm(self, target: str | None = None) -> str:
        """The LLVM IR the lowering produces for this module: for ``target``
        (``"x86_64"`` or ``"aarch64"``; default: the engine's own, x86_64 for
        ``interp``), the code the engine runs under its policy (docs/api.md)."""
        from .inspection import llvm_text

        return llvm_text(self, target)

    def inspect_asm(self, target: str | None = None) -> str:
        """The native code of this module (capstone), annotated with guest pcs, trap
        kinds and host calls as ``zjit disasm --native`` lists it; ``target`` as for
        :meth:`inspect_llvm`."""
        from .inspection import asm_text

        return asm_text(self, target)

    def source_of(self, pc: int) -> str | None:
        """``file:line`` of the nearest debug entry at or before ``pc``, if any."""
        at = source_lookup(self._debug_pcs, pc)
        if at is None:
            return None
        d = self.image.debug[at]
        return f"{d.source}:{d.line}"

    def __repr__(self) -> str:
        return f"Module({self.name!r}, entry={self.entry:#x}, exports={sorted(self.exports)})"
