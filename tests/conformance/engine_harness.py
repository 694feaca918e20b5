"""Helpers of the conformance suite: run assembly text on one engine configuration.

Tests never name an engine: they receive an :class:`EngineCfg` from the
``engine_cfg`` fixture (``conftest.py``) and call :func:`run_asm` or
:func:`load_asm`. Engines are cached per (backend, policy) so a program compiled
once is reused by every test that runs it.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

import zjit
from zjit.asm import assemble
from zjit.image import ModuleImage, SegmentDesc
from zjit.result import Result


@dataclass(frozen=True)
class EngineCfg:
    """One engine configuration: test id, backend name, policy overrides."""

    id: str
    backend: str
    overrides: tuple[tuple[str, object], ...]

    def policy(self, **extra: Any) -> zjit.Policy:
        """The policy for a run: the configuration's overrides plus ``extra``."""
        fields: dict[str, Any] = dict(self.overrides)
        fields.setdefault("use_cache", False)
        fields.update(extra)
        return zjit.Policy(**fields)


CONFIGS: list[EngineCfg] = [EngineCfg(ident, backend, tuple(sorted(over.items())))
                            for ident, backend, over in zjit.engine_configs()]
"""Every configuration of every available backend."""

_ENGINES: dict[tuple[str, zjit.Policy], zjit.Engine] = {}
_LOCK = threading.Lock()


def engine_for(cfg: EngineCfg, **policy: Any) -> zjit.Engine:
    """A (cached) engine for ``cfg`` with extra policy fields."""
    pol = cfg.policy(**policy)
    key = (cfg.backend, pol)
    with _LOCK:
        eng = _ENGINES.get(key)
        if eng is None:
            eng = _ENGINES[key] = zjit.Engine(pol, backend=cfg.backend)
    return eng


def image_of(program: str | ModuleImage, segments: tuple[SegmentDesc, ...] = ()) -> ModuleImage:
    """Assemble ``program`` (unless already an image) and append ``segments``."""
    image = program if isinstance(program, ModuleImage) else assemble(program, "test.s")
    if segments:
        image = dataclasses.replace(image, segments=image.segments + segments)
    return image


def load_asm(cfg: EngineCfg, program: str | ModuleImage, *,
             segments: tuple[SegmentDesc, ...] = (), **policy: Any) -> zjit.Module:
    """Load ``program`` on ``cfg`` with extra policy fields."""
    return engine_for(cfg, **policy).load(image_of(program, segments))


def run_asm(
    cfg: EngineCfg,
    program: str | ModuleImage,
    *,
    fuel: int | None = None,
    stdin: Any = b"",
    registers: dict[str, int] | None = None,
    call: str | None = None,
    stdout: Any = None,
    log: Any = None,
    ctl: Any = None,
    segments: tuple[SegmentDesc, ...] = (),
    **policy: Any,
) -> tuple[Result, bytes]:
    """Run ``program`` once; return the Result and the final guest memory.

    ``registers`` preset registers (needs ``call``, defaulting to ``"main"``
    when registers are given); ``log`` defaults to record-only.
    """
    module = load_asm(cfg, program, segments=segments, **policy)
    inst = module.instantiate(stdin=stdin, stdout=stdout, log=log, ctl=ctl)
    if registers or call:
        regs: dict[str, Any] = dict(registers or {})
        result = inst.call(call or "main", fuel=fuel, **regs)
    else:
        result = inst.run(fuel=fuel)
    return result, bytes(inst.memory)


def export_main(body: str) -> str:
    """Wrap instruction lines as an exported ``main`` function."""
    return "PUBLIC main\nmain:\n" + body.strip("\n") + "\n"
