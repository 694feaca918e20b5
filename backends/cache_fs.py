"""Checked, descriptor-relative access to what lies under a cache root.

SANDBOX-CRITICAL (cache trust; threat model in docs/cache.md). The code cache
holds machine code this process maps executable, so nothing under its root is
trusted by its path:

* every directory is opened with ``O_DIRECTORY | O_NOFOLLOW`` relative to its
  parent's descriptor (``openat``; the root by its path, its last component
  not followed), every file with ``O_NOFOLLOW | O_NONBLOCK`` relative to its
  directory's descriptor, and each is checked with ``fstat`` on the opened
  descriptor: the right type, owned by the effective user, not writable by group
  or others (:func:`check`). A symbolic link is never followed (``ELOOP``);
* reads, writes, renames and deletions then go through those descriptors, so a
  component swapped after its check cannot redirect them;
* the checks run at every open, not once per process or cache object, so a
  ``chmod 777`` after the first use is noticed at the next access.

A failed check raises :class:`Untrusted`. Used by :mod:`.cache` (entries, the key
file) and :mod:`.fingerprint` (its memos).
"""

from __future__ import annotations

import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
TMP_PREFIX = ".tmp-"
"""Names of files being written (never read as entries)."""


class Untrusted(OSError):
    """A directory or file under the cache root failed its check (``reason`` says
    how; ``st`` is its status when it could be opened)."""

    def __init__(self, reason: str, st: os.stat_result | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.st = st


def check(st: os.stat_result, want_dir: bool) -> None:
    """Raise :class:`Untrusted` unless ``st`` is a directory (``want_dir``) or a
    regular file owned by the effective user and not group/world-writable."""
    if want_dir and not stat.S_ISDIR(st.st_mode):
        raise Untrusted("not a directory", st)
    if not want_dir and not stat.S_ISREG(st.st_mode):
        raise Untrusted("not a regular file", st)
    if st.st_uid != os.geteuid():
        raise Untrusted(f"owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})", st)
    if st.st_mode & 0o022:
        raise Untrusted(f"writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})", st)


def _open_checked(name: str, flags: int, dir_fd: int | None, want_dir: bool) -> int:
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        try:  # what is there, for the message (a link is not followed)
            link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            link = False
        if link or exc.errno == errno.ELOOP:
            raise Untrusted("a symbolic link") from None
        raise Untrusted("not a directory") from None
    try:
        check(os.fstat(fd), want_dir)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_root(path: str, *, create: bool) -> int:
    """A descriptor of the cache root, checked. When it is missing and ``create``,
    it is made ``0700`` (its parents as ``os.makedirs`` makes them); otherwise
    FileNotFoundError."""
    path = path.rstrip("/") or "/"  # a trailing slash would make the kernel follow a link
    try:
        return _open_checked(path, _DIR_FLAGS, None, True)
    except FileNotFoundError:
        if not create:
            raise
    import contextlib

    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    return _open_checked(path, _DIR_FLAGS, None, True)


def open_dir(name: str, parent: int, *, create: bool) -> int:
    """A descriptor of the subdirectory ``name`` of the directory ``parent``,
    checked; made ``0700`` when missing and ``create``."""
    try:
        return _open_checked(name, _DIR_FLAGS, parent, True)
    except FileNotFoundError:
        if not create:
            raise
    import contextlib

    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=parent)
    return _open_checked(name, _DIR_FLAGS, parent, True)


def read_file(name: str, directory: int, limit: int) -> tuple[bytes, os.stat_result]:
    """The contents (at most ``limit + 1`` bytes are read) and status of the
    regular file ``name`` in ``directory``, checked."""
    fd = _open_checked(name, _FILE_FLAGS, directory, False)
    try:
        st = os.fstat(fd)
        chunks: list[bytes] = []
        got = 0
        while got <= limit:
            chunk = os.read(fd, min(limit + 1 - got, max(st.st_size - got, 0) + 1))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def write_file(directory: int, name: str, data: bytes, *, exclusive: bool = False) -> None:
    """Put ``data`` at ``name`` in ``directory`` atomically: a new ``0600`` file
    (``O_EXCL``) is written, fsynced and renamed over ``name`` (``exclusive``:
    linked to ``name``, FileExistsError if it exists), then the directory is
    fsynced. Readers see the old file, the new one or none, never a part."""
    tmp = f"{TMP_PREFIX}{os.urandom(8).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=directory)
    try:
        try:
            view = memoryview(data)
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
        else:
            os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
            tmp = ""
        os.fsync(directory)
    finally:
        if tmp:
            try:  # noqa: SIM105 - contextlib stays off the cache-hit path
                os.unlink(tmp, dir_fd=directory)
            except OSError:
                pass


def discard(directory: int, name: str, seen: os.stat_result | None) -> None:
    """Delete ``name`` from ``directory`` (a link itself, never its target), unless
    it is no longer the file ``seen`` (another writer has just replaced it)."""
    try:
        now = os.stat(name, dir_fd=directory, follow_symlinks=False)
        if seen is None or (now.st_ino, now.st_dev) == (seen.st_ino, seen.st_dev):
            os.unlink(name, dir_fd=directory)
    except OSError:
        pass
