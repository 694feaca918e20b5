"""A bounded little-endian reader over one byte range of a container.

Every read is checked against the end of the range before any bytes are touched,
so parsers built on it never read past their input and never allocate more than
the input holds. Running out of bytes raises a :class:`ContainerError` with the
code given at construction and the absolute file offset where the read started.
"""

from __future__ import annotations

import struct

from zjit.errors import ContainerError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class Reader:
    """Sequential reads over ``data[start:end]`` with absolute offsets.

    ``code`` is the error code for running out of bytes (``TRUNCATED`` for a
    header, ``BAD_SECTION``/``BAD_DATA``... for a payload that must parse exactly).
    """

    __slots__ = ("data", "pos", "end", "code", "what")

    def __init__(self, data: bytes, start: int, end: int, code: str, what: str) -> None:
        if not 0 <= start <= end <= len(data):
            raise ContainerError(code, f"{what}: range outside the input", offset=start)
        self.data = data
        self.pos = start
        self.end = end
        self.code = code
        self.what = what

    @property
    def remaining(self) -> int:
        """Bytes left in the range."""
        return self.end - self.pos

    def need(self, n: int) -> None:
        """Fail unless ``n`` more bytes are available."""
        if n > self.end - self.pos:
            raise ContainerError(
                self.code,
                f"{self.what}: needs {n} bytes at this point, {self.end - self.pos} left",
                offset=self.pos,
            )

    def u8(self) -> int:
        """Read one byte."""
        self.need(1)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        """Read a little-endian u16."""
        self.need(2)
        (value,) = _U16.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(value)

    def u32(self) -> int:
        """Read a little-endian u32."""
        self.need(4)
        (value,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def take(self, n: int) -> bytes:
        """Read ``n`` raw bytes (checked before slicing)."""
        self.need(n)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def zero_pad(self, align: int, origin: int, code: str | None = None) -> None:
        """Skip padding up to a multiple of ``align`` counted from ``origin``;
        the padding bytes must all be zero."""
        pad = (-(self.pos - origin)) % align
        at = self.pos
        raw = self.take(pad)
        if any(raw):
            bad = at + next(i for i, b in enumerate(raw) if b)
            raise ContainerError(code or self.code, f"{self.what}: padding byte is not 0", offset=bad)

    def expect_end(self) -> None:
        """Fail when bytes are left over (the payload must parse exactly)."""
        if self.pos != self.end:
            raise ContainerError(
                self.code,
                f"{self.what}: {self.end - self.pos} bytes left over after the last entry",
                offset=self.pos,
            )


def u32_at(data: bytes, offset: int) -> int:
    """The u32 at ``offset`` (caller guarantees it is inside ``data``)."""
    return int(_U32.unpack_from(data, offset)[0])


def decode_name(raw: bytes, offset: int, what: str) -> str:
    """A non-empty UTF-8 name, or BAD_NAME at ``offset``."""
    if not raw:
        raise ContainerError("BAD_NAME", f"{what}: empty name", offset=offset)
    try:
        return raw.decode("utf-8", "strict")
    except UnicodeDecodeError as exc:
        raise ContainerError("BAD_NAME", f"{what}: name is not valid UTF-8", offset=offset) from exc


def ranges_overlap(a_start: int, a_len: int, b_start: int, b_len: int) -> bool:
    """True when two byte ranges share a byte (empty ranges overlap nothing)."""
    if a_len == 0 or b_len == 0:
        return False
    return a_start < b_start + b_len and b_start < a_start + a_len
