"""Cache trust (docs/cache.md "Threat model"): every directory and file under the
root is checked when it is opened, never followed through a link, and entries are
authenticated under the per-user secret key, so nothing planted is ever loaded."""

from __future__ import annotations

import os
import shutil
import stat
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from zjit.backends import cache_fs, fingerprint
from zjit.backends.cache import KEY_BYTES, KEY_FILE, CodeCache, cache_key, encode_entry

from zjit.errors import CacheWarning

OPTS = {"triple": "x86_64-unknown-linux-gnu", "cpu": "generic", "options": {"opt": 2}}
PAYLOAD = b"object code " * 50
EVIL = b"planted code " * 50


def _key(n: int = 0) -> str:
    return cache_key(f"{n:064x}", **OPTS)  # type: ignore[arg-type]


def _filled(tmp_path: Path, *payloads: tuple[str, bytes]) -> tuple[Path, CodeCache]:
    """A cache root with these entries written, and a cache object that has not read them."""
    root = tmp_path / "cache"
    writer = CodeCache(root)
    for key, payload in payloads or ((_key(), PAYLOAD),):
        writer.put(key, payload)
    return root, CodeCache(root)


def _secret(root: Path) -> bytes:
    return (root / KEY_FILE).read_bytes()


def _world_writable(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    return shared


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_layout_and_modes(tmp_path: Path) -> None:
    root, _ = _filled(tmp_path)
    key = _key()
    assert _mode(root) == 0o700 and _mode(root / key[:2]) == 0o700
    assert _mode(root / key[:2] / f"{key}.zjc") == 0o600
    secret = root / KEY_FILE
    assert _mode(secret) == 0o600 and secret.stat().st_size == KEY_BYTES
    assert secret.stat().st_uid == os.geteuid() and not secret.is_symlink()
    other = tmp_path / "other"
    CodeCache(other).put(key, PAYLOAD)
    assert _secret(other) != _secret(root)  # a fresh random key per root


def test_symlinked_subdirectory_is_neither_followed_nor_written(tmp_path: Path) -> None:
    root, cache = _filled(tmp_path, (_key(1), PAYLOAD))  # the root and its key exist
    key = _key()
    shared = _world_writable(tmp_path)
    # the worst case: what lies behind the link is a perfect entry under the real key
    (shared / f"{key}.zjc").write_bytes(encode_entry(key, EVIL, _secret(root)))
    (root / key[:2]).symlink_to(shared)
    with pytest.warns(CacheWarning, match="symbolic link"):
        assert cache.get(key) is None
    cache.put(key, PAYLOAD)
    assert sorted(p.name for p in shared.iterdir()) == [f"{key}.zjc"]  # nothing written through it
    assert (shared / f"{key}.zjc").read_bytes() == encode_entry(key, EVIL, _secret(root))
    assert cache.stats.untrusted == 2 and cache.stats.write_errors == 1 and cache.stats.disk_hits == 0
    assert CodeCache(root).get(_key(1)) == PAYLOAD  # the rest of the cache still works


def test_planted_entry_with_forged_header_is_rejected_and_rebuilt(tmp_path: Path) -> None:
    root, cache = _filled(tmp_path)
    key, victim = _key(), _key(2)
    good = (root / key[:2] / f"{key}.zjc").read_bytes()
    # an intact entry of another key with its key field rewritten: header and length are right
    forged = good.replace(key.encode(), victim.encode())
    path = root / victim[:2] / f"{victim}.zjc"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(forged)
    assert cache.get(victim) is None and not path.exists() and cache.stats.rejected == 1
    # a complete, self-consistent entry under a key the attacker chose
    path.write_bytes(encode_entry(victim, EVIL, b"\0" * KEY_BYTES))
    assert cache.get(victim) is None and not path.exists() and cache.stats.rejected == 2
    cache.put(victim, PAYLOAD)
    assert CodeCache(root).get(victim) == PAYLOAD


def test_entries_made_under_another_key_are_rejected(tmp_path: Path) -> None:
    key = _key()
    root_a, _ = _filled(tmp_path / "a")
    root_b, cache_b = _filled(tmp_path / "b", (_key(1), PAYLOAD))
    assert _secret(root_a) != _secret(root_b)
    target = root_b / key[:2] / f"{key}.zjc"
    target.parent.mkdir(mode=0o700, exist_ok=True)
    shutil.copyfile(root_a / key[:2] / f"{key}.zjc", target)
    assert cache_b.get(key) is None and cache_b.stats.rejected == 1 and not target.exists()


def test_chmod_777_after_first_use_is_noticed(tmp_path: Path) -> None:
    root, cache = _filled(tmp_path)
    key = _key()
    entry = root / key[:2] / f"{key}.zjc"
    assert cache.get(key) == PAYLOAD
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for where in (root, root / key[:2]):
            cache.clear_memory()
            os.chmod(where, 0o777)
            assert cache.get(key) is None
            before = entry.stat()
            cache.put(key, EVIL)  # kept in memory only
            assert entry.stat().st_ino == before.st_ino and cache.stats.write_errors == (1 if where == root else 2)
            os.chmod(where, 0o700)
            cache.clear_memory()
            assert cache.get(key) == PAYLOAD  # checked again at the next access, and fine
    assert cache.stats.untrusted == 4
    assert [str(w.message) for w in seen] == [f"zjit: code cache: {root} is not used: writable by group or "
                                              "others (mode 0777)"]  # once per cache object
    fresh = CodeCache(root)
    os.chmod(root, 0o775)
    with pytest.warns(CacheWarning, match=r"writable by group or others \(mode 0775\)") as record:
        for _ in range(3):
            assert fresh.get(key) is None
    assert len(record) == 1


def test_an_entry_file_writable_by_others_is_rejected(tmp_path: Path) -> None:
    root, cache = _filled(tmp_path)
    key = _key()
    entry = root / key[:2] / f"{key}.zjc"
    os.chmod(entry, 0o666)
    assert cache.get(key) is None and cache.stats.rejected == 1 and not entry.exists()


def test_planted_links_and_fifos_are_rejected_without_following(tmp_path: Path) -> None:
    root, cache = _filled(tmp_path)
    key = _key()
    shared = _world_writable(tmp_path)
    outside = shared / "evil.zjc"
    outside.write_bytes(encode_entry(key, EVIL, _secret(root)))
    entry = root / key[:2] / f"{key}.zjc"
    entry.unlink()
    entry.symlink_to(outside)
    assert cache.get(key) is None and not entry.is_symlink() and outside.exists()
    os.mkfifo(entry)  # opening a FIFO for reading would wait for a writer
    done: list[bytes | None] = []
    reader = threading.Thread(target=lambda: done.append(cache.get(key)), daemon=True)
    reader.start()
    reader.join(10)
    assert done == [None] and not entry.exists() and cache.stats.rejected == 2


def test_a_swapped_directory_cannot_redirect_a_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shard is replaced by a link right after its check: the write still goes
    to the directory that was checked (it is made through its descriptor)."""
    root, cache = _filled(tmp_path, (_key(1), PAYLOAD))
    key = _key()
    shared = _world_writable(tmp_path)
    checked_open = cache_fs.open_dir

    def open_then_swap(name: str, parent: int, *, create: bool) -> int:
        fd = checked_open(name, parent, create=create)
        if name == key[:2]:
            os.rename(name, "moved", src_dir_fd=parent, dst_dir_fd=parent)
            os.symlink(shared, name, dir_fd=parent)
        return fd

    monkeypatch.setattr(cache_fs, "open_dir", open_then_swap)
    cache.put(key, PAYLOAD)
    assert list(shared.iterdir()) == []
    assert (root / "moved" / f"{key}.zjc").is_file() and cache.stats.writes == 1


def test_root_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    cache = CodeCache(link)
    with pytest.warns(CacheWarning, match="symbolic link") as record:
        cache.put(_key(), PAYLOAD)
        assert cache.get(_key()) == PAYLOAD  # from memory
        cache.clear_memory()
        assert cache.get(_key()) is None
    assert len(record) == 1 and list(real.iterdir()) == []


@pytest.mark.parametrize("damage", ["mode", "size", "link", "directory"])
def test_damaged_key_file_is_replaced(tmp_path: Path, damage: str) -> None:
    root, cache = _filled(tmp_path, (_key(1), PAYLOAD), (_key(2), PAYLOAD))
    secret = root / KEY_FILE
    old = secret.read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(old)
    if damage == "mode":
        os.chmod(secret, 0o644)  # readable by others: no longer a secret
    elif damage == "size":
        secret.write_bytes(old[:-1])
    elif damage == "link":
        secret.unlink()
        secret.symlink_to(elsewhere)
    else:
        secret.unlink()
        secret.mkdir()
    assert cache.get(_key(1)) is None  # no trustworthy key: nothing can be verified
    if damage == "directory":
        secret.rmdir()  # (a directory is not replaced by a file; removing it lets a put make one)
    cache.put(_key(3), PAYLOAD)
    assert _mode(secret) == 0o600 and not secret.is_symlink() and secret.stat().st_size == KEY_BYTES
    assert secret.read_bytes() != old and elsewhere.read_bytes() == old
    fresh = CodeCache(root)
    assert fresh.get(_key(3)) == PAYLOAD
    assert fresh.get(_key(2)) is None and fresh.stats.rejected == 1  # made under the old key: rebuilt


def test_key_file_is_made_once_under_concurrency(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    barrier = threading.Barrier(8)

    def first_put(i: int) -> None:
        c = CodeCache(root)
        barrier.wait()
        c.put(_key(i), PAYLOAD)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(first_put, range(8)))  # re-raises any thread's exception
    fresh = CodeCache(root)
    assert all(fresh.get(_key(i)) == PAYLOAD for i in range(8)) and fresh.stats.rejected == 0


def test_key_file_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    root, cache = _filled(tmp_path)
    assert _mode(root / KEY_FILE) == 0o600 and cache.get(_key()) == PAYLOAD
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp-")] == []


def _foreign_uid() -> int:
    if os.geteuid() != 0:
        pytest.skip("making a file owned by another user needs root")
    return 65534


@pytest.mark.parametrize("what", ["root", "shard", "entry", "key"])
def test_foreign_owner_is_refused(tmp_path: Path, what: str) -> None:
    uid = _foreign_uid()
    root, cache = _filled(tmp_path)
    key = _key()
    path = {"root": root, "shard": root / key[:2], "entry": root / key[:2] / f"{key}.zjc",
            "key": root / KEY_FILE}[what]
    os.chown(path, uid, -1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert cache.get(key) is None
    if what in ("root", "shard"):
        assert [str(w.message) for w in seen] == \
            [f"zjit: code cache: {path} is not used: owned by uid {uid}, not by this user (uid 0)"]
        assert path.exists() and cache.stats.untrusted == 1
    elif what == "entry":
        assert not path.exists() and cache.stats.rejected == 1
    else:
        cache.put(key, PAYLOAD)  # replaced by our own key
        assert path.stat().st_uid == os.geteuid()


def test_fingerprint_memo_is_not_written_through_a_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    src = tmp_path / "a.py"
    src.write_text("x")
    fingerprint.memoised_fingerprint("t", [str(src)], lambda: "d1")
    memos = tmp_path / "xdg" / "zjit" / fingerprint.MEMO_DIR
    assert (memos / "t").read_text().split()[1] == "d1"
    shared = _world_writable(tmp_path)
    (shared / "t").write_text((memos / "t").read_text().replace("d1", "planted"))
    shutil.rmtree(memos)
    memos.symlink_to(shared)
    assert fingerprint.memoised_fingerprint("t", [str(src)], lambda: "d2") == "d2"
    assert sorted(p.name for p in shared.iterdir()) == ["t"] and "planted" in (shared / "t").read_text()
