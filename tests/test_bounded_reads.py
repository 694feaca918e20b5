"""Hostile files (issue 11, findings 2 and 3): only regular files are read, and every
size is checked against its limit before anything is read or allocated.

A FIFO would block ``open()`` forever, so each case runs under the fuzz campaign's
guard (an interval timer whose handler raises); a sparse multi-GiB file must be refused from
its ``fstat`` size, so those cases also bound the growth of the peak resident set.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zjit.fuzz.containers import guard

from zjit.container.detect import load_image
from zjit.container.manifest import read_manifest
from zjit.container.zasm_bin import write_zasm_bin
from zjit.encoding import pack, words_to_bytes
from zjit.errors import ZjitError
from zjit.image import ModuleImage, SegmentDesc
from zjit.isa import BY_MNEMONIC
from zjit.policy import Policy

RET = words_to_bytes([pack(BY_MNEMONIC["RET"].opcode)])
GiB = 1 << 30


@contextlib.contextmanager
def rss_growth_below(limit: int) -> Iterator[None]:
    """The peak resident set may grow by less than ``limit`` bytes inside the body."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < limit, f"peak RSS grew by {grown >> 20} MiB"


def error_of(fn: Any, *args: Any, **kw: Any) -> ZjitError:
    with guard(5.0), pytest.raises(ZjitError) as info:
        fn(*args, **kw)
    return info.value


def manifest(tmp_path: Path, files: dict[str, bytes] | None = None, **kw: Any) -> Path:
    for name, data in {"prog.code": RET, **(files or {})}.items():
        (tmp_path / name).write_bytes(data)
    obj = {"format": "zjit-module/1", "code": "prog.code", **kw}
    path = tmp_path / "module.json"
    path.write_text(json.dumps(obj))
    return path


def init_seg(size: int, init_size: int, init_path: str = "init.bin") -> dict[str, Any]:
    return {"name": "d", "base": 4096, "size": size, "permissions": "rw",
            "init_path": init_path, "init_size": init_size}


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


# --------------------------------------------------------------------------- finding 2: only regular files


@pytest.mark.parametrize("where", ["code", "init_path", "segments"])
def test_a_fifo_named_by_module_json_is_bad_path(tmp_path: Path, where: str) -> None:
    os.mkfifo(tmp_path / "pipe")
    if where == "code":
        path = manifest(tmp_path, code="pipe")
        jpath = "$.code"
    elif where == "init_path":
        path = manifest(tmp_path, segments=[init_seg(16, 4, "pipe")])
        jpath = "$.segments[0].init_path"
    else:
        path = manifest(tmp_path, segments="pipe")
        jpath = "$.segments"
    e = error_of(read_manifest, path)
    assert (e.code, e.path) == ("BAD_PATH", jpath)
    assert "FIFO" in e.message


def test_a_directory_or_device_named_by_module_json_is_bad_path(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    e = error_of(read_manifest, manifest(tmp_path, code="dir"))
    assert (e.code, e.path) == ("BAD_PATH", "$.code")
    os.symlink("/dev/zero", tmp_path / "zero")  # resolves outside: refused before opening
    e = error_of(read_manifest, manifest(tmp_path, segments=[init_seg(16, 16, "zero")]))
    assert (e.code, e.path) == ("BAD_PATH", "$.segments[0].init_path")


@pytest.mark.parametrize("kind", ["fifo", "directory", "fifo.json"])
def test_top_level_path_must_be_a_regular_file(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        target = tmp_path
    else:
        target = tmp_path / ("pipe.json" if kind == "fifo.json" else "pipe.bin")
        os.mkfifo(target)
    e = error_of(load_image, target)
    assert e.code == "BAD_PATH" and e.path == str(target)


def _limited_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 * GiB, 2 * GiB))


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
@pytest.mark.parametrize("command", [["verify"], ["asm", "-o", "{out}/x.zasm.bin"],
                                     ["compile", "--target", "x86_64", "-o", "{out}/aot"]])
def test_zjit_commands_on_a_device_or_fifo_exit_3_with_bad_path(tmp_path: Path, target: str,
                                                                command: list[str]) -> None:
    # in a child with a bounded address space: an unbounded read must not take the machine
    if target == "fifo":
        target = str(tmp_path / "pipe.s")
        os.mkfifo(target)
    argv = [a.format(out=tmp_path) for a in command]
    proc = subprocess.run([sys.executable, "-m", "zjit", argv[0], target, *argv[1:]], capture_output=True,
                          text=True, timeout=60, preexec_fn=_limited_address_space)
    assert proc.returncode == 3, proc.stderr
    assert "BAD_PATH" in proc.stderr and "Traceback" not in proc.stderr


def test_unencodable_and_looping_paths_are_bad_path(tmp_path: Path) -> None:
    e = error_of(read_manifest, manifest(tmp_path, code="\udc80.code"))
    assert (e.code, e.path) == ("BAD_PATH", "$.code")
    os.symlink("loop", tmp_path / "loop")
    e = error_of(read_manifest, manifest(tmp_path, code="loop"))
    assert (e.code, e.path) == ("BAD_PATH", "$.code")


# --------------------------------------------------------------------------- finding 3: sizes before reads


@pytest.mark.parametrize(("size", "init_size", "code"), [
    (16, 2**64 - 1, "BAD_SIZE"),           # larger than the segment: refused before reading
    (2**64 - 1, 2**64 - 1, "DATA_TOO_LARGE"),
    (2**40, 2**40, "DATA_TOO_LARGE"),
    (16, 2**40, "BAD_SIZE"),
])
def test_huge_init_size_is_a_clean_error(tmp_path: Path, size: int, init_size: int, code: str) -> None:
    path = manifest(tmp_path, {"init.bin": b"abcd"}, segments=[init_seg(size, init_size)])
    with rss_growth_below(64 << 20):
        e = error_of(read_manifest, path)
    assert (e.code, e.path) == (code, "$.segments[0].init_size")


def test_data_cap_counts_every_segment_before_reading(tmp_path: Path) -> None:
    segs = [init_seg(64, 40, "a.bin") | {"name": "a"},
            init_seg(64, 40, "b.bin") | {"name": "b", "base": 8192}]
    path = manifest(tmp_path, {"a.bin": bytes(40)}, segments=segs)  # b.bin does not even exist
    e = error_of(read_manifest, path, policy=Policy(max_data_bytes=64))
    assert (e.code, e.path) == ("DATA_TOO_LARGE", "$.segments[1].init_size")
    inner = ModuleImage(code=RET, segments=(SegmentDesc("data.0", 0x100, 40, "rw", bytes(40)),))
    path = manifest(tmp_path, {"p.bin": write_zasm_bin(inner)}, code="p.bin", segments=segs[1:])
    e = error_of(read_manifest, path, policy=Policy(max_data_bytes=64))
    assert (e.code, e.path) == ("DATA_TOO_LARGE", "$.segments[0].init_size")


def test_init_file_larger_than_init_size_is_read_only_up_to_it(tmp_path: Path) -> None:
    sparse(tmp_path / "big.bin", 3 * GiB)
    path = manifest(tmp_path, segments=[init_seg(64, 16, "big.bin")])
    with rss_growth_below(64 << 20):
        e = error_of(read_manifest, path)
    assert (e.code, e.path) == ("BAD_SIZE", "$.segments[0].init_size")


def test_sparse_3gib_code_file_is_code_too_large_from_its_size(tmp_path: Path) -> None:
    sparse(tmp_path / "huge.code", 3 * GiB)
    path = manifest(tmp_path, code="huge.code")
    with rss_growth_below(64 << 20):
        e = error_of(read_manifest, path)
        assert (e.code, e.path) == ("CODE_TOO_LARGE", "$.code")
        e = error_of(load_image, path, policy=Policy(max_code_bytes=8))
        assert (e.code, e.path) == ("CODE_TOO_LARGE", "$.code")
        # the code file's cap is the policy's
        e = error_of(load_image, manifest(tmp_path, {"prog.code": RET * 3}), policy=Policy(max_code_bytes=8))
        assert (e.code, e.path) == ("CODE_TOO_LARGE", "$.code")


def test_sparse_top_level_file_is_refused_from_its_size(tmp_path: Path) -> None:
    for name in ("huge.zasm.bin", "huge.json"):
        target = sparse(tmp_path / name, 3 * GiB)
        with rss_growth_below(64 << 20):
            e = error_of(load_image, target)
        assert (e.code, e.path) == ("FILE_TOO_LARGE", str(target))
    small = tmp_path / "prog.code"
    small.write_bytes(RET * 8)
    e = error_of(load_image, small, policy=Policy(max_code_bytes=4, max_data_bytes=0))
    assert e.code == "FILE_TOO_LARGE"
    assert load_image(small).code == RET * 8


def test_zjit_verify_of_a_sparse_file_is_quick_and_clean(tmp_path: Path) -> None:
    target = sparse(tmp_path / "huge.rom", 3 * GiB)
    proc = subprocess.run([sys.executable, "-m", "zjit", "verify", str(target)], capture_output=True,
                          text=True, timeout=60, preexec_fn=_limited_address_space)
    assert proc.returncode == 3
    assert "FILE_TOO_LARGE" in proc.stderr and "Traceback" not in proc.stderr
