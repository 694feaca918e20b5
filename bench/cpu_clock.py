"""CPU time of this process and all its descendants, in seconds.

``time.process_time()`` misses work done in other processes, and zjit compiles in
a worker process; ``resource.RUSAGE_CHILDREN`` counts only children that have
exited. On Linux this sums the scheduler's nanosecond run time
(``/proc/<pid>/task/<tid>/schedstat``) over every thread of this process and of
its descendants; elsewhere it falls back to ``time.process_time()``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_PROC = Path("/proc")


def _tasks(pid: int) -> list[Path]:
    try:
        return list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return []


def _tree_ns(pid: int) -> int:
    total = 0
    for task in _tasks(pid):
        try:
            total += int((task / "schedstat").read_text().split()[0])
            children = (task / "children").read_text().split()
        except (OSError, ValueError, IndexError):
            continue
        for child in children:
            total += _tree_ns(int(child))
    return total


def tree_cpu_supported() -> bool:
    """True when the per-thread scheduler statistics can be read."""
    return (_PROC / "self" / "schedstat").exists() and bool(_tasks(os.getpid()))


def tree_cpu() -> float:
    """Seconds of CPU used so far by this process tree (see the module docstring)."""
    if tree_cpu_supported():
        return _tree_ns(os.getpid()) / 1e9
    return time.process_time()
