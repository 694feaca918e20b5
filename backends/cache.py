"""Content-addressed cache of compiled code: an in-memory layer over a disk layer.

The key (:func:`cache_key`) is a sha256 over everything that changes the machine
code: zjit's version and a fingerprint of its compiler sources, the llvmlite and
LLVM versions (read without importing llvmlite), target triple and CPU, the
codegen options and the verified program's digest.

On disk every entry is one self-describing file (see docs/cache.md):
``MAGIC, u32 format version, u32 key length, u64 payload length,
sha256(payload), key, payload``. It is written to a temporary file in the same
directory, fsynced and renamed over the final name, so readers see either the
whole old entry, the whole new one, or none, whatever threads and processes do
concurrently. On read, a truncated, corrupted or foreign (other key, other
magic) entry is deleted and reported as a miss, so the caller rebuilds it; an
entry is never trusted without its checksum. Disk trouble (read-only or full
file system, unsafe directory) silently degrades to the memory layer.

Importing this module and serving a hit imports neither llvmlite nor the compiler
(nor :mod:`pathlib` or :mod:`tempfile`), and does not read zjit's sources: their
fingerprint is memoised on disk under the ``stat()`` signature of the files
(:mod:`zjit.backends.fingerprint`, docs/startup.md).
"""

from __future__ import annotations

import os
import stat
import struct
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from zjit import __version__ as ZJIT_VERSION
from zjit._shims.minijson import dumps
from zjit._shims.sha256 import sha256

from . import targets
from .fingerprint import code_fingerprint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

MAGIC = b"ZJITCODE"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIQ32s")
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


def encode_entry(key: str, payload: bytes) -> bytes:
    """The on-disk form of one entry."""
    k = key.encode()
    return _HEADER.pack(MAGIC, FORMAT_VERSION, len(k), len(payload), sha256(payload).digest()) + k + payload


def decode_entry(key: str, blob: bytes) -> bytes | None:
    """The payload of ``blob`` if it is a complete, intact entry for ``key``."""
    if len(blob) < _HEADER.size:
        return None
    magic, version, klen, plen, digest = _HEADER.unpack_from(blob)
    k = key.encode()
    if magic != MAGIC or version != FORMAT_VERSION or klen != len(k):
        return None
    start = _HEADER.size + klen
    if blob[_HEADER.size : start] != k or len(blob) != start + plen:
        return None
    payload = blob[start:]
    if sha256(payload).digest() != digest:
        return None
    return payload


@dataclass
class CacheStats:
    """Counters since the cache was created."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    rejected: int = 0
    """Disk entries found damaged or foreign (deleted, counted as misses too)."""
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
        self._dir_ok: bool | None = None

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

    # -- disk layer ----------------------------------------------------------------
    def _directory_usable(self, create: bool) -> bool:
        """The cache root exists (or was made), is ours and not writable by others."""
        if self._dir_ok:
            return True
        try:
            if create:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(self._dir)
        except OSError:
            return False
        ok = stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not (st.st_mode & 0o022)
        self._dir_ok = ok
        return ok

    def _disk_get(self, key: str) -> bytes | None:
        if not self._directory_usable(create=False):
            return None
        path = self._entry_file(key)
        st: os.stat_result | None = None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES + 4096:
                blob = b""
            else:
                blob = _read_all(fd, st.st_size)
        except OSError:
            blob = b""
        finally:
            os.close(fd)
        payload = decode_entry(key, blob)
        if payload is None:
            with self._lock:
                self.stats.rejected += 1
            _discard(path, st)
            return None
        try:  # noqa: SIM105 - contextlib stays off the cache-hit path; the mtime records the last use
            os.utime(path)
        except OSError:
            pass
        return payload

    def trim(self, limit: int | None = None) -> int:
        """Bound the disk layer: when it holds more than ``limit`` bytes (default
        ``disk_bytes``), delete the least recently used entries until it holds at
        most three quarters of that. Returns the number of bytes freed."""
        limit = self.disk_bytes if limit is None else limit
        entries: list[tuple[float, int, str]] = []
        try:
            shards = [d for d in os.scandir(self._dir)
                      if len(d.name) == 2 and d.is_dir(follow_symlinks=False)]
            for shard in shards:
                for entry in os.scandir(shard.path):
                    if entry.name.endswith(_SUFFIX) and not entry.name.startswith(".tmp-"):
                        st = entry.stat(follow_symlinks=False)
                        entries.append((st.st_mtime, st.st_size, entry.path))
        except OSError:
            return 0
        total = sum(size for _, size, _ in entries)
        if total <= limit:
            return 0
        freed = 0
        for _, size, path in sorted(entries):
            if total - freed <= limit * 3 // 4:
                break
            try:
                os.unlink(path)
            except OSError:
                continue
            freed += size
        return freed

    def _disk_put(self, key: str, payload: bytes) -> None:
        if len(payload) > MAX_ENTRY_BYTES or not self._directory_usable(create=True):
            with self._lock:
                self.stats.write_errors += 1
            return
        import contextlib
        import tempfile

        path = self.entry_path(key)
        tmp: str | None = None
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=path.parent)
            try:
                blob = memoryview(encode_entry(key, payload))
                done = 0
                while done < len(blob):
                    done += os.write(fd, blob[done:])
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            tmp = None
            _fsync_dir(path.parent)
            with self._lock:
                self.stats.writes += 1
                trim_now = self._writes_until_trim <= 0
                self._writes_until_trim = TRIM_EVERY if trim_now else self._writes_until_trim - 1
            if trim_now:
                self.trim()
        except OSError:
            with self._lock:
                self.stats.write_errors += 1
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _check_key(key: str) -> None:
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"cache keys are 64 lowercase hex digits, not {key!r}")


def _read_all(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got <= size:
        chunk = os.read(fd, max(size - got, 0) + 1)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _discard(path: str, seen: os.stat_result | None) -> None:
    """Delete a bad entry, unless another writer already replaced it with a new file."""
    try:
        now = os.stat(path, follow_symlinks=False)
        if seen is None or (now.st_ino == seen.st_ino and now.st_dev == seen.st_dev):
            os.unlink(path)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
