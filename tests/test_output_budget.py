"""The compiled code's output budget (issue 13; sandbox-critical): every OUT is
charged to the context's ``out_room`` by the generated code itself
(``backends/llvm/emit_prims.charge_output``), which traps ``TRAP_OUTPUT_LIMIT``
past it without a host call. The limit lives in the context, so one compiled
module serves every limit. (The conformance suite, ``test_output_limit.py``,
checks the behaviour on every engine.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from zjit.backends.context import TRAP_OUTPUT_LIMIT
from zjit.backends.run import CodeRun

import zjit
from zjit.asm import assemble
from zjit.isa import TrapKind
from zjit.machine import OutputLimitError

COMPILING = [b for b in ("jit", "arm64") if b in zjit.available_backends()]
pytestmark = pytest.mark.skipif(not COMPILING, reason="no compiling engine here")

# 1000 OUTs of 5 bytes in a loop (5000 bytes: inside the 64 KiB native buffer).
LOOP = """
PUBLIC main
main:
    LD HL, msg
    LD DE, 5
again:
    OUT
    INC A
    CPI A, 1000
    JR ltu, again
    RET
msg: DB "hello"
"""


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the host calls compiled code makes (any engine, any op)."""
    calls: list[int] = []
    real = CodeRun.host_call

    def host_call(self: CodeRun, op: int, a: int, b: int, c: int, d: int) -> int:
        calls.append(op)
        return real(self, op, a, b, c, d)

    monkeypatch.setattr(CodeRun, "host_call", host_call)
    return calls


@pytest.mark.parametrize("backend", COMPILING)
@pytest.mark.parametrize("tier", ["baseline", "optimized"])
def test_buffered_out_is_checked_without_host_calls(monkeypatch: pytest.MonkeyPatch, backend: str, tier: str) -> None:
    calls = _counting(monkeypatch)
    module = zjit.Engine(zjit.Policy(use_cache=False, tier=tier, max_output_bytes=4999),
                         backend=backend).load(assemble(LOOP, "loop.s"))
    out_pc = next(i.pc for i in module.program.instrs if i.op.mnemonic == "OUT")
    r = module.instantiate().run()
    assert calls == []          # 999 OUTs appended natively, the 1000th trapped natively
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == out_pc
    assert isinstance(r.trap.cause, OutputLimitError) and r.trap.cause.limit == 4999
    assert r.stdout == b"hello" * 999 and r.reg("A") == 999
    r = zjit.Engine(zjit.Policy(use_cache=False, tier=tier, max_output_bytes=5000),
                    backend=backend).load(assemble(LOOP, "loop.s")).instantiate().run()
    assert r.ok and r.stdout == b"hello" * 1000 and calls == []


@pytest.mark.parametrize("backend", COMPILING)
def test_the_limit_is_not_compiled_in(tmp_path: Path, backend: str) -> None:
    """Engines with different limits share the cached code (the limit is read from
    the context at run time, not part of the cache key)."""
    image = assemble(LOOP, "loop.s")
    results = []
    compiles = []
    for limit in (100, 4999, 1 << 40):
        engine = zjit.Engine(zjit.Policy(cache_dir=tmp_path, tier="optimized", max_output_bytes=limit),
                             backend=backend)
        results.append(engine.load(image).instantiate().run())
        compiles.append(getattr(engine.backend, "compiles", None))
    assert compiles == [1, 0, 0]
    assert [len(r.stdout) for r in results] == [100, 4995, 5000]
    assert [r.ok for r in results] == [False, False, True]


def test_out_lowering_charges_the_budget_before_writing() -> None:
    """The O2 lowering of OUT: the budget check's trap stub reports TRAP_OUTPUT_LIMIT,
    and the out_room update comes after the copy (nothing is charged for an OUT that
    does not happen)."""
    module = zjit.Engine(zjit.Policy(use_cache=False), backend="interp").load(
        assemble("PUBLIC main\nmain: OUT\nRET\n", "out.s"))
    text = module.inspect_llvm("x86_64")
    assert f"i64 {TRAP_OUTPUT_LIMIT}, i64 0" in text     # kind, pc of the OUT
    no_out = zjit.Engine(zjit.Policy(use_cache=False), backend="interp").load(
        assemble("PUBLIC main\nmain: LOG\nRET\n", "log.s"))
    assert f"i64 {TRAP_OUTPUT_LIMIT}," not in no_out.inspect_llvm("x86_64")


@pytest.mark.parametrize("backend", COMPILING)
def test_log_and_buffered_out_share_one_budget(backend: str) -> None:
    """A LOG (served by the host) after natively buffered output sees what the OUTs
    took of the budget, and OUTs after it see what the LOG took."""
    src = """
PUBLIC main
main:
    LD HL, msg
    LD DE, 5
    OUT
    LD BC, msg
    LD IX, 5
    LOG
    OUT
    RET
msg: DB "hello"
"""
    module: Any = zjit.Engine(zjit.Policy(use_cache=False, max_output_bytes=35), backend=backend).load(
        assemble(src, "s.s"))
    r = module.instantiate(log=None).run()
    outs = [i.pc for i in module.program.instrs if i.op.mnemonic == "OUT"]
    assert r.trap is not None and r.trap.pc == outs[1] and r.stdout == b"hello" and len(r.log) == 1
    module = zjit.Engine(zjit.Policy(use_cache=False, max_output_bytes=36), backend=backend).load(
        assemble(src, "s.s"))
    r = module.instantiate(log=None).run()
    assert r.ok and r.stdout == b"hellohello"
