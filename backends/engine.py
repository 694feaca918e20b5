"""What the compiling engines (native JIT, arm64) share.

A compiled program is specialised per :class:`Variant` (metering, memory size,
read-only ranges). :class:`CompilingBackend` keeps one code object per cache key
(compiling each key once, however many threads ask), looks the machine code up in
the code caches before compiling, and stores what it compiles;
:class:`VariantExecutable` picks the variant a machine needs. The payload stored
in the cache is the object file plus :class:`CodeInfo` (JSON).
"""

from __future__ import annotations

import struct
import threading

from zjit.verifier import VerifiedProgram

from zjit._minijson import loads
from zjit._records import dataclass
from zjit.errors import PolicyError
from zjit.isa import MASK64, NUM_REGS, TrapKind
from zjit.machine import Machine, Outcome
from zjit.policy import Policy

from .context import LAYOUT_DIGEST, STATUS_OK, TRAP_STACK
from .native import stack as native_stack

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

_MEMORY_TRAPS = (TrapKind.OOB, TrapKind.WRITE_PROTECT)
PAYLOAD_MAGIC = b"ZJITNAT1"
_PAYLOAD_HEAD = struct.Struct("<8sI")


@dataclass(frozen=True)
class CodeInfo:
    """Metadata stored with the object code (JSON in the cache payload)."""

    entries: dict[int, str]
    stack_symbol: str
    frame_bound: int
    call_depth_bound: int | None
    """Deepest possible guest call nesting (None: recursive, bounded by the policy)."""

    def to_json(self) -> bytes:
        import json

        return json.dumps({
            "layout": LAYOUT_DIGEST,
            "entries": {str(pc): sym for pc, sym in self.entries.items()},
            "stack_symbol": self.stack_symbol,
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
            info = cls(entries, str(d["stack_symbol"]), int(d["frame_bound"]),
                       None if depth is None else int(depth))
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


@dataclass(frozen=True)
class Variant:
    """What a compiled module is specialised for: metering on or off, the guest
    memory size and the read-only ranges (all fixed for an instance)."""

    fuel: bool
    mem_size: int
    readonly: tuple[tuple[int, int], ...]


def expected_layout(program: VerifiedProgram, policy: Policy) -> tuple[int, tuple[tuple[int, int], ...]] | None:
    """Memory size and merged read-only ranges of instances of ``program`` under
    ``policy`` (as :func:`zjit.memory.build_memory` will make them), or None when
    instantiation would fail anyway."""
    from zjit.memory import resolve_mem_size

    try:
        size = resolve_mem_size(program.image, policy)
    except PolicyError:
        return None
    ranges = sorted((s.base, s.end) for s in program.image.segments if not s.writable)
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return size, tuple(merged)


def call_depth_bound(module: Any) -> int | None:
    """Longest chain of nested guest calls from any function (None if recursive).
    Tail calls (:class:`~zjit.backends.middle.ir.TailCall`) add no depth, so a cycle of
    tail calls alone is not recursion."""
    from .middle.graphs import sccs

    funcs = module.functions
    edges = {pc: [(c, 1) for c in fn.callees()] + [(t, 0) for t in fn.tail_callees()]
             for pc, fn in funcs.items()}
    comp = sccs({pc: [c for c, _ in out] for pc, out in edges.items()})
    for pc, out in edges.items():
        if any(w and comp[c] == comp[pc] for c, w in out):
            return None  # a call inside a cycle: recursion
    # Components come out of Tarjan's algorithm callees first.
    depth: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for pc in funcs:
        members.setdefault(comp[pc], []).append(pc)
    for c in sorted(members):
        best = 0
        for pc in members[c]:
            for callee, w in edges[pc]:
                if comp[callee] != c:
                    best = max(best, depth[comp[callee]] + w)
        depth[c] = best
    return max(depth.values(), default=0)


def compile_program(program: VerifiedProgram, opts: Any) -> tuple[bytes, CodeInfo]:
    """Lift, lower and compile ``program``; returns the object and its metadata."""
    from .llvm import lower
    from .middle.lift import lift
    from .objfile.compiler import compile_ir

    module = lift(program)
    low = lower(module, opts)
    obj = compile_ir(low.text, triple=opts.triple, opt_level=opts.opt_level, cpu=opts.cpu)
    info = CodeInfo(low.entries, low.stack_symbol, native_stack.frame_bound(obj), call_depth_bound(module))
    return obj, info


class CompilingBackend:
    """Base of the backends that compile through LLVM: subclasses give ``name``,
    ``triple``, :meth:`executable`, :meth:`from_object` (turn an object file into a
    runnable code object) and :meth:`release` (free one)."""

    name = "compiled"
    triple = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._code: dict[str, Any] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._caches: dict[tuple[str, bool, int], Any] = {}
        self.compiles = 0

    def executable(self, program: VerifiedProgram, policy: Policy) -> VariantExecutable:
        """A new executable of this backend."""
        raise NotImplementedError

    def from_object(self, obj: bytes, info: CodeInfo) -> Any:
        """Runnable code from an object file (may raise PolicyError/KeyError for a
        damaged cache entry, which is then rebuilt)."""
        raise NotImplementedError

    def release(self, code: Any) -> None:
        """Free one code object."""
        raise NotImplementedError

    def compile(self, program: VerifiedProgram, opts: Any) -> tuple[bytes, CodeInfo]:
        """Lift, lower and compile (subclasses may add metadata)."""
        return compile_program(program, opts)

    def prepare(self, program: VerifiedProgram, policy: Policy) -> VariantExecutable:
        """Compile (or fetch from the caches) the variant ``policy`` runs by default:
        metered or not, for the memory size and read-only ranges instances of this
        module get under ``policy``."""
        exe = self.executable(program, policy)
        layout = expected_layout(program, policy)
        if layout is not None:
            exe.variant(Variant(policy.fuel is not None, *layout))
        return exe

    def options(self, policy: Policy, variant: Variant) -> Any:
        """The code generation options for ``policy`` and one variant."""
        from .llvm.options import CodegenOptions

        return CodegenOptions(triple=self.triple, opt_level=policy.opt_level, fuel=variant.fuel,
                              mem_size=variant.mem_size, readonly=variant.readonly)

    def _cache(self, policy: Policy) -> Any:
        from .cache import CodeCache

        key = (policy.resolved_cache_path, bool(policy.use_cache), policy.cache_max_bytes)
        with self._lock:
            cache = self._caches.get(key)
            if cache is None:
                cache = self._caches[key] = CodeCache(key[0], disk=key[1], disk_bytes=key[2])
        return cache

    def code(self, program: VerifiedProgram, policy: Policy, variant: Variant) -> Any:
        """Runnable code for ``program`` under ``policy`` for ``variant`` (compiled
        once per cache key, also when several threads ask at the same time)."""
        from .cache import cache_key

        opts = self.options(policy, variant)
        key_opts = {**opts.as_key(), "layout": LAYOUT_DIGEST, "engine": self.name}
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
            code = self._load_or_compile(program, policy, opts, key)
            with self._lock:
                self._code[key] = code
            return code

    def _load_or_compile(self, program: VerifiedProgram, policy: Policy, opts: Any, key: str) -> Any:
        cache = self._cache(policy)
        payload = cache.get(key)
        if payload is not None:
            decoded = decode_payload(payload)
            if decoded is not None:
                try:
                    return self.from_object(*decoded)
                except (PolicyError, KeyError):
                    pass  # damaged entry: rebuild below and overwrite it
        obj, info = self.compile(program, opts)
        self.compiles += 1
        code = self.from_object(obj, info)
        cache.put(key, encode_payload(obj, info))
        return code

    def close(self) -> None:
        """Free every compiled code object of this backend."""
        with self._lock:
            codes, self._code = list(self._code.values()), {}
        for c in codes:
            self.release(c)


class VariantExecutable:
    """A verified program prepared for one backend under one policy; code for each
    variant is compiled on first use."""

    def __init__(self, backend: CompilingBackend, program: VerifiedProgram, policy: Policy) -> None:
        self.backend = backend
        self.program = program
        self.policy = policy
        self._variants: dict[Variant, Any] = {}

    def variant(self, v: Variant) -> Any:
        """The code for one variant (compiled on first use)."""
        code = self._variants.get(v)
        if code is None:
            code = self.backend.code(self.program, self.policy, v)
            self._variants[v] = code
        return code

    def code_for(self, machine: Machine) -> Any:
        """The code variant ``machine`` needs."""
        return self.variant(Variant(machine.fuel is not None, len(machine.memory), tuple(machine.readonly)))


# --- machine state <-> context (the parts both compiled engines share) -----------


def machine_to_ctx(ctx: Any, machine: Machine, registers: list[int]) -> None:
    """Copy memory size, read-only summary, call-depth limit, fuel, registers and
    heap top into ``ctx`` (memory, read-only table and I/O pointers are the engine's)."""
    ctx.mem_size = len(machine.memory)
    if machine.readonly:
        ctx.ro_count = len(machine.readonly)
        ctx.ro_lo = min(r[0] for r in machine.readonly)
        ctx.ro_hi = max(r[1] for r in machine.readonly)
    ctx.max_depth = machine.max_call_depth
    if machine.fuel is not None:
        ctx.fuel = min(machine.fuel, MASK64)
    for i in range(NUM_REGS):
        ctx.regs[i] = registers[i] & MASK64
    ctx.heap_top = machine.heap_top


def ctx_to_machine(ctx: Any, machine: Machine, input_in_memory: bool) -> None:
    """Copy fuel left, heap top and the in-memory input position back."""
    if machine.fuel is not None:
        machine.fuel = ctx.fuel
    machine.heap_top = ctx.heap_top
    if input_in_memory:
        machine.host.in_pos = ctx.in_pos


def ctx_outcome(ctx: Any, status: int, host_error: BaseException | None, engine: str) -> Outcome:
    """The run's Outcome from the context's trap record. A host handler's
    non-Exception (KeyboardInterrupt, SystemExit) is re-raised; the stack guard
    firing means the engine's frame sizing was wrong (BAD_POLICY, never a crash)."""
    regs = [int(ctx.regs[i]) for i in range(NUM_REGS)]
    if status == STATUS_OK:
        return Outcome(regs)
    kind_code = int(ctx.trap_kind)
    if kind_code == TRAP_STACK:
        raise PolicyError("BAD_POLICY", f"the {engine} stack guard fired: the engine's stack sizing "
                          "underestimated this program's frames", pc=int(ctx.trap_pc))
    kind = TrapKind(kind_code)
    cause = host_error if kind is TrapKind.HOST else None
    if cause is not None and not isinstance(cause, Exception):
        raise cause
    if kind in _MEMORY_TRAPS:
        return Outcome(regs, kind, int(ctx.trap_pc), int(ctx.trap_addr), int(ctx.trap_len))
    return Outcome(regs, kind, int(ctx.trap_pc), cause=cause)
