"""Execution policy: limits and options an embedder sets per Engine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ._shims.paths import path_str
from .errors import PolicyError
from .isa import DEFAULT_MAX_CALL_DEPTH, PRIM_MASK_ALL

TYPE_CHECKING = False  # pathlib and typing stay unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from pathlib import Path

GiB = 1 << 30
TIERS = ("auto", "baseline", "optimized")
"""``Policy.tier`` values (docs/tiering.md)."""
MAX_TIER_THRESHOLD = (1 << 31) - 1
DEFAULT_MEM_SIZE = 2 << 20
"""Guest memory size when neither the policy nor the module says (2 MiB)."""


def default_cache_dir() -> Path:
    """Per-user cache directory (``$XDG_CACHE_HOME/zjit`` or ``~/.cache/zjit``)."""
    from pathlib import Path

    return Path(default_cache_path())


def default_cache_path() -> str:
    """:func:`default_cache_dir` as a string, without importing :mod:`pathlib`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return path_str(os.path.join(base, "zjit"))


@dataclass(frozen=True)
class Policy:
    """Limits and options (``interfaces.md``).

    ``fuel`` None disables metering. ``mem_size`` None means "the module's declared
    minimum, else 2 MiB". ``timeout`` is wall-clock seconds per run (None = none).
    ``cache_dir`` None means :func:`default_cache_dir`; ``use_cache=False`` disables
    the on-disk cache; ``cache_max_bytes`` bounds it (least recently used entries are
    removed past it). ``allowed_prims`` is a mask of primitives modules may use.
    ``tier`` chooses how compiling engines make code (docs/tiering.md):
    ``"auto"`` starts with baseline code (copy-and-patch, no LLVM at load) and
    compiles functions and loops at O2 in the background once they have run
    ``tier_threshold`` times (calls or loop iterations, ``1 ..= 2**31 - 1``);
    ``"baseline"`` stays with baseline code; ``"optimized"`` compiles the whole
    module at ``opt_level`` before the first run (a function over the O2 budget
    stays baseline). The interpreter ignores both.
    """

    fuel: int | None = None
    mem_size: int | None = None
    max_mem_size: int = GiB
    max_call_depth: int = DEFAULT_MAX_CALL_DEPTH
    opt_level: int = 2
    timeout: float | None = None
    cache_dir: Path | str | None = None
    use_cache: bool = True
    cache_max_bytes: int = 512 << 20
    max_code_bytes: int = 16 << 20
    max_data_bytes: int = 256 << 20
    allowed_prims: int = PRIM_MASK_ALL
    tier: str = "auto"
    tier_threshold: int = 1000
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.fuel is not None and self.fuel < 0:
            raise PolicyError("BAD_POLICY", "fuel must be >= 0 or None", path="Policy.fuel")
        if self.max_call_depth < 0:
            raise PolicyError("BAD_POLICY", "max_call_depth must be >= 0", path="Policy.max_call_depth")
        if self.opt_level not in (0, 1, 2):
            raise PolicyError("BAD_POLICY", "opt_level must be 0, 1 or 2", path="Policy.opt_level")
        if self.timeout is not None and self.timeout <= 0:
            raise PolicyError("BAD_POLICY", "timeout must be > 0 or None", path="Policy.timeout")
        if self.mem_size is not None and self.mem_size <= 0:
            raise PolicyError("BAD_POLICY", "mem_size must be > 0 or None", path="Policy.mem_size")
        if self.tier not in TIERS:
            raise PolicyError("BAD_POLICY", f"tier must be one of {', '.join(TIERS)}, not {self.tier!r}",
                              path="Policy.tier")
        t = self.tier_threshold
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_TIER_THRESHOLD:
            raise PolicyError("BAD_POLICY", f"tier_threshold must be an int in 1 ..= {MAX_TIER_THRESHOLD}",
                              path="Policy.tier_threshold")

    @property
    def resolved_cache_dir(self) -> Path:
        """The cache directory actually used."""
        from pathlib import Path

        return Path(self.resolved_cache_path)

    @property
    def resolved_cache_path(self) -> str:
        """:attr:`resolved_cache_dir` as a string, without importing :mod:`pathlib`."""
        return path_str(self.cache_dir) if self.cache_dir is not None else default_cache_path()
