"""Bounded reads of regular files: the one way zjit reads a module file from disk.

Sandbox-critical (issue 11, findings 2 and 3). A file is opened with
``O_NONBLOCK`` (so opening a FIFO never waits for a writer) and, when asked,
``O_NOFOLLOW``; ``fstat`` on the open descriptor must show a regular file, else
``BAD_PATH``. Its size is compared with the caller's limit before a byte is read,
and at most ``limit + 1`` bytes are ever read (a file that grows after the check
cannot push past the limit). Directories, FIFOs, devices and sockets are never
read; unencodable names and symlink loops are ``BAD_PATH`` like missing files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from zjit.errors import ContainerError, ZjitError

TYPE_CHECKING = False  # typing-only import (docs/startup.md)
if TYPE_CHECKING:
    from zjit.policy import Policy

METADATA_PER_CODE_BYTE = 4
"""Room a container may use beside CODE and initial data (headers, export names,
debug lines: a ``.zasm.bin`` debug line is 12 bytes per 4-byte instruction), per
byte of ``Policy.max_code_bytes``."""

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def module_file_limit(policy: Policy) -> int:
    """Largest module file (``.zasm.bin``, ROM, raw code, manifest) read under ``policy``:
    its CODE cap, its initial-data cap and the metadata allowance."""
    return policy.max_code_bytes * (1 + METADATA_PER_CODE_BYTE) + policy.max_data_bytes


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


class RegularFile:
    """An open regular file; use as a context manager.

    ``label`` names the file in messages and ``where`` goes into errors' ``path``
    (a file name or a JSON path such as ``$.code``). ``follow_symlinks=False``
    refuses a symlink as the last component (for paths already resolved and
    checked, so a link swapped in afterwards is not followed).
    """

    def __init__(self, path: str | os.PathLike[str], *, label: str, where: str,
                 follow_symlinks: bool = True) -> None:
        self.label = label
        self.where = where
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
        try:
            self.fd = os.open(path, flags)
        except (OSError, ValueError) as exc:  # ValueError: NUL byte or unencodable name
            raise self._bad_path(getattr(exc, "strerror", None) or str(exc)) from None
        try:
            st = os.fstat(self.fd)
        except OSError as exc:
            os.close(self.fd)
            raise self._bad_path(exc.strerror or str(exc)) from None
        if not stat.S_ISREG(st.st_mode):
            os.close(self.fd)
            raise self._bad_path(f"{_kind(st.st_mode)}, not a regular file")
        self.size = st.st_size
        """The file's size when it was opened."""

    def _bad_path(self, reason: str) -> ContainerError:
        return ContainerError("BAD_PATH", f"cannot read {self.label}: {reason}", path=self.where)

    def __enter__(self) -> RegularFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer when the file is shorter)."""
        return self._read_at(0, n)

    def read(self, limit: int, too_large: Callable[[int], ZjitError] | None = None) -> bytes:
        """The file's bytes, at most ``limit + 1`` of them.

        With ``too_large``, a file over ``limit`` bytes raises ``too_large(size)``
        before anything is read (and after, should it have grown); without it the
        caller gets ``limit + 1`` bytes and judges the size itself.
        """
        if too_large is not None and self.size > limit:
            raise too_large(self.size)
        data = self._read_at(0, min(self.size, limit) + 1)
        if len(data) <= min(self.size, limit):
            return data
        if len(data) <= limit:  # grew since fstat, still under the limit
            data += self._read_at(len(data), limit + 1 - len(data))
        if too_large is not None and len(data) > limit:
            raise too_large(len(data))
        return data

    def _read_at(self, offset: int, n: int) -> bytes:
        chunks: list[bytes] = []
        while n > 0:
            try:
                chunk = os.pread(self.fd, n, offset)
            except OSError as exc:
                raise self._bad_path(exc.strerror or str(exc)) from None
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            n -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_regular(path: str | os.PathLike[str], limit: int, *, label: str, where: str,
                 too_large: Callable[[int], ZjitError] | None = None, follow_symlinks: bool = True) -> bytes:
    """:meth:`RegularFile.read` of the file at ``path`` (opened, checked, closed)."""
    with RegularFile(path, label=label, where=where, follow_symlinks=follow_symlinks) as f:
        return f.read(limit, too_large)
