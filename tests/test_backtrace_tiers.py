"""Backtraces through mixed stacks (docs/api.md, "Backtraces"): baseline and O2
frames interleaved under ``tier="auto"``, with chosen sets of entries promoted
(none, alternate functions, all), and the frame tables of O2 objects
(every guest CALL of a module is a call site in its object's table).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
from zjit.backends.llvm import lower
from zjit.backends.llvm.options import CodegenOptions
from zjit.backends.middle.lift import lift
from zjit.backends.objfile.compile_worker import compile_object
from zjit.backends.objfile.frames import frame_table
from zjit.backends.targets import AARCH64_TRIPLE, X86_64_TRIPLE
from zjit.backends.tiering import code as tiered

import zjit
from zjit.asm import assemble
from zjit.image import ModuleImage, SegmentDesc
from zjit.isa import TrapKind
from zjit.result import Result

CHAIN = (Path(__file__).parent / "data" / "backtrace_chain.s").read_text()
"""The program of tests/conformance/test_backtrace.py (IX selects the trap kind,
BC the depth of the recursion of ``down``)."""
KINDS = {1: TrapKind.OOB, 2: TrapKind.DIV0, 3: TrapKind.CALL_DEPTH, 5: TrapKind.HOST}

ENGINES = [b for b in ("jit", "arm64") if b in zjit.available_backends()]
WAIT = 300.0
CASES = [("main", 1, 0), ("main", 2, 0), ("main", 3, 0), ("main", 5, 0), ("deep", 2, 5), ("deep", 2, 80),
         ("flat", 2, 0)]


def _image() -> ModuleImage:
    image = assemble(CHAIN, "chain.s")
    return dataclasses.replace(image, segments=image.segments + (SegmentDesc("ro", 0x8000, 16, "r", b"ro"),))


def _ctl(request: bytes) -> bytes:
    raise RuntimeError("no control here")


def _run(module: zjit.Module, call: str, ix: int, bc: int) -> Result:
    return module.instantiate(ctl=_ctl, log=None).call(call, ix=ix, bc=bc, a=0)


@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("promote", ["none", "even", "odd", "all"])
def test_mixed_stacks_give_the_interpreters_backtrace(backend: str, promote: str) -> None:
    image = _image()
    policy: dict[str, Any] = {"max_call_depth": 256, "use_cache": False}
    ref = zjit.Engine(zjit.Policy(**policy), backend="interp").load(image)
    module = zjit.Engine(zjit.Policy(tier="auto", tier_threshold=1 << 30, **policy), backend=backend).load(image)
    code = module.executable.default_code()  # type: ignore[attr-defined]
    assert isinstance(code, tiered.TieredCode)
    functions = sorted(module.program.functions)
    chosen = {"none": [], "all": functions, "even": functions[::2], "odd": functions[1::2]}[promote]
    for pc in chosen:
        code.queue(code.image.ids[pc], rearm=False)
    assert code.wait(WAIT)
    assert {p for p, t in code.tiers().items() if t == "optimized"} == set(chosen), code.refused
    for call, ix, bc in CASES:
        expected = _run(ref, call, ix, bc)
        got = _run(module, call, ix, bc)
        assert got.trap is not None and got.trap.kind is KINDS[ix]
        assert got.trap.backtrace is not None, (call, ix, bc)
        assert got == expected, (call, ix, bc)
        assert (got.trap.backtrace, got.trap.omitted) == (expected.trap.backtrace, expected.trap.omitted)  # type: ignore[union-attr]


def _call_pcs() -> set[int]:
    """The pcs of the CALL instructions of CHAIN (from its debug lines)."""
    lines = CHAIN.splitlines()
    return {pc for pc, d in _image().debug.items() if lines[d.line - 1].split(":")[-1].split()[0] == "CALL"}


@pytest.mark.parametrize("triple", [X86_64_TRIPLE, AARCH64_TRIPLE])
@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_every_guest_call_is_a_call_site_of_the_frame_table(triple: str, opt_level: int) -> None:
    image = _image()
    program = zjit.Engine(zjit.Policy(use_cache=False), backend="interp").load(image).program
    opts = CodegenOptions(triple=triple, opt_level=opt_level, call_sites=True, mem_size=1 << 16, readonly=())
    obj = compile_object(lower(lift(program, opts.versioning), opts).text, triple, opt_level, opts.cpu)
    table = frame_table(obj)
    assert table is not None
    calls = _call_pcs()
    assert len(calls) >= 6
    assert set(table.call_sites()) == calls


@pytest.mark.parametrize("opt_level", [0, 2])
def test_call_sites_leave_the_x86_code_alone(opt_level: int) -> None:
    """The debug locations change no byte of the code (a kernel without versioned
    loops, whose functions no inliner would have touched anyway: docs/jit.md)."""
    from elftools.elf.elffile import ELFFile

    path = Path(__file__).parent.parent / "bench" / "kernels" / "fib_rec.s"
    program = zjit.Engine(zjit.Policy(use_cache=False), backend="interp").load(path).program
    texts = []
    for call_sites in (False, True):
        opts = CodegenOptions(triple=X86_64_TRIPLE, opt_level=opt_level, call_sites=call_sites,
                              mem_size=1 << 20, readonly=())
        obj = compile_object(lower(lift(program, opts.versioning), opts).text, X86_64_TRIPLE, opt_level, opts.cpu)
        elf = ELFFile(io.BytesIO(obj))
        texts.append(elf.get_section_by_name(".text").data())
        assert (elf.get_section_by_name(".debug_line") is not None) == call_sites
    assert texts[0] == texts[1]


def test_the_run_entry_routine_is_named_alike() -> None:
    """The frame tables know the run's entry routine by name (an entry body may
    tail-jump into its guest function, whose return address then lies there)."""
    from zjit.backends.llvm.runtime_asm import RT_ENTER
    from zjit.backends.objfile.frames import RUN_ENTRY_ROUTINE

    assert RUN_ENTRY_ROUTINE == RT_ENTER
