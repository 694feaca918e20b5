"""The embedding API (interfaces.md): Engine, Module, Instance, backend registry."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

import zjit
from zjit import runtime
from zjit.asm import assemble
from zjit.container.detect import dump_image
from zjit.errors import PolicyError, SegmentError, TrapError
from zjit.image import DebugLine, ModuleImage, SegmentDesc
from zjit.isa import TrapKind
from zjit.machine import Machine, Outcome

PROG = """
PUBLIC main
PUBLIC add
PUBLIC bump
main:
    LD HL, msg
    LD DE, 2
    OUT
    LD HL, msg
    LD DE, 2
    LD BC, msg
    LD IX, 2
    LOG
    RET
add:
    ADD64 A, HL, DE
    RET
bump:                     ; memory[0x800] += 1; HL = new value
    LD HL, 0x800
    LD8U A, (HL)
    INC A
    ST8 (HL), A
    MOV HL, A
    RET
msg: DB "hi"
"""


@pytest.fixture
def engine() -> zjit.Engine:
    return zjit.Engine(zjit.Policy(use_cache=False), backend="interp")


def test_load_from_bytes_path_and_image(engine: zjit.Engine, tmp_path: Path) -> None:
    image = assemble(PROG, "prog.s")
    blob = dump_image(image, "zasm")
    path = tmp_path / "prog.zasm.bin"
    path.write_bytes(blob)
    for src in (image, blob, path, str(path)):
        mod = engine.load(src)
        assert mod.exports.keys() == {"main", "add", "bump"}
        assert mod.instantiate().call("add", hl=2, de=3).reg("A") == 5


def test_modules_are_prepared_once_per_digest(engine: zjit.Engine) -> None:
    a = engine.load(assemble(PROG, "prog.s"))
    b = engine.load(assemble(PROG, "other.s"))
    c = engine.load(assemble(PROG + "\nextra: DB 1\n", "prog.s"))
    assert a.executable is b.executable
    assert c.executable is not a.executable


def test_engine_is_thread_safe(engine: zjit.Engine) -> None:
    image = assemble(PROG, "prog.s")
    mods: list[zjit.Module] = []
    results: list[int] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        mod = engine.load(image)
        inst = mod.instantiate()
        total = sum(inst.call("add", hl=k, de=i).reg("A") for i in range(200))
        with lock:
            mods.append(mod)
            results.append(total)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(m.executable) for m in mods}) == 1
    assert sorted(results) == [200 * k + sum(range(200)) for k in range(6)]


def test_result_fields_and_per_run_capture(engine: zjit.Engine) -> None:
    inst = engine.load(assemble(PROG, "prog.s")).instantiate(log=None)
    r = inst.run()
    assert r.ok and r.status == "ok" and r.trap is None
    assert r.stdout == b"hi" and r.log == ((b"hi", b"hi"),)
    assert set(r.registers) == {"HL", "DE", "A", "BC", "IX"} and r.fuel_left is None
    again = inst.run()
    assert again == r                      # per-run output and log, not accumulated
    assert inst.call("add", hl=1).log == () and inst.call("add", hl=1).stdout == b""
    assert r.to_dict()["stdout"] == "hi"


def test_registers_by_case_insensitive_name(engine: zjit.Engine) -> None:
    inst = engine.load(assemble(PROG, "prog.s")).instantiate()
    assert inst.call("add", HL=7, de=-1).reg("a") == 6
    with pytest.raises(TypeError):
        inst.call("add", xy=1)
    with pytest.raises(ValueError):
        inst.call("add", hl=1 << 64)


def test_unknown_export(engine: zjit.Engine) -> None:
    inst = engine.load(assemble(PROG, "prog.s")).instantiate()
    with pytest.raises(PolicyError) as info:
        inst.call("nope")
    assert info.value.code == "NO_EXPORT"


def test_memory_view_is_writable_and_persists(engine: zjit.Engine) -> None:
    inst = engine.load(assemble(PROG, "prog.s")).instantiate()
    mem = inst.memory
    assert isinstance(mem, memoryview) and not mem.readonly and len(mem) == 2 << 20
    assert inst.call("bump").reg("HL") == 1
    assert inst.call("bump").reg("HL") == 2
    mem[0x800] = 100
    assert inst.call("bump").reg("HL") == 101
    assert bytes(inst.memory[0x1000:0x1002]) == b"hi"
    assert engine.load(assemble(PROG, "prog.s")).instantiate().call("bump").reg("HL") == 1


def test_fuel_override_and_validation(engine: zjit.Engine) -> None:
    inst = engine.load(assemble(PROG, "prog.s")).instantiate()
    assert inst.call("add", fuel=10).fuel_left == 8
    assert inst.call("add").fuel_left is None
    with pytest.raises(PolicyError):
        inst.run(fuel=-1)


def test_instantiate_errors() -> None:
    image = assemble(PROG, "prog.s")
    small = zjit.Engine(zjit.Policy(mem_size=0x800), backend="interp").load(image)
    with pytest.raises(SegmentError) as seg:
        small.instantiate()
    assert seg.value.code == "OUT_OF_BOUNDS"
    declared = dataclasses.replace(image, mem_min=1 << 20)
    with pytest.raises(PolicyError) as pol:
        zjit.Engine(zjit.Policy(mem_size=1 << 16), backend="interp").load(declared).instantiate()
    assert pol.value.code == "MEM_TOO_SMALL"


def test_trap_source_uses_nearest_preceding_debug_entry(engine: zjit.Engine) -> None:
    image = assemble("PUBLIC main\nmain:\nLD A, 1\nLD A, 2\nDIVU A, A, HL\nRET\n", "t.s")
    assert image.debug[8] == DebugLine("t.s", 5)
    r = engine.load(image).instantiate().run()
    assert r.trap is not None and r.trap.source == "t.s:5"
    sparse = dataclasses.replace(image, debug={0: DebugLine("lib.s", 40)})
    r = engine.load(sparse).instantiate().run()
    assert r.trap is not None and r.trap.source == "lib.s:40"
    none = dataclasses.replace(image, debug={})
    r = engine.load(none).instantiate().run()
    assert r.trap is not None and r.trap.source is None


def test_raise_on_trap_chains_host_exception(engine: zjit.Engine) -> None:
    image = assemble("PUBLIC main\nmain:\nCTL\nRET\n", "t.s")

    def handler(req: bytes) -> bytes:
        raise KeyError("no such service")

    inst = engine.load(image).instantiate(ctl=handler)
    with pytest.raises(TrapError) as info:
        inst.run(raise_on_trap=True)
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.result.trap.kind is TrapKind.HOST


def test_interrupt_is_pending_until_delivered(engine: zjit.Engine) -> None:
    inst = engine.load(assemble(PROG, "prog.s")).instantiate()
    inst.interrupt()
    r = inst.call("add", hl=1)
    assert r.trap is not None and r.trap.kind is TrapKind.TIMEOUT and r.reg("A") == 0
    assert inst.call("add", hl=1).ok


# --- backend registry ---------------------------------------------------------------

def test_registry_names_and_interp_availability() -> None:
    assert runtime.BACKENDS["interp"] == "zjit.interp:InterpBackend"
    assert runtime.BACKENDS["jit"] == "zjit.backends.native.engine:JitBackend"
    assert runtime.BACKENDS["arm64"] == "zjit.backends.arm64.engine:Arm64Backend"
    assert "interp" in zjit.available_backends()
    assert ("interp", "interp", {}) in zjit.engine_configs()
    for ident, backend, overrides in zjit.engine_configs():
        assert backend in zjit.available_backends()
        fields: dict[str, Any] = dict(overrides)
        zjit.Policy(**fields)      # overrides are valid policy fields
        assert ident.startswith(backend)


def test_unknown_or_unavailable_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PolicyError) as info:
        zjit.Engine(backend="quantum")
    assert info.value.code == "BAD_BACKEND"
    if "jit" not in zjit.available_backends():
        with pytest.raises(PolicyError) as jit:
            zjit.Engine()                      # the default backend is the JIT: no fallback
        assert jit.value.code == "BAD_BACKEND"

    class Unavailable:
        name = "never"

        @staticmethod
        def available() -> bool:
            return False

    fake = types.ModuleType("zjit_fake_backend")
    fake.Unavailable = Unavailable  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zjit_fake_backend", fake)
    monkeypatch.setitem(runtime.BACKENDS, "never", "zjit_fake_backend:Unavailable")
    monkeypatch.setitem(runtime.BACKENDS, "broken", "zjit_fake_backend:Missing")
    assert "never" not in zjit.available_backends()
    assert "broken" not in zjit.available_backends()
    with pytest.raises(PolicyError):
        zjit.Engine(backend="never")


class CannedExecutable:
    """A fake engine: reports a fixed Outcome and spends some fuel."""

    def execute(self, machine: Machine, entry_pc: int, registers: list[int]) -> Outcome:
        if machine.fuel is not None:
            machine.fuel -= 3
        machine.host.write(b"out")
        return Outcome([1, 2, 3, 4, 5], TrapKind.OOB, 4, 0xDEAD, 8)


class CannedBackend:
    name = "canned"

    def prepare(self, program: Any, policy: Any) -> CannedExecutable:
        return CannedExecutable()


def test_runtime_turns_outcome_into_result(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("zjit_canned_backend")
    fake.CannedBackend = CannedBackend  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zjit_canned_backend", fake)
    monkeypatch.setitem(runtime.BACKENDS, "canned", "zjit_canned_backend:CannedBackend")
    eng = zjit.Engine(zjit.Policy(fuel=10), backend="canned")
    image = assemble("PUBLIC main\nmain:\nLD A, 1\nRET\n", "c.s")
    r = eng.load(image).instantiate().run()
    assert r.registers == {"HL": 1, "DE": 2, "A": 3, "BC": 4, "IX": 5}
    assert r.trap == zjit.Trap(TrapKind.OOB, 4, 0xDEAD, 8, "c.s:4")
    assert r.fuel_left == 7 and r.stdout == b"out"


def test_module_image_is_public() -> None:
    assert zjit.ModuleImage is ModuleImage and zjit.SegmentDesc is SegmentDesc


@pytest.mark.parametrize("record", [zjit.Policy, zjit.Result, zjit.Trap, ModuleImage, SegmentDesc, DebugLine])
def test_public_records_show_their_fields(record: type) -> None:
    """Records are standard dataclasses: help() and inspect.signature show the fields."""
    params = inspect.signature(record).parameters
    assert list(params) == [f.name for f in dataclasses.fields(record) if f.init]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params.values())


def test_policy_signature_lists_its_fields() -> None:
    params = inspect.signature(zjit.Policy).parameters
    assert {"fuel", "mem_size", "max_call_depth", "opt_level", "timeout", "cache_dir", "use_cache"} <= set(params)
    assert params["fuel"].default is None and params["opt_level"].default == 2
    assert str(inspect.signature(zjit.Policy)).startswith("(fuel: 'int | None' = None, mem_size")


def test_package_names_load_on_first_use() -> None:
    """``import zjit`` defines the public names lazily; each one resolves to its module's."""
    assert set(zjit.__all__) == {*zjit._EXPORTS, "__version__"}
    for name, module in zjit._EXPORTS.items():
        assert getattr(zjit, name) is getattr(sys.modules[f"zjit.{module}"], name)
        assert name in dir(zjit)
    with pytest.raises(AttributeError):
        zjit.no_such_name  # noqa: B018
