"""The format-blind module model every container parser produces.

``.zasm.bin``, ROM and ``module.json`` all become one :class:`ModuleImage`; later
stages (verifier, engines, AOT) never look at the container again.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SegmentDesc:
    """A segment descriptor (``formats.md`` 3).

    ``init`` holds the initial bytes (``len(init) == init_size <= size``; the rest of
    the segment is zero) or is None for a zero-filled segment. ``perms`` is a string
    of letters from ``rwx`` that includes ``r``.
    """

    name: str
    base: int
    size: int
    perms: str
    init: bytes | None = None

    @property
    def writable(self) -> bool:
        """True when guest stores may touch this segment."""
        return "w" in self.perms

    @property
    def end(self) -> int:
        """One past the last byte."""
        return self.base + self.size


@dataclass(frozen=True, slots=True)
class DebugLine:
    """A source location attached to a CODE pc."""

    source: str
    line: int


@dataclass(frozen=True)
class ModuleImage:
    """A parsed, not yet verified module.

    ``entry_pc`` and ``exports`` are CODE byte offsets. ``imports`` is the declared
    primitive mask or None when the container declares none. ``mem_min``/``mem_max``
    are the declared memory requirements (None = not declared; ``mem_max`` 0 = no
    maximum). ``code_offset`` is where CODE starts in the source file, so verifier
    errors can also name a file offset.
    """

    code: bytes
    entry_pc: int = 0
    exports: dict[str, int] = field(default_factory=dict)
    imports: int | None = None
    mem_min: int | None = None
    mem_max: int | None = None
    segments: tuple[SegmentDesc, ...] = ()
    debug: dict[int, DebugLine] = field(default_factory=dict)
    source_format: str = "raw"
    code_offset: int = 0
    name: str = "module"
