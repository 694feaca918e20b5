"""Content-addressed cache of compiled code: an in-memory layer over a disk layer.

The key (:func:`cache_key`) is a sha256 over everything that changes the machine
code: zjit's version and a fingerprint of its compiler sources, the llvmlite and
LLVM versions (read without importing llvmlite), target triple and CPU, the
codegen options and the verified program's digest.

SANDBOX-CRITICAL (cache trust; threat model in docs/cache.md). On disk every
entry is one self-describing file: ``MAGIC, u32 format version, u32 key length,
u64 payload length, key, payload, HMAC-SHA256`` of all that goes before it under
a per-user secret key kept in the root (:data:`KEY_FILE`, ``0600``). Every
directory and file under the root is opened checked and descriptor-relative
(:mod:`.cache_fs`), at every access. An entry is written to a temporary file in
its directory, fsynced and renamed over the final name, so readers see the whole
old entry, the whole new one, or none. On read, a truncated, corrupted, forged or
foreign entry (other key, other secret, other magic), or one that fails its file
checks, is deleted and reported as a miss, so the caller rebuilds it. Disk
trouble (read-only or full file system) silently degrades to the memory layer;
a root or directory that fails its checks does too, with one
:class:`~zjit.errors.CacheWarning` per cache object.

Importing this module and serving a hit imports neither llvmlite nor the compiler
(nor :mod:`pathlib`, :mod:`tempfile`, :mod:`hashlib` or :mod:`hmac`), and does not
read zjit's sources: their fingerprint is memoised on disk under the ``stat()``
signature of the files (:mod:`zjit.backends.fingerprint`, docs/startup.md).
"""

from __future__ import annotations

import hmac
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import sha256
from json import dumps

from zjit import __version__ as ZJIT_VERSION

from . import cache_fs, targets
from .cache_fs import TMP_PREFIX, Untrusted
from .fingerprint import code_fingerprint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

MAGIC = b"ZJITCODE"
FORMAT_VERSION = 2
_HEADER = struct.Struct("<8sIIQ")
MAC_BYTES = 32
KEY_FILE = "hmac-key"
"""The per-user secret key in the cache root: KEY_BYTES random bytes, mode 0600."""
KEY_BYTES = 32
MAX_ENTRY_BYTES = 256 << 20
DEFAULT_MEMORY_BYTES = 64 << 20
DEFAULT_DISK_BYTES = 512 << 20
"""Disk layer bound; past it the least recently used entries are removed."""
TRIM_EVERY = 32
"""Disk writes between two size checks of the disk layer (the first write checks)."""
_SUFFIX = ".zjc"


def toolchain_versions() -> dict[str, str]:
    """zjit, llvmlite and LLVM versions (no llvmlite import)."""
    return {"zjit": ZJIT_VERSION, "llvmlite": targets.llvmlite_version(), "llvm": targets.bundled_llvm_version()}


def cache_key(program_digest: str, *, triple: str, cpu: str, options: Mapping[str, object]) -> str:
    """The hex sha256 naming the code compiled from ``program_digest`` with these settings.

    ``options`` must be JSON-serialisable (it is hashed sorted by key).
    """
    material = {
        "cache_format": FORMAT_VERSION,
        "versions": toolchain_versions(),
        "sources": code_fingerprint(),
        "triple": triple,
        "cpu": cpu,
        "options": dict(options),
        "program": program_digest,
    }
    try:
        text = dumps(material, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cache options must be JSON values: {exc}") from None
    return sha256(text.encode()).hexdigest()


def encode_entry(key: str, payload: bytes, secret: bytes) -> bytes:
    """The on-disk form of one entry, authenticated under ``secret``."""
    k = key.encode()
    body = _HEADER.pack(MAGIC, FORMAT_VERSION, len(k), len(payload)) + k + payload
    return body + hmac.digest(secret, body, "sha256")


def decode_entry(key: str, blob: bytes, secret: bytes) -> bytes | None:
    """The payload of ``blob`` if it is a complete entry for ``key`` whose MAC under
    ``secret`` is right (compared in constant time)."""
    if len(blob) < _HEADER.size + MAC_BYTES:
        return None
    magic, version, klen, plen = _HEADER.unpack_from(blob)
    k = key.encode()
    if magic != MAGIC or version != FORMAT_VERSION or klen != len(k):
        return None
    start = _HEADER.size + klen
    if blob[_HEADER.size : start] != k or len(blob) != start + plen + MAC_BYTES:
        return None
    if not hmac.compare_digest(hmac.digest(secret, memoryview(blob)[:-MAC_BYTES], "sha256"), blob[-MAC_BYTES:]):
        return None
    return blob[start : start + plen]


@dataclass
class CacheStats:
    """Counters since the cache was created."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    rejected: int = 0
    """Disk entries found damaged, forged or foreign, or failing their file checks
    (deleted, counted as misses too)."""
    untrusted: int = 0
    """Accesses refused because the root or an entry directory failed its checks."""
    writes: int = 0
    write_errors: int = 0


class CodeCache:
    """Thread- and process-safe cache of compiled payloads (bytes) by key.

    ``directory`` None means :func:`zjit.policy.default_cache_dir`; ``disk=False``
    keeps only the memory layer. The memory layer holds up to ``memory_bytes``
    of payloads (least recently used first out).
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        disk: bool = True,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        disk_bytes: int = DEFAULT_DISK_BYTES,
    ) -> None:
        if directory is None:
            from zjit.policy import default_cache_path

            directory = default_cache_path()
        self._dir = os.fspath(directory)
        self.disk = disk
        self.memory_bytes = memory_bytes
        self.disk_bytes = disk_bytes
        self._writes_until_trim = 0
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._mem: OrderedDict[str, bytes] = OrderedDict()
        self._mem_size = 0
        self._warned = False

    @property
    def directory(self) -> Path:
        """The cache root."""
        from pathlib import Path

        return Path(self._dir)

    @classmethod
    def for_policy(cls, policy: object) -> CodeCache:
        """The cache a :class:`zjit.policy.Policy` asks for (``cache_dir``, ``use_cache``)."""
        directory = getattr(policy, "cache_dir", None)
        return cls(directory, disk=bool(getattr(policy, "use_cache", True)),
                   disk_bytes=int(getattr(policy, "cache_max_bytes", DEFAULT_DISK_BYTES)))

    # -- public API ----------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The payload stored under ``key``, or None (a miss)."""
        _check_key(key)
        with self._lock:
            payload = self._mem.get(key)
            if payload is not None:
                self._mem.move_to_end(key)
                self.stats.memory_hits += 1
                return payload
        payload = self._disk_get(key) if self.disk else None
        with self._lock:
            if payload is None:
                self.stats.misses += 1
                return None
            self.stats.disk_hits += 1
            self._remember(key, payload)
        return payload

    def put(self, key: str, payload: bytes) -> None:
        """Store ``payload`` under ``key`` in memory and (best effort) on disk."""
        _check_key(key)
        payload = bytes(payload)
        with self._lock:
            self._remember(key, payload)
        if self.disk:
            self._disk_put(key, payload)

    def entry_path(self, key: str) -> Path:
        """Where the disk entry for ``key`` lives."""
        from pathlib import Path

        return Path(self._entry_file(key))

    def _entry_file(self, key: str) -> str:
        _check_key(key)
        return os.path.join(self._dir, key[:2], key + _SUFFIX)

    def clear_memory(self) -> None:
        """Forget the memory layer (the disk layer stays)."""
        with self._lock:
            self._mem.clear()
            self._mem_size = 0

    # -- memory layer --------------------------------------------------------------
    def _remember(self, key: str, payload: bytes) -> None:
        if len(payload) > self.memory_bytes:
            return
        old = self._mem.pop(key, None)
        if old is not None:
            self._mem_size -= len(old)
        self._mem[key] = payload
        self._mem_size += len(payload)
        while self._mem_size > self.memory_bytes:
            _k, evicted = self._mem.popitem(last=False)
            self._mem_size -= len(evicted)

    # -- disk layer (sandbox-critical: every access checks what it opens) -----------
    def _distrust(self, where: str, exc: Untrusted) -> None:
        """Count a refused directory; warn the first time (CacheWarning)."""
        with self._lock:
            self.stats.untrusted += 1
            if self._warned:
                return
            self._warned = True
        import warnings

        from zjit.errors import CacheWarning

        warnings.warn(f"zjit: code cache: {where} is not used: {exc.reason}", CacheWarning, stacklevel=4)

    def _open_root(self, create: bool) -> int | None:
        """The checked root's descriptor, or None (missing, refused, unusable)."""
        try:
            return cache_fs.open_root(self._dir, create=create)
        except Untrusted as exc:
            self._distrust(self._dir, exc)
        except OSError:
            pass
        return None

    def _open_shard(self, root: int, key: str, create: bool) -> int | None:
        try:
            return cache_fs.open_dir(key[:2], root, create=create)
        except Untrusted as exc:
            self._distrust(os.path.join(self._dir, key[:2]), exc)
        except OSError:
            pass
        return None

    def _disk_get(self, key: str) -> bytes | None:
        root = self._open_root(create=False)
        if root is None:
            return None
        try:
            secret = _read_secret(root)
            shard = self._open_shard(root, key, create=False) if secret is not None else None
        finally:
            os.close(root)
        if shard is None or secret is None:
            return None
        name = key + _SUFFIX
        st: os.stat_result | None
        try:
            try:
                blob, st = cache_fs.read_file(name, shard, MAX_ENTRY_BYTES + 4096)
                payload = decode_entry(key, blob, secret)
            except Untrusted as exc:  # a link, a FIFO, someone else's file...
                payload, st = None, exc.st
            except OSError:
                return None
            if payload is None:
                with self._lock:
                    self.stats.rejected += 1
                cache_fs.discard(shard, name, st)
                return None
            try:  # noqa: SIM105 - contextlib stays off the cache-hit path; the mtime records the last use
                os.utime(name, dir_fd=shard, follow_symlinks=False)
            except OSError:
                pass
            return payload
        finally:
            os.close(shard)

    def trim(self, limit: int | None = None) -> int:
        """Bound the disk layer: when it holds more than ``limit`` bytes (default
        ``disk_bytes``), delete the least recently used entries until it holds at
        most three quarters of that. Returns the number of bytes freed."""
        limit = self.disk_bytes if limit is None else limit
        root = self._open_root(create=False)
        if root is None:
            return 0
        try:
            return _trim(root, limit)
        except OSError:
            return 0
        finally:
            os.close(root)

    def _disk_put(self, key: str, payload: bytes) -> None:
        root = self._open_root(create=True) if len(payload) <= MAX_ENTRY_BYTES else None
        if root is None:
            with self._lock:
                self.stats.write_errors += 1
            return
        try:
            secret = _secret(root)
            shard = self._open_shard(root, key, create=True)
            if shard is None:
                raise OSError("entry directory unusable")
            try:
                cache_fs.write_file(shard, key + _SUFFIX, encode_entry(key, payload, secret))
            finally:
                os.close(shard)
            with self._lock:
                self.stats.writes += 1
                trim_now = self._writes_until_trim <= 0
                self._writes_until_trim = TRIM_EVERY if trim_now else self._writes_until_trim - 1
            if trim_now:
                _trim(root, self.disk_bytes)
        except OSError:
            with self._lock:
                self.stats.write_errors += 1
        finally:
            os.close(root)


def _read_secret(root: int) -> bytes | None:
    """The secret key, or None when it is missing or damaged: not a regular file of
    ours, readable or writable by anyone else, or not exactly KEY_BYTES long."""
    try:
        data, st = cache_fs.read_file(KEY_FILE, root, KEY_BYTES)
    except OSError:
        return None
    if st.st_mode & 0o077 or len(data) != KEY_BYTES:
        return None
    return data


def _secret(root: int) -> bytes:
    """The secret key, made when missing (linked into place, so concurrent makers
    agree on one) and replaced when damaged (entries under the old key then miss)."""
    secret = _read_secret(root)
    if secret is not None:
        return secret
    fresh = os.urandom(KEY_BYTES)
    try:
        cache_fs.write_file(root, KEY_FILE, fresh, exclusive=True)
        return fresh
    except FileExistsError:
        secret = _read_secret(root)  # another process made it first
        if secret is not None:
            return secret
    except OSError:
        pass  # a file system without hard links: renamed into place instead
    cache_fs.write_file(root, KEY_FILE, fresh)  # damaged (or no links): replace it
    return fresh


def _trim(root: int, limit: int) -> int:
    """:meth:`CodeCache.trim` on the checked root ``root`` (entry directories
    that fail their checks are left alone)."""
    entries: list[tuple[float, int, str, str]] = []
    with os.scandir(root) as it:
        shards = [d.name for d in it if len(d.name) == 2 and d.is_dir(follow_symlinks=False)]
    for shard in shards:
        try:
            fd = cache_fs.open_dir(shard, root, create=False)
        except OSError:
            continue
        try:
            with os.scandir(fd) as it:
                for e in it:
                    if e.name.endswith(_SUFFIX) and not e.name.startswith(TMP_PREFIX):
                        st = e.stat(follow_symlinks=False)
                        entries.append((st.st_mtime, st.st_size, shard, e.name))
        finally:
            os.close(fd)
    total = sum(size for _, size, _, _ in entries)
    if total <= limit:
        return 0
    freed = 0
    for _, size, shard, name in sorted(entries):
        if total - freed <= limit * 3 // 4:
            break
        try:
            fd = cache_fs.open_dir(shard, root, create=False)
            try:
                os.unlink(name, dir_fd=fd)
            finally:
                os.close(fd)
        except OSError:
            continue
        freed += size
    return freed


def _check_key(key: str) -> None:
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"cache keys are 64 lowercase hex digits, not {key!r}")
