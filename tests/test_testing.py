"""``zjit.testing``: the public hypothesis strategies for embedders (docs/testing.md)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zjit
from zjit.errors import ZjitError
from zjit.testing import (
    FORMATS,
    ModuleFiles,
    TrapKind,
    module_files,
    modules,
    mutated_modules,
    reference_result,
    trapping_programs,
)

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load(module: ModuleFiles, backend: str = "interp") -> zjit.runtime.Module:
    with tempfile.TemporaryDirectory() as tmp:
        return zjit.Engine(module.program.policy(), backend=backend).load(module.write(tmp))


@pytest.mark.parametrize("fmt", FORMATS)
@FAST
@given(data=st.data())
def test_modules_of_every_format_load_and_run_as_their_program(fmt: str, data: st.DataObject) -> None:
    module = data.draw(modules(formats=(fmt,)))
    assert module.format == fmt and module.main in module.files
    inst = load(module).instantiate(stdin=module.program.stdin, log=None, ctl=module.program.ctl_handler())
    result, expected = inst.run(), reference_result(module.program)
    if fmt == "json" and expected.trap is not None:  # raw code: no source lines
        frames = expected.trap.backtrace
        frames = None if frames is None else tuple(dataclasses.replace(f, source=None) for f in frames)
        expected = dataclasses.replace(expected, trap=dataclasses.replace(expected.trap, source=None,
                                                                          backtrace=frames))
    assert result == expected


def test_module_json_files_name_each_other() -> None:
    program = next(p for p in (_program(seed) for seed in range(50)) if p.ro_segments)
    files = module_files(program, "json")
    doc = json.loads(files.data)
    assert doc["code"] == "prog.code" and files.files["prog.code"] == program.image().code
    assert any(s["permissions"] == "r" for s in doc["segments"])  # only module.json holds these
    for seg in doc["segments"]:
        assert "zeroed" in seg or files.files[seg["init_path"]].__len__() == seg["init_size"]
    with pytest.raises(ZjitError):
        module_files(program, "zasm")
    with pytest.raises(ValueError, match="unknown format 'elf'"):
        module_files(program, "elf")


def _program(seed: int) -> zjit.testing.GenProgram:
    from zjit.fuzz.generators import random_program

    return random_program(seed)


@FAST
@given(mutated_modules())
def test_mutated_modules_load_or_raise_zjit_errors(module: ModuleFiles) -> None:
    with contextlib.suppress(ZjitError):
        load(module)


@FAST
@given(trapping_programs(TrapKind.DIV0))
def test_trapping_programs_trap(program: zjit.testing.GenProgram) -> None:
    result = reference_result(program)
    assert result.trap is not None and result.trap.kind is TrapKind.DIV0


def test_hypothesis_is_needed_only_by_zjit_testing() -> None:
    """Without hypothesis, zjit and its fuzzer's generators work; importing
    zjit.testing says which extra to install."""
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import zjit, zjit.fuzz.generators\n"
            "print(zjit.Engine(backend='interp').load(zjit.fuzz.generators.random_program(1).image()).name)\n"
            "try:\n    import zjit.testing\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["fuzz", "zjit.testing needs hypothesis: install zjit's test extra "
                                       "(pip install 'zjit[test]')"]


def test_testing_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    for name in zjit.testing.__all__:
        assert f"`{name}" in doc, name
