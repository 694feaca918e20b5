"""The data side of an assembly: the data location counter and the segments it fills.

Anonymous runs of placed bytes become segments ``data.0``, ``data.1``...; ``SEGMENT``
... ``ENDS`` brackets make named ones (docs/assembly.md, "Data").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zjit.errors import AsmError
from zjit.image import SegmentDesc

DATA_START = 0x1000
"""The data location counter's initial value."""
MAX_ADDRESS = 1 << 32
"""Data addresses (and segment ends) must stay below 2^32 (container fields are u32)."""
MAX_DATA_BYTES = 256 << 20
"""Upper bound on the total initialised data an assembly may produce."""


@dataclass(slots=True)
class Seg:
    """A segment being filled; ``name`` None is an anonymous run (named at the end)."""

    name: str | None
    base: int
    line: int
    perms: str = "rw"
    declared_size: int | None = None
    data: bytearray = field(default_factory=bytearray)
    length: int = 0           # bytes placed (tracked even when data is not built)
    size: int = 0


class DataLayout:
    """The location counter and segments of one pass; ``strict`` builds the bytes
    and checks the limits (layout passes only count)."""

    def __init__(self, path: str, strict: bool) -> None:
        self.path = path
        self.strict = strict
        self.loc = DATA_START
        self.segs: list[Seg] = []
        self.run: Seg | None = None        # open anonymous run
        self.explicit: Seg | None = None   # open SEGMENT ... ENDS
        self.total = 0

    def err(self, code: str, msg: str, line: int) -> AsmError:
        return AsmError(code, msg, line=line, path=self.path)

    def place(self, data: bytes | int, line: int) -> None:
        """Place bytes (or, in layout passes, a count of bytes) at the location counter."""
        count = data if isinstance(data, int) else len(data)
        if count <= 0:
            return
        seg = self.explicit
        if seg is None:
            run = self.run
            if run is None or run.base + run.length != self.loc:
                run = Seg(None, self.loc, line)
                self.segs.append(run)
                self.run = run
            seg = run
        if self.strict:
            if self.loc + count > MAX_ADDRESS:
                raise self.err("ASM_RANGE", f"data at {self.loc:#x}..{self.loc + count:#x} goes past "
                               "the 4 GiB address limit", line)
            self.total += count
            if self.total > MAX_DATA_BYTES:
                raise self.err("ASM_RANGE", f"more than {MAX_DATA_BYTES} bytes of data", line)
            seg.data += data if isinstance(data, bytes) else bytes(count)
        seg.length += count
        self.loc += count

    def open_segment(self, name: str, perms: str, size: int | None, line: int) -> None:
        """Start ``SEGMENT name, perms [, size]`` at the location counter (none is open)."""
        seg = Seg(name, self.loc, line, perms, size)
        self.segs.append(seg)
        self.explicit = seg
        self.run = None

    def close_segment(self, line: int) -> None:
        """``ENDS``: fix the open segment's size and move the counter past it."""
        seg = self.explicit
        if seg is None:
            raise self.err("ASM_SYNTAX", "ENDS without SEGMENT", line)
        size = seg.length if seg.declared_size is None else seg.declared_size
        seg.size = max(size, seg.length)
        self.loc = seg.base + seg.size
        self.explicit = None
        if self.strict and size < seg.length:
            raise self.err("ASM_RANGE", f"SEGMENT {seg.name!r} holds {seg.length} bytes, more than "
                           f"its declared size {size}", line)

    def check_closed(self) -> None:
        """At the end of the file: no ``SEGMENT`` may be left open."""
        if self.explicit is not None:
            raise self.err("ASM_SYNTAX", f"SEGMENT {self.explicit.name!r} is never closed with ENDS",
                           self.explicit.line)

    def descriptors(self) -> tuple[SegmentDesc, ...]:
        """The segments, named and checked (unique names, no overlap, below 4 GiB)."""
        out: list[SegmentDesc] = []
        names: dict[str, int] = {}
        anon = 0
        for seg in self.segs:
            if seg.name is None:
                seg.name = f"data.{anon}"
                anon += 1
                seg.size = seg.length
            if seg.name in names:
                raise self.err("ASM_LABEL", f"duplicate segment name {seg.name!r} (first on line "
                               f"{names[seg.name]})", seg.line)
            names[seg.name] = seg.line
            if seg.base + seg.size > MAX_ADDRESS:
                raise self.err("ASM_RANGE", f"segment {seg.name!r} ends past the 4 GiB address limit",
                               seg.line)
        ordered = sorted((s for s in self.segs if s.size > 0), key=lambda s: s.base)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.base < a.base + a.size:
                later = max(a, b, key=lambda s: s.line)
                other = a if later is b else b
                raise self.err("ASM_RANGE", f"data {later.name!r} at {later.base:#x} overlaps "
                               f"{other.name!r} ({other.base:#x}..{other.base + other.size:#x}, line "
                               f"{other.line})", later.line)
        for seg in self.segs:
            assert seg.name is not None
            init = bytes(seg.data) if seg.length else None
            out.append(SegmentDesc(seg.name, seg.base, seg.size, seg.perms, init))
        return tuple(out)
