"""The disk layer of the code cache stays within its size bound (LRU by last use)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from zjit.backends.cache import CodeCache

from zjit.policy import Policy


def _key(i: int) -> str:
    return f"{i:064x}"


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.zjc"))


def test_trim_removes_least_recently_used(tmp_path: Path) -> None:
    cache = CodeCache(tmp_path, disk_bytes=1 << 40)
    for i in range(8):
        cache.put(_key(i), bytes([i]) * 1000)
    old = time.time() - 1000
    for i in range(8):  # entry i last used at old + i
        os.utime(cache.entry_path(_key(i)), (old + i, old + i))
    reader = CodeCache(tmp_path, disk_bytes=1 << 40)
    assert reader.get(_key(0)) == bytes([0]) * 1000  # a hit refreshes entry 0
    entry = cache.entry_path(_key(0)).stat().st_size
    freed = reader.trim(limit=4 * entry)
    kept = {i for i in range(8) if cache.entry_path(_key(i)).exists()}
    assert kept == {0, 6, 7} and freed == 5 * entry
    assert _disk_bytes(tmp_path) <= 3 * entry


def test_trim_leaves_a_cache_within_bounds_alone(tmp_path: Path) -> None:
    cache = CodeCache(tmp_path)
    cache.put(_key(1), b"x" * 100)
    assert cache.trim() == 0 and cache.entry_path(_key(1)).exists()


@pytest.mark.slow
def test_puts_keep_the_disk_layer_bounded(tmp_path: Path) -> None:
    cache = CodeCache(tmp_path, disk_bytes=20_000)
    for i in range(200):
        cache.put(_key(i), os.urandom(1000))
    # checked on the first write and every TRIM_EVERY writes after it
    assert _disk_bytes(tmp_path) <= 20_000 + 33 * 1100


def test_policy_sets_the_bound() -> None:
    assert CodeCache.for_policy(Policy(cache_max_bytes=12345)).disk_bytes == 12345
