"""Wasmtime side of the bench: engine configurations and the WAT kernel twins.

``wasmtime`` (PyPI) is an optional dependency (``pip install -e '.[bench]'``);
:func:`available` says whether it imports. Configurations:

* ``default``: Wasmtime's defaults (on x86-64 a large virtual reservation with
  guard pages, so most bounds checks are elided; no interruption checks);
* ``fuel``: the defaults plus ``consume_fuel`` (a fuel counter checked in every
  loop and function entry);
* ``same_safety``: what zjit's code does: explicit bounds checks
  (``memory_reservation = 0``, ``memory_guard_size = 0``) plus
  ``epoch_interruption`` (an interruption poll in every loop and function entry).

Each kernel ``bench/kernels/<name>.wat`` exports ``memory`` and ``main() -> i64``
and reads N and REPS from memory as its ZASM twin does.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from kernels import MEM_SIZE, PARAMS, Kernel

MASK64 = (1 << 64) - 1
WASM_FUEL = 1 << 62
"""Fuel given to metered runs: never runs out."""
EPOCH_FAR = 1 << 40
"""Epoch deadline for ``same_safety`` runs: never reached (nothing bumps the epoch)."""
WASM_CONFIGS: dict[str, str] = {
    "default": "Wasmtime defaults: guard pages (bounds checks elided), no interruption checks",
    "fuel": "defaults + consume_fuel",
    "same_safety": "explicit bounds checks (memory_reservation 0, no guard pages) + epoch_interruption",
}


def available() -> bool:
    """True when the ``wasmtime`` package imports."""
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str | None:
    """The installed wasmtime package version (None when missing)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    try:
        return pkg_version("wasmtime")
    except PackageNotFoundError:
        return None


def make_engine(config: str) -> Any:
    """A ``wasmtime.Engine`` for one of :data:`WASM_CONFIGS`."""
    import wasmtime

    if config not in WASM_CONFIGS:
        raise ValueError(f"unknown Wasmtime configuration {config!r}")
    cfg = wasmtime.Config()
    if config == "fuel":
        cfg.consume_fuel = True
    elif config == "same_safety":
        cfg.memory_reservation = 0
        cfg.memory_guard_size = 0
        cfg.memory_reservation_for_growth = 0
        cfg.epoch_interruption = True
    return wasmtime.Engine(cfg)


def arm_store(store: Any, config: str) -> None:
    """Refill fuel or push the epoch deadline away before a run."""
    if config == "fuel":
        store.set_fuel(WASM_FUEL)
    elif config == "same_safety":
        store.set_epoch_deadline(EPOCH_FAR)


def wat_to_wasm(wat: str) -> bytes:
    """WAT text -> binary module."""
    import wasmtime

    return bytes(wasmtime.wat2wasm(wat))


class WasmKernel:
    """One WAT kernel compiled and instantiated under one configuration; the timed
    region of :meth:`run` is the call of ``main`` only (like zjit's ``Instance.run``)."""

    def __init__(self, kernel: Kernel, engine: Any, config: str) -> None:
        import wasmtime

        self.config = config
        self.store = wasmtime.Store(engine)
        module = wasmtime.Module(engine, wat_to_wasm(kernel.wat_path.read_text()))
        self.instance = wasmtime.Instance(self.store, module, [])
        exports = self.instance.exports(self.store)
        self.main = exports["main"]
        self.memory = exports["memory"]
        if self.memory.data_len(self.store) < MEM_SIZE:
            raise ValueError(f"{kernel.wat_path.name}: memory smaller than {MEM_SIZE} bytes")
        self.fuel_used: int | None = None

    def run(self, n: int, reps: int) -> tuple[int, float]:
        """(checksum, seconds) of one run at size (n, reps)."""
        self.memory.write(self.store, struct.pack("<QQ", n, reps), PARAMS)
        arm_store(self.store, self.config)
        t0 = time.perf_counter()
        result = self.main(self.store)
        seconds = time.perf_counter() - t0
        if self.config == "fuel":
            self.fuel_used = WASM_FUEL - self.store.get_fuel()
        return int(result) & MASK64, seconds
