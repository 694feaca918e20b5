"""Ahead-of-time build outputs (``formats.md`` 5): object, header, helper, segments, manifest.

:func:`build_aot` verifies a module, lowers it with the same lowering as the JIT
(:mod:`zjit.backends.llvm`), compiles it for the requested target in the compile
worker and writes (``P`` is the symbol prefix, ``zjit_`` by default)::

    DIR/<name>.o               relocatable ELF object, entry points P entry_<pc>
    DIR/zjit.h                 context layout, trap codes, entry prototypes
    DIR/Pmodule.c, Pmodule.h   the C helper (instance, run, default I/O; c_helper.py)
    DIR/segments/<seg>.bin     one file per initialised segment
    DIR/manifest.json          everything a host needs to know (docs/aot.md)

Files are written to temporary names and renamed, the manifest last, so a
complete ``manifest.json`` always describes complete outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zjit import __version__ as ZJIT_VERSION
from zjit.image import ModuleImage
from zjit.isa import DEFAULT_MAX_CALL_DEPTH, PRIM_NAMES, TrapKind
from zjit.policy import Policy

from ..targets import TARGETS, bundled_llvm_version, llvmlite_version

MANIFEST_FORMAT = "zjit-aot/1"
DEFAULT_PREFIX = "zjit_"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start C identifiers (a letter, then letters, digits and
    ``_``; at most 64 characters); ValueError otherwise."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"symbol prefix {prefix!r} must be a letter followed by letters, digits or '_' "
                         "(at most 64 characters)")
    return prefix


@dataclass(frozen=True)
class AotOptions:
    """What the build depends on besides the module."""

    target: str = "x86_64"
    opt_level: int = 2
    cpu: str = "generic"
    fuel: int | None = None
    """None: unmetered code. A number: metered code; the host starts with this fuel."""
    max_call_depth: int = DEFAULT_MAX_CALL_DEPTH
    mem_size: int | None = None
    name: str | None = None
    prefix: str = DEFAULT_PREFIX
    """Starts every global symbol of the object and every name of the header and
    helper (macros: its upper-case form), so modules built with different prefixes
    link into one program."""


def safe_file_name(name: str) -> str:
    """``name`` reduced to a portable file name (no separators, no leading dot)."""
    cleaned = _SAFE.sub("_", name) or "_"
    return "_" + cleaned if cleaned.startswith(".") else cleaned


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_aot(
    image: ModuleImage,
    out_dir: str | os.PathLike[str],
    options: AotOptions,
    *,
    source_bytes: bytes | None = None,
    source_path: str | None = None,
) -> dict[str, Any]:
    """Build and write the AOT outputs for ``image``; returns the manifest.

    Raises :class:`~zjit.errors.ZjitError` subclasses for rejected modules (verify,
    segment, policy; an invalid prefix is ``BAD_POLICY``) and
    ``PolicyError("COMPILE_FAILED")`` when LLVM fails.
    """
    from zjit.verifier import verify

    from zjit.errors import PolicyError
    from zjit.memory import build_memory

    from ..context import (
        CTX_SIZE,
        HOST_OPS,
        LAYOUT_DIGEST,
        STATUS_OK,
        STATUS_TRAPPED,
        TRAP_OUTPUT_LIMIT,
        TRAP_STACK,
        c_header,
    )
    from ..llvm import CodegenOptions, lower
    from ..middle.lift import lift
    from ..objfile import elf
    from ..objfile.compiler import compile_ir
    from .c_helper import HelperModule, c_comment, helper_file_names, helper_sources

    try:
        prefix = check_prefix(options.prefix)
    except ValueError as exc:
        raise PolicyError("BAD_POLICY", str(exc)) from None
    target = TARGETS[options.target]
    policy = Policy(
        fuel=options.fuel,
        mem_size=options.mem_size,
        max_call_depth=options.max_call_depth,
        opt_level=options.opt_level,
        use_cache=False,
    )
    program = verify(image, policy)
    memory = build_memory(image, policy)  # checks segments against the memory size
    cg = CodegenOptions(
        triple=target.triple, opt_level=options.opt_level, fuel=options.fuel is not None, cpu=options.cpu,
        symbol_prefix=prefix,
    )
    lowered = lower(lift(program, cg.versioning), cg)
    obj = compile_ir(lowered.text, triple=target.triple, opt_level=options.opt_level, cpu=options.cpu)
    undefined = sorted(
        s.name for s in elf.parse_elf(obj).symbols if s.index and s.shndx == elf.SHN_UNDEF and s.name
    )

    name = safe_file_name(options.name or image.name or "module")
    out = Path(out_dir)
    seg_dir = out / "segments"
    seg_dir.mkdir(parents=True, exist_ok=True)

    entry_symbols = {pc: sym for pc, sym in lowered.entries.items()}
    comments = {}
    for pc, sym in sorted(entry_symbols.items()):
        names = [n for n, p in sorted(program.exports.items()) if p == pc]
        label = ", ".join(names) if names else "entry"
        if pc == program.entry and names:
            label = "entry, " + label
        comments[sym] = c_comment(f"runs from pc {pc:#x} ({label})")

    segments: list[dict[str, Any]] = []
    used_files: set[str] = set()
    for seg in image.segments:
        desc: dict[str, Any] = {"name": seg.name, "base": seg.base, "size": seg.size, "permissions": seg.perms}
        if seg.init is None:
            desc["zeroed"] = True
        else:
            stem = safe_file_name(seg.name)
            file_name, n = stem + ".bin", 1
            while file_name in used_files:
                n += 1
                file_name = f"{stem}-{n}.bin"
            used_files.add(file_name)
            _write_atomic(seg_dir / file_name, seg.init)
            desc.update(init_path=f"segments/{file_name}", init_size=len(seg.init), sha256=_sha256(seg.init))
        segments.append(desc)
    for stale in seg_dir.glob("*.bin"):
        if stale.name not in used_files:
            stale.unlink()

    obj_name = f"{name}.o"
    _write_atomic(out / obj_name, obj)
    header = c_header(comments, prefix)
    _write_atomic(out / "zjit.h", header.encode())
    helper_c, helper_h = helper_file_names(prefix)
    trap_names = {int(k): k.name for k in TrapKind} | {TRAP_STACK: "NATIVE_STACK", TRAP_OUTPUT_LIMIT: "OUTPUT_LIMIT"}
    c_text, h_text = helper_sources(HelperModule(
        prefix=prefix,
        module_name=image.name or name,
        object_name=obj_name,
        entry_symbol=entry_symbols[program.entry],
        exports={n: entry_symbols[pc] for n, pc in program.exports.items()},
        # trailing zero bytes are left to the zeroed memory
        segments=tuple((seg.base, seg.init.rstrip(b"\0")) for seg in image.segments
                       if seg.init is not None and seg.init.strip(b"\0")),
        readonly=tuple(memory.readonly),
        mem_size=memory.mem_size,
        heap_start=memory.heap_start,
        max_call_depth=options.max_call_depth,
        fuel=options.fuel,
        trap_names=trap_names,
    ))
    _write_atomic(out / helper_h, h_text.encode())
    _write_atomic(out / helper_c, c_text.encode())

    def entry_desc(pc: int) -> dict[str, Any]:
        return {"pc": pc, "symbol": entry_symbols[pc]}

    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "zjit_version": ZJIT_VERSION,
        "llvm_version": bundled_llvm_version(),
        "llvmlite_version": llvmlite_version(),
        "target": {"name": target.name, "triple": target.triple, "cpu": options.cpu,
                   "data_layout": target.data_layout},
        "module": {
            "name": image.name,
            "source": os.path.basename(source_path) if source_path else None,
            "source_format": image.source_format,
            "sha256": _sha256(source_bytes) if source_bytes is not None else None,
            "program_digest": program.digest,
        },
        "object": obj_name,
        "object_sha256": _sha256(obj),
        "undefined_symbols": undefined,
        "header": "zjit.h",
        "helper": {"source": helper_c, "header": helper_h},
        "abi": {
            "entry_prototype": f"int32_t entry({prefix}ctx *ctx)",
            "host_call_prototype": f"int64_t host_call({prefix}ctx *ctx, uint64_t op, uint64_t a, uint64_t b, "
                                   "uint64_t c, uint64_t d)",
            "host_ops": dict(HOST_OPS),
            "context_size": CTX_SIZE,
            "context_layout": LAYOUT_DIGEST,
            "status": {"ok": STATUS_OK, "trapped": STATUS_TRAPPED},
        },
        "entry": entry_desc(program.entry),
        "exports": {n: entry_desc(pc) for n, pc in sorted(program.exports.items())},
        "imports": {
            "mask": program.prims_used,
            "primitives": [p for i, p in enumerate(PRIM_NAMES) if program.prims_used >> i & 1],
        },
        "memory": {
            "min_bytes": image.mem_min,
            "max_bytes": image.mem_max,
            "size": memory.mem_size,
            "heap_start": memory.heap_start,
            "readonly_ranges": [list(r) for r in memory.readonly],
        },
        "codegen": {
            "opt_level": options.opt_level,
            "metered": options.fuel is not None,
            "fuel": options.fuel,
            "max_call_depth": options.max_call_depth,
            "interrupts": cg.interrupts,
            "stack_guard": cg.stack_guard,
            "symbol_prefix": cg.symbol_prefix,
        },
        "segments": segments,
    }
    _write_atomic(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest
