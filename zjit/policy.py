"""Execution policy: limits and options an embedder sets per Engine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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

# The ranges every engine honours exactly (interfaces.md): a value outside its range is
# refused with BAD_POLICY when the Policy is made, never clamped or wrapped by an engine.
FUEL_MAX = (1 << 64) - 1
"""Largest fuel (``Policy.fuel``, ``run(fuel=)``): the compiled engines keep it in a u64."""
CALL_DEPTH_MAX = 1 << 20
"""Largest ``max_call_depth``; every engine runs a recursion this deep."""
MEM_SIZE_MAX = 1 << 40
"""Largest ``mem_size`` and ``max_mem_size`` (1 TiB; the arm64 engine's address map holds 16 TiB)."""
CODE_BYTES_MAX = 1 << 32
"""Largest ``max_code_bytes`` (4 GiB: the containers' lengths and pcs are 32-bit)."""
TIMEOUT_MAX = 1e9
"""Largest ``timeout`` in seconds (about 31 years; a timer thread waits at most ~292 years)."""
BYTES_MAX = (1 << 63) - 1
"""Largest ``cache_max_bytes`` and ``max_output_bytes``."""
DEFAULT_MAX_OUTPUT_BYTES = 64 << 20
LOG_RECORD_BYTES = 16
"""What a LOG record counts against ``max_output_bytes`` besides its topic and
message bytes, so that empty LOGs cannot pile up records without bound."""
"""Default ``max_output_bytes``: captured output plus kept log records per run (64 MiB)."""


def _bound(n: int) -> str:
    """``n`` as written in the docs: ``2**64-1``, ``2**20``, or plainly when small."""
    for k in range(17, 65):
        if n == (1 << k) - 1:
            return f"2**{k}-1"
        if n == 1 << k:
            return f"2**{k}"
    return str(n)


def _int_in(value: object, low: int, high: int, path: str, *, optional: bool = False) -> None:
    """Refuse (BAD_POLICY) anything but an int (not a bool) in ``low ..= high``, or None if ``optional``."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        what = "None or an int" if optional else "an int"
        raise PolicyError("BAD_POLICY", f"must be {what} in {low} ..= {_bound(high)}, not {value!r}", path=path)


def check_fuel(fuel: object, path: str = "Policy.fuel") -> None:
    """Refuse (BAD_POLICY) a fuel that is neither None nor an int in ``0 ..= FUEL_MAX``."""
    _int_in(fuel, 0, FUEL_MAX, path, optional=True)


CACHE_DIR_VARIABLE = "ZJIT_CACHE_DIR"
"""Environment variable naming the code cache root (when not empty)."""


def default_cache_dir() -> Path:
    """Per-user cache directory: ``$ZJIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/zjit``,
    else ``~/.cache/zjit``."""
    from pathlib import Path

    return Path(default_cache_path())


def default_cache_path() -> str:
    """:func:`default_cache_dir` as a string, without importing :mod:`pathlib`."""
    chosen = os.environ.get(CACHE_DIR_VARIABLE)
    if chosen:
        return str(Path(chosen))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return str(Path(os.path.join(base, "zjit")))


@dataclass(frozen=True)
class Policy:
    """Limits and options (``interfaces.md``); every field has a range (docs/api.md
    "Policy"), and a value outside it raises PolicyError BAD_POLICY here.

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
    stays baseline). The interpreter ignores both. ``max_output_bytes`` bounds
    what zjit keeps of a run's guest output: captured stdout plus the topic and
    message bytes of the log records kept for ``Result.log`` (``0 ..= 2**63 - 1``);
    the OUT or LOG that would pass it traps HOST (docs/api.md "Output limit").
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
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_fuel(self.fuel)
        _int_in(self.mem_size, 1, MEM_SIZE_MAX, "Policy.mem_size", optional=True)
        _int_in(self.max_mem_size, 1, MEM_SIZE_MAX, "Policy.max_mem_size")
        _int_in(self.max_call_depth, 0, CALL_DEPTH_MAX, "Policy.max_call_depth")
        _int_in(self.opt_level, 0, 2, "Policy.opt_level")
        timeout = self.timeout
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or not 0 < timeout <= TIMEOUT_MAX):  # NaN fails too
            raise PolicyError("BAD_POLICY", f"must be None or a number of seconds in (0, {TIMEOUT_MAX:g}], "
                              f"not {timeout!r}", path="Policy.timeout")
        if self.cache_dir is not None and not isinstance(self.cache_dir, str | os.PathLike):
            raise PolicyError("BAD_POLICY", f"must be None or a path, not {self.cache_dir!r}",
                              path="Policy.cache_dir")
        if not isinstance(self.use_cache, bool):
            raise PolicyError("BAD_POLICY", f"must be a bool, not {self.use_cache!r}",
                              path="Policy.use_cache")
        _int_in(self.cache_max_bytes, 0, BYTES_MAX, "Policy.cache_max_bytes")
        _int_in(self.max_code_bytes, 0, CODE_BYTES_MAX, "Policy.max_code_bytes")
        _int_in(self.max_data_bytes, 0, MEM_SIZE_MAX, "Policy.max_data_bytes")
        _int_in(self.allowed_prims, 0, PRIM_MASK_ALL, "Policy.allowed_prims")
        if self.tier not in TIERS:
            raise PolicyError("BAD_POLICY", f"must be one of {', '.join(TIERS)}, not {self.tier!r}",
                              path="Policy.tier")
        _int_in(self.tier_threshold, 1, MAX_TIER_THRESHOLD, "Policy.tier_threshold")
        _int_in(self.max_output_bytes, 0, BYTES_MAX, "Policy.max_output_bytes")
        if not isinstance(self.extra, dict):
            raise PolicyError("BAD_POLICY", f"must be a dict, not {self.extra!r}", path="Policy.extra")

    @property
    def resolved_cache_dir(self) -> Path:
        """The cache directory actually used."""
        from pathlib import Path

        return Path(self.resolved_cache_path)

    @property
    def resolved_cache_path(self) -> str:
        """:attr:`resolved_cache_dir` as a string, without importing :mod:`pathlib`."""
        return str(Path(self.cache_dir)) if self.cache_dir is not None else default_cache_path()
