"""Code generation targets: triples, data layouts and the bundled LLVM version.

Everything here is a constant measured once against llvmlite's LLVM, so callers
can know a target's layout (and the cache can build its key) without importing
llvmlite. ``tests/test_compiler.py`` checks every constant against what LLVM
itself reports, so an llvmlite upgrade that changes them fails loudly.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from .fingerprint import memoised_fingerprint

X86_64_TRIPLE = "x86_64-unknown-linux-gnu"
AARCH64_TRIPLE = "aarch64-unknown-linux-gnu"

X86_64_DATA_LAYOUT = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
AARCH64_DATA_LAYOUT = (
    "e-m:e-p270:32:32-p271:32:32-p272:64:64-i8:8:32-i16:16:32-i64:64-i128:128-n32:64-S128-Fn32"
)

LLVM_VERSIONS: dict[str, str] = {"0.50": "22.1.0"}
"""llvmlite ``major.minor`` -> version of the LLVM it bundles (measured)."""

EM_X86_64 = 62
EM_AARCH64 = 183


@dataclass(frozen=True)
class Target:
    """One supported code generation target."""

    name: str
    """Short name used on the command line (``x86_64``, ``aarch64``)."""
    triple: str
    data_layout: str
    elf_machine: int
    """``e_machine`` of the objects LLVM emits for it."""


TARGETS: dict[str, Target] = {
    "x86_64": Target("x86_64", X86_64_TRIPLE, X86_64_DATA_LAYOUT, EM_X86_64),
    "aarch64": Target("aarch64", AARCH64_TRIPLE, AARCH64_DATA_LAYOUT, EM_AARCH64),
}

_BY_TRIPLE = {t.triple: t for t in TARGETS.values()}


def _uname() -> tuple[str, str]:
    """``(platform.system(), platform.machine())``; :mod:`platform` itself costs
    ~2 ms of start-up, and on POSIX both come from ``os.uname()`` anyway."""
    if hasattr(os, "uname"):
        u = os.uname()
        return u.sysname, u.machine
    import platform

    return platform.system(), platform.machine()


def _host_target_name() -> str:
    machine = _uname()[1].lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "aarch64"
    return machine


HOST_NAME = _host_target_name()
"""Short name of the host's architecture (``x86_64`` on the development machines)."""

HOST_TRIPLE = TARGETS[HOST_NAME].triple if HOST_NAME in TARGETS else X86_64_TRIPLE
"""Triple of native code for this machine (``x86_64-unknown-linux-gnu`` here)."""

HOST_SUPPORTED = HOST_NAME in TARGETS and _uname()[0] == "Linux"
"""True when native code can be loaded and run in this process."""


def target_for_triple(triple: str) -> Target:
    """The :class:`Target` for ``triple``; KeyError when unsupported."""
    return _BY_TRIPLE[triple]


def data_layout(triple: str) -> str:
    """The LLVM data layout string for ``triple``."""
    return target_for_triple(triple).data_layout


@functools.cache
def llvmlite_version() -> str:
    """Installed llvmlite version, read from its package metadata (no import).

    Reads ``llvmlite-*.dist-info/METADATA`` next to the package directly, since
    :mod:`importlib.metadata` alone costs ~80 ms of imports on a cache hit (and
    locates the package with the path finder: :mod:`importlib.util` and
    :mod:`pathlib` cost a few ms more). Unless llvmlite is imported already, the
    answer is memoised on disk under the ``stat()`` signature of the ``sys.path``
    folders (installing or removing a package changes its folder's mtime).
    """
    import sys

    if "llvmlite" in sys.modules:
        return _llvmlite_version()
    return memoised_fingerprint("llvmlite", [os.path.abspath(p) for p in sys.path], _llvmlite_version)


def _llvmlite_version() -> str:
    import sys

    loaded = sys.modules.get("llvmlite")
    if loaded is not None:
        spec = loaded.__spec__
    else:
        # importlib.machinery.PathFinder, without importing the importlib package
        external = sys.modules.get("_frozen_importlib_external")
        if external is not None:
            spec = external.PathFinder.find_spec("llvmlite")
        else:
            from importlib.machinery import PathFinder

            spec = PathFinder.find_spec("llvmlite")
    if spec is None:
        import importlib.util

        spec = importlib.util.find_spec("llvmlite")  # locates, does not import
    if spec is None or spec.origin is None:
        return "none"
    site = os.path.dirname(os.path.dirname(os.path.realpath(spec.origin)))
    try:
        names = sorted(n for n in os.listdir(site) if n.startswith("llvmlite-") and n.endswith(".dist-info"))
    except OSError:
        names = []
    for dist in names:
        try:
            with open(os.path.join(site, dist, "METADATA"), encoding="utf-8") as f:
                for line in f:
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
                    if not line.strip():
                        break
        except OSError:
            continue
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llvmlite")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def bundled_llvm_version() -> str:
    """Version of the LLVM inside llvmlite, without importing llvmlite here."""
    major_minor = ".".join(llvmlite_version().split(".")[:2])
    known = LLVM_VERSIONS.get(major_minor)
    if known is not None:
        return known
    # Unknown llvmlite: ask a throw-away interpreter once.
    import subprocess
    import sys

    probe = "import llvmlite.binding as b; print('.'.join(map(str, b.llvm_version_info)))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
