"""Guest memory images: segment descriptors, validation and initialisation.

This is the public helper of ``formats.md`` 3 (descriptors plus one byte string per
initialised segment, no files involved) and the size rule of ``formats.md`` 4.
Checks run in a fixed order so the same input always reports the same first error:

1. field checks, per descriptor, in declaration order (``BAD_DESCRIPTOR``);
2. initial bytes, per descriptor, in declaration order (``init_size <= size`` else
   ``BAD_SIZE``, then ``MISSING_INIT``, then the byte count, ``BAD_SIZE``);
3. bounds, in declaration order (``OUT_OF_BOUNDS``);
4. overlaps: sorted by base, the first overlapping pair (``OVERLAP``).

Every failure is a :class:`~zjit.errors.SegmentError` naming the segment(s).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import ContainerError, PolicyError, SegmentError
from .image import ModuleImage, SegmentDesc
from .policy import DEFAULT_MEM_SIZE, Policy

TYPE_CHECKING = False  # typing stays unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

HEAP_FLOOR = 16
"""The heap never starts below this address (``isa.md`` 2.8)."""

DESCRIPTOR_KEYS = (
    "name", "base", "size", "permissions", "init_path", "init_size", "zeroed", "bss_size",
)
"""The keys a JSON segment descriptor may have."""


@dataclass
class Descriptor:
    """A segment descriptor as written by a user (not yet validated).

    Fields hold whatever the source gave (JSON values or Python objects); None means
    absent. ``origin`` is where it came from (a JSON path such as
    ``$.segments[2]``) and is attached to errors.
    """

    name: Any = None
    base: Any = None
    size: Any = None
    permissions: Any = None
    init_path: Any = None
    init_size: Any = None
    zeroed: Any = None
    bss_size: Any = None
    origin: str | None = None


@dataclass(frozen=True)
class MemoryLayout:
    """Where an instance's guest memory puts things: ``mem_size`` bytes, the
    sorted, merged, non-overlapping read-only ``(start, end)`` ranges and the
    heap start, ``align8(max(16, end of the highest segment))``."""

    mem_size: int
    readonly: tuple[tuple[int, int], ...]
    heap_start: int


@dataclass(frozen=True)
class MemoryImage:
    """Initial guest memory: the bytes, plus the read-only ranges and the heap
    start of its :class:`MemoryLayout`."""

    memory: bytearray
    readonly: tuple[tuple[int, int], ...]
    heap_start: int

    @property
    def mem_size(self) -> int:
        """Size of guest memory in bytes."""
        return len(self.memory)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _label(desc: Descriptor, index: int) -> str:
    return desc.name if isinstance(desc.name, str) and desc.name else f"#{index}"


def _bad(desc: Descriptor, index: int, field: str, message: str) -> SegmentError:
    path = f"{desc.origin}.{field}" if desc.origin else None
    return SegmentError(
        "BAD_DESCRIPTOR", f"segment {_label(desc, index)}: {message}",
        segments=(_label(desc, index),), path=path,
    )


def _canonical_perms(perms: object) -> str | None:
    if not isinstance(perms, str) or not perms or len(set(perms)) != len(perms):
        return None
    if any(c not in "rwx" for c in perms) or "r" not in perms:
        return None
    return "".join(c for c in "rwx" if c in perms)


def descriptors_from_json(items: object, origin: str = "$.segments") -> list[Descriptor]:
    """Turn a JSON list of descriptor objects into Descriptors.

    Only the shape is checked here (a list of objects with known keys); field values
    are checked by :func:`validate_descriptors`. Raises SegmentError BAD_DESCRIPTOR
    for a non-list or non-object, and ContainerError UNKNOWN_KEY for unknown keys.
    """
    if not isinstance(items, list):
        raise SegmentError("BAD_DESCRIPTOR", "segments must be a list of objects", path=origin)
    out: list[Descriptor] = []
    for i, item in enumerate(items):
        where = f"{origin}[{i}]"
        if not isinstance(item, dict):
            raise SegmentError(
                "BAD_DESCRIPTOR", "a segment descriptor must be an object", path=where, segments=(f"#{i}",)
            )
        for key in item:
            if key not in DESCRIPTOR_KEYS:
                raise ContainerError("UNKNOWN_KEY", f"unknown segment key {key!r}", path=f"{where}.{key}")
        out.append(Descriptor(**{k: item.get(k) for k in DESCRIPTOR_KEYS}, origin=where))
    return out


@dataclass(frozen=True)
class _Checked:
    name: str
    base: int
    size: int
    perms: str
    init_size: int | None  # None: zero-filled
    origin: str | None


def check_fields(descriptors: Sequence[Descriptor]) -> list[_Checked]:
    """Step 1: field checks per descriptor, in declaration order (BAD_DESCRIPTOR)."""
    seen: set[str] = set()
    out: list[_Checked] = []
    for i, d in enumerate(descriptors):
        if not isinstance(d.name, str) or not d.name:
            raise _bad(d, i, "name", "name must be a non-empty string")
        if d.name in seen:
            raise _bad(d, i, "name", "name is used by an earlier segment")
        if not _is_int(d.base) or d.base < 0:
            raise _bad(d, i, "base", "base must be an integer >= 0")
        zero_form = d.zeroed is not None or d.bss_size is not None
        init_form = d.init_path is not None or d.init_size is not None
        size = d.size
        if d.bss_size is not None:
            if not _is_int(d.bss_size) or d.bss_size <= 0:
                raise _bad(d, i, "bss_size", "bss_size must be an integer > 0")
            if size is None:
                size = d.bss_size
            elif size != d.bss_size:
                raise _bad(d, i, "bss_size", "bss_size differs from size")
        if not _is_int(size) or size <= 0:
            raise _bad(d, i, "size", "size must be an integer > 0")
        perms = _canonical_perms(d.permissions)
        if perms is None:
            raise _bad(d, i, "permissions", "permissions must be distinct letters from 'rwx' including 'r'")
        if zero_form and init_form:
            raise _bad(d, i, "zeroed", "a segment has either initial bytes or is zero-filled, not both")
        if not zero_form and not init_form:
            raise _bad(d, i, "init_size", "give init_path/init_size or zeroed/bss_size")
        if d.zeroed is not None and d.zeroed is not True:
            raise _bad(d, i, "zeroed", "zeroed must be true when present")
        if init_form:
            if d.init_path is not None and (not isinstance(d.init_path, str) or not d.init_path):
                raise _bad(d, i, "init_path", "init_path must be a non-empty string")
            if not _is_int(d.init_size) or d.init_size < 0:
                raise _bad(d, i, "init_size", "init_size must be an integer >= 0")
        seen.add(d.name)
        out.append(_Checked(d.name, d.base, size, perms, d.init_size if init_form else None, d.origin))
    return out


def _check_inits(checked: list[_Checked], inits: Mapping[str, bytes]) -> tuple[SegmentDesc, ...]:
    """Step 2: initial bytes per descriptor (MISSING_INIT, BAD_SIZE)."""
    segs: list[SegmentDesc] = []
    for c in checked:
        where = f"{c.origin}.init_size" if c.origin else None
        if c.init_size is None:
            if c.name in inits:
                raise SegmentError(
                    "BAD_SIZE", f"segment {c.name}: initial bytes given for a zero-filled segment",
                    segments=(c.name,), path=where,
                )
            segs.append(SegmentDesc(c.name, c.base, c.size, c.perms, None))
            continue
        if c.init_size > c.size:
            raise SegmentError(
                "BAD_SIZE", f"segment {c.name}: init_size {c.init_size} exceeds size {c.size}",
                segments=(c.name,), path=where,
            )
        if c.name not in inits:
            raise SegmentError(
                "MISSING_INIT", f"segment {c.name}: no initial bytes given", segments=(c.name,), path=where
            )
        data = bytes(inits[c.name])
        if len(data) != c.init_size:
            raise SegmentError(
                "BAD_SIZE", f"segment {c.name}: init_size {c.init_size} but {len(data)} bytes given",
                segments=(c.name,), path=where,
            )
        segs.append(SegmentDesc(c.name, c.base, c.size, c.perms, data))
    names = {c.name for c in checked}
    for extra in sorted(k for k in inits if k not in names):
        raise SegmentError(
            "BAD_DESCRIPTOR", f"initial bytes given for unknown segment {extra!r}", segments=(extra,)
        )
    return tuple(segs)


def to_segments(descriptors: Sequence[Descriptor], inits: Mapping[str, bytes]) -> tuple[SegmentDesc, ...]:
    """Steps 1 and 2 (everything that does not depend on the memory size)."""
    return _check_inits(check_fields(descriptors), inits)


def check_segment_fields(segments: Iterable[SegmentDesc]) -> None:
    """Field checks for ready-made SegmentDescs (from any container or an embedder)."""
    seen: set[str] = set()
    for seg in segments:
        label = seg.name if isinstance(seg.name, str) and seg.name else "?"
        problem = None
        if not isinstance(seg.name, str) or not seg.name or seg.name in seen:
            problem = "name must be non-empty and unique"
        elif not _is_int(seg.base) or seg.base < 0:
            problem = "base must be an integer >= 0"
        elif not _is_int(seg.size) or seg.size <= 0:
            problem = "size must be an integer > 0"
        elif _canonical_perms(seg.perms) is None:
            problem = "permissions must be letters from 'rwx' including 'r'"
        if problem:
            raise SegmentError("BAD_DESCRIPTOR", f"segment {label}: {problem}", segments=(label,))
        if seg.init is not None and len(seg.init) > seg.size:
            raise SegmentError(
                "BAD_SIZE", f"segment {label}: {len(seg.init)} initial bytes exceed size {seg.size}",
                segments=(label,),
            )
        seen.add(seg.name)


def check_layout(mem_size: int, segments: Sequence[SegmentDesc]) -> None:
    """Steps 3 and 4: bounds in declaration order, then the first overlapping pair
    in base order (ties keep declaration order)."""
    for seg in segments:
        if seg.base + seg.size > mem_size:
            raise SegmentError(
                "OUT_OF_BOUNDS",
                f"segment {seg.name} [{seg.base:#x}, {seg.end:#x}) does not fit in {mem_size:#x} bytes",
                segments=(seg.name,),
            )
    ordered = sorted(range(len(segments)), key=lambda i: (segments[i].base, i))
    reach: SegmentDesc | None = None  # the segment reaching furthest so far
    for i in ordered:
        seg = segments[i]
        if reach is not None and seg.base < reach.end:
            raise SegmentError(
                "OVERLAP",
                f"segment {reach.name} [{reach.base:#x}, {reach.end:#x}) overlaps "
                f"{seg.name} [{seg.base:#x}, {seg.end:#x})",
                segments=(reach.name, seg.name),
            )
        if reach is None or seg.end > reach.end:
            reach = seg


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _layout(mem_size: int, segments: Sequence[SegmentDesc]) -> MemoryLayout:
    ranges: list[tuple[int, int]] = []
    top = HEAP_FLOOR
    for seg in segments:
        if not seg.writable:
            ranges.append((seg.base, seg.end))
        top = max(top, seg.end)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return MemoryLayout(mem_size, tuple(merged), _align8(top))


def _materialise(layout: MemoryLayout, segments: Sequence[SegmentDesc]) -> MemoryImage:
    memory = bytearray(layout.mem_size)
    for seg in segments:
        if seg.init:
            memory[seg.base : seg.base + len(seg.init)] = seg.init
    return MemoryImage(memory, layout.readonly, layout.heap_start)


def validate_descriptors(
    mem_size: int, descriptors: Sequence[Descriptor], inits: Mapping[str, bytes]
) -> tuple[SegmentDesc, ...]:
    """Run all four checks; return the validated segments (declaration order)."""
    segments = to_segments(descriptors, inits)
    check_layout(mem_size, segments)
    return segments


def init_memory(
    mem_size: int, descriptors: Sequence[Descriptor], inits: Mapping[str, bytes]
) -> MemoryImage:
    """Validate descriptors and build the initial memory (step 5): zeroed memory,
    initial bytes copied in, read-only ranges recorded."""
    segments = validate_descriptors(mem_size, descriptors, inits)
    return _materialise(_layout(mem_size, segments), segments)


def resolve_mem_size(image: ModuleImage, policy: Policy) -> int:
    """Guest memory size (``formats.md`` 4): the policy's, else the declared
    minimum, else 2 MiB; never clamped (PolicyError MEM_TOO_SMALL/MEM_TOO_LARGE)."""
    if policy.mem_size is not None:
        size, source = policy.mem_size, "Policy.mem_size"
    elif image.mem_min is not None:
        size, source = image.mem_min, "module minimum"
    else:
        size, source = DEFAULT_MEM_SIZE, "default"
    if image.mem_min is not None and size < image.mem_min:
        raise PolicyError(
            "MEM_TOO_SMALL", f"memory size {size} ({source}) is below the module's minimum {image.mem_min}",
            path="Policy.mem_size",
        )
    if image.mem_max and size > image.mem_max:
        raise PolicyError(
            "MEM_TOO_LARGE", f"memory size {size} ({source}) is above the module's maximum {image.mem_max}",
            path="Policy.mem_size",
        )
    if size > policy.max_mem_size:
        raise PolicyError(
            "MEM_TOO_LARGE", f"memory size {size} ({source}) is above Policy.max_mem_size {policy.max_mem_size}",
            path="Policy.max_mem_size",
        )
    return size


def memory_layout(image: ModuleImage, policy: Policy) -> MemoryLayout:
    """The guest memory layout of every instance of ``image`` under ``policy``:
    the one computation every engine uses (the interpreter and the JIT's through
    :func:`build_memory`, the compiling engines also before any instance exists,
    to compile the code instances will need).

    Resolves the size, then checks the image's segments (fields, bounds,
    overlaps): PolicyError or SegmentError exactly as :func:`build_memory`.
    """
    mem_size = resolve_mem_size(image, policy)
    check_segment_fields(image.segments)
    check_layout(mem_size, image.segments)
    return _layout(mem_size, image.segments)


def build_memory(image: ModuleImage, policy: Policy) -> MemoryImage:
    """Provision an instance's memory: its :func:`memory_layout` (size resolved,
    segments checked), with the segments' initial bytes copied in."""
    return _materialise(memory_layout(image, policy), image.segments)
