"""Code cache: keys, memory and disk layers, damage detection, concurrency."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from zjit.backends import cache as cache_mod
from zjit.backends import fingerprint, targets
from zjit.backends.cache import CodeCache, cache_key, decode_entry, encode_entry
from zjit.backends.objfile import compiler

from zjit.errors import CacheWarning
from zjit.policy import Policy

BASE = {"triple": "x86_64-unknown-linux-gnu", "cpu": "generic", "options": {"opt": 2, "fuel": None}}


def _key(digest: str = "d" * 64, **over: object) -> str:
    args: dict[str, Any] = {**BASE, **over}
    return str(cache_key(digest, **args))


def test_key_is_stable_and_order_insensitive() -> None:
    assert _key() == _key()
    assert _key(options={"fuel": None, "opt": 2}) == _key(options={"opt": 2, "fuel": None})
    assert len(_key()) == 64 and int(_key(), 16) >= 0


def test_key_changes_with_every_component(monkeypatch: pytest.MonkeyPatch) -> None:
    base = _key()
    variants = {
        "digest": _key("e" * 64),
        "triple": _key(triple="aarch64-unknown-linux-gnu"),
        "cpu": _key(cpu="skylake"),
        "option value": _key(options={"opt": 1, "fuel": None}),
        "option added": _key(options={"opt": 2, "fuel": None, "depth": 10}),
        "option type": _key(options={"opt": "2", "fuel": None}),
    }
    monkeypatch.setattr(cache_mod, "ZJIT_VERSION", "9.9.9")
    variants["zjit version"] = _key()
    monkeypatch.undo()
    monkeypatch.setattr(targets, "llvmlite_version", lambda: "0.99.0")
    variants["llvmlite version"] = _key()
    monkeypatch.undo()
    monkeypatch.setattr(targets, "bundled_llvm_version", lambda: "99.0.0")
    variants["llvm version"] = _key()
    monkeypatch.undo()
    monkeypatch.setattr(cache_mod, "code_fingerprint", lambda: "0" * 64)
    variants["compiler sources"] = _key()
    monkeypatch.undo()
    assert _key() == base
    for what, key in variants.items():
        assert key != base, what
    assert len(set(variants.values())) == len(variants)


def test_key_changes_with_a_source_of_every_subpackage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing (or adding) a Python file in any folder of the hashed packages gives
    new keys: the fingerprint reaches into every subpackage."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    real_dirs = fingerprint._package_dirs
    copies = {}
    for package in fingerprint.SOURCE_PACKAGES:
        copies[package] = tmp_path / package
        shutil.copytree(real_dirs(package)[0], copies[package], ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "_package_dirs", lambda name: [str(copies[name])])

    def fresh_key() -> str:
        fingerprint.code_fingerprint.cache_clear()
        return _key()

    folders = sorted({f.parent for root in copies.values() for f in root.rglob("*.py")})
    backends = copies["backends"]
    assert {backends, *(backends / sub for sub in ("middle", "llvm", "objfile", "native", "arm64"))} <= set(folders)
    seen = {fresh_key()}
    try:
        assert fresh_key() in seen  # unchanged sources, same key
        for folder in folders:
            victim = sorted(folder.glob("*.py"))[-1]
            victim.write_text(victim.read_text() + "\n# edited\n")
            edited = fresh_key()
            assert edited not in seen, victim
            (folder / "zz_new.py").write_text("# a new module\n")
            added = fresh_key()
            assert added not in seen | {edited}, folder
            seen |= {edited, added}
    finally:
        fingerprint.code_fingerprint.cache_clear()


def test_key_rejects_non_json_options() -> None:
    with pytest.raises(TypeError):
        _key(options={"x": object()})
    with pytest.raises(TypeError):
        _key(options={"x": float("nan")})


def test_memory_and_disk_hits(tmp_path: Path) -> None:
    key = _key()
    c = CodeCache(tmp_path)
    assert c.get(key) is None
    c.put(key, b"object bytes")
    assert c.get(key) == b"object bytes"
    assert c.stats.memory_hits == 1
    fresh = CodeCache(tmp_path)
    assert fresh.get(key) == b"object bytes"
    assert fresh.stats.disk_hits == 1
    assert fresh.get(key) == b"object bytes"
    assert fresh.stats.memory_hits == 1
    assert fresh.get(_key("0" * 64)) is None
    assert fresh.stats.misses == 1
    assert c.entry_path(key).exists()
    assert [p.name for p in tmp_path.rglob(".tmp-*")] == []


def test_disk_disabled_and_policy(tmp_path: Path) -> None:
    c = CodeCache.for_policy(Policy(cache_dir=tmp_path, use_cache=False))
    c.put(_key(), b"x")
    assert c.get(_key()) == b"x"
    assert list(tmp_path.iterdir()) == []
    c2 = CodeCache.for_policy(Policy(cache_dir=tmp_path))
    assert c2.directory == tmp_path and c2.disk
    assert CodeCache(None).directory == Policy().resolved_cache_dir


def test_memory_layer_is_bounded(tmp_path: Path) -> None:
    c = CodeCache(tmp_path, disk=False, memory_bytes=100)
    keys = [_key(f"{i:064x}") for i in range(5)]
    for k in keys:
        c.put(k, bytes(40))
    assert c.get(keys[0]) is None and c.get(keys[1]) is None
    assert c.get(keys[4]) == bytes(40)


def _stored(tmp_path: Path, payload: bytes = b"P" * 1000) -> tuple[CodeCache, str, Path]:
    key = _key()
    CodeCache(tmp_path).put(key, payload)
    c = CodeCache(tmp_path)
    return c, key, c.entry_path(key)


@pytest.mark.parametrize("length", [0, 5, 20, 55, 100, 119, 120, 1119])
def test_truncated_entry_is_a_miss_and_deleted(tmp_path: Path, length: int) -> None:
    c, key, path = _stored(tmp_path)
    blob = path.read_bytes()
    assert length < len(blob)
    path.write_bytes(blob[:length])
    assert c.get(key) is None
    assert not path.exists()
    assert c.stats.rejected == 1
    c.put(key, b"rebuilt")
    assert CodeCache(tmp_path).get(key) == b"rebuilt"


def test_flipped_byte_anywhere_is_detected(tmp_path: Path) -> None:
    c, key, path = _stored(tmp_path)
    good = path.read_bytes()
    for pos in list(range(0, 140)) + [500, len(good) - 1]:
        bad = bytearray(good)
        bad[pos] ^= 0x40
        path.write_bytes(bytes(bad))
        assert c.get(key) is None, pos
        assert not path.exists(), pos
    assert c.stats.rejected == 142


def test_extra_bytes_are_detected(tmp_path: Path) -> None:
    c, key, path = _stored(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    assert c.get(key) is None and not path.exists()


def test_foreign_entry_is_detected(tmp_path: Path) -> None:
    c, key, path = _stored(tmp_path)
    other = _key("f" * 64)
    other_path = c.entry_path(other)
    other_path.parent.mkdir(parents=True, exist_ok=True)
    other_path.write_bytes(path.read_bytes())  # intact, but someone else's key
    assert c.get(other) is None
    assert not other_path.exists()
    assert c.get(key) == b"P" * 1000


def test_wrong_magic_version_and_secret(tmp_path: Path) -> None:
    key, secret = _key(), b"s" * 32
    blob = encode_entry(key, b"abc", secret)
    assert decode_entry(key, blob, secret) == b"abc"
    assert decode_entry(key, b"XJITCODE" + blob[8:], secret) is None
    assert decode_entry(key, blob[:8] + (99).to_bytes(4, "little") + blob[12:], secret) is None
    assert decode_entry(_key("1" * 64), blob, secret) is None
    assert decode_entry(key, blob, b"t" * 32) is None


def test_unsafe_directory_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    c = CodeCache(shared)
    with pytest.warns(CacheWarning, match="writable by group or others"):
        c.put(_key(), b"x")
    assert list(shared.iterdir()) == []
    assert c.stats.write_errors == 1
    with pytest.warns(CacheWarning):
        assert CodeCache(shared).get(_key()) is None


def test_unwritable_directory_degrades_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    c = CodeCache(blocker / "sub")
    with pytest.warns(CacheWarning, match="not a directory"):
        c.put(_key(), b"x")
    assert c.get(_key()) == b"x"
    assert c.stats.write_errors == 1
    (tmp_path / "ro").mkdir(mode=0o500)
    ro = CodeCache(tmp_path / "ro" / "cache")
    ro.put(_key(), b"y")
    assert ro.get(_key()) == b"y"
    assert ro.stats.write_errors == (0 if os.geteuid() == 0 else 1)  # root writes anyway


def test_bad_keys_rejected(tmp_path: Path) -> None:
    c = CodeCache(tmp_path)
    for bad in ["", "../../etc/passwd", "A" * 64, "g" * 64]:
        with pytest.raises(ValueError):
            c.get(bad)


def _valid_payloads(n: int) -> set[bytes]:
    return {(b"payload-%d-" % i) * (100 + i) for i in range(n)}


def test_concurrent_threads(tmp_path: Path) -> None:
    key = _key()
    payloads = sorted(_valid_payloads(8))
    seen: list[bytes | None] = []
    errors: list[BaseException] = []

    def writer(p: bytes) -> None:
        try:
            c = CodeCache(tmp_path)
            for _ in range(25):
                c.put(key, p)
                c.clear_memory()
                seen.append(c.get(key))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(s is None or s in payloads for s in seen)
    assert CodeCache(tmp_path).get(key) in payloads
    assert [p.name for p in tmp_path.rglob(".tmp-*")] == []


WRITER = r"""
import sys
from zjit.backends.cache import CodeCache
key, directory, tag = sys.argv[1], sys.argv[2], sys.argv[3]
bad = 0
for i in range(60):
    c = CodeCache(directory)
    c.put(key, (b"proc-%s-" % tag.encode()) * 300)
    c.clear_memory()
    got = c.get(key)
    if got is not None and got not in (b"proc-a-" * 300, b"proc-b-" * 300):
        bad += 1
print(bad, c.stats.rejected)
"""


def test_concurrent_processes(tmp_path: Path) -> None:
    key = _key()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, key, str(tmp_path), tag], stdout=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs == [["0", "0"], ["0", "0"]]  # never a torn or mixed entry
    assert CodeCache(tmp_path).get(key) in (b"proc-a-" * 300, b"proc-b-" * 300)


HIT = r"""
import ctypes, sys, time
t0 = time.perf_counter()
from zjit.backends.cache import CodeCache, cache_key
from zjit.backends.native.loader import load_object
key = cache_key("prog", triple="x86_64-unknown-linux-gnu", cpu="generic", options={"opt": 2})
# The parent's key (equal to ours unless a zjit source changed in between).
obj = CodeCache(sys.argv[1]).get(sys.argv[2])
assert obj is not None
code = load_object(obj)
f = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(code.symbol("add_mul"))
assert f(1, 2) == 9
t1 = time.perf_counter()
print("llvmlite" in sys.modules, "zjit.backends.objfile.compile_worker" in sys.modules, round((t1 - t0) * 1e3, 2))
"""


def test_cached_load_does_not_import_llvmlite(tmp_path: Path) -> None:
    from llvm_samples import SIMPLE_IR

    obj = compiler.compile_ir(SIMPLE_IR, triple="x86_64-unknown-linux-gnu", opt_level=2)
    key = cache_key("prog", triple="x86_64-unknown-linux-gnu", cpu="generic", options={"opt": 2})
    CodeCache(tmp_path).put(key, obj)
    out = subprocess.run([sys.executable, "-c", HIT, str(tmp_path), key], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    llvmlite_loaded, worker_loaded, _ms = out.stdout.split()
    assert llvmlite_loaded == "False"
    assert worker_loaded == "False"
