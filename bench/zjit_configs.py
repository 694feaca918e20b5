"""zjit configurations the bench measures, built only from the public API.

The compile tiers of issue 9 (``Policy(tier="baseline" | "auto" | "optimized")``)
are measured only when this zjit's Policy accepts ``tier``; until then the bench
reports opt levels O0 and O2. With tiers, "O2" rows ask for ``tier="optimized"``
(so they keep meaning "everything at O2 before the first run") and the tiers add
``tier=baseline`` and ``tier=auto`` rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import zjit

TIERS: tuple[str, ...] = ("baseline", "auto", "optimized")


def has_tiers() -> bool:
    """True when ``zjit.Policy`` has a ``tier`` field."""
    return any(f.name == "tier" for f in dataclasses.fields(zjit.Policy))


@dataclass(frozen=True, slots=True)
class ZjitConfig:
    """One way of compiling: a name for the report plus Policy overrides."""

    name: str
    overrides: tuple[tuple[str, Any], ...]

    def policy(self, **more: Any) -> zjit.Policy:
        """A Policy with these overrides (and ``more``)."""
        return zjit.Policy(**{**dict(self.overrides), **more})


def opt_config(level: int) -> ZjitConfig:
    """``O<level>``; with tiers, pinned to ``tier="optimized"`` (no baseline code)."""
    extra: tuple[tuple[str, Any], ...] = (("tier", "optimized"),) if has_tiers() else ()
    return ZjitConfig(f"O{level}", (("opt_level", level), *extra))


def tier_configs() -> list[ZjitConfig]:
    """``tier=baseline`` and ``tier=auto`` (empty when this zjit has no tiers);
    ``tier=optimized`` is the ``O2`` configuration."""
    if not has_tiers():
        return []
    return [ZjitConfig(f"tier={t}", (("tier", t),)) for t in TIERS if t != "optimized"]


def compile_configs() -> list[ZjitConfig]:
    """What the compile-latency bench loads with: O0, O2 and the other tiers."""
    return [opt_config(0), opt_config(2), *tier_configs()]
