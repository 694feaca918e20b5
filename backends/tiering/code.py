"""Tiered code: baseline code of one specialisation, promoted to O2 function by function.

:class:`TieredCode` is what a compiling engine runs when ``Policy.tier`` is
``"auto"`` or ``"baseline"`` (and when ``"optimized"`` falls back, see
:mod:`zjit.backends.engine`). It holds

* the baseline code (:mod:`zjit.backends.baseline`), mapped by the engine;
* the *table*: the function table ``ftab`` (one code address per entry id,
  :func:`~zjit.backends.middle.entries.entry_ids`) followed by one tier-up
  counter per entry id; generated code reaches it through ``ctx.ftab``;
* the O2 code tier-up installed, one object per promoted entry.

**Tier-up** (``auto``): baseline code counts executions of every entry (function
entries and loop headers); when a counter reaches zero it asks the engine
(``host_call`` op ``HOST_TIERUP``, :meth:`TieredCode.request`) and then jumps
through the entry's table slot. The request queues the entry for a background
compile (:mod:`.jobs`: lifting, lowering and LLVM all run in a compile worker
process, :mod:`.job`) and re-arms the counter (:data:`BACKOFF`). When the O2
object is ready it is loaded and its address stored into the slot, an aligned
8-byte store, while guests keep running: the next call of a function runs the
O2 code, and a loop whose header is an entry continues in O2 code the next time
its counter runs out (*on-stack replacement*: the O2 code "entered at the loop
header" takes the same state S, and its RET returns to the caller of the
baseline function, since the jump is a tail call).

**Bounds**: a function of more than :data:`FN_INSTRUCTIONS` instructions, one
whose compile takes longer than :data:`FN_SECONDS` or whose stack frame exceeds
:data:`TIERED_FRAME` stays baseline, and so does everything past
:data:`MAX_PROMOTED` promotions; such a refusal is remembered (its counter never
runs out again) and, with the disk cache on, recorded for later processes,
which also load the promoted O2 objects from the cache when they start.
"""

from __future__ import annotations

import functools
import json
import struct
import threading
import time
from array import array
from dataclasses import dataclass

from zjit.errors import ZjitError

from ..baseline.image import BaselineImage
from ..context import RT_HOST_REQUEST, RT_THREAD_MAIN
from ..llvm.stencil_names import BL_ENTRY
from . import jobs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from zjit.verifier import VerifiedProgram

    from zjit.machine import Specialisation
    from zjit.policy import Policy

    from ..llvm.options import CodegenOptions

    class TierHost(Protocol):
        """What an engine gives tiered code (see :class:`~zjit.backends.engine.CompilingBackend`)."""

        name: str
        triple: str

        def map_baseline(self, image: BaselineImage) -> Any: ...
        def table_memory(self, count: int) -> tuple[Any, int]: ...
        def map_function(self, baseline: Any, obj: bytes, symbol: str) -> tuple[int, Any]: ...
        def measure_frames(self, obj: bytes) -> int: ...
        def release_mapping(self, handle: Any) -> None: ...

TIERED_FRAME = 512
"""Stack bytes assumed per guest call level in tiered code that may run O2 code;
an O2 object whose frame bound is larger stays unused (its entry stays baseline)."""
BASELINE_FRAME = 64
"""Stack bytes per guest call level of baseline code alone (the CALL stencil's
two words on x86-64, four on AArch64, with room to spare)."""
FN_INSTRUCTIONS = 10_000
"""Largest guest function (instructions lifted) compiled at O2 by tier-up."""
FN_SECONDS = 30.0
"""Time budget of one tier-up compile (the worker is killed past it)."""
BACKOFF = 1 << 12
"""Executions of an entry between two requests while its compile is under way."""
PROMOTED_REARM = 64
"""Executions of a promoted entry's baseline code before it jumps to the O2 code
(one ``HOST_TIERUP`` call each time): a loop whose header was promoted but whose
function was not is entered in baseline code and continues in O2 code after at
most this many iterations (the cost of the host call spread over them)."""
MAX_BACKOFF_DOUBLINGS = 8
"""While a compile is under way the re-arm doubles each time, up to
``BACKOFF << MAX_BACKOFF_DOUBLINGS``."""
NEVER = 1 << 62
"""A counter value that never runs out."""
MAX_PROMOTED = 4096
"""Most entries of one code object compiled by tier-up."""
_FN_MAGIC = b"ZJITFN01"
_FN_HEAD = struct.Struct("<8sI")

BASELINE, QUEUED, PROMOTED, REFUSED = range(4)
"""Tier state of an entry."""


@dataclass(frozen=True)
class TierInfo:
    """Stack facts of tiered code (the :class:`~zjit.backends.engine.CodeInfo`
    fields a run reads)."""

    frame_bound: int = TIERED_FRAME
    call_depth_bound: int | None = None


class TieredCode:
    """Baseline code plus tier-up state (see the module docstring)."""

    def __init__(self, host: TierHost, program: VerifiedProgram, policy: Policy, spec: Specialisation,
                 opts: CodegenOptions, tierup: bool) -> None:
        from ..cache import CodeCache

        self.host = host
        self.program = program
        self.opts = opts
        self.tierup = tierup
        self.threshold = policy.tier_threshold
        self.cache = CodeCache.for_policy(policy) if policy.use_cache else None
        self._key_opts = {**opts.as_key(), "engine": host.name}
        t0 = time.process_time()
        self.image: BaselineImage = self._baseline(spec)
        self.assemble_seconds = time.process_time() - t0
        self.info = TierInfo(TIERED_FRAME if tierup else BASELINE_FRAME)
        self.mapped = host.map_baseline(self.image)
        base = self.mapped.base
        n = len(self.image.ftab)
        self.nids = n
        self.table, self.table_address = host.table_memory(2 * n)
        slots = memoryview(self.table).cast("B").cast("Q")  # filled in two slice stores
        slots[:n] = array("Q", [base + off for off in self.image.ftab])
        slots[n:] = array("Q", [self.threshold if tierup else NEVER]) * n
        entry = base + self.image.symbols[BL_ENTRY]
        self.thread_main = base + self.image.symbols[RT_THREAD_MAIN]
        self.host_request = base + self.image.symbols[RT_HOST_REQUEST]
        self.active = 0
        self.pcs = {eid: pc for pc, eid in self.image.ids.items()}
        self.entries = {pc: (entry, self.image.ids[pc]) for pc in program.functions}
        self._function_pcs = sorted(program.functions)
        self.state = bytearray(n)
        self.tries = bytearray(n)
        self.promoted: dict[int, Any] = {}
        """Entry id -> the engine's handle of its O2 code."""
        self.installs: list[tuple[int, int, Any]] = []
        """(entry id, address, handle) of the O2 code, in the order it was
        installed (an engine that maps code per run maps these before it runs)."""
        self.objects: dict[int, bytes] = {}
        """Entry id -> its O2 object (frame tables for backtraces, read at traps)."""
        self.frames: dict[int, Any] = {}
        """Entry id -> its :class:`~zjit.backends.backtrace.O2Code` (made at a trap)."""
        self.refused: dict[int, str] = {}
        self.fallback: str | None = None
        """Why ``tier="optimized"`` fell back to this code (None: it did not)."""
        self.closed = False
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._record_lock = threading.Lock()
        self.busy = 0
        """Promotions under way (compiling, installing, recording)."""
        """Notified whenever an entry is promoted or refused."""
        self.installed_at: dict[int, float] = {}
        """Entry id -> when its O2 code was installed (``time.monotonic()``)."""
        if self.cache is not None and tierup:  # baseline code alone never runs O2 code
            self._load_record()

    # -- the cache ------------------------------------------------------------------------
    def _baseline(self, spec: Specialisation) -> BaselineImage:
        """The baseline code: from the code cache, or assembled (and cached)."""
        from ..baseline import image as image_mod

        key = self._key("baseline", int(self.tierup))
        if self.cache is not None:
            payload = self.cache.get(key)
            cached = image_mod.decode(payload) if payload is not None else None
            if cached is not None:
                return cached
        from ..baseline.assembler import BaselineSpec, assemble
        from ..baseline.library import library

        lib = library(self.opts.triple, self.opts.cpu)
        image = assemble(self.program, lib, BaselineSpec(spec.metered, spec.mem_size, spec.readonly, self.tierup))
        if self.cache is not None:
            self.cache.put(key, image.encode())
        return image

    def _key(self, what: str, pc: int = 0) -> str:
        from ..cache import cache_key
        from ..context import LAYOUT_DIGEST

        return cache_key(self.program.digest, triple=self.opts.triple, cpu=self.opts.cpu,
                         options={**self._key_opts, "layout": LAYOUT_DIGEST, "tier": what, "entry": pc})

    def _load_record(self) -> None:
        """Install the O2 code earlier processes promoted; refuse what they refused."""
        assert self.cache is not None
        raw = self.cache.get(self._key("record"))
        if raw is None:
            return
        try:
            record = json.loads(raw)
            ok, refused = [int(pc) for pc in record["promoted"]], [int(pc) for pc in record["refused"]]
        except (ValueError, KeyError, TypeError):
            return
        ids = self.image.ids
        for pc in refused:
            if pc in ids:
                self._refuse(ids[pc], "refused by an earlier process", record=False)
        for pc in ok:
            payload = self.cache.get(self._key("function", pc))
            if pc in ids and payload is not None and len(self.promoted) < MAX_PROMOTED:
                decoded = _decode_function(payload)
                if decoded is not None:
                    self._install(ids[pc], decoded[0], decoded[1], record=False)

    def _record(self) -> None:
        """Store which entries are promoted and refused (a snapshot taken and
        written in one piece, so the last write has every change)."""
        if self.cache is None:
            return
        with self._record_lock:
            with self.lock:
                record = {"promoted": sorted(self.pcs[i] for i in self.promoted),
                          "refused": sorted(self.pcs[i] for i in self.refused)}
            self.cache.put(self._key("record"), json.dumps(record).encode())

    # -- tier-up ------------------------------------------------------------------------------
    def request(self, eid: int) -> None:
        """Baseline code found entry ``eid`` hot (``HOST_TIERUP``): queue its compile
        and re-arm its counter; a hot loop header also queues its function
        (:meth:`function_of`). Called on the thread serving the run's host calls."""
        if not 0 <= eid < self.nids:
            return
        self.queue(eid)
        home = self.function_of(eid)
        if home is not None:
            self.queue(home, rearm=False)

    def function_of(self, eid: int) -> int | None:
        """The entry id of the function a loop header ``eid`` is taken to be in: the
        nearest function entry at or before it (where functions are laid out);
        None for function entries. The O2 code entered at a loop header sees the
        loop structure from there (an inner loop's header makes the outer loop
        part of one big loop, which cannot be versioned), so the next call of the
        function should run the function's own O2 code; on-stack replacement
        covers the call that is running."""
        import bisect

        pc = self.pcs[eid]
        if pc in self.entries:
            return None
        i = bisect.bisect_right(self._function_pcs, pc) - 1
        return self.image.ids.get(self._function_pcs[i]) if i >= 0 else None

    def queue(self, eid: int, rearm: bool = True) -> None:
        """Queue entry ``eid`` alone for a background compile unless it is queued,
        promoted or refused already; ``rearm``: it was found hot, so re-arm its
        counter as well (see the module docstring)."""
        n = self.nids
        with self.lock:
            st = self.state[eid]
            if not rearm:
                if st != BASELINE or self.closed:
                    return
            elif st == REFUSED or self.closed:
                self.table[n + eid] = NEVER
                return
            elif st == PROMOTED:  # the TIERUP stub jumps to the O2 code next
                self.table[n + eid] = PROMOTED_REARM
                return
            else:
                if st == QUEUED:  # still compiling: ask again later, less and less often
                    self.tries[eid] = min(self.tries[eid] + 1, MAX_BACKOFF_DOUBLINGS)
                self.table[n + eid] = BACKOFF << self.tries[eid]
                if st != BASELINE:
                    return
            if len(self.promoted) + sum(1 for s in self.state if s == QUEUED) >= MAX_PROMOTED:
                self._refuse(eid, f"more than {MAX_PROMOTED} promotions", record=False, locked=True)
                return
            self.state[eid] = QUEUED
        jobs.submit(lambda: self._promote(eid))
        jobs.warm()

    def _promote(self, eid: int) -> None:
        """Background: compile entry ``eid`` at O2 and install it (or refuse it)."""
        with self.lock:
            self.busy += 1
        try:
            self._promote_now(eid)
        finally:
            with self.lock:
                self.busy -= 1
                self.changed.notify_all()

    def _promote_now(self, eid: int) -> None:
        if self.closed:
            return
        pc = self.pcs[eid]
        try:
            obj, frame = self._compile(pc)
        except jobs.Refused as exc:
            self._refuse(eid, str(exc))
            return
        except ZjitError as exc:  # a worker that died or timed out: over the time budget
            self._refuse(eid, str(exc))
            return
        self._install(eid, obj, frame)

    def _compile(self, pc: int) -> tuple[bytes, int]:
        if self.cache is not None:
            payload = self.cache.get(self._key("function", pc))
            decoded = _decode_function(payload) if payload is not None else None
            if decoded is not None:
                return decoded
        obj = jobs.compile_function(self.program, pc, self.opts, FN_INSTRUCTIONS, FN_SECONDS)
        frame = self.host.measure_frames(obj)
        if self.cache is not None:
            self.cache.put(self._key("function", pc), _FN_HEAD.pack(_FN_MAGIC, frame) + obj)
        return obj, frame

    def _install(self, eid: int, obj: bytes, frame: int, record: bool = True) -> None:
        from ..middle.ir import func_name

        if frame > TIERED_FRAME:
            self._refuse(eid, f"its frame of {frame} bytes exceeds {TIERED_FRAME}", record)
            return
        try:
            address, handle = self.host.map_function(self.mapped, obj, func_name(self.pcs[eid]))
        except (ZjitError, KeyError) as exc:
            self._refuse(eid, f"its object does not load: {exc}", record)
            return
        with self.lock:
            if self.closed:
                self.host.release_mapping(handle)
                return
            self.promoted[eid] = handle
            self.objects[eid] = obj
            self.installs.append((eid, address, handle))
            self.state[eid] = PROMOTED
            self.table[eid] = address  # the switch: one aligned 8-byte store
            self.table[self.nids + eid] = PROMOTED_REARM  # baseline paths into it move over soon
            self.installed_at[eid] = time.monotonic()
            self.changed.notify_all()
        if record:
            self._record()

    def _refuse(self, eid: int, why: str, record: bool = True, locked: bool = False) -> None:
        if not locked:
            with self.lock:
                self._refuse(eid, why, record, True)
            if record:
                self._record()
            return
        self.state[eid] = REFUSED
        self.refused[eid] = why
        self.table[self.nids + eid] = NEVER
        self.changed.notify_all()

    def compile_all(self, eids: list[int], seconds: float) -> None:
        """Compile entries ``eids`` at O2 now (``tier="optimized"`` beyond the
        whole-module budget), in parallel, until ``seconds`` have passed; what is
        not done by then stays baseline."""
        self.info = TierInfo(TIERED_FRAME)  # before any run: O2 code is coming
        todo = [e for e in eids if self.state[e] == BASELINE]
        for e in todo:
            self.state[e] = QUEUED
        jobs.run_all([functools.partial(self._promote, e) for e in todo], seconds)
        with self.lock:
            for e in todo:
                if self.state[e] == QUEUED:
                    self.state[e] = REFUSED
                    self.refused[e] = "not compiled within the load's time budget"

    def decode_trap(self, ctx: Any) -> None:
        """Rewrite a ``TRAP_SITE`` record (``trap_pc`` = the return address of a
        baseline trap stub) into the site's kind, pc, address and length."""
        from ..baseline.image import decode_operand, instruction_at

        found = self.image.site_at(int(ctx.trap_pc) - self.mapped.base)
        if found is None:
            raise RuntimeError(f"baseline trap at {int(ctx.trap_pc):#x} matches no trap site")
        pc, exit = found
        op, imm = instruction_at(self.program, pc)
        width = op.width if op is not None else 0
        regs = [int(ctx.regs[i]) for i in range(len(ctx.regs))]
        ctx.trap_kind = exit.kind
        ctx.trap_pc = pc
        ctx.trap_addr = decode_operand(exit.addr, regs, imm, width)
        ctx.trap_len = decode_operand(exit.length, regs, imm, width)

    def call_stack(self, ctx: Any, word: Callable[[int], int], x86: bool, limit: int) -> list[int] | None:
        """The pcs of the guest CALLs active at a trap, innermost first, walked
        from the native stack (``word(address)`` reads 8 bytes of it) before
        :meth:`decode_trap`, through baseline and O2 frames alike
        (:mod:`zjit.backends.backtrace`); None when some frame cannot be followed."""
        from ..backtrace import BaselineCode, O2Code, Region, call_stack

        with self.lock:
            installed = [(eid, handle) for eid, _address, handle in self.installs]
        regions: list[Region] = [BaselineCode(self.mapped.base, self.image)]
        for eid, handle in installed:
            frames = self.frames.get(eid)
            if frames is None:
                start, end = handle.code_range()
                frames = self.frames[eid] = O2Code(start, end, self.objects[eid])
            regions.append(frames)
        return call_stack(ctx, regions, word, x86, limit)

    def guest_function_at(self, address: int) -> int | None:
        """A guest pc for a code address (the run was stopped there): the block
        of baseline code, or the entry of the O2 code, it is in."""
        if 0 <= address - self.mapped.base < len(self.image.code):
            return self.image.block_at(address - self.mapped.base)
        best = None
        for eid, start, _handle in self.installs:
            if start <= address and (best is None or start > best[1]):
                best = (eid, start)
        return self.pcs[best[0]] if best is not None else None

    def wait(self, timeout: float) -> bool:
        """Wait until no compile is under way (at most ``timeout`` seconds); True
        when none is."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while QUEUED in self.state or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True

    def tiers(self) -> dict[int, str]:
        """Entry pc -> ``"baseline"``, ``"queued"``, ``"optimized"`` or ``"refused"``."""
        names = ("baseline", "queued", "optimized", "refused")
        return {self.pcs[i]: names[s] for i, s in enumerate(self.state)}

    # -- lifetime ----------------------------------------------------------------------------
    def enter(self) -> None:
        """A run starts (the code may not be closed until it leaves)."""
        from zjit.errors import PolicyError

        with self.lock:
            if self.closed:
                raise PolicyError("BAD_BACKEND", "the compiled code has been closed")
            self.active += 1

    def leave(self) -> None:
        """A run has ended."""
        with self.lock:
            self.active -= 1

    def close(self) -> None:
        """Free the baseline code and every O2 object (never while running)."""
        with self.lock:
            if self.closed:
                return
            if self.active:
                raise RuntimeError("cannot close code while it is running")
            self.closed = True
            handles = list(self.promoted.values())
            self.promoted.clear()
        for h in handles:
            self.host.release_mapping(h)
        self.host.release_mapping(self.mapped)


def _decode_function(payload: bytes) -> tuple[bytes, int] | None:
    if len(payload) < _FN_HEAD.size:
        return None
    magic, frame = _FN_HEAD.unpack_from(payload)
    if magic != _FN_MAGIC or frame <= 0:
        return None
    return payload[_FN_HEAD.size:], frame
