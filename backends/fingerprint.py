"""Fingerprints of zjit's own sources, memoised across processes.

Every code cache key (:func:`~zjit.backends.cache.cache_key`) holds
:func:`code_fingerprint`: a sha256 over every Python file of the packages that
decide what machine code is generated (``zjit.backends`` with all its
subpackages, ``zjit.verifier``) and the core modules they read, so a changed
lowering never reuses old entries even when the version number did not move.

Reading some 60 files on every start would cost more than the rest of a cache
hit, so :func:`memoised_fingerprint` keeps a digest in the per-user cache
directory under the ``stat()`` signature of its files (docs/startup.md). This
module imports nothing of the compiler and nothing that imports it (the code
cache and the target table both use it).
"""

from __future__ import annotations

import functools
import os
import sys
from hashlib import sha256

from zjit import __version__ as ZJIT_VERSION
from zjit.policy import default_cache_path

from . import cache_fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

SOURCE_PACKAGES = ("backends", "verifier")
"""Packages (as ``zjit.<name>``) hashed whole, subpackages included."""
SOURCE_FILES = ("isa.py", "encoding.py", "machine.py", "__init__.py")
"""Modules of the ``zjit`` package itself that are hashed."""


@functools.cache
def code_fingerprint() -> str:
    """sha256 over the sources :func:`source_files` lists (names and contents)."""
    files = source_files()
    return memoised_fingerprint("sources", [path for _, path in files], lambda: _hash_sources(files))


def _package_dirs(name: str) -> list[str]:
    """The folders of package ``zjit.<name>`` (located, not imported)."""
    module = sys.modules.get(f"zjit.{name}")
    locations = list(getattr(module, "__path__", None) or [])
    if not locations:
        import importlib.util

        spec = importlib.util.find_spec(f"zjit.{name}")
        locations = list(spec.submodule_search_locations or []) if spec else []
    return locations


def source_files() -> list[tuple[str, str]]:
    """``(name, path)`` of every file :func:`code_fingerprint` hashes, in hashing
    order; names are ``zjit/isa.py``, ``backends/llvm/module.py``..."""
    import zjit

    root = os.path.dirname(os.path.realpath(zjit.__file__ or ""))
    files = [(f"zjit/{name}", os.path.join(root, name)) for name in SOURCE_FILES]
    for package in SOURCE_PACKAGES:
        for location in _package_dirs(package):
            real = os.path.realpath(location)
            files.extend((f"{package}/{os.path.relpath(path, real)}", path) for path in python_files(real))
    return files


def python_files(directory: str) -> list[str]:
    """The ``.py`` files below ``directory``, subfolders included (``__pycache__``
    and hidden folders apart), sorted by path relative to it."""
    real = os.path.realpath(directory)
    found: list[str] = []
    for folder, subdirs, names in os.walk(real):
        subdirs[:] = [d for d in subdirs if d != "__pycache__" and not d.startswith(".")]
        found.extend(os.path.join(folder, n) for n in names if n.endswith(".py"))
    return sorted(found, key=lambda p: os.path.relpath(p, real).split(os.sep))


def _hash_sources(files: Sequence[tuple[str, str]]) -> str:
    h = sha256()
    for name, path in files:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


_MEMO_VERSION = 2
MEMO_DIR = "fingerprints"
"""Folder of the memos in the per-user cache root."""


def memoised_fingerprint(label: str, files: Sequence[str], compute: Callable[[], str]) -> str:
    """``compute()``, a digest of ``files``' contents (or any other one-word value that
    depends only on them), remembered across processes.

    The memo (``<default cache dir>/fingerprints/<label>``, opened and checked as
    the code cache's files are: :mod:`.cache_fs`) holds the digest and a
    hash of the files' ``stat()`` signature (path, inode, size, mtime and ctime in
    ns); while that signature is unchanged the files are not read again. Any write
    to a file changes its ctime, so a stale memo is never used; when the memo
    cannot be read or written (or fails its checks) the digest is simply computed.
    """
    parts = [f"{label}\0{_MEMO_VERSION}\0{ZJIT_VERSION}"]
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            parts.append(f"{f}\0-")
            continue
        parts.append(f"{f}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}")
    signature = sha256("\n".join(parts).encode()).hexdigest()
    saved = _read_memo(label)
    if saved is not None:
        fields = saved.split()
        if len(fields) == 2 and fields[0] == signature and _is_token(fields[1]):
            return fields[1]
    digest = compute()
    _write_memo(label, f"{signature} {digest}\n")
    return digest


def _is_token(text: str) -> bool:
    return 0 < len(text) <= 128 and text.isascii() and text.isprintable() and not any(c.isspace() for c in text)


def _read_memo(label: str) -> str | None:
    """The memo ``label``, read through checked descriptors (:mod:`.cache_fs`)."""
    try:
        root = cache_fs.open_root(default_cache_path(), create=False)
    except OSError:
        return None
    try:
        memos = cache_fs.open_dir(MEMO_DIR, root, create=False)
        try:
            return cache_fs.read_file(label, memos, 4096)[0].decode("ascii", "replace")
        finally:
            os.close(memos)
    except OSError:
        return None
    finally:
        os.close(root)


def _write_memo(label: str, text: str) -> None:
    """Best effort, atomic; the root is created 0700 as the code cache creates it."""
    try:
        root = cache_fs.open_root(default_cache_path(), create=True)
    except OSError:
        return
    try:
        memos = cache_fs.open_dir(MEMO_DIR, root, create=True)
        try:
            cache_fs.write_file(memos, label, text.encode())
        finally:
            os.close(memos)
    except OSError:
        pass
    finally:
        os.close(root)
