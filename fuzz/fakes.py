"""Deliberately broken engines: they wrap the interpreter and corrupt one thing,
so tests (and ``zjit fuzz --engines interp,broken-reg``) can prove the oracle and
the campaign notice every kind of disagreement."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from zjit.image import ModuleImage
from zjit.isa import MASK64, TrapKind
from zjit.policy import Policy
from zjit.result import Result, Trap

from .layout import SCRATCH
from .oracles import ENGINE_FACTORIES, EngineLike

Mutator = Callable[[Result, memoryview], Result]
"""Changes a result (and may write guest memory) after each run."""


class _FakeInstance:
    def __init__(self, inner: Any, mutate: Mutator) -> None:
        self._inner = inner
        self._mutate = mutate

    @property
    def memory(self) -> memoryview:
        mem: memoryview = self._inner.memory
        return mem

    def run(self) -> Result:
        return self._mutate(self._inner.run(), self._inner.memory)

    def call(self, name: str, **registers: int) -> Result:
        return self._mutate(self._inner.call(name, **registers), self._inner.memory)


class _FakeModule:
    def __init__(self, inner: Any, mutate: Mutator) -> None:
        self._inner = inner
        self._mutate = mutate
        self.exports: dict[str, int] = inner.exports

    def instantiate(self, stdin: bytes | None = None, log: Any = None,
                    ctl: Callable[[bytes], bytes | int] | None = None) -> _FakeInstance:
        return _FakeInstance(self._inner.instantiate(stdin=stdin, log=log, ctl=ctl), self._mutate)


class FakeEngine:
    """The interpreter with ``mutate`` applied to every run."""

    def __init__(self, policy: Policy, mutate: Mutator) -> None:
        from zjit.runtime import Engine

        self._inner = Engine(policy, backend="interp")
        self._mutate = mutate

    def load(self, src: ModuleImage) -> _FakeModule:
        """Load through the real interpreter engine."""
        return _FakeModule(self._inner.load(src), self._mutate)


def flip_register(result: Result, memory: memoryview) -> Result:
    """Wrong HL when it is odd (a plausible lowering bug, not on every program)."""
    hl = result.registers["HL"]
    if hl & 1:
        regs = dict(result.registers)
        regs["HL"] = hl ^ (1 << 40)
        return dataclasses.replace(result, registers=regs)
    return result


def corrupt_memory(result: Result, memory: memoryview) -> Result:
    """A stray write into the scratch segment when the run produced output."""
    if result.stdout:
        memory[SCRATCH + 3] ^= 0x10
    return result


def skew_fuel(result: Result, memory: memoryview) -> Result:
    """Fuel off by one when metering is on."""
    if result.fuel_left is not None and result.fuel_left > 0:
        return dataclasses.replace(result, fuel_left=result.fuel_left - 1)
    return result


def wrong_trap_pc(result: Result, memory: memoryview) -> Result:
    """Reports OOB traps one instruction late."""
    t = result.trap
    if t is not None and t.kind is TrapKind.OOB:
        return dataclasses.replace(result, trap=Trap(t.kind, t.pc + 4, t.address, t.length, t.source))
    return result


def drop_output(result: Result, memory: memoryview) -> Result:
    """Loses the last byte of output."""
    if result.stdout:
        return dataclasses.replace(result, stdout=result.stdout[:-1])
    return result


def always(result: Result, memory: memoryview) -> Result:
    """Wrong on every run (BC gains one)."""
    regs = dict(result.registers)
    regs["BC"] = (regs["BC"] + 1) & MASK64
    return dataclasses.replace(result, registers=regs)


MUTATORS: dict[str, Mutator] = {
    "reg": flip_register, "mem": corrupt_memory, "fuel": skew_fuel,
    "trap": wrong_trap_pc, "out": drop_output, "always": always,
}


def _factory(mutate: Mutator) -> Callable[[Policy], EngineLike]:
    def make(policy: Policy) -> EngineLike:
        return FakeEngine(policy, mutate)
    return make


def register_fakes() -> None:
    """Make ``broken-<kind>`` engine names available to the oracle (idempotent)."""
    for kind, mutate in MUTATORS.items():
        ENGINE_FACTORIES[f"broken-{kind}"] = _factory(mutate)
