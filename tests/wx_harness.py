"""Run Python code under kernel-enforced W^X and check the process for W+X mappings.

Usage (from tests, in a subprocess)::

    python tests/wx_harness.py -c "CODE"
    python tests/wx_harness.py path/to/script.py [args...]

Before anything else is imported, this calls
``prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)`` (option 65, value 1): from then on
the kernel refuses any mapping that is writable and executable, and refuses to make
a mapping executable later. The code runs, then every line of ``/proc/self/maps``
is checked. Exit status:

* 0: the code ran and no mapping is both writable and executable;
* 77 (``EXIT_SKIP``): the kernel refused MDWE (tests should skip);
* 3 (``EXIT_WX``): a W+X mapping exists (listed on stderr);
* anything else: the code itself failed.

The last stdout line is ``WX-CHECK {json}`` with the MDWE flags and the offending
mappings, so callers can assert on it.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1
EXIT_SKIP = 77
EXIT_WX = 3


def enable_mdwe() -> int:
    """Turn MDWE on for this process; returns the flags read back (0 = refused)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.restype = ctypes.c_int
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        return 0
    flags = libc.prctl(PR_GET_MDWE, 0, 0, 0, 0)
    return int(flags) if flags > 0 else 0


def wx_mappings() -> list[str]:
    """Lines of /proc/self/maps whose permissions have both ``w`` and ``x``."""
    bad = []
    with open("/proc/self/maps") as f:
        for line in f:
            perms = line.split()[1]
            if "w" in perms and "x" in perms:
                bad.append(line.rstrip())
    return bad


def _maps() -> list[tuple[int, int, str, int, str, int, str]]:
    """``(start, end, perms, offset, device, inode, path)`` of every mapping."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].strip() if len(parts) > 5 else ""
            out.append((start, end, parts[1], int(parts[2], 16), parts[3], int(parts[4]), path))
    return out


def writable_aliases() -> list[str]:
    """Executable file or memfd mappings whose file pages are also mapped writable
    and shared somewhere in the process (a writable alias of code), as text."""
    maps = _maps()
    bad = []
    for start, end, perms, off, dev, inode, path in maps:
        if "x" not in perms or not inode:
            continue
        lo, hi = off, off + (end - start)
        for s2, e2, p2, off2, dev2, inode2, _ in maps:
            if (dev2, inode2) == (dev, inode) and "w" in p2 and "s" in p2 and off2 < hi and lo < off2 + (e2 - s2):
                bad.append(f"{path or inode}: {p2} at {s2:#x} aliases {perms} at {start:#x}")
    return bad


def code_mappings() -> list[str]:
    """Mappings of zjit's loaded code (``memfd:zjit-code``)."""
    return [f"{m[2]} {m[6]}" for m in _maps() if "zjit-code" in m[6]]


def main(argv: list[str]) -> int:
    flags = enable_mdwe()
    if not flags & PR_MDWE_REFUSE_EXEC_GAIN:
        print("WX-CHECK " + json.dumps({"mdwe": 0, "skipped": True}))
        return EXIT_SKIP
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    rc = 0
    try:
        if argv[0] == "-c" and len(argv) >= 2:
            sys.argv = ["-c", *argv[2:]]
            exec(compile(argv[1], "<wx-harness>", "exec"), {"__name__": "__main__"})
        else:
            import runpy

            sys.argv = list(argv)
            sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    bad = wx_mappings()
    print("WX-CHECK " + json.dumps({"mdwe": flags, "skipped": False, "wx": bad}))
    if bad:
        sys.stderr.write("W+X mappings:\n" + "\n".join(bad) + "\n")
        return EXIT_WX
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
