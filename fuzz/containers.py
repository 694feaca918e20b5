"""Container fuzzing: mutated ``.zasm.bin``, ROM and ``module.json`` inputs go
through the loaders, the verifier and memory provisioning; only
:class:`~zjit.errors.ZjitError` may come out, no input may take 2 s, memory stays
bounded (issue 11, finding 7; docs/fuzzing.md, *Container fuzzing*).

Input ``i`` of format ``f`` in a campaign with seed ``S`` is made by
:func:`make_input` from ``RandomChooser(f"{S}:{f}:{i}")``, so any input can be
regenerated from those three values; the hypothesis tests drive the same
functions with a ``DrawChooser``.

    python -m zjit.fuzz.containers [--inputs N] [--formats zasm,rom,json] [--seed S] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zjit.verifier import verify

from zjit.container.detect import load_image
from zjit.container.manifest import MEMORY_KEYS, TOP_KEYS, read_manifest_bytes
from zjit.container.rom import write_rom
from zjit.container.zasm_bin import write_zasm_bin
from zjit.encoding import ld_words, pack, words_to_bytes
from zjit.errors import ZjitError
from zjit.image import DebugLine, ModuleImage, SegmentDesc
from zjit.isa import BY_MNEMONIC
from zjit.memory import DESCRIPTOR_KEYS, build_memory
from zjit.policy import Policy

from .choosers import Chooser, RandomChooser
from .generators import random_program
from .mutate import fix_rom, fix_zasm, mutate

FORMATS = ("zasm", "rom", "json")
GUARD_SECONDS = 2.0
"""No input may take longer (wall clock); one that does counts as a hang."""
POLICY = Policy(max_mem_size=1 << 22, use_cache=False)
"""Limits the inputs are loaded, verified and provisioned under (guest memory up to
4 MiB keeps provisioning cheap; the code and data caps are the defaults)."""
SCRATCH = "m.bin"
"""File a ``module.json`` input may name with mutated contents."""
_RET = pack(BY_MNEMONIC["RET"].opcode)


# --------------------------------------------------------------------------- seeds


def seed_images(count: int = 6) -> list[ModuleImage]:
    """Valid modules to damage: generated programs (exports, data segments) and a
    hand-made one with imports, memory requirements, DATA and debug lines."""
    images = [random_program(f"containers:{k}").image() for k in range(count)]
    code = words_to_bytes([*ld_words(0, 0x1234_5678), *ld_words(1, -5), pack(BY_MNEMONIC["OUT"].opcode), _RET])
    images.append(ModuleImage(
        code=code, entry_pc=0, exports={"main": 0, "tail": 16}, imports=0b10, mem_min=65536, mem_max=1 << 20,
        segments=(SegmentDesc("data.0", 0x1000, 16, "rw", b"hello, fuzzing!!"),
                  SegmentDesc("data.1", 0x2000, 8, "rw", bytes(8))),
        debug={0: DebugLine("fuzz.s", 1), 12: DebugLine("fuzz.s", 2)}, name="hand"))
    return images


def binary_seeds(images: Sequence[ModuleImage]) -> dict[str, list[bytes]]:
    """``.zasm.bin`` and ROM files of ``images`` (images a ROM cannot hold are skipped)."""
    out: dict[str, list[bytes]] = {"zasm": [], "rom": []}
    for image in images:
        # a .zasm.bin holds writable data segments only
        out["zasm"].append(write_zasm_bin(replace(image, segments=tuple(s for s in image.segments if s.writable))))
        with suppress(ZjitError):  # a ROM has no section for some segments
            out["rom"].append(write_rom(image))
    return out


# --------------------------------------------------------------------------- module.json


@dataclass
class Fixtures:
    """A directory of files manifests may name: valid code and init files, a sidecar,
    and hostile entries (a FIFO, a directory, a symlink loop, links out of the
    directory and to /dev/zero, a sparse 3 GiB file, an empty file)."""

    root: Path
    manifests: list[dict[str, Any]]
    files: dict[str, bytes]

    @property
    def names(self) -> list[str]:
        """Every name a manifest may use."""
        return [*self.files, "pipe", "dir", "loop", "escape", "zero", "huge.bin", SCRATCH]


def make_fixtures(root: Path, images: Sequence[ModuleImage]) -> Fixtures:
    """Write the fixture files into ``root`` (an empty directory)."""
    code = images[0].code
    data = next((s.init for img in images for s in img.segments if s.init), b"\x01" * 16)
    segments = [
        {"name": "ro", "base": 0x8000, "size": 64, "permissions": "r", "init_path": "a.bin", "init_size": 16},
        {"name": "rw", "base": 0x9000, "size": 4096, "permissions": "rw", "init_path": "b.bin",
         "init_size": len(data)},
        {"name": "bss", "base": 0xA000, "size": 256, "permissions": "rw", "zeroed": True},
        {"name": "big", "base": 0xB000, "bss_size": 512, "permissions": "rwx"},
    ]
    files = {
        "prog.code": code,
        "prog.zasm.bin": write_zasm_bin(images[-1]),
        "a.bin": bytes(range(16)),
        "b.bin": data,
        "seg.json": json.dumps(segments).encode(),
        "empty.bin": b"",
    }
    for name, content in files.items():
        (root / name).write_bytes(content)
    os.mkfifo(root / "pipe")
    (root / "dir").mkdir()
    os.symlink("loop", root / "loop")
    os.symlink("../outside.bin", root / "escape")
    os.symlink("/dev/zero", root / "zero")
    with open(root / "huge.bin", "wb") as fh:
        fh.truncate(3 << 30)
    manifests: list[dict[str, Any]] = [
        {"format": "zjit-module/1", "code": "prog.code", "entry": 0, "exports": {"main": 0},
         "memory": {"min_bytes": 65536, "max_bytes": 0}, "segments": segments},
        {"format": "zjit-module/1", "code": "prog.zasm.bin", "entry": "main", "segments": "seg.json"},
        {"format": "zjit-module/1", "code": "prog.code"},
    ]
    return Fixtures(root, manifests, files)


def _interesting(c: Chooser, fx: Fixtures) -> Any:
    ints = (0, 1, -1, 4, 16, 4095, 4096, 65535, 65536, 2**31, 2**32 - 1, 2**32, 2**40, 2**63, 2**64 - 1, 2**64,
            10**30, -(2**63))
    strings = ("", ".", "..", "../x", "/etc/hostname", "a\0b", "\udc80", "\ud800x", "\u00e9", "x" * 300,
               "r", "rw", "rwx", "w", "rr", "main", "zjit-module/1", *fx.names)
    kind = c.randint(0, 9)
    if kind <= 3:
        return c.choice(ints) + c.choice((0, 0, 1, -1))
    if kind <= 6:
        return c.choice(strings)
    if kind == 7:
        return c.choice((True, False, None, 1.0, 0.5, 1e308))
    if kind == 8:
        return c.choice(([], {}, [{}], [1], {"": 0}, [[[]]]))
    return c.choice(fx.manifests[0]["segments"])


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every node of a JSON tree with its path of keys and indices, root first."""
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _nodes(child, (*path, key))


def _edit_tree(tree: Any, c: Chooser, fx: Fixtures) -> Any:
    """``tree`` with one node (chosen uniformly, so deep fields are reached as often
    as top-level ones) replaced, removed, duplicated or given a new key."""
    nodes = list(_nodes(tree))
    path, node = c.choice(nodes)
    if not path:
        return _interesting(c, fx)
    op = c.randint(0, 5)
    if op == 0 and isinstance(node, dict):
        new: Any = dict(node)
        new[c.choice((*TOP_KEYS, *DESCRIPTOR_KEYS, *MEMORY_KEYS, "junk"))] = _interesting(c, fx)
    elif op == 1 and isinstance(node, list) and node:
        new = [*node, c.choice(node)]
    else:
        new = _interesting(c, fx)
    out = json.loads(json.dumps(tree))  # a deep copy
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if op == 2:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return out


@dataclass
class JsonInput:
    """A manifest's text and, when the input damages a file, the contents of
    :data:`SCRATCH` (which the manifest then names)."""

    text: bytes
    scratch: bytes | None = None


def json_input(c: Chooser, fx: Fixtures, zasm_seeds: Sequence[bytes]) -> JsonInput:
    """A damaged module.json: its text mutated, its JSON tree edited, or one of the
    files it names damaged (code, .zasm.bin code, sidecar or init file)."""
    manifest = c.choice(fx.manifests)
    mode = c.randint(0, 9)
    if mode <= 1:
        return JsonInput(mutate(json.dumps(manifest).encode(), c))
    if mode <= 6:
        tree: Any = manifest
        for _ in range(c.randint(1, 4)):
            tree = _edit_tree(tree, c, fx)
        return JsonInput(json.dumps(tree).encode())
    target = c.randint(0, 3)
    obj = dict(manifest)
    if target == 0:
        obj["code"] = SCRATCH
        return JsonInput(json.dumps(obj).encode(), mutate(c.choice(zasm_seeds), c, fix_zasm))
    if target == 1:
        obj["code"] = SCRATCH
        return JsonInput(json.dumps(obj).encode(), mutate(fx.files["prog.code"], c))
    if target == 2:
        obj["segments"] = SCRATCH
        return JsonInput(json.dumps(obj).encode(), mutate(fx.files["seg.json"], c))
    segments = [dict(s) for s in fx.manifests[0]["segments"]]
    segments[0]["init_path"] = SCRATCH
    obj["segments"] = segments
    return JsonInput(json.dumps(obj).encode(), mutate(fx.files["a.bin"], c, max_extend=8))


# --------------------------------------------------------------------------- running one input


def exercise(load: Callable[[], ModuleImage]) -> str:
    """Load, verify and provision one input; the error code or ``"ok"``. Exceptions
    other than ZjitError propagate: they are what the campaign looks for."""
    try:
        image = load()
        verify(image, POLICY)
        build_memory(image, POLICY)
    except ZjitError as exc:
        return exc.code
    return "ok"


class Hang(BaseException):
    """Raised into an input that runs past :data:`GUARD_SECONDS` (a BaseException,
    so code under test that catches Exception cannot swallow it)."""


@contextmanager
def guard(seconds: float = GUARD_SECONDS) -> Iterator[None]:
    """Raise :class:`Hang` inside the body after ``seconds`` of wall-clock time
    (main thread only: it uses SIGALRM)."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"input still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Campaign:
    """Seeds, fixtures and input generation for one campaign seed."""

    def __init__(self, seed: int, fixtures_dir: Path) -> None:
        self.seed = seed
        images = seed_images()
        self.seeds = binary_seeds(images)
        self.fixtures = make_fixtures(fixtures_dir, images)

    def make_input(self, fmt: str, c: Chooser) -> bytes | JsonInput:
        """One damaged input of format ``fmt``."""
        if fmt in ("zasm", "rom"):
            fix = fix_zasm if fmt == "zasm" else fix_rom
            data = mutate(c.choice(self.seeds[fmt]), c, fix, 40)
            if c.randint(0, 3):  # mostly past the length and checksum checks, to reach deeper rules
                fixed = bytearray(data)
                fix(fixed)
                data = bytes(fixed)
            return data
        return json_input(c, self.fixtures, self.seeds["zasm"])

    def input_for(self, fmt: str, index: int) -> bytes | JsonInput:
        """Input ``index`` of format ``fmt`` of this campaign."""
        return self.make_input(fmt, RandomChooser(f"{self.seed}:{fmt}:{index}"))

    def run(self, item: bytes | JsonInput) -> str:
        """Run one input (see :func:`exercise`)."""
        if isinstance(item, bytes):
            return exercise(lambda: load_image(item, policy=POLICY))
        if item.scratch is not None:
            (self.fixtures.root / SCRATCH).write_bytes(item.scratch)
        root = self.fixtures.root
        return exercise(lambda: read_manifest_bytes(item.text, root, policy=POLICY))


# --------------------------------------------------------------------------- the campaign loop


@dataclass
class FormatStats:
    """Counters of one format: inputs run, outcomes by error code (``ok`` when the
    input loaded, verified and got its memory), escapes (exceptions other than
    ZjitError), hangs and the slowest input (with the best of three more runs of
    it, which tells a slow input from a scheduling hiccup)."""

    fmt: str
    inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    escapes: list[str] = field(default_factory=list)
    hangs: int = 0
    slowest: float = 0.0
    slowest_index: int = -1
    slowest_again: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        """A summary line."""
        rate = self.inputs / self.seconds if self.seconds else 0.0
        return (f"{self.fmt:4}  inputs {self.inputs:,} ({rate:,.0f}/s)  accepted {self.outcomes['ok']:,}  "
                f"escapes {len(self.escapes)}  hangs {self.hangs}  slowest {self.slowest * 1e3:.1f} ms "
                f"(#{self.slowest_index}, {self.slowest_again * 1e3:.2f} ms when run again)")


def _save(out_dir: Path, stem: str, item: bytes | JsonInput, report: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(item, bytes):
        (out_dir / f"{stem}.bin").write_bytes(item)
    else:
        (out_dir / f"{stem}.json").write_bytes(item.text)
        if item.scratch is not None:
            (out_dir / f"{stem}.{SCRATCH}").write_bytes(item.scratch)
    (out_dir / f"{stem}.txt").write_text(report)


def run_format(campaign: Campaign, fmt: str, inputs: int, out_dir: Path | None,
               progress: Callable[[FormatStats], None] | None = None) -> FormatStats:
    """Run ``inputs`` inputs of ``fmt``; escapes and hangs are saved under ``out_dir``."""
    stats = FormatStats(fmt)
    started = time.perf_counter()
    last_report = started
    for index in range(inputs):
        item = campaign.input_for(fmt, index)
        t0 = time.perf_counter()
        try:
            with guard():
                outcome = campaign.run(item)
        except Hang:
            stats.hangs += 1
            outcome = "HANG"
            if out_dir is not None:
                _save(out_dir, f"{fmt}-{campaign.seed}-{index}", item, "hang\n")
        except Exception as exc:  # the point of the campaign: anything but ZjitError escapes
            outcome = "ESCAPE"
            where = traceback.format_exc()
            stats.escapes.append(f"#{index}: {type(exc).__name__}: {exc}")
            if out_dir is not None:
                _save(out_dir, f"{fmt}-{campaign.seed}-{index}", item, where)
        dt = time.perf_counter() - t0
        if dt > stats.slowest:
            stats.slowest, stats.slowest_index = dt, index
        stats.outcomes[outcome] += 1
        stats.inputs += 1
        now = time.perf_counter()
        if progress is not None and now - last_report >= 10.0:
            stats.seconds = now - started
            progress(stats)
            last_report = now
    stats.seconds = time.perf_counter() - started
    if stats.slowest_index >= 0 and not stats.hangs:
        item = campaign.input_for(fmt, stats.slowest_index)
        again = []
        for _ in range(3):
            t0 = time.perf_counter()
            with suppress(Exception), guard():
                campaign.run(item)
            again.append(time.perf_counter() - t0)
        stats.slowest_again = min(again)
    return stats


def max_rss_bytes() -> int:
    """Peak resident set of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run a campaign, print one line per format; exit 1 on any escape,
    hang or input slower than :data:`GUARD_SECONDS`."""
    ap = argparse.ArgumentParser(prog="python -m zjit.fuzz.containers",
                                 description="mutation fuzzing of .zasm.bin, ROM and module.json inputs")
    ap.add_argument("--inputs", type=int, default=10_000, help="inputs per format (default 10,000)")
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of zasm,rom,json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="fuzz-failures", help="directory for escaping inputs (default ./fuzz-failures)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    if any(f not in FORMATS for f in formats):
        ap.error(f"formats must be among {', '.join(FORMATS)}")

    def progress(stats: FormatStats) -> None:
        if not args.quiet:
            print(f"  ... {stats.seconds:6.0f}s  {stats.line()}", file=sys.stderr, flush=True)

    failed = False
    with tempfile.TemporaryDirectory(prefix="zjit-containers-") as tmp:
        campaign = Campaign(args.seed, Path(tmp))
        print(f"container fuzzing: seed {args.seed}, {args.inputs:,} inputs per format, "
              f"guard {GUARD_SECONDS} s per input")
        for fmt in formats:
            stats = run_format(campaign, fmt, args.inputs, Path(args.out), progress)
            print(stats.line(), flush=True)
            top = ", ".join(f"{code} {n:,}" for code, n in stats.outcomes.most_common(8))
            print(f"      outcomes: {top}")
            for line in stats.escapes[:20]:
                print(f"      escape {line}")
            failed |= bool(stats.escapes or stats.hangs or stats.slowest > GUARD_SECONDS)
    print(f"peak RSS (ru_maxrss): {max_rss_bytes() / 2**20:.0f} MiB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
