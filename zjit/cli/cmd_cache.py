"""``zjit cache info|clear [--dir DIR]``: the on-disk code cache (docs/cache.md).

``info`` reports where the cache is (``--dir``, else ``$ZJIT_CACHE_DIR``, else
``$XDG_CACHE_HOME/zjit``, else ``~/.cache/zjit``), whether it passes its trust
checks, and how many entries and bytes it holds; ``clear`` removes every entry
through :meth:`zjit.backends.cache.CodeCache.trim`. Everything under the root is
opened through :mod:`zjit.backends.cache_fs`, so the trust checks of the cache
apply here too: a root or entry directory that fails them is reported, never
read or changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass

from zjit.cli.exits import EXIT_OK, EXIT_REJECTED
from zjit.policy import CACHE_DIR_VARIABLE, Policy, default_cache_path


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the actions and their options."""
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    info = actions.add_parser("info", help="where the code cache is, its entries and bytes")
    info.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    clear = actions.add_parser("clear", help="remove every entry of the code cache")
    for sub in (info, clear):
        sub.add_argument("--dir", metavar="DIR",
                         help=f"cache root (default: ${CACHE_DIR_VARIABLE}, else $XDG_CACHE_HOME/zjit "
                              "or ~/.cache/zjit)")


@dataclass
class CacheInfo:
    """What ``zjit cache info`` reports."""

    directory: str
    chosen_by: str
    """``--dir``, ``ZJIT_CACHE_DIR`` or ``default``."""
    exists: bool
    trusted: bool
    reason: str | None
    """Why the root fails its trust checks (then nothing under it is used)."""
    skipped: list[str]
    """Entry directories that fail their trust checks (``"ab/: reason"``), not counted."""
    entries: int
    bytes: int
    limit_bytes: int


def _where(args: argparse.Namespace) -> tuple[str, str]:
    if args.dir:
        return args.dir, "--dir"
    return default_cache_path(), CACHE_DIR_VARIABLE if os.environ.get(CACHE_DIR_VARIABLE) else "default"


def cache_info(directory: str, chosen_by: str = "--dir") -> CacheInfo:
    """Entries and bytes under the cache root ``directory``, counted through checked
    opens; entry directories that fail their checks are not counted."""
    from zjit.backends import cache_fs

    info = CacheInfo(directory, chosen_by, True, True, None, [], 0, 0, Policy().cache_max_bytes)
    try:
        root = cache_fs.open_root(directory, create=False)
    except FileNotFoundError:
        info.exists = False
        return info
    except cache_fs.Untrusted as exc:
        info.trusted, info.reason = False, exc.reason
        return info
    except OSError as exc:  # unreadable: not usable either
        info.trusted, info.reason = False, f"cannot be opened: {exc.strerror or exc}"
        return info
    try:
        with os.scandir(root) as it:
            shards = sorted(d.name for d in it if len(d.name) == 2 and d.is_dir(follow_symlinks=False))
        for shard in shards:
            try:
                fd = cache_fs.open_dir(shard, root, create=False)
            except cache_fs.Untrusted as exc:
                info.skipped.append(f"{shard}/: {exc.reason}")
                continue
            try:
                with os.scandir(fd) as it:
                    for e in it:
                        if not e.name.startswith(cache_fs.TMP_PREFIX) and e.is_file(follow_symlinks=False):
                            info.entries += 1
                            info.bytes += e.stat(follow_symlinks=False).st_size
            finally:
                os.close(fd)
    finally:
        os.close(root)
    return info


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def main(args: argparse.Namespace) -> int:
    """``info``: exit 0; ``clear``: exit 0, or 3 when the root fails its trust checks."""
    directory, chosen_by = _where(args)
    info = cache_info(directory, chosen_by)
    if args.action == "info":
        if args.json:
            import json

            sys.stdout.write(json.dumps(asdict(info), indent=2) + "\n")
            return EXIT_OK
        state = "" if info.exists else " (does not exist yet)"
        print(f"directory: {info.directory}{state}  [{info.chosen_by}]")
        if not info.trusted:
            print(f"trusted:   no, not used: {info.reason}")
        for skipped in info.skipped:
            print(f"skipped:   {skipped} (fails its trust checks)")
        print(f"entries:   {info.entries} ({_size(info.bytes)})")
        print(f"limit:     {_size(info.limit_bytes)} (least recently used entries are removed past it)")
        return EXIT_OK
    if not info.trusted:
        from zjit.errors import ContainerError

        from ._tooling import report

        report(ContainerError("BAD_PATH", f"the code cache fails its trust checks ({info.reason}); nothing removed",
                              path=directory), directory)
        return EXIT_REJECTED
    freed = 0
    if info.exists:
        from zjit.backends.cache import CodeCache

        freed = CodeCache(directory).trim(0)
    left = cache_info(directory, chosen_by)
    print(f"removed {info.entries - left.entries} entries ({_size(freed)}) from {directory}")
    for skipped in left.skipped:
        print(f"left alone: {skipped} (fails its trust checks)")
    return EXIT_OK
