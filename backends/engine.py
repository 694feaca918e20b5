"""The compiling engines' shared base: compile per specialisation, cache, run.

:class:`CompilingBackend` is what the native engine (:mod:`.native`) and the
arm64 engine (:mod:`.arm64`) have in common. It compiles a verified program per
:class:`~zjit.machine.Specialisation` (lift, lower, compile in the worker),
keeps one code object per cache key (compiling each key once, however many
threads ask), looks the machine code up in the code caches before compiling and
stores what it compiles: the object file plus :class:`CodeInfo` (JSON).
:class:`CompiledExecutable` picks the code a machine needs and hands the run to
the engine.

An engine subclass gives its target (``name``, ``triple``) and the hooks:
:meth:`~CompilingBackend.measure_frames` (the stack one guest call level uses
in its machine code), :meth:`~CompilingBackend.from_object` and
:meth:`~CompilingBackend.release` (make code runnable, free it) and
:meth:`~CompilingBackend.run` (one run, usually a :class:`~.run.CodeRun`).
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from json import loads

from zjit.verifier import VerifiedProgram

from zjit.errors import PolicyError, ZjitError
from zjit.machine import Machine, Outcome, Specialisation
from zjit.policy import Policy

from .context import LAYOUT_DIGEST

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

    from .llvm.options import CodegenOptions

PAYLOAD_MAGIC = b"ZJITNAT1"
MODULE_INSTRUCTIONS = 20_000
MODULE_FUNCTIONS = 2_000
"""The whole-module O2 budget (``tier="optimized"``): larger modules, or ones
with more functions, are compiled function by function (see
:meth:`CompilingBackend._optimized_fallback`)."""
MODULE_SECONDS = 120.0
"""Time budget of a whole-module O2 compile (the worker is killed past it)."""
BASELINE_MEM_LIMIT = 1 << 31
"""Baseline code hard-wires memory limits as 32-bit immediates: a guest memory of
2 GiB or more gets the whole module at O2 whatever ``Policy.tier`` says."""
FALLBACK_SECONDS = 120.0
"""Time budget of the function-by-function compile of the fallback."""
_PAYLOAD_HEAD = struct.Struct("<8sI")


@dataclass(frozen=True)
class CodeInfo:
    """Metadata stored with the object code (JSON in the cache payload)."""

    entries: dict[int, str]
    frame_bound: int
    call_depth_bound: int | None
    """Deepest possible guest call nesting (None: recursive, bounded by the policy)."""

    def to_json(self) -> bytes:
        import json

        return json.dumps({
            "layout": LAYOUT_DIGEST,
            "entries": {str(pc): sym for pc, sym in self.entries.items()},
            "frame_bound": self.frame_bound,
            "call_depth_bound": self.call_depth_bound,
        }, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CodeInfo | None:
        """Parse metadata; None when it is not exactly what :meth:`to_json` writes."""
        try:
            d = loads(raw)
            if d.get("layout") != LAYOUT_DIGEST:
                return None
            entries = {int(pc): str(sym) for pc, sym in d["entries"].items()}
            depth = d["call_depth_bound"]
            info = cls(entries, int(d["frame_bound"]), None if depth is None else int(depth))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if info.frame_bound <= 0 or (depth is not None and depth < 0):
            return None
        return info


def encode_payload(obj: bytes, info: CodeInfo) -> bytes:
    """Cache payload: magic, metadata length, metadata JSON, object bytes."""
    meta = info.to_json()
    return _PAYLOAD_HEAD.pack(PAYLOAD_MAGIC, len(meta)) + meta + obj


def decode_payload(payload: bytes) -> tuple[bytes, CodeInfo] | None:
    """Inverse of :func:`encode_payload`; None for anything malformed."""
    if len(payload) < _PAYLOAD_HEAD.size:
        return None
    magic, n = _PAYLOAD_HEAD.unpack_from(payload)
    start = _PAYLOAD_HEAD.size
    if magic != PAYLOAD_MAGIC or start + n > len(payload):
        return None
    info = CodeInfo.from_json(payload[start:start + n])
    if info is None:
        return None
    return payload[start + n:], info


def over_module_budget(program: VerifiedProgram) -> bool:
    """True when ``program`` is too large to compile as one O2 module."""
    return len(program.image.code) // 4 > MODULE_INSTRUCTIONS or len(program.functions) > MODULE_FUNCTIONS


class CompilingBackend:
    """Base of the backends that compile through LLVM (see the module docstring
    for what a subclass gives)."""

    name = "compiled"
    triple = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._code: dict[str, Any] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._caches: dict[tuple[str, bool, int], Any] = {}
        self.compiles = 0

    # -- target hooks --------------------------------------------------------------------
    def measure_frames(self, obj: bytes) -> int:
        """An upper bound of the stack one guest call level uses in ``obj``'s code."""
        raise NotImplementedError

    def from_object(self, obj: bytes, info: CodeInfo) -> Any:
        """Runnable code from an object file, with ``entries`` (entry pc -> what
        :meth:`run` calls) and ``info`` attributes (may raise PolicyError/KeyError
        for a damaged cache entry, which is then rebuilt)."""
        raise NotImplementedError

    def release(self, code: Any) -> None:
        """Free one code object."""
        raise NotImplementedError

    def run(self, program: VerifiedProgram, machine: Machine, code: Any, entry: Any,
            registers: list[int]) -> Outcome:
        """One run of ``code`` from ``entry`` (a value of ``code.entries``)."""
        raise NotImplementedError

    # -- tier hooks (tiered code, :mod:`.tiering`) ---------------------------------------------
    def map_baseline(self, image: Any) -> Any:
        """Make baseline code (a :class:`~zjit.backends.baseline.assembler.BaselineImage`)
        runnable; the result has ``base``, the address its code is at."""
        raise NotImplementedError

    def table_memory(self, count: int) -> tuple[Any, int]:
        """``count`` zeroed u64 slots the code can read and this process write
        (item assignment): the slots and their address as the code sees it."""
        raise NotImplementedError

    def map_function(self, baseline: Any, obj: bytes, symbol: str) -> tuple[int, Any]:
        """Load a tier-up object for the code :meth:`map_baseline` returned as
        ``baseline``: the address of ``symbol`` and a handle for
        :meth:`release_mapping`."""
        raise NotImplementedError

    def release_mapping(self, handle: Any) -> None:
        """Free what :meth:`map_baseline` or :meth:`map_function` returned."""
        raise NotImplementedError

    # -- compiling ----------------------------------------------------------------------
    def compile(self, program: VerifiedProgram, opts: CodegenOptions) -> tuple[bytes, CodeInfo]:
        """Lift, lower and compile ``program`` at O2 in a compile worker (a
        :mod:`.tiering.job`: nothing heavy runs in this process), within the
        module's time budget; the object and its metadata."""
        from .objfile.compiler import default_pool
        from .tiering import jobs

        meta, obj = jobs.run(default_pool(), program, None, opts, 0, MODULE_SECONDS)
        entries = meta["entries"]
        depth = meta["call_depth_bound"]
        assert isinstance(entries, dict)
        return obj, CodeInfo({int(pc): str(sym) for pc, sym in entries.items()}, self.measure_frames(obj),
                             None if depth is None else int(depth))  # type: ignore[call-overload]

    def prepare(self, program: VerifiedProgram, policy: Policy) -> CompiledExecutable:
        """An executable, with the code for :meth:`default_specialisation` compiled
        (or fetched from the caches) already."""
        exe = CompiledExecutable(self, program, policy)
        spec = self.default_specialisation(program, policy)
        if spec is not None:
            exe.code_for(spec)
        return exe

    @staticmethod
    def default_specialisation(program: VerifiedProgram, policy: Policy) -> Specialisation | None:
        """What ``policy``'s instances of ``program`` run with unless a run
        overrides the fuel: metered or not, their memory layout
        (:func:`zjit.memory.memory_layout`) and call-depth limit. None when
        instances could not be created anyway."""
        from zjit.memory import memory_layout

        try:
            layout = memory_layout(program.image, policy)
        except ZjitError:
            return None
        return Specialisation(policy.fuel is not None, layout.mem_size, layout.readonly, policy.max_call_depth)

    def options(self, policy: Policy, spec: Specialisation) -> CodegenOptions:
        """The code generation options for ``policy`` and one specialisation (all
        of it but the call-depth limit, which the code reads from the context)."""
        from .llvm.options import CodegenOptions

        return CodegenOptions(triple=self.triple, opt_level=policy.opt_level, fuel=spec.metered,
                              mem_size=spec.mem_size, readonly=spec.readonly, call_sites=True)

    def _cache(self, policy: Policy) -> Any:
        from .cache import CodeCache

        key = (policy.resolved_cache_path, bool(policy.use_cache), policy.cache_max_bytes)
        with self._lock:
            cache = self._caches.get(key)
            if cache is None:
                cache = self._caches[key] = CodeCache(key[0], disk=key[1], disk_bytes=key[2])
        return cache

    def code(self, program: VerifiedProgram, policy: Policy, spec: Specialisation) -> Any:
        """Runnable code for ``program`` under ``policy`` for ``spec`` (compiled
        once per cache key, also when several threads ask at the same time):
        tiered code (``Policy.tier`` ``"auto"`` or ``"baseline"``) or the whole
        module at O2 (``"optimized"``)."""
        from .cache import cache_key

        opts = self.options(policy, spec)
        key_opts: dict[str, object] = {**opts.as_key(), "layout": LAYOUT_DIGEST, "engine": self.name}
        if policy.tier != "optimized" and spec.mem_size < BASELINE_MEM_LIMIT:
            key_opts.update(tier=policy.tier, threshold=policy.tier_threshold)
        key = cache_key(program.digest, triple=opts.triple, cpu=opts.cpu, options=key_opts)
        with self._lock:
            code = self._code.get(key)
            if code is not None:
                return code
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                code = self._code.get(key)
            if code is not None:
                return code
            if policy.tier == "optimized" or spec.mem_size >= BASELINE_MEM_LIMIT:
                code = self._load_or_compile(program, policy, spec, opts, key)
            else:
                code = self._tiered(program, policy, spec, opts, policy.tier == "auto")
            with self._lock:
                self._code[key] = code
            return code

    def _tiered(self, program: VerifiedProgram, policy: Policy, spec: Specialisation, opts: CodegenOptions,
                tierup: bool) -> Any:
        from .tiering.code import TieredCode

        return TieredCode(self, program, policy, spec, opts, tierup)

    def _load_or_compile(self, program: VerifiedProgram, policy: Policy, spec: Specialisation,
                         opts: CodegenOptions, key: str) -> Any:
        cache = self._cache(policy)
        payload = cache.get(key)
        if payload is not None:
            decoded = decode_payload(payload)
            if decoded is not None:
                try:
                    return self.from_object(*decoded)
                except (PolicyError, KeyError):
                    pass  # damaged entry: rebuild below and overwrite it
        baseline_fits = spec.mem_size < BASELINE_MEM_LIMIT
        if over_module_budget(program) and baseline_fits:
            return self._optimized_fallback(program, policy, spec, opts, "over the whole-module budget")
        try:
            obj, info = self.compile(program, opts)
        except PolicyError as exc:
            if exc.code != "COMPILE_FAILED" or not baseline_fits:
                raise
            return self._optimized_fallback(program, policy, spec, opts, str(exc))
        self.compiles += 1
        code = self.from_object(obj, info)
        cache.put(key, encode_payload(obj, info))
        return code

    def _optimized_fallback(self, program: VerifiedProgram, policy: Policy, spec: Specialisation,
                            opts: CodegenOptions, why: str) -> Any:
        """``tier="optimized"`` for a module the whole-module compile cannot take:
        baseline code, then every function compiled at O2 at once (in parallel,
        within :data:`FALLBACK_SECONDS`); a function over its budget stays baseline."""
        code = self._tiered(program, policy, spec, opts, False)
        code.fallback = why
        code.compile_all([code.image.ids[pc] for pc in program.functions], FALLBACK_SECONDS)
        return code

    def close(self) -> None:
        """Free every compiled code object of this backend."""
        with self._lock:
            codes, self._code = list(self._code.values()), {}
        for c in codes:
            self.release(c)


class CompiledExecutable:
    """A verified program prepared for one compiling backend under one policy;
    the code for each specialisation is compiled on first use."""

    def __init__(self, backend: CompilingBackend, program: VerifiedProgram, policy: Policy) -> None:
        self.backend = backend
        self.program = program
        self.policy = policy
        self._code: dict[Specialisation, Any] = {}

    def default_code(self) -> Any:
        """The code of the policy's own specialisation (compiled on first use)."""
        spec = self.backend.default_specialisation(self.program, self.policy)
        if spec is None:
            raise ValueError("the policy's instances of this module cannot be created")
        return self.code_for(spec)

    def code_for(self, spec: Specialisation) -> Any:
        """The code for one specialisation (compiled on first use)."""
        code = self._code.get(spec)
        if code is None:
            code = self.backend.code(self.program, self.policy, spec)
            self._code[spec] = code
        return code

    def execute(self, machine: Machine, entry_pc: int, registers: list[int]) -> Outcome:
        """Run from ``entry_pc`` until RET on an empty call stack or a trap."""
        code = self.code_for(Specialisation.of(machine))
        entry = code.entries.get(entry_pc)
        if entry is None:
            raise ValueError(f"entry pc {entry_pc:#x} is neither the module entry nor an export")
        return self.backend.run(self.program, machine, code, entry, registers)
