"""The stencil library of one target: built once, cached on disk, shared in memory.

:func:`library` returns the :class:`StencilLibrary` for a triple and CPU. The
first call in a process looks it up in the code cache; on a miss it is built:
the stencil IR (:mod:`zjit.backends.llvm.stencils`) is compiled in the compile
workers (several modules in parallel, stencil mode), the stencils are taken from
the objects with the project's ELF reader (:mod:`zjit.backends.objfile.stencils`),
and the runtime module (PIC, compiled and linked as ordinary code) becomes the
block every baseline code buffer starts with. The result is stored in the code
cache (key: the stencil format, target, CPU, context layout and, as for all
code, zjit's version, sources and LLVM version), so the build runs once per
zjit version x target x CPU. The library is part of zjit, not of a guest
module: it is cached in ``__stencils__`` next to this module when that can be
written (like ``__pycache__``), else in the default code cache directory
(:func:`library_dir`); either way with the code cache's trust checks.

The payload is ``MAGIC, u32 len(meta), meta (JSON), code``; the JSON lists each
stencil's code range and holes. Anything malformed is rebuilt, never used.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import threading
import time
from dataclasses import dataclass

from zjit.errors import PolicyError
from zjit.isa import OPS

from ..context import LAYOUT_DIGEST
from ..llvm.stencil_names import (
    CONT,
    RUNTIME_SYMBOLS,
    SHIFT_HOLE,
    SHIFT_NEG_HOLE,
    SHIFT_PROBES,
    TARGET,
    TIERUP,
    TRAP,
    VALUE_HOLES,
    TrapExit,
    field_keys,
    instruction_stencils,
)
from ..objfile.elf import ObjectFileError
from ..objfile.stencils import PATCHERS, PC_RELATIVE, REL32, Patcher, RawStencil, diff_hole, extract
from ..targets import EM_AARCH64, target_for_triple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAGIC = b"ZJITSTL1"
FORMAT = 1
_HEAD = struct.Struct("<8sI")

SLOTS: dict[str, int] = {name: i for i, name in enumerate(VALUE_HOLES)}
"""Value hole symbol -> its slot in the values an instruction hands a stencil."""


Ref = tuple[int, int, int, Patcher]
"""A pc-relative hole: (offset, what it refers to, adjustment, patcher); the field
gets ``target - (start of the stencil + offset) + adjustment``."""


@dataclass(slots=True, eq=False)
class Stencil:
    """A stencil ready for copying: code without the trailing continuation jump
    (:attr:`tail` holds it), its value holes and its pc-relative holes by kind."""

    name: str
    code: bytes
    tail: bytes
    values: tuple[tuple[int, int, int, Patcher], ...]
    """(offset, value slot, addend, patcher) of each value hole: the field gets
    the value plus the addend."""
    runtime: tuple[Ref, ...]
    """Holes referring to a runtime routine (the ref is its offset)."""
    cont: tuple[Ref, ...]
    """Holes referring to the continuation, besides the trailing jump."""
    target: tuple[Ref, ...]
    """Holes referring to the branch target."""
    traps: tuple[Ref, ...]
    """Holes referring to trap exit k (the ref is k)."""
    tierup: tuple[Ref, ...]
    """Holes referring to the tier-up stub."""
    tail_refs: tuple[Ref, ...]
    """The holes of :attr:`tail` (offsets from the start of the stencil)."""
    exits: tuple[TrapExit, ...] = ()
    """What each trap exit is (kind, address and length shapes)."""
    exit_ids: tuple[int, ...] = ()
    """Each trap exit's index in :attr:`StencilLibrary.exits`."""
    simple: bool = False
    """No hole at all besides the trailing jump (set by :meth:`__post_init__`)."""
    one: tuple[int, int, int, Patcher] | None = None
    """The value hole of a stencil that has just one hole (set by :meth:`__post_init__`)."""

    def __post_init__(self) -> None:
        refs = self.runtime or self.cont or self.target or self.traps or self.tierup
        self.simple = not (self.values or refs)
        self.one = self.values[0] if len(self.values) == 1 and not refs else None


class StencilLibrary:
    """Every stencil of one target plus the runtime block. Stencils are decoded
    from the payload on first use (:meth:`get`): a module uses a few hundred of
    the library's six thousand."""

    def __init__(self, triple: str, cpu: str, runtime: bytes, symbols: dict[str, int],
                 raw: dict[str, list[Any]], blob: bytes, exit_bound: bytes) -> None:
        self.triple = triple
        self.cpu = cpu
        self.runtime = runtime
        """Code every buffer starts with (position independent, page-aligned start)."""
        self.symbols = symbols
        """Runtime routine -> offset in :attr:`runtime`."""
        self.exit_bound = exit_bound
        """Opcode -> the most trap exits any stencil of an instruction with it has."""
        self.exits: list[TrapExit] = []
        """Every distinct trap exit decoded so far (what :attr:`Stencil.exit_ids` index)."""
        self.build_seconds = 0.0
        """Wall time of the build (0 when it came from a cache)."""
        self.dispatch: dict[int, Any] = {}
        """The assembler's dispatch table (filled on first use of each entry)."""
        self.special: dict[tuple[int, ...], Stencil] = {}
        """The assembler's stencils with a module's constants patched in, by
        (stencil id, constants); shared by the modules with the same constants."""
        self._raw = raw
        self._blob = blob
        self._stencils: dict[str, Stencil] = {}
        self._exit_ids: dict[TrapExit, int] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every stencil name."""
        return list(self._raw)

    def get(self, name: str) -> Stencil:
        """The stencil ``name`` (KeyError: no such stencil)."""
        st = self._stencils.get(name)
        if st is None:
            with self._lock:
                st = self._stencils.get(name)
                if st is None:
                    st = self._stencils[name] = self._decode(name)
        return st

    def _decode(self, name: str) -> Stencil:
        off, size, tail, holes, traps = self._raw[name]
        exits = tuple(TrapExit(int(k), str(a), str(b)) for k, a, b in traps)
        st = _stencil(name, self._blob[off:off + size], int(tail), holes, self.symbols, exits)
        st.exit_ids = tuple(self._exit_id(e) for e in exits)
        return st

    def _exit_id(self, e: TrapExit) -> int:
        got = self._exit_ids.get(e)
        if got is None:
            got = self._exit_ids[e] = len(self.exits)
            self.exits.append(e)
        return got


# --------------------------------------------------------------------------- building


def _merge_shift_probes(raw: dict[str, RawStencil]) -> dict[str, RawStencil]:
    """x86-64: one stencil with an 8-bit count hole per pair of shift probes."""
    a, b = SHIFT_PROBES
    out: dict[str, RawStencil] = {}
    for name, st in raw.items():
        base, sep, count = name.partition("__")
        if not sep:
            out[name] = st
        elif count == str(a):
            w = 32 if base.split("_")[0][-2:] != "64" else 64
            out[base] = diff_hole(st, raw[f"{base}__{b}"], base,
                                  [(SHIFT_HOLE, a, b), (SHIFT_NEG_HOLE, w - a, w - b)])
    return out


def build(triple: str, cpu: str = "generic", workers: int = 0) -> tuple[bytes, StencilLibrary]:
    """Compile and extract the library of ``triple``; its cache payload too."""
    from concurrent.futures import ThreadPoolExecutor

    from ..llvm.stencils import library_plan
    from ..objfile.compiler import compile_ir, default_pool
    from ..objfile.linker import link_image

    t0 = time.perf_counter()
    n = workers or default_pool().max_workers
    plan = library_plan(triple, cpu, chunks=4 * n)
    with ThreadPoolExecutor(max_workers=n) as ex:
        rt_future = ex.submit(compile_ir, plan.runtime, triple=triple, opt_level=2, cpu=cpu)
        objs = list(ex.map(lambda m: compile_ir(m, triple=triple, opt_level=2, cpu=cpu, stencils=True),
                           plan.modules))
        rt_obj = rt_future.result()
    machine = target_for_triple(triple).elf_machine
    raw: dict[str, RawStencil] = {}
    for obj in objs:
        raw.update(extract(obj, machine))
    raw = _merge_shift_probes(raw)
    if machine == EM_AARCH64:
        raw["SITE"] = _save_lr(raw["SITE"])
    image = link_image(rt_obj, 0)
    text = image.region("text")
    if text is None or len(image.regions) != 1:
        raise ObjectFileError("the stencil runtime module must be code only")
    runtime = text.data[: image.code_size]
    symbols = {name: image.symbols[name] for name in RUNTIME_SYMBOLS if name in image.symbols}
    specs = {s.name: s for s in plan.specs}
    meta: dict[str, object] = {"format": FORMAT, "triple": triple, "cpu": cpu, "layout": LAYOUT_DIGEST,
                               "runtime": len(runtime), "symbols": symbols}
    blob = bytearray(runtime)
    entries: list[list[Any]] = []
    for name, st in sorted(raw.items()):
        spec = specs.get(name) or specs.get(f"{name}__{SHIFT_PROBES[0]}")
        if spec is None:
            raise ObjectFileError(f"stencil object has an unknown function {name!r}")
        entries.append([name, len(blob), len(st.code), st.tail,
                        [[h.offset, h.kind, h.symbol, h.addend] for h in st.holes],
                        [[t.kind, t.addr, t.length] for t in spec.traps]])
        blob += st.code
    meta["stencils"] = entries
    meta["exit_bound"] = _exit_bound({e[0]: len(e[5]) for e in entries})
    payload = _encode(meta, bytes(blob))
    lib = decode(payload, triple, cpu)
    assert lib is not None
    lib.build_seconds = time.perf_counter() - t0
    return payload, lib


A64_SAVE_LR = (0xF81F0FFE).to_bytes(4, "little")
"""``str x30, [sp, #-16]!``: the AArch64 trap stub saves the trapping baseline
function's return address before its ``bl`` (backtraces, :mod:`zjit.backends.backtrace`)."""


def _save_lr(stub: RawStencil) -> RawStencil:
    """The AArch64 ``SITE`` stencil with :data:`A64_SAVE_LR` in front (its holes
    move along); trap path only, so the hot path is unchanged."""
    holes = tuple(dataclasses.replace(h, offset=h.offset + 4) for h in stub.holes)
    return dataclasses.replace(stub, code=A64_SAVE_LR + stub.code, holes=holes)


def _exit_bound(exits: dict[str, int]) -> list[int]:
    """Opcode -> the most trap exits a stencil of one of its instructions has."""
    most = [0] * 256
    for op in OPS:
        for rd, rs1, rs2 in field_keys(op):
            for name in instruction_stencils(op, rd, rs1, rs2):
                most[op.opcode] = max(most[op.opcode], exits[name])
    return most


def _encode(meta: dict[str, object], blob: bytes) -> bytes:
    raw = json.dumps(meta, separators=(",", ":")).encode()
    return _HEAD.pack(MAGIC, len(raw)) + raw + blob


# --------------------------------------------------------------------------- loading


def decode(payload: bytes, triple: str, cpu: str) -> StencilLibrary | None:
    """The library in a cache payload, or None when it is not exactly one (each
    stencil is checked again when it is first used)."""
    try:
        magic, n = _HEAD.unpack_from(payload)
        if magic != MAGIC:
            return None
        meta = json.loads(payload[_HEAD.size:_HEAD.size + n])
        blob = bytes(payload[_HEAD.size + n:])
        if (meta["format"] != FORMAT or meta["triple"] != triple or meta["cpu"] != cpu
                or meta["layout"] != LAYOUT_DIGEST):
            return None
        runtime = blob[: meta["runtime"]]
        symbols = {str(k): int(v) for k, v in meta["symbols"].items()}
        if set(symbols) - set(RUNTIME_SYMBOLS) or any(not 0 <= v < len(runtime) for v in symbols.values()):
            return None
        raw: dict[str, list[Any]] = {}
        for name, off, size, tail, holes, traps in meta["stencils"]:
            if not (isinstance(off, int) and isinstance(size, int) and off >= 0 and off + size <= len(blob)
                    and isinstance(tail, int) and 0 <= tail <= size):
                return None
            raw[str(name)] = [off, size, tail, holes, traps]
        bound = bytes(meta["exit_bound"])
        if len(bound) != 256:
            return None
    except (ValueError, KeyError, TypeError, struct.error):
        return None
    return StencilLibrary(triple, cpu, runtime, symbols, raw, blob, bound)


def _ref_target(symbol: str, symbols: dict[str, int]) -> tuple[str, int]:
    if symbol == CONT:
        return "cont", 0
    if symbol == TARGET:
        return "target", 0
    if symbol == TIERUP:
        return "tierup", 0
    if symbol.startswith(TRAP) and symbol[len(TRAP):].isdigit():
        return "traps", int(symbol[len(TRAP):])
    return "runtime", symbols[symbol]  # KeyError: not a known routine


def _stencil(name: str, code: bytes, tail: int, holes: list[list[Any]], symbols: dict[str, int],
             exits: tuple[TrapExit, ...]) -> Stencil:
    """A stencil from its code and its holes ``[offset, kind, symbol, addend]``;
    ValueError or KeyError for one that is not well formed."""
    end = len(code) - tail
    values: list[tuple[int, int, int, Patcher]] = []
    refs: dict[str, list[Ref]] = {"runtime": [], "cont": [], "target": [], "traps": [], "tierup": [], "tail": []}
    for offset, hkind, symbol, addend in holes:
        if not (isinstance(offset, int) and isinstance(addend, int) and 0 <= offset <= len(code) - 4):
            raise ValueError(f"hole outside stencil {name}")
        patcher = PATCHERS[hkind]
        if hkind in PC_RELATIVE:
            adj = addend - (4 if hkind == REL32 else 0)
            kind, ref = _ref_target(symbol, symbols)
            if kind == "traps" and ref >= len(exits):
                raise ValueError(f"stencil {name} has no trap exit {ref}")
            refs["tail" if offset >= end else kind].append((offset, ref, adj, patcher))
        else:
            values.append((offset, SLOTS[symbol], addend, patcher))
    return Stencil(name, code[:end], code[end:], tuple(values), tuple(refs["runtime"]), tuple(refs["cont"]),
                   tuple(refs["target"]), tuple(refs["traps"]), tuple(refs["tierup"]), tuple(refs["tail"]), exits)


# --------------------------------------------------------------------------- the process-wide libraries

LIBRARY_DISK_BYTES = 32 << 20
"""Bound of the library cache directory (libraries of earlier zjit versions go first)."""
LOCAL_DIR = "__stencils__"
"""Cache directory of the library next to the package (docs/tiering.md)."""
_LOCK = threading.Lock()
_BUILD_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LIBRARIES: dict[tuple[str, str], StencilLibrary] = {}


def library_key(triple: str, cpu: str) -> str:
    """The code cache key of the library of ``triple`` and ``cpu``."""
    from ..cache import cache_key

    return cache_key("stencil-library", triple=triple, cpu=cpu,
                     options={"kind": "stencils", "format": FORMAT, "layout": LAYOUT_DIGEST})


def library_dir() -> str | None:
    """Where the library is cached on disk: :data:`LOCAL_DIR` next to this module
    when that can be written (like Python's ``__pycache__``), else None (the
    default code cache directory)."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    local = os.path.join(here, LOCAL_DIR)
    if os.path.isdir(local):
        return local if os.access(local, os.W_OK) else None
    try:
        os.mkdir(local, 0o755)
    except OSError:
        return None
    return local


def library(triple: str, cpu: str = "generic") -> StencilLibrary:
    """The stencil library of ``triple`` (from memory, the disk cache, or built).

    Raises ``PolicyError("COMPILE_FAILED")`` when it cannot be built.
    """
    key = (triple, cpu)
    lib = _LIBRARIES.get(key)
    if lib is not None:
        return lib
    with _LOCK:
        lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    with lock:
        lib = _LIBRARIES.get(key)
        if lib is not None:
            return lib
        from ..cache import CodeCache

        cache = CodeCache(library_dir(), disk_bytes=LIBRARY_DISK_BYTES)
        ckey = library_key(triple, cpu)
        payload = cache.get(ckey)
        lib = decode(payload, triple, cpu) if payload is not None else None
        if lib is None:
            try:
                payload, lib = build(triple, cpu)
            except (ObjectFileError, KeyError, ValueError) as exc:
                raise PolicyError("COMPILE_FAILED", f"cannot build the stencil library for {triple}: {exc}") from None
            cache.put(ckey, payload)
        _LIBRARIES[key] = lib
        return lib
