"""Map a relocatable object into this process as runnable code, W^X by construction.

# ============================================================================
# SANDBOX-CRITICAL. This module turns bytes into executable memory. Rules:
#  * no mapping it creates is ever writable and executable, and no writable
#    alias of code ever exists: the image is written with pwrite() into a
#    sealed memfd, then mapped r-x / r-- (MAP_SHARED, sealed against writes)
#    and rw- (MAP_PRIVATE copy-on-write) into a reserved PROT_NONE range;
#  * nothing is ever mprotect()ed to gain PROT_EXEC, so it also works under
#    prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) (tests/test_wx.py);
#  * every failure unmaps what was mapped; close() (or GC) unmaps everything.
# Changes here need a review of docs/loader.md and the W^X tests.
# ============================================================================

Layout and relocation are done by :mod:`zjit.backends.objfile.linker`; only objects for
the host architecture can be loaded.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import threading
import weakref
from collections.abc import Mapping

from ..objfile.elf import ObjectFileError
from ..objfile.linker import LinkedImage, Region, link_image, plan
from ..targets import HOST_NAME, HOST_SUPPORTED, TARGETS

__all__ = ["LoadedCode", "link_image", "load_code", "load_object"]

PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_NORESERVE = 0x4000
_MAP_FAILED = ctypes.c_void_p(-1).value

# region perms -> (protection, sharing). The only writable one is private.
_REGION_MAPPING = {
    "rx": (PROT_READ | PROT_EXEC, MAP_SHARED),
    "r": (PROT_READ, MAP_SHARED),
    "rw": (PROT_READ | PROT_WRITE, MAP_PRIVATE),
}
for _prot, _ in _REGION_MAPPING.values():
    assert not (_prot & PROT_WRITE and _prot & PROT_EXEC), "W^X"

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def _os_error(what: str) -> ObjectFileError:
    err = ctypes.get_errno()
    return ObjectFileError(f"{what} failed: {os.strerror(err)} (errno {err})")


def _map(addr: int, size: int, prot: int, flags: int, fd: int, offset: int) -> int:
    res = _mmap(addr or None, size, prot, flags, fd, offset)
    if res is None or res == _MAP_FAILED:
        raise _os_error("mmap")
    return int(res)


def _unmap(base: int, size: int) -> None:
    _munmap(base, size)


class LoadedCode:
    """Code and data of one object, mapped in this process.

    Addresses stay valid until :meth:`close` (idempotent, also run when the
    object is garbage-collected). Never close while the code may be running.
    """

    def __init__(self, image: LinkedImage) -> None:
        self._base = image.base
        self._size = image.size
        self._symbols = dict(image.symbols)
        text = image.region("text")
        self._text = text.data if text is not None else b""
        self._text_start = image.base + (text.offset if text is not None else 0)
        self._regions = tuple((image.base + r.offset, image.base + r.offset + r.size, r.perms)
                              for r in image.regions)
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _unmap, image.base, image.size)

    @property
    def closed(self) -> bool:
        """True once the mapping is gone."""
        return not self._finalizer.alive

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("LoadedCode is closed")

    def symbol(self, name: str) -> int:
        """Absolute address of a defined symbol (KeyError when absent)."""
        self._check_open()
        try:
            return self._symbols[name]
        except KeyError:
            raise KeyError(f"no symbol {name!r} in the loaded object") from None

    def symbols(self) -> dict[str, int]:
        """Every defined named symbol and its address."""
        self._check_open()
        return dict(self._symbols)

    def code_range(self) -> tuple[int, int]:
        """``(start, end)`` of the executable bytes (code plus call stubs)."""
        return self._text_start, self._text_start + len(self._text)

    def text_bytes(self) -> bytes:
        """A copy of the executable bytes, as mapped (for disassembly)."""
        return self._text

    def regions(self) -> tuple[tuple[int, int, str], ...]:
        """``(start, end, perms)`` of every mapped region."""
        return self._regions

    @property
    def base(self) -> int:
        """Start of the whole mapping."""
        return self._base

    @property
    def size(self) -> int:
        """Length of the whole mapping."""
        return self._size

    def close(self) -> None:
        """Unmap everything (idempotent)."""
        with self._lock:
            self._finalizer()

    def __enter__(self) -> LoadedCode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_object(obj: bytes, *, externals: Mapping[str, int] | None = None) -> LoadedCode:
    """Link ``obj`` (an ELF relocatable for the host) and map it W^X.

    ``externals`` maps the object's undefined symbols to addresses (calls go
    through stubs, data references through a read-only GOT). Raises
    :class:`~zjit.backends.objfile.elf.ObjectFileError` (``COMPILE_FAILED``) for objects
    that cannot be loaded.
    """
    if not HOST_SUPPORTED:
        raise ObjectFileError(f"native code loading is not supported on {HOST_NAME}")
    p = plan(obj, page_size=mmap.PAGESIZE)
    if p.obj.machine != TARGETS[HOST_NAME].elf_machine:
        raise ObjectFileError(f"object is for ELF machine {p.obj.machine}, not the host ({HOST_NAME})")
    base = _map(0, p.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    try:
        image = p.link(base, externals)
        _map_image(image)
    except BaseException:
        _unmap(base, p.size)
        raise
    return LoadedCode(image)


def load_code(code: bytes, name: str = "code") -> LoadedCode:
    """Map position-independent machine code (baseline code: it refers to
    nothing outside itself but through the run context) read-only and
    executable, the same way as a linked object's text. ``name`` is its symbol
    (at the start of the mapping)."""
    if not HOST_SUPPORTED:
        raise ObjectFileError(f"native code loading is not supported on {HOST_NAME}")
    page = mmap.PAGESIZE
    size = max(page, (len(code) + page - 1) & -page)
    base = _map(0, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    try:
        image = LinkedImage(TARGETS[HOST_NAME].elf_machine, base, size, (Region("text", "rx", 0, size, code),),
                            {name: base}, len(code))
        _map_image(image)
    except BaseException:
        _unmap(base, size)
        raise
    return LoadedCode(image)


def _map_image(image: LinkedImage) -> None:
    fd = os.memfd_create("zjit-code", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, image.size)
        for region in image.regions:
            view = memoryview(region.data)
            done = 0
            while done < len(view):
                done += os.pwrite(fd, view[done:], region.offset + done)
        # Sealed before mapping: the shared mappings then cannot be made
        # writable later (the kernel drops VM_MAYWRITE), and the file cannot change.
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        for region in image.regions:
            prot, share = _REGION_MAPPING[region.perms]
            _map(image.base + region.offset, region.size, prot, share | MAP_FIXED, fd, region.offset)
    except OSError as exc:
        raise ObjectFileError(f"cannot map the code: {exc}") from None
    finally:
        os.close(fd)
