"""``module.json``: a module whose code and segment images are separate files
(``formats.md`` 3, ``docs/formats.md``).

Every path is relative to the manifest's directory and may not leave it (symlinks
are resolved before the check). Files are read through :mod:`.bounded`: regular
files only, each size checked against its limit (the policy's code and data caps,
``MAX_JSON_BYTES`` for JSON) before anything is read. Errors carry a JSON path such
as ``$.segments[1].init_path``. Segment descriptors are checked by
:mod:`zjit.memory`, so module.json and embedders get the same error codes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zjit.errors import ContainerError, VerifyError, ZjitError
from zjit.image import ModuleImage, SegmentDesc
from zjit.memory import check_fields, check_segment_fields, descriptors_from_json, to_segments
from zjit.policy import Policy

from .bounded import RegularFile, module_file_limit
from .zasm_bin import MAGIC as ZASB_MAGIC
from .zasm_bin import MEM_MIN_BYTES, read_zasm_bin

FORMAT = "zjit-module/1"
TOP_KEYS = ("format", "code", "entry", "exports", "memory", "segments")
MEMORY_KEYS = ("min_bytes", "max_bytes")
MAX_JSON_BYTES = 16 << 20
"""Largest manifest or sidecar file read (a manifest is small; this bounds reads)."""


def _json_too_large(what: str, where: str) -> Callable[[int], ZjitError]:
    def error(size: int) -> ZjitError:
        return ContainerError("FILE_TOO_LARGE", f"{what} is {size} bytes, at most {MAX_JSON_BYTES} are read",
                              path=where)

    return error


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_json(data: bytes, where: str) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity; BAD_JSON otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContainerError("BAD_JSON", f"{where} is not UTF-8", offset=exc.start, path=where) from exc
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ContainerError(
            "BAD_JSON", f"{where}: {exc.msg}", offset=exc.pos, line=exc.lineno, path=where
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise ContainerError("BAD_JSON", f"{where}: {exc}", path=where) from exc


class _Files:
    """Resolves and opens files under one base directory, never outside it, under
    one policy's size caps."""

    def __init__(self, base: str | os.PathLike[str], policy: Policy) -> None:
        self.base = Path(os.path.realpath(base))
        self.policy = policy

    def resolve(self, rel: object, jpath: str) -> Path:
        if not isinstance(rel, str) or not rel:
            raise ContainerError("BAD_JSON", "a path must be a non-empty string", path=jpath)
        if "\0" in rel or os.path.isabs(rel):
            raise ContainerError("BAD_PATH", f"path {rel!r} must be relative to the manifest", path=jpath)
        try:
            target = Path(os.path.realpath(os.path.join(self.base, rel)))
        except (OSError, ValueError) as exc:  # ValueError: a name the file system cannot encode
            raise ContainerError("BAD_PATH", f"path {rel!r} cannot be resolved: {exc}", path=jpath) from None
        if not target.is_relative_to(self.base):
            raise ContainerError("BAD_PATH", f"path {rel!r} leaves the manifest directory", path=jpath)
        return target

    def open(self, rel: object, jpath: str) -> RegularFile:
        """The regular file ``rel`` names (resolved and checked; a symlink swapped in
        after the check is not followed)."""
        return RegularFile(self.resolve(rel, jpath), label=repr(rel), where=jpath, follow_symlinks=False)


def _check_keys(obj: dict[str, Any], allowed: tuple[str, ...], jpath: str) -> None:
    for key in obj:
        if key not in allowed:
            raise ContainerError("UNKNOWN_KEY", f"unknown key {key!r}", path=f"{jpath}.{key}")


def _read_code_file(files: _Files, rel: object) -> bytes:
    """A raw code file is capped by ``max_code_bytes`` (CODE_TOO_LARGE), a ``.zasm.bin``
    by :func:`module_file_limit`, both from the file's size before reading."""
    with files.open(rel, "$.code") as f:
        if f.head(4) == ZASB_MAGIC:
            limit = module_file_limit(files.policy)
            return f.read(limit, lambda size: ContainerError(
                "FILE_TOO_LARGE", f"the code file is {size} bytes, the policy allows {limit}", path="$.code"))
        cap = files.policy.max_code_bytes
        return f.read(cap, lambda size: VerifyError(
            "CODE_TOO_LARGE", f"the code file is {size} bytes, policy cap is {cap}", path="$.code", offset=0))


def _load_code(files: _Files, rel: object, name: str) -> ModuleImage:
    data = _read_code_file(files, rel)
    if data[:4] == ZASB_MAGIC:
        try:
            return read_zasm_bin(data, name=name)
        except ZjitError as exc:
            if exc.path is None:
                exc.path = f"$.code ({rel})"
            raise
    if not data:
        raise VerifyError("EMPTY_CODE", "the code file is empty", path="$.code", offset=0)
    if len(data) % 4:
        raise VerifyError("CODE_ALIGN", f"the code file is {len(data)} bytes, not a multiple of 4",
                          path="$.code", offset=0)
    return ModuleImage(code=data, name=name)


def _exports(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ContainerError("BAD_JSON", "exports must be an object of name -> pc", path="$.exports")
    out: dict[str, int] = {}
    for key, pc in value.items():
        if not key:
            raise ContainerError("BAD_NAME", "export names must be non-empty", path="$.exports")
        if not _is_int(pc) or pc < 0:
            raise ContainerError("BAD_JSON", "an export pc must be an integer >= 0", path=f"$.exports.{key}")
        out[key] = pc
    return out


def _memory(value: object) -> tuple[int | None, int | None]:
    if not isinstance(value, dict):
        raise ContainerError("BAD_JSON", "memory must be an object", path="$.memory")
    _check_keys(value, MEMORY_KEYS, "$.memory")
    lo, hi = value.get("min_bytes"), value.get("max_bytes")
    for key, v in (("min_bytes", lo), ("max_bytes", hi)):
        if v is not None and (not _is_int(v) or v < 0):
            raise ContainerError("BAD_JSON", f"{key} must be an integer >= 0", path=f"$.memory.{key}")
    if lo is not None and lo < MEM_MIN_BYTES:
        raise ContainerError("BAD_MEM", f"min_bytes {lo} is below {MEM_MIN_BYTES}", path="$.memory.min_bytes")
    if hi and lo is not None and hi < lo:
        raise ContainerError("BAD_MEM", f"max_bytes {hi} is below min_bytes {lo}", path="$.memory.max_bytes")
    return lo, hi


def _segments(files: _Files, value: object, data_bytes: int) -> tuple[SegmentDesc, ...]:
    """Descriptors inline or from a sidecar; ``data_bytes`` is the initial data the
    code file already holds (it counts towards ``max_data_bytes``)."""
    if isinstance(value, str):
        with files.open(value, "$.segments") as f:
            raw = f.read(MAX_JSON_BYTES, _json_too_large("the segments file", "$.segments"))
        value = parse_json(raw, "$.segments")
    descs = descriptors_from_json(value, "$.segments")
    checked = check_fields(descs)  # field errors come before any file is read
    inits: dict[str, bytes] = {}
    cap = files.policy.max_data_bytes
    for desc, c in zip(descs, checked, strict=True):
        if c.init_size is None or desc.init_path is None:
            continue
        if c.init_size > c.size:
            break  # BAD_SIZE, reported by to_segments in declaration order; nothing more is read
        data_bytes += c.init_size
        if data_bytes > cap:
            raise VerifyError("DATA_TOO_LARGE", f"initial data reaches {data_bytes} bytes with segment {c.name}, "
                              f"policy cap is {cap}", path=f"{desc.origin}.init_size", segments=(c.name,))
        with files.open(desc.init_path, f"{desc.origin}.init_path") as f:
            inits[c.name] = f.read(c.init_size)  # at most init_size + 1 bytes; to_segments checks the count
    return to_segments(descs, inits)


def read_manifest_obj(obj: object, base_dir: str | os.PathLike[str], name: str = "module",
                      policy: Policy | None = None) -> ModuleImage:
    """Build a ModuleImage from an already parsed module.json object whose paths are
    relative to ``base_dir``; the files it names are read within ``policy``'s caps."""
    if not isinstance(obj, dict):
        raise ContainerError("BAD_JSON", "module.json must hold an object", path="$")
    _check_keys(obj, TOP_KEYS, "$")
    if obj.get("format") != FORMAT:
        raise ContainerError("BAD_JSON", f"format must be {FORMAT!r}", path="$.format")
    if "code" not in obj:
        raise ContainerError("BAD_JSON", "code is required", path="$.code")
    files = _Files(base_dir, policy or Policy())
    inner = _load_code(files, obj["code"], name)

    exports = dict(inner.exports)
    if "exports" in obj:
        for key, pc in _exports(obj["exports"]).items():
            if key in exports and exports[key] != pc:
                raise ContainerError("BAD_JSON", f"export {key!r} differs from the code file's", path=f"$.exports.{key}")
            exports[key] = pc

    if "entry" in obj:
        entry = obj["entry"]
        if isinstance(entry, str):
            if entry not in exports:
                raise ContainerError("BAD_JSON", f"entry {entry!r} is not an export", path="$.entry")
            entry_pc = exports[entry]
        elif _is_int(entry) and entry >= 0:
            entry_pc = entry
        else:
            raise ContainerError("BAD_JSON", "entry must be an export name or a pc >= 0", path="$.entry")
    else:
        entry_pc = exports.get("main", inner.entry_pc)

    mem_min, mem_max = inner.mem_min, inner.mem_max
    if "memory" in obj:
        mem_min, mem_max = _memory(obj["memory"])

    segments = inner.segments
    if "segments" in obj:
        data_bytes = sum(len(s.init or b"") for s in segments)
        segments = segments + _segments(files, obj["segments"], data_bytes)
        check_segment_fields(segments)  # names unique across the code file's DATA and the manifest

    return ModuleImage(
        code=inner.code,
        entry_pc=entry_pc,
        exports=exports,
        imports=inner.imports,
        mem_min=mem_min,
        mem_max=mem_max,
        segments=segments,
        debug=dict(inner.debug),
        source_format="manifest",
        code_offset=inner.code_offset,
        name=name,
    )


def manifest_name(path: Path) -> str:
    """Module name for a manifest file: its directory's name for ``module.json``
    (symlinks resolved), else the file stem."""
    path = Path(os.path.realpath(path))
    if path.name == "module.json" and path.parent.name:
        return path.parent.name
    return path.stem


def read_manifest_bytes(data: bytes, base_dir: str | os.PathLike[str], name: str = "module",
                        policy: Policy | None = None) -> ModuleImage:
    """Parse module.json text given as bytes (paths relative to ``base_dir``)."""
    if len(data) > MAX_JSON_BYTES:
        raise _json_too_large("the manifest", "$")(len(data))
    return read_manifest_obj(parse_json(data, "$"), base_dir, name, policy)


def read_manifest(path: str | os.PathLike[str], name: str | None = None, policy: Policy | None = None) -> ModuleImage:
    """Read a module.json file and the files it names (within ``policy``'s caps)."""
    p = Path(path)
    with RegularFile(p, label=repr(str(p)), where=str(p)) as f:
        data = f.read(MAX_JSON_BYTES, _json_too_large("the manifest", str(p)))
    return read_manifest_bytes(data, p.parent if str(p.parent) else ".", name or manifest_name(p), policy)
