"""Reproducer files: a failing program as readable assembly.

A reproducer is a ``.s`` file that assembles as it is. Its header comments hold
what the text cannot express, as ``;! key: value`` lines (policy, input, control
handler, read-only segments), followed by the differences and every engine's
results. A ``.json`` twin holds the same facts for tools. :func:`load_reproducer`
turns the ``.s`` back into a :class:`~zjit.fuzz.program.GenProgram`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zjit.image import SegmentDesc
from zjit.isa import REG_NAMES
from zjit.result import Result

from .oracles import EngineRun, Step
from .program import CTL_MODES, GenProgram


def _result_line(r: Result) -> str:
    regs = " ".join(f"{n}={r.registers[n]:#x}" for n in REG_NAMES)
    trap = "ok" if r.trap is None else str(r.trap)
    return f"{trap} | {regs} | fuel_left={r.fuel_left} | stdout={r.stdout!r} | log={list(r.log)!r}"


def render_header(program: GenProgram) -> list[str]:
    """The ``;!`` lines describing how to run ``program``."""
    lines = [
        f";! fuel: {'none' if program.fuel is None else program.fuel}",
        f";! max_call_depth: {program.max_call_depth}",
        f";! mem_size: {program.mem_size:#x}",
        f";! ctl: {program.ctl}",
        f";! stdin: {program.stdin.hex() or '-'}",
        f";! intent: {program.intent}",
    ]
    if program.max_output_bytes is not None:
        lines.insert(3, f";! max_output_bytes: {program.max_output_bytes}")
    for seg in program.ro_segments:
        init = seg.init.hex() if seg.init else "-"
        lines.append(f";! segment: {seg.name} {seg.base:#x} {seg.size} {seg.perms} {init}")
    return lines


def strip_header(asm: str) -> str:
    """``asm`` without a previous reproducer header (so re-saving does not nest headers)."""
    marker = "; ---- program ----\n"
    return asm.split(marker, 1)[1] if marker in asm else asm


def render(program: GenProgram, title: str, runs: Sequence[EngineRun], steps: Sequence[Step],
           differences: Sequence[str], context: Sequence[str] = ()) -> str:
    """The reproducer text."""
    out = [f"; zjit fuzz reproducer: {title}"]
    out.extend(f"; {line}" for line in context)
    out.extend(render_header(program))
    out.append(";")
    out.append("; plan: " + "; ".join(s.describe() for s in steps))
    if differences:
        out.append("; differences (first engine is the reference):")
        out.extend(f";   {d}" for d in differences)
    for r in runs:
        out.append(f"; {r.engine}:")
        if r.error is not None:
            out.append(f";   error: {r.error}")
        for k, res in enumerate(r.results):
            out.append(f";   step {k}: {_result_line(res)}")
        if r.memory is not None:
            out.append(f";   memory sha256: {hashlib.sha256(r.memory).hexdigest()[:16]}")
    out.append("; ---- program ----")
    return "\n".join(out) + "\n" + strip_header(program.asm)


def to_json(program: GenProgram, title: str, runs: Sequence[EngineRun], steps: Sequence[Step],
            differences: Sequence[str], context: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON twin of :func:`render`."""
    return {
        "title": title,
        "context": list(context),
        "policy": {"fuel": program.fuel, "max_call_depth": program.max_call_depth,
                   "mem_size": program.mem_size, "max_output_bytes": program.max_output_bytes},
        "ctl": program.ctl,
        "stdin": program.stdin.hex(),
        "intent": program.intent,
        "segments": [{"name": s.name, "base": s.base, "size": s.size, "perms": s.perms,
                      "init": (s.init or b"").hex()} for s in program.ro_segments],
        "plan": [s.describe() for s in steps],
        "differences": list(differences),
        "runs": [{
            "engine": r.engine,
            "error": r.error,
            "results": [res.to_dict() for res in r.results],
            "memory_sha256": None if r.memory is None else hashlib.sha256(r.memory).hexdigest(),
        } for r in runs],
        "asm": strip_header(program.asm),
    }


def save(out_dir: Path, stem: str, program: GenProgram, title: str, runs: Sequence[EngineRun],
         steps: Sequence[Step], differences: Sequence[str], context: Sequence[str] = ()) -> Path:
    """Write ``<stem>.s`` and ``<stem>.json`` under ``out_dir``; returns the ``.s`` path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.s"
    path.write_text(render(program, title, runs, steps, differences, context))
    data = to_json(program, title, runs, steps, differences, context)
    (out_dir / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    return path


class ReproducerError(ValueError):
    """A reproducer header line does not parse."""


def parse(text: str, name: str = "reproducer") -> GenProgram:
    """A GenProgram from reproducer text (plain assembly gets default settings)."""
    meta: dict[str, str] = {}
    segments: list[SegmentDesc] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.startswith(";!"):
            continue
        key, sep, value = raw[2:].partition(":")
        if not sep:
            raise ReproducerError(f"{name}:{number}: expected ';! key: value'")
        key, value = key.strip(), value.strip()
        try:
            if key == "segment":
                seg_name, base, size, perms, init = value.split()
                segments.append(SegmentDesc(seg_name, int(base, 0), int(size, 0), perms,
                                            None if init == "-" else bytes.fromhex(init)))
            else:
                meta[key] = value
        except ValueError as exc:
            raise ReproducerError(f"{name}:{number}: bad {key!r} line: {exc}") from exc
    try:
        fuel_text = meta.get("fuel", "none")
        ctl = meta.get("ctl", "none")
        if ctl not in CTL_MODES:
            raise ValueError(f"ctl must be one of {', '.join(CTL_MODES)}")
        stdin_text = meta.get("stdin", "-")
        limit_text = meta.get("max_output_bytes")
        return GenProgram(
            asm=text,
            fuel=None if fuel_text == "none" else int(fuel_text, 0),
            max_call_depth=int(meta.get("max_call_depth", "1024"), 0),
            mem_size=int(meta.get("mem_size", "0x10000"), 0),
            stdin=b"" if stdin_text == "-" else bytes.fromhex(stdin_text),
            ctl=ctl,
            ro_segments=tuple(segments),
            intent=meta.get("intent", "reproducer"),
            name=Path(name).stem,
            max_output_bytes=None if limit_text is None else int(limit_text, 0),
        )
    except ValueError as exc:
        raise ReproducerError(f"{name}: bad header: {exc}") from exc


def load_reproducer(path: str | Path) -> GenProgram:
    """Read a reproducer (or any assembly file) as a GenProgram."""
    p = Path(path)
    return parse(p.read_text(), str(p))
