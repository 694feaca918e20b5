"""Programs in the reference assembler's syntax (tests/data/refsyntax/*.s) run on every
engine with the output, log, registers or trap their header states.

Header lines, ``;= key: value``: ``stdin``/``stdout`` (Python string literals),
``log`` (a literal list of (topic, message) pairs), ``regs`` (``NAME=value`` ...),
``trap`` (``KIND line N``) and ``ctl`` (``reverse``: the handler answers the request
reversed). The lowerings these programs rely on are pinned word for word in
tests/test_asm_reference.py; here they must also behave as stated.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from engine_harness import EngineCfg, run_asm

from zjit.asm import assemble
from zjit.asm.compat import HOST_CALLS
from zjit.asm.parser import ExprOperand, parse
from zjit.isa import Family

DATA = Path(__file__).resolve().parents[1] / "data" / "refsyntax"
PROGRAMS = sorted(DATA.glob("*.s"))


def header(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith(";= "):
            key, _, value = line[3:].partition(":")
            out[key.strip()] = value.strip()
    return out


def _reverse(request: bytes) -> bytes:
    return request[::-1]


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_reference_program(engine_cfg: EngineCfg, path: Path) -> None:
    want = header(path)
    image = assemble(path.read_text(), path.name)
    stdin = ast.literal_eval(want.get("stdin", "''")).encode()
    ctl = _reverse if want.get("ctl") == "reverse" else None
    result, _ = run_asm(engine_cfg, image, stdin=stdin, ctl=ctl)
    assert result.stdout == ast.literal_eval(want.get("stdout", "''")).encode()
    log = [(t.encode(), m.encode()) for t, m in ast.literal_eval(want.get("log", "[]"))]
    assert list(result.log) == log
    for item in want.get("regs", "").split():
        name, _, value = item.partition("=")
        assert result.reg(name) == int(value, 0), f"register {name}"
    if "trap" in want:
        kind, _, line = want["trap"].split()
        assert result.trap is not None and result.trap.kind.name == kind
        assert result.trap.source == f"{path.name}:{line}"
    else:
        assert result.ok, result.trap


def test_programs_cover_every_form() -> None:
    """At least one program per host call and per instruction family with an
    immediate operand (so a form cannot lose its test unnoticed)."""
    calls: set[str] = set()
    families: set[Family] = set()
    for path in PROGRAMS:
        assert header(path), f"{path.name} states no expectation"
        stmts, errors = parse(path.read_text(), path.name)
        assert not errors
        for st in stmts:
            if st.op is None or not st.operands:
                continue
            last = st.operands[-1]
            if st.op.family is Family.CALL and isinstance(last, ExprOperand):
                calls.add(str(last.expr.symbol))
            elif len(st.operands) == 2 and isinstance(last, ExprOperand):
                families.add(st.op.family)
    assert set(HOST_CALLS) <= calls
    assert {Family.ALU, Family.DIV, Family.CMPSET, Family.STORE, Family.CP} <= families
