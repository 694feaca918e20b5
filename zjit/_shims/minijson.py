"""``json.dumps``/``json.loads`` for the small documents of a ``zjit run`` without
importing :mod:`json` (its package, decoder, scanner and encoder modules cost
about 2 ms of start-up, more where :mod:`re` is not loaded yet; docs/startup.md).

Both use the C accelerator module behind :mod:`json` (``_json``) directly, so
strings are escaped and parsed by the same code. :func:`dumps` handles dicts with
string keys, lists, tuples, strings, ints, bools and None; :func:`loads` handles
UTF-8 text. Anything else (floats, other key types, cycles, other encodings,
malformed input, an interpreter without ``_json``) is passed to :mod:`json`
itself, so results and exceptions are always exactly json's.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

_c: Any
try:
    import _json as _c
except ImportError:  # pragma: no cover - depends on the interpreter
    _c = None
_quote: Any = _c.encode_basestring_ascii if _c is not None else None


class _Unsupported(Exception):
    """A value this module leaves to :mod:`json`."""


def dumps(obj: Any, *, sort_keys: bool = False, separators: tuple[str, str] | None = None,
          allow_nan: bool = True) -> str:
    """``json.dumps(obj, sort_keys=..., separators=..., allow_nan=...)``."""
    item_sep, key_sep = separators if separators is not None else (", ", ": ")
    if _quote is not None:
        try:
            return "".join(_encode(obj, sort_keys, item_sep, key_sep, set()))
        except _Unsupported:
            pass
    import json

    return json.dumps(obj, sort_keys=sort_keys, separators=separators, allow_nan=allow_nan)


def _encode(obj: Any, sort_keys: bool, item_sep: str, key_sep: str, active: set[int]) -> Iterator[str]:
    if isinstance(obj, str):
        yield _quote(obj)
    elif obj is None:
        yield "null"
    elif obj is True:
        yield "true"
    elif obj is False:
        yield "false"
    elif isinstance(obj, int):
        yield int.__repr__(obj)
    elif isinstance(obj, (list, tuple, dict)):
        if id(obj) in active:
            raise _Unsupported  # a cycle: json reports it
        active.add(id(obj))
        if isinstance(obj, dict):
            items = sorted(obj.items()) if sort_keys else list(obj.items())
            yield "{"
            for i, (key, value) in enumerate(items):
                if not isinstance(key, str):
                    raise _Unsupported
                yield (item_sep if i else "") + _quote(key) + key_sep
                yield from _encode(value, sort_keys, item_sep, key_sep, active)
            yield "}"
        else:
            yield "["
            for i, value in enumerate(obj):
                if i:
                    yield item_sep
                yield from _encode(value, sort_keys, item_sep, key_sep, active)
            yield "]"
        active.discard(id(obj))
    else:
        raise _Unsupported


class _Context:
    """What ``_json.make_scanner`` reads: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_scan: Any = _c.make_scanner(_Context) if _c is not None else None
_SPACE = " \t\n\r"


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``."""
    text: str | None = None
    if _scan is not None:
        if isinstance(data, str):
            text = data
        elif isinstance(data, (bytes, bytearray)) and len(data) >= 4 and all(data[:4]) and \
                data[:2] not in (b"\xff\xfe", b"\xfe\xff") and data[:3] != b"\xef\xbb\xbf":
            try:  # json.detect_encoding says UTF-8 for these
                text = data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                text = None
    if text is not None and not text.startswith("\ufeff"):
        at = _skip(text, 0)
        try:
            obj, end = _scan(text, at)
        except Exception:  # noqa: BLE001 - json.loads below raises json's own error
            obj, end = None, -1
        if end >= 0 and _skip(text, end) == len(text):
            return obj
    import json

    return json.loads(data)


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at
