"""Hypothesis strategies for testing code that embeds zjit (docs/testing.md).

Needs hypothesis (``pip install 'zjit[test]'``); nothing else in zjit imports this
module. The programs are the fuzzer's (:mod:`zjit.fuzz.generators`): valid,
always-terminating ZASM programs built from the ISA table, each with the policy,
input and control handler it is meant to run with, shrinking towards simpler
programs.

* :func:`programs`, :func:`trapping_programs`: :class:`~zjit.fuzz.program.GenProgram`
  values (assembly text plus how to run it);
* :func:`modules`: those programs as files of a container format, ``.zasm.bin``,
  ROM or ``module.json`` (with its code and segment files): :class:`ModuleFiles`;
* :func:`mutated`, :func:`mutated_modules`: damaged bytes and damaged module files
  (bit flips, bytes set, truncation, extension, with the fields a reader checks
  first re-fixed by :func:`fix_zasm` / :func:`fix_rom` so the damage reaches deeper);
* :func:`reference_result`: what the reference interpreter makes of a program.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - the test extra is installed in CI
    raise ImportError("zjit.testing needs hypothesis: install zjit's test extra "
                      "(pip install 'zjit[test]')") from exc

from zjit.fuzz.choosers import DrawChooser
from zjit.fuzz.generators import GenConfig
from zjit.fuzz.mutate import Fixer, fix_rom, fix_zasm, mutate
from zjit.fuzz.program import GenProgram
from zjit.fuzz.strategies import programs, trapping_programs
from zjit.image import ModuleImage
from zjit.isa import TrapKind
from zjit.result import Result

__all__ = [
    "FORMATS", "GenProgram", "ModuleFiles", "TrapKind", "fix_rom", "fix_zasm", "module_files", "modules",
    "mutated", "mutated_modules", "programs", "reference_result", "trapping_programs",
]

FORMATS = ("zasm", "rom", "json")
"""Container formats :func:`modules` writes: ``.zasm.bin`` v2, ROM and ``module.json``."""
MAIN_FILES = {"zasm": "prog.zasm.bin", "rom": "prog.rom", "json": "module.json"}
"""The file of each format that is loaded (``module.json`` names the others)."""


@dataclass(frozen=True)
class ModuleFiles:
    """A module as the files of one container format: ``files`` maps file names to
    contents and ``main`` names the one to load; ``program`` is the generated
    program it holds (its policy, input and control handler)."""

    format: str
    files: Mapping[str, bytes]
    main: str
    program: GenProgram

    @property
    def data(self) -> bytes:
        """The bytes of the main file (``engine.load(data)`` takes them for the
        ``.zasm.bin`` and ROM formats; a ``module.json`` needs its files: :meth:`write`)."""
        return self.files[self.main]

    def write(self, directory: str | Path) -> Path:
        """Write every file into ``directory`` (made if missing); the main file's path."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        return folder / self.main


def manifest_files(image: ModuleImage) -> dict[str, bytes]:
    """``module.json`` and the files it names for ``image``: the code as raw words
    (``prog.code``), one init file per segment with initial bytes."""
    files = {"prog.code": image.code}
    segments: list[dict[str, object]] = []
    for i, seg in enumerate(image.segments):
        desc: dict[str, object] = {"name": seg.name, "base": seg.base, "size": seg.size, "permissions": seg.perms}
        if seg.init is None:
            desc["zeroed"] = True
        else:
            files[f"segment{i}.bin"] = seg.init
            desc.update(init_path=f"segment{i}.bin", init_size=len(seg.init))
        segments.append(desc)
    doc: dict[str, object] = {"format": "zjit-module/1", "code": "prog.code", "entry": image.entry_pc,
                              "exports": dict(image.exports), "segments": segments}
    if image.mem_min is not None:
        doc["memory"] = {"min_bytes": image.mem_min, "max_bytes": image.mem_max or 0}
    files["module.json"] = (json.dumps(doc, indent=2) + "\n").encode()
    return files


def module_files(program: GenProgram, fmt: str) -> ModuleFiles:
    """``program`` written in the container format ``fmt`` (one of :data:`FORMATS`).
    A ``.zasm.bin`` and a ROM hold writable data segments only: a program with a
    read-only segment raises ContainerError there (:func:`modules` never makes one)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    image = program.image()
    if fmt == "json":
        files = manifest_files(image)
    else:
        from zjit.container.detect import dump_image

        files = {MAIN_FILES[fmt]: dump_image(image, fmt)}
    return ModuleFiles(fmt, files, MAIN_FILES[fmt], program)


@st.composite
def modules(draw: st.DrawFn, formats: Sequence[str] = FORMATS, cfg: GenConfig | None = None) -> ModuleFiles:
    """Valid modules (:class:`ModuleFiles`) in one of ``formats``, each holding a
    generated program; programs with a read-only segment only as ``module.json``."""
    fmt = draw(st.sampled_from(list(formats)))
    if fmt == "json":
        program = draw(programs(cfg))
    else:
        base = cfg or GenConfig()
        program = draw(programs(replace(base, ro_rate=0.0)).filter(lambda p: not p.ro_segments))
    return module_files(program, fmt)


FIXERS: dict[str, Fixer | None] = {"zasm": fix_zasm, "rom": fix_rom, "json": None}
"""The fixer :func:`mutated_modules` uses for the main file of each format."""


def mutated(seeds: Sequence[bytes], fix: Fixer | None = None, max_extend: int = 40) -> st.SearchStrategy[bytes]:
    """One of ``seeds`` after 1-6 edits: flip a bit, set a byte, write an edge value
    into a u32, truncate, extend, or (when ``fix`` is given) re-fix what a reader
    checks first, such as a length field or a checksum, so the damage reaches deeper
    rules. The edits are those of the container fuzz campaign
    (:func:`zjit.fuzz.mutate.mutate`), drawn here so hypothesis can shrink them."""

    @st.composite
    def strategy(draw: st.DrawFn) -> bytes:
        c = DrawChooser(draw)
        seed: bytes = c.choice(list(seeds))
        return bytes(mutate(seed, c, fix, max_extend))

    return strategy()


@st.composite
def mutated_modules(draw: st.DrawFn, formats: Sequence[str] = FORMATS) -> ModuleFiles:
    """A valid module of :func:`modules` with one of its files damaged by
    :func:`mutated` (the main file with its format's fixer). Loading it must either
    work or raise :class:`zjit.errors.ZjitError`; nothing else."""
    base = draw(modules(formats))
    name = draw(st.sampled_from(sorted(base.files)))
    fix = FIXERS[base.format] if name == base.main else None
    damaged = draw(mutated([base.files[name]], fix))
    return replace(base, files={**base.files, name: damaged})


def reference_result(program: GenProgram) -> Result:
    """The result of running ``program``'s entry once on the reference interpreter,
    with its policy, input and control handler (LOG records are only recorded)."""
    from zjit.runtime import Engine

    module = Engine(program.policy(), backend="interp").load(program.image())
    return module.instantiate(stdin=program.stdin, log=None, ctl=program.ctl_handler()).run()
