"""HMAC-SHA256 without importing :mod:`hmac` for small inputs.

``import hmac`` imports :mod:`hashlib` and with it OpenSSL's libcrypto (about
4.5 ms of start-up), while a cache hit authenticates one entry of a few kilobytes
(docs/cache.md). HMAC (RFC 2104, what :mod:`hmac` computes) over the
:mod:`.sha256` shim gives the same MACs; messages of ``LARGE`` bytes or more and
keys longer than a block go to :func:`hmac.digest` itself.
"""

from __future__ import annotations

from _operator import _compare_digest as compare_digest  # hmac.compare_digest without OpenSSL

from .sha256 import LARGE, sha256

_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))

__all__ = ["compare_digest", "digest"]


def digest(key: bytes, msg: bytes | bytearray | memoryview) -> bytes:
    """``hmac.digest(key, msg, "sha256")``."""
    size = memoryview(msg).nbytes
    if len(key) > _BLOCK or size + _BLOCK >= LARGE:
        import hmac

        return hmac.digest(key, msg, "sha256")
    padded = bytes(key).ljust(_BLOCK, b"\0")
    inner = sha256(padded.translate(_IPAD), size=size + _BLOCK)
    inner.update(msg)
    return sha256(padded.translate(_OPAD) + inner.digest()).digest()
