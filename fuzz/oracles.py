"""Differential oracle: run one program on several engines and compare everything
the spec says must agree (every Result field and the final guest memory).

Engines are reached only through the public API (``zjit.Engine(policy,
backend=...)``). Engine names are backend names, optionally with an optimisation
level (``jit-O0``); :data:`ENGINE_FACTORIES` can hold extra engines (the
deliberately broken ones of :mod:`zjit.fuzz.fakes` prove the oracle notices).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from zjit.errors import ZjitError
from zjit.image import ModuleImage
from zjit.isa import MASK64, REG_NAMES
from zjit.policy import Policy
from zjit.result import Result, Trap

from .program import GenProgram


class EngineLike(Protocol):
    """What the oracle needs from an engine."""

    def load(self, src: ModuleImage) -> Any: ...


EngineFactory = Callable[[Policy], EngineLike]
ENGINE_FACTORIES: dict[str, EngineFactory] = {}
"""Extra engines by name (tests and self-checks); other names go to ``zjit.Engine``."""


def make_engine(name: str, policy: Policy) -> EngineLike:
    """Engine ``name`` for ``policy``: a registered factory, a configuration of
    :data:`zjit.runtime.ENGINE_VARIANTS` (``jit-O2``, ``jit-baseline``,
    ``arm64-auto1``...), a backend name, or ``backend-O<n>`` for a backend at
    optimisation level n."""
    factory = ENGINE_FACTORIES.get(name)
    if factory is not None:
        return factory(policy)
    from zjit.runtime import ENGINE_VARIANTS, Engine

    for backend_name, variants in ENGINE_VARIANTS.items():
        for ident, overrides in variants:
            if ident == name:
                return Engine(dataclasses.replace(policy, **overrides), backend=backend_name)  # type: ignore[arg-type]
    backend, _, level = name.partition("-O")
    if level:
        policy = dataclasses.replace(policy, opt_level=int(level))
    return Engine(policy, backend=backend)


@dataclass(frozen=True)
class Step:
    """One run of a plan: the entry (``export`` None) or an export with preset registers."""

    export: str | None = None
    registers: tuple[tuple[str, int], ...] = ()

    def describe(self) -> str:
        """``run()`` or ``call('f0', hl=...)``."""
        if self.export is None:
            return "run()"
        args = "".join(f", {k.lower()}={v:#x}" for k, v in self.registers)
        return f"call({self.export!r}{args})"


def plan_for(image: ModuleImage, repeat: int = 2) -> tuple[Step, ...]:
    """The runs compared for a module: the entry ``repeat`` times (memory and the
    heap persist between runs) and then each other export once, with preset registers."""
    steps = [Step() for _ in range(repeat)]
    for name in sorted(image.exports):
        if image.exports[name] != image.entry_pc:
            steps.append(Step(name, (("HL", 0x1008), ("DE", 5), ("BC", MASK64))))
    return tuple(steps)


@dataclass
class EngineRun:
    """What one engine did: a Result per step and the final memory, or the error
    that stopped it (``error`` is ``CODE: message`` or ``ExcType: message``)."""

    engine: str
    results: list[Result] = field(default_factory=list)
    memory: bytes | None = None
    error: str | None = None
    crashed: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """Short outcome text (``ok``, ``trap OOB``, ``error ...``) of the last step."""
        if self.error is not None:
            return f"error {self.error}"
        if not self.results:
            return "no result"
        last = self.results[-1]
        return "ok" if last.trap is None else f"trap {last.trap.kind.name}"


def run_engine(name: str, program: GenProgram, steps: Sequence[Step] | None = None,
               policy: Policy | None = None, image: ModuleImage | None = None) -> EngineRun:
    """Run ``program`` on engine ``name`` following ``steps`` (default :func:`plan_for`)."""
    run = EngineRun(name)
    start = time.perf_counter()
    try:
        image = image if image is not None else program.image()
        engine = make_engine(name, policy if policy is not None else program.policy())
        module = engine.load(image)
        inst = module.instantiate(stdin=program.stdin, log=None, ctl=program.ctl_handler())
        for step in steps if steps is not None else plan_for(image):
            if step.export is None:
                run.results.append(inst.run())
            else:
                run.results.append(inst.call(step.export, **dict(step.registers)))
        run.memory = bytes(inst.memory)
    except ZjitError as exc:
        run.error = f"{exc.code}: {exc}"
    except Exception as exc:  # an engine crash is a finding, not a campaign failure
        run.error = f"{type(exc).__name__}: {exc}"
        run.crashed = True
    run.seconds = time.perf_counter() - start
    return run


@dataclass
class Mismatch:
    """Engines disagreed: the program, every engine's run and readable differences."""

    program: GenProgram
    runs: list[EngineRun]
    steps: tuple[Step, ...]
    differences: list[str]

    def report(self) -> str:
        """Multi-line human-readable description."""
        ref = self.runs[0]
        lines = [f"engines disagree: {' vs '.join(r.engine for r in self.runs)} ({self.program.intent})"]
        lines.append("plan: " + "; ".join(s.describe() for s in self.steps))
        lines.extend("  " + d for d in self.differences)
        for r in self.runs:
            tag = "expected" if r is ref else "actual"
            lines.append(f"{tag} ({r.engine}): {r.summary()}")
        return "\n".join(lines)


def _hex(value: int | None) -> str:
    return "None" if value is None else f"{value:#x}"


def _trap_text(result: Result) -> str:
    t = result.trap
    if t is None:
        return "ok"
    text = f"{t.kind.name} pc={t.pc:#x}"
    if t.address is not None or t.length is not None:
        text += f" address={_hex(t.address)} length={t.length}"
    if t.source:
        text += f" ({t.source})"
    return text


def _bytes_diff(what: str, a: bytes, b: bytes, na: str, nb: str) -> str:
    first = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    lo = max(0, first - 4)
    return (f"{what}: {len(a)} vs {len(b)} bytes, first difference at {first}: "
            f"{na}={a[lo:first + 12]!r} {nb}={b[lo:first + 12]!r}")


def diff_results(a: Result, b: Result, na: str, nb: str) -> list[str]:
    """Readable differences between two Results (empty when equal)."""
    out: list[str] = []
    ta, tb = _without_backtrace(a.trap), _without_backtrace(b.trap)
    if ta != tb:
        out.append(f"trap: {na}={_trap_text(a)} {nb}={_trap_text(b)}")
    elif a.trap is not None and b.trap is not None:
        out += diff_backtraces(a.trap, b.trap, na, nb)
    for reg in REG_NAMES:
        va, vb = a.registers.get(reg), b.registers.get(reg)
        if va != vb:
            out.append(f"register {reg}: {na}={_hex(va)} {nb}={_hex(vb)}")
    if a.fuel_left != b.fuel_left:
        out.append(f"fuel_left: {na}={a.fuel_left} {nb}={b.fuel_left}")
    if a.stdout != b.stdout:
        out.append(_bytes_diff("stdout", a.stdout, b.stdout, na, nb))
    if a.log != b.log:
        k = next((i for i, (x, y) in enumerate(zip(a.log, b.log, strict=False)) if x != y),
                 min(len(a.log), len(b.log)))
        ra = a.log[k] if k < len(a.log) else None
        rb = b.log[k] if k < len(b.log) else None
        out.append(f"log: {len(a.log)} vs {len(b.log)} records, record {k}: {na}={ra!r} {nb}={rb!r}")
    if not out and a != b:
        out.append(f"results differ: {na}={a!r} {nb}={b!r}")
    return out


def _without_backtrace(trap: Trap | None) -> Trap | None:
    """``trap`` without its backtrace (compared on its own, :func:`diff_backtraces`)."""
    return None if trap is None else dataclasses.replace(trap, backtrace=None, omitted=0)


def diff_backtraces(a: Trap, b: Trap, na: str, nb: str) -> list[str]:
    """The backtrace difference of two traps that are otherwise equal (a
    backtrace that was not recorded, None, differs from every recorded one)."""
    if a.backtrace == b.backtrace and a.omitted == b.omitted:
        return []

    def text(t: Trap) -> str:
        if t.backtrace is None:
            return "not recorded"
        return f"{[hex(f.pc) for f in t.backtrace]} (+{t.omitted} omitted)"

    return [f"backtrace: {na}={text(a)} {nb}={text(b)}"]


def diff_memory(a: bytes, b: bytes, na: str, nb: str, limit: int = 6) -> list[str]:
    """Differing byte ranges of two memory images (at most ``limit`` shown)."""
    if a == b:
        return []
    if len(a) != len(b):
        return [f"memory size: {na}={len(a)} {nb}={len(b)}"]
    ranges: list[tuple[int, int]] = []
    i, n = 0, len(a)
    while i < n:
        if a[i] != b[i]:
            j = i
            while j < n and (a[j] != b[j] or (j + 1 < n and a[j + 1] != b[j + 1])):
                j += 1
            ranges.append((i, j))
            i = j
        else:
            i += 1
    out = [f"memory: {len(ranges)} differing range(s), {sum(1 for x, y in zip(a, b, strict=True) if x != y)} bytes"]
    for lo, hi in ranges[:limit]:
        shown = min(hi, lo + 32)
        more = "..." if hi > shown else ""
        out.append(f"  [{lo:#x}, {hi:#x}): {na}={a[lo:shown].hex()}{more} {nb}={b[lo:shown].hex()}{more}")
    return out


def compare_runs(runs: Sequence[EngineRun], steps: Sequence[Step]) -> list[str]:
    """Differences between the first run (the reference) and each other run."""
    out: list[str] = []
    ref = runs[0]
    for other in runs[1:]:
        na, nb = ref.engine, other.engine
        if ref.error is not None or other.error is not None:
            if ref.error != other.error or other.crashed or ref.crashed:
                out.append(f"error: {na}={ref.error} {nb}={other.error}")
            continue
        for k, (ra, rb) in enumerate(zip(ref.results, other.results, strict=False)):
            for d in diff_results(ra, rb, na, nb):
                out.append(f"step {k} {steps[k].describe()}: {d}")
        if len(ref.results) != len(other.results):
            out.append(f"steps: {na} ran {len(ref.results)}, {nb} ran {len(other.results)}")
        if ref.memory is not None and other.memory is not None:
            out.extend(diff_memory(ref.memory, other.memory, na, nb))
    return out


def as_program(program: GenProgram | str | ModuleImage) -> tuple[GenProgram, ModuleImage | None]:
    """Accept a GenProgram, assembly text or a ModuleImage."""
    if isinstance(program, GenProgram):
        return program, None
    if isinstance(program, str):
        return GenProgram(asm=program, intent="given"), None
    return GenProgram(asm=f"; image {program.name}\n", intent="image"), program


def compare_engines(
    program: GenProgram | str | ModuleImage,
    engines: Sequence[str] = ("interp", "jit"),
    policy: Policy | None = None,
    stdin: bytes | None = None,
    steps: Sequence[Step] | None = None,
) -> Mismatch | None:
    """Run ``program`` on every engine (the first is the reference) and return the
    differences, or None when all agree on every Result and the final memory.

    ``policy``/``stdin`` override the program's own; ``steps`` the run plan.
    """
    prog, image = as_program(program)
    if stdin is not None:
        prog = dataclasses.replace(prog, stdin=stdin)
    mismatch, _ = compare_detailed(prog, engines, policy=policy, image=image, steps=steps)
    return mismatch


def compare_detailed(
    program: GenProgram,
    engines: Sequence[str],
    policy: Policy | None = None,
    image: ModuleImage | None = None,
    steps: Sequence[Step] | None = None,
) -> tuple[Mismatch | None, list[EngineRun]]:
    """Like :func:`compare_engines` but also returns every engine's run."""
    if len(engines) < 1:
        raise ValueError("need at least one engine")
    if image is None:
        image = program.image()
    plan = tuple(steps) if steps is not None else plan_for(image)
    runs = [run_engine(name, program, plan, policy, image) for name in engines]
    diffs = compare_runs(runs, plan)
    if not diffs:
        return None, runs
    return Mismatch(program, runs, plan, diffs), runs
