"""Runs a :class:`wasm_twin.WasmTwin` under Wasmtime: the host side of the twin's
imports (the six primitives and ``trap``), checked the way ``isa.md`` 2.8 says.

Used by ``tests/test_bench_wasm.py`` to show that twins compute what zjit's
interpreter computes; the compile-latency bench only compiles twins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wasm_kernels import wat_to_wasm
from wasm_twin import WasmTwin

from zjit.isa import MASK32, MASK64, REG_NAMES, TrapKind, sext
from zjit.machine import HostIO


class GuestTrap(Exception):
    """Raised inside an import to end the run with a guest trap."""

    def __init__(self, kind: TrapKind, pc: int, registers: list[int]) -> None:
        super().__init__(f"{kind.name} at pc {pc:#x}")
        self.kind, self.pc, self.registers = kind, pc, registers


@dataclass(frozen=True, slots=True)
class TwinResult:
    """Registers at the end (at a trap: before the trapping instruction), the trap
    kind and pc if any, and the output and log records of the run."""

    registers: dict[str, int]
    trap: TrapKind | None
    pc: int | None
    stdout: bytes
    log: tuple[tuple[bytes, bytes], ...]


def _u64(values: tuple[int, ...] | list[int]) -> list[int]:
    return [v & MASK64 for v in values]


class TwinInstance:
    """A twin compiled and instantiated with its host; memory and the ALLOC top
    persist across runs, as in a zjit Instance."""

    def __init__(self, twin: WasmTwin, *, engine: Any = None, stdin: bytes = b"",
                 ctl: Callable[[bytes], bytes | int] | None = None, fuel: int | None = None) -> None:
        """``fuel``: Wasmtime fuel per run, for an ``engine`` made with
        ``consume_fuel`` (a bound on runaway twins in tests)."""
        import wasmtime

        self.twin = twin
        self.fuel = fuel
        self.engine = engine if engine is not None else wasmtime.Engine()
        self.store = wasmtime.Store(self.engine)
        self.host = HostIO(stdin=stdin, log=None, ctl=ctl)
        self.heap_top = twin.heap_start
        module = wasmtime.Module(self.engine, wat_to_wasm(twin.wat))
        linker = wasmtime.Linker(self.engine)
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        linker.define_func("zasm", "trap", wasmtime.FuncType([i32, i32] + [i64] * 5, []), self._trap)
        prim_type = wasmtime.FuncType([i32] + [i64] * 5, [i64])
        prims = {"in": self._in, "out": self._out, "log": self._log, "alloc": self._alloc,
                 "free": self._free, "ctl": self._ctl}
        for imp in module.imports:
            if imp.module == "zasm" and imp.name in prims:
                linker.define_func("zasm", imp.name, prim_type, self._wrap(prims[imp.name]),
                                   access_caller=True)
        self.instance = linker.instantiate(self.store, module)
        exports = self.instance.exports(self.store)
        self.memory = exports["memory"]
        self.exports = exports

    # -- runs --------------------------------------------------------------------
    def call(self, name: str | None = None, **registers: int) -> TwinResult:
        """Run the module entry (``name`` None) or an export, registers preset."""
        import wasmtime

        regs = [registers.get(r.lower(), 0) & MASK64 for r in REG_NAMES]
        func = self.exports[self.twin.exports[name]]
        self.host.begin_run()
        trap: TrapKind | None = None
        pc: int | None = None
        if self.fuel is not None:
            self.store.set_fuel(self.fuel)
        try:
            out = func(self.store, *(sext(v, 64) for v in regs))
            regs = _u64(out[:5])
        except GuestTrap as t:
            trap, pc, regs = t.kind, t.pc, t.registers
        except wasmtime.Trap as t:  # not a guest trap (stack exhaustion, out of Wasmtime fuel)
            raise RuntimeError(f"twin trapped outside the guest's semantics: {t}") from t
        return TwinResult(dict(zip(REG_NAMES, regs, strict=True)), trap, pc, self.host.take_output(),
                          tuple(self.host.log_records))

    def memory_bytes(self) -> bytes:
        """Guest memory (the first ``mem_size`` bytes of linear memory)."""
        return bytes(self.memory.read(self.store, 0, self.twin.mem_size))

    # -- imports -----------------------------------------------------------------
    def _trap(self, kind: int, pc: int, *regs: int) -> None:
        raise GuestTrap(TrapKind(kind), pc, _u64(regs))

    def _wrap(self, prim: Callable[[Any, int, list[int]], int]) -> Callable[..., int]:
        def call(caller: Any, pc: int, *regs: int) -> int:
            values = _u64(regs)
            try:
                hl = prim(caller, pc, values)
            except GuestTrap:
                raise
            except Exception as exc:  # a failing handler is a HOST trap
                raise GuestTrap(TrapKind.HOST, pc, values) from exc
            return sext(hl & MASK64, 64)
        return call

    def _check(self, pc: int, regs: list[int], p: int, n: int, write: bool) -> None:
        if n == 0:
            return
        if p + n > self.twin.mem_size:
            raise GuestTrap(TrapKind.OOB, pc, regs)
        if write and any(p < hi and p + n > lo for lo, hi in self.twin.readonly):
            raise GuestTrap(TrapKind.WRITE_PROTECT, pc, regs)

    def _read(self, caller: Any, p: int, n: int) -> bytes:
        return bytes(caller["memory"].read(caller, p, p + n)) if n else b""

    def _write(self, caller: Any, p: int, data: bytes) -> None:
        if data:
            caller["memory"].write(caller, data, p)

    def _in(self, caller: Any, pc: int, r: list[int]) -> int:
        p, cap = r[0], r[1] & MASK32
        self._check(pc, r, p, cap, True)
        data = self.host.read(cap)
        self._write(caller, p, data)
        return len(data)

    def _out(self, caller: Any, pc: int, r: list[int]) -> int:
        p, n = r[0], r[1] & MASK32
        self._check(pc, r, p, n, False)
        self.host.write(self._read(caller, p, n))
        return r[0]

    def _log(self, caller: Any, pc: int, r: list[int]) -> int:
        tp, tn, mp, mn = r[0], r[1] & MASK32, r[3], r[4] & MASK32
        self._check(pc, r, tp, tn, False)
        self._check(pc, r, mp, mn, False)
        self.host.log(self._read(caller, tp, tn), self._read(caller, mp, mn))
        return r[0]

    def _alloc(self, caller: Any, pc: int, r: list[int]) -> int:
        size = r[0]
        if size == 0:
            return 0
        a = (self.heap_top + 7) & ~7
        if a + size > self.twin.mem_size:
            return 0
        self.heap_top = a + size
        return a

    def _free(self, caller: Any, pc: int, r: list[int]) -> int:
        return r[0]

    def _ctl(self, caller: Any, pc: int, r: list[int]) -> int:
        rp, rn, bp, cap = r[0], r[1] & MASK32, r[3], r[4] & MASK32
        self._check(pc, r, rp, rn, False)
        self._check(pc, r, bp, cap, True)
        value, data = self.host.ctl(self._read(caller, rp, rn), cap)
        self._write(caller, bp, data)
        return value
