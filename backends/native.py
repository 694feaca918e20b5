"""The native JIT engine (backend ``"jit"``): lift, lower, compile, load, run.

:class:`JitBackend.prepare` compiles a verified program once per code generation
variant (metered or not) and caches the machine code in memory (per backend) and
on disk (:class:`~zjit.backends.cache.CodeCache`; a hit imports neither llvmlite
nor the lowering). :meth:`JitExecutable.execute` fills a fresh context
(:class:`~zjit.backends.context.Ctx`) from the :class:`~zjit.machine.Machine`,
calls the entry point through ctypes (the GIL is released while guest code runs)
and copies registers, fuel, heap top and I/O positions back.

Runs are independent: every run has its own context and host-call state, so one
executable may run on many threads at once. Compiled code is unmapped when its
backend is closed or garbage-collected (never while a run is in progress).
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
import threading
import time

from zjit.verifier import VerifiedProgram

from zjit._minijson import loads
from zjit._records import dataclass
from zjit._sha256 import sha256
from zjit.errors import PolicyError
from zjit.isa import MASK64, NUM_REGS, PRIM_NAMES, TrapKind
from zjit.machine import Machine, Outcome
from zjit.policy import Policy

from . import hostcalls, native_stack
from .context import LAYOUT_DIGEST, STATUS_OK, TRAP_STACK, Ctx
from .targets import HOST_SUPPORTED, HOST_TRIPLE

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

ENTRY_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)
SP_FN = ctypes.CFUNCTYPE(ctypes.c_uint64)
OUT_BUFFER_BYTES = 64 << 10
"""Native output buffer per run (in-memory output only)."""
PAYLOAD_MAGIC = b"ZJITNAT1"
_PAYLOAD_HEAD = struct.Struct("<8sI")
_OUT_BIT = 1 << PRIM_NAMES.index("out")
_MEMORY_TRAPS = (TrapKind.OOB, TrapKind.WRITE_PROTECT)


@functools.cache
def lowering_fingerprint() -> str:
    """sha256 of the LLVM lowering sources and of the compile worker (it holds the
    pass pipeline); part of every cache key, memoised across processes while the
    files are unchanged."""
    from .cache import memoised_fingerprint, python_files

    here = os.path.dirname(__file__)
    files = [*python_files(os.path.join(here, "llvm")), os.path.join(os.path.realpath(here), "compile_worker.py")]

    def compute() -> str:
        h = sha256(size=0)
        for f in files:
            with open(f, "rb") as fh:
                h.update(os.path.basename(f).encode() + b"\0" + fh.read())
        return h.hexdigest()[:32]

    return memoised_fingerprint("lowering", files, compute)


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


class CompiledCode:
    """Machine code of one program variant, mapped and ready to call."""

    def __init__(self, loaded: Any, info: CodeInfo) -> None:
        self.loaded = loaded
        self.info = info
        self.entry_fns = {pc: ENTRY_FN(loaded.symbol(sym)) for pc, sym in info.entries.items()}
        self.stack_pointer = SP_FN(loaded.symbol(info.stack_symbol))
        self.active = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.loaded.closed:
                raise PolicyError("BAD_BACKEND", "the compiled code has been closed")
            self.active += 1

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def close(self) -> None:
        """Unmap the code (refused while a run is in progress)."""
        with self._lock:
            if self.active:
                raise RuntimeError("cannot close JIT code while it is running")
            self.loaded.close()


def call_depth_bound(module: Any) -> int | None:
    """Longest chain of nested guest calls from any function (None if recursive).
    Tail calls (:class:`~zjit.backends.ir.TailCall`) add no depth, so a cycle of
    tail calls alone is not recursion."""
    from .graphs import sccs

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
    from .compiler import compile_ir
    from .lift import lift
    from .llvm import lower

    module = lift(program)
    low = lower(module, opts)
    obj = compile_ir(low.text, triple=opts.triple, opt_level=opts.opt_level, cpu=opts.cpu)
    info = CodeInfo(low.entries, low.stack_symbol, native_stack.frame_bound(obj), call_depth_bound(module))
    return obj, info


class JitBackend:
    """Backend factory for native code (registry name ``"jit"``)."""

    name = "jit"

    @staticmethod
    def available() -> bool:
        """True when native code can be loaded on this machine."""
        return HOST_SUPPORTED

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._code: dict[str, CompiledCode] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._caches: dict[tuple[str, bool], Any] = {}
        self.compiles = 0

    def prepare(self, program: VerifiedProgram, policy: Policy) -> JitExecutable:
        """Compile (or fetch from the caches) the variant ``policy`` runs by default:
        metered or not, for the memory size and read-only ranges instances of this
        module get under ``policy``."""
        exe = JitExecutable(self, program, policy)
        layout = expected_layout(program, policy)
        if layout is not None:
            exe.variant(Variant(policy.fuel is not None, *layout))
        return exe

    def options(self, policy: Policy, variant: Variant) -> Any:
        """The code generation options for ``policy`` and one variant."""
        from .llvm.options import CodegenOptions

        return CodegenOptions(triple=HOST_TRIPLE, opt_level=policy.opt_level, fuel=variant.fuel,
                              mem_size=variant.mem_size, readonly=variant.readonly)

    def _cache(self, policy: Policy) -> Any:
        from .cache import CodeCache

        key = (policy.resolved_cache_path, bool(policy.use_cache))
        with self._lock:
            cache = self._caches.get(key)
            if cache is None:
                cache = self._caches[key] = CodeCache(key[0], disk=key[1])
        return cache

    def code(self, program: VerifiedProgram, policy: Policy, variant: Variant) -> CompiledCode:
        """Loaded code for ``program`` under ``policy`` for ``variant``."""
        from .cache import cache_key

        opts = self.options(policy, variant)
        key_opts = {**opts.as_key(), "layout": LAYOUT_DIGEST, "lowering": lowering_fingerprint()}
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

    def _load_or_compile(self, program: VerifiedProgram, policy: Policy, opts: Any, key: str) -> CompiledCode:
        from .loader import load_object

        cache = self._cache(policy)
        payload = cache.get(key)
        if payload is not None:
            decoded = decode_payload(payload)
            if decoded is not None:
                obj, info = decoded
                try:
                    return CompiledCode(load_object(obj), info)
                except (PolicyError, KeyError):
                    pass  # damaged entry: rebuild below and overwrite it
        obj, info = compile_program(program, opts)
        self.compiles += 1
        code = CompiledCode(load_object(obj), info)
        cache.put(key, encode_payload(obj, info))
        return code

    def close(self) -> None:
        """Unmap every compiled module of this backend."""
        with self._lock:
            codes, self._code = list(self._code.values()), {}
        for c in codes:
            c.close()


class JitExecutable:
    """A verified program prepared for native execution under one policy."""

    def __init__(self, backend: JitBackend, program: VerifiedProgram, policy: Policy) -> None:
        self.backend = backend
        self.program = program
        self.policy = policy
        self._variants: dict[Variant, CompiledCode] = {}

    def variant(self, v: Variant) -> CompiledCode:
        """The code for one variant (compiled on first use)."""
        code = self._variants.get(v)
        if code is None:
            code = self.backend.code(self.program, self.policy, v)
            self._variants[v] = code
        return code

    def execute(self, machine: Machine, entry_pc: int, registers: list[int]) -> Outcome:
        """Run from ``entry_pc`` until RET on an empty call stack or a trap."""
        code = self.variant(Variant(machine.fuel is not None, len(machine.memory),
                                    tuple(machine.readonly)))
        fn = code.entry_fns.get(entry_pc)
        if fn is None:
            raise ValueError(f"entry pc {entry_pc:#x} is neither the module entry nor an export")
        run = _Run(self.program, machine, code, registers)
        code.enter()
        try:
            return run.go(fn)
        finally:
            code.leave()


class _Run:
    """The context and host-call state of one run."""

    def __init__(self, program: VerifiedProgram, machine: Machine, code: CompiledCode,
                 registers: list[int]) -> None:
        self.machine = machine
        self.code = code
        ctx = self.ctx = Ctx()
        mem = machine.memory
        self.membuf = (ctypes.c_char * len(mem)).from_buffer(mem)
        ctx.mem_base = ctypes.addressof(self.membuf)
        ctx.mem_size = len(mem)
        self.ro: ctypes.Array[ctypes.c_uint64] | None = None
        if machine.readonly:
            flat = [x for r in machine.readonly for x in r]
            self.ro = (ctypes.c_uint64 * len(flat))(*flat)
            ctx.ro_ranges = ctypes.addressof(self.ro)
            ctx.ro_count = len(machine.readonly)
            ctx.ro_lo = min(r[0] for r in machine.readonly)
            ctx.ro_hi = max(r[1] for r in machine.readonly)
        ctx.max_depth = machine.max_call_depth
        if machine.fuel is not None:
            ctx.fuel = min(machine.fuel, MASK64)
        for i in range(NUM_REGS):
            ctx.regs[i] = registers[i] & MASK64
        ctx.heap_top = machine.heap_top
        host = machine.host
        self.input = host.in_bytes
        if self.input is not None:
            ctx.in_mode = 0
            ctx.in_ptr = ctypes.cast(ctypes.c_char_p(self.input), ctypes.c_void_p).value
            ctx.in_len = len(self.input)
            ctx.in_pos = host.in_pos
        else:
            ctx.in_mode = 1
        out_buf = None
        if host.output_in_memory and program.prims_used & _OUT_BIT:
            out_buf = ctypes.create_string_buffer(OUT_BUFFER_BYTES)
            ctx.out_ptr = ctypes.addressof(out_buf)
            ctx.out_cap = OUT_BUFFER_BYTES
        for name, addr in hostcalls.ADDRESSES.items():
            setattr(ctx, name, addr)
        self.state = hostcalls.RunState(machine, ctx, out_buf)

    def interrupt(self) -> None:
        self.ctx.interrupt = 1

    def go(self, fn: Any) -> Outcome:
        machine, ctx = self.machine, self.ctx
        key = hostcalls.register(self.state)
        machine.add_interrupt_hook(self.interrupt)
        timer: threading.Timer | None = None
        try:
            if machine.timed_out():
                ctx.interrupt = 1
            elif machine.deadline is not None:
                timer = threading.Timer(max(0.0, machine.deadline - time.monotonic()), self.interrupt)
                timer.daemon = True
                timer.start()
            status = self._call(fn)
        finally:
            if timer is not None:
                timer.cancel()
            machine.remove_interrupt_hook(self.interrupt)
            hostcalls.unregister(key)
            self._copy_back()
        return self._outcome(status)

    def _call(self, fn: Any) -> int:
        """Call the entry with enough native stack for the guest's call depth."""
        info = self.code.info
        depth = self.machine.max_call_depth
        if info.call_depth_bound is not None:
            depth = min(depth, info.call_depth_bound)
        if info.call_depth_bound == 0:
            return int(fn(ctypes.addressof(self.ctx)))
        need = (depth + 2) * info.frame_bound + native_stack.CALLBACK_RESERVE
        bounds = native_stack.thread_stack()
        if bounds is not None and need <= self.code.stack_pointer() - bounds[0]:
            return self._call_here(fn, bounds[0])
        size = need + (1 << 20)
        if size > native_stack.MAX_THREAD_STACK:
            raise PolicyError(
                "BAD_POLICY",
                f"max_call_depth {self.machine.max_call_depth} needs about {need >> 20} MiB of native "
                f"stack ({info.frame_bound} bytes per call), more than the "
                f"{native_stack.MAX_THREAD_STACK >> 30} GiB the JIT allows",
                path="Policy.max_call_depth",
            )

        def on_thread() -> int:
            b = native_stack.thread_stack()
            return self._call_here(fn, b[0] if b is not None else 0)

        return native_stack.run_with_stack(size, on_thread)

    def _call_here(self, fn: Any, low: int) -> int:
        if low:
            self.ctx.stack_limit = low + native_stack.CALLBACK_RESERVE + self.code.info.frame_bound
        return int(fn(ctypes.addressof(self.ctx)))

    def _copy_back(self) -> None:
        machine, ctx, host = self.machine, self.ctx, self.machine.host
        try:
            self.state.flush_output()
        finally:
            if machine.fuel is not None:
                machine.fuel = ctx.fuel
            machine.heap_top = ctx.heap_top
            if self.input is not None:
                host.in_pos = ctx.in_pos
            del self.membuf  # release the export of machine.memory

    def _outcome(self, status: int) -> Outcome:
        ctx = self.ctx
        regs = [int(ctx.regs[i]) for i in range(NUM_REGS)]
        if status == STATUS_OK:
            return Outcome(regs)
        kind_code = int(ctx.trap_kind)
        if kind_code == TRAP_STACK:
            raise PolicyError("BAD_POLICY", "the native stack guard fired: the JIT's stack sizing "
                              "underestimated this program's frames", pc=int(ctx.trap_pc))
        kind = TrapKind(kind_code)
        cause = self.state.error if kind is TrapKind.HOST else None
        if cause is not None and not isinstance(cause, Exception):
            raise cause
        if kind in _MEMORY_TRAPS:
            return Outcome(regs, kind, int(ctx.trap_pc), int(ctx.trap_addr), int(ctx.trap_len))
        return Outcome(regs, kind, int(ctx.trap_pc), cause=cause)
