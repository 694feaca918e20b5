"""SHA-256 without importing :mod:`hashlib` for small inputs.

``import hashlib`` loads OpenSSL's libcrypto, about 3 ms of start-up, while the
digests a cache-hit ``zjit run`` needs (module digest, cache key, entry checksum)
cover a few kilobytes. CPython's own SHA-256 module (``_sha256``, ``_sha2`` from
3.12) loads in a fraction of that and gives the same digests, about 5x slower per
byte, so inputs of ``LARGE`` bytes or more (and interpreters without it) use
hashlib. docs/startup.md has the numbers.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import _Hash

LARGE = 4 << 20
"""From this many bytes on, hashlib's (OpenSSL) SHA-256 is used."""

try:
    from _sha256 import sha256 as _builtin_sha256  # CPython <= 3.11
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha2 import sha256 as _builtin_sha256  # CPython >= 3.12
    except ImportError:
        _builtin_sha256 = None


def sha256(data: bytes = b"", *, size: int | None = None) -> _Hash:
    """A SHA-256 hash object fed ``data``; ``size`` is the total number of bytes
    the caller will feed (defaults to ``len(data)``), which picks the implementation."""
    if _builtin_sha256 is not None and (len(data) if size is None else size) < LARGE:
        h: _Hash = _builtin_sha256(data)
        return h
    import hashlib

    return hashlib.sha256(data)
