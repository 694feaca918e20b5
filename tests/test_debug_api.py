"""The API for people who debug guest code (issue 12, item 5): ``Module.inspect_ir``,
``inspect_llvm`` and ``inspect_asm`` give the texts ``zjit disasm`` prints, for the
code the module's engine runs; host I/O of the wrong kind is refused when the
instance is made, not at the first IN or OUT."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

import zjit
from zjit.cli import main
from zjit.runtime import available_backends

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COMPILING = [b for b in ("jit", "arm64") if b in available_backends()]


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("backend", available_backends())
def test_inspect_ir_is_the_disasm_ir_listing(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = zjit.Engine(backend=backend).load(EXAMPLES / "call.s")
    text = module.inspect_ir()
    assert text == cli(["disasm", str(EXAMPLES / "call.s"), "--ir"], capsys)
    assert "function f_0 (<entry>, main)" in text and "mul64" in text


@pytest.mark.skipif("jit" not in available_backends(), reason="needs the jit backend")
@pytest.mark.parametrize("metered", [False, True])
def test_inspect_asm_of_the_jit_is_the_disasm_native_listing(metered: bool,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    policy = zjit.Policy(opt_level=1, fuel=10**6 if metered else None)
    module = zjit.Engine(policy, backend="jit").load(EXAMPLES / "loop.s")
    argv = ["disasm", str(EXAMPLES / "loop.s"), "--native", "x86_64", "-O", "1"] + (["--metered"] if metered else [])
    text = module.inspect_asm()
    assert text == cli(argv, capsys)
    assert ("; opt level 1, metered" in text) is metered
    assert "guard -> trap" in text and "zjit_entry_" in text


@pytest.mark.parametrize("backend", COMPILING)
def test_inspect_llvm_is_what_the_engine_compiles(backend: str) -> None:
    triple = {"jit": "x86_64", "arm64": "aarch64"}[backend]
    small = zjit.Engine(zjit.Policy(mem_size=0x30000), backend=backend).load(EXAMPLES / "upper.s")
    text = small.inspect_llvm()
    assert f'target triple = "{triple}-' in text and "define i32 @zjit_entry_" in text
    assert re.search(rf"icmp ult i64 %\w+, {0x30000}\n", text)  # the engine's memory size is compiled in
    other = zjit.Engine(zjit.Policy(mem_size=0x50000), backend=backend).load(EXAMPLES / "upper.s")
    assert re.search(rf"icmp ult i64 %\w+, {0x50000}\n", other.inspect_llvm())


def test_inspect_targets() -> None:
    module = zjit.Engine(backend="interp").load(EXAMPLES / "hello.s")
    if "jit" in available_backends():
        assert "target x86_64" in module.inspect_asm().splitlines()[0]  # interp: the JIT's code
    aot = module.inspect_asm("aarch64")
    assert "target aarch64" in aot.splitlines()[0] and "memory size from the context" in aot.splitlines()[1]
    assert 'target triple = "aarch64-' in module.inspect_llvm("aarch64")
    with pytest.raises(ValueError, match="unknown target 'riscv64'"):
        module.inspect_asm("riscv64")


@pytest.mark.skipif("arm64" not in available_backends(), reason="needs the arm64 backend")
def test_inspect_asm_of_the_arm64_engine_is_its_own_code() -> None:
    module = zjit.Engine(backend="arm64").load(EXAMPLES / "hello.s")
    header = module.inspect_asm().splitlines()[:2]
    assert "target aarch64" in header[0] and "memory size 0x200000" in header[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"stdin": "text"}, "stdin must be bytes or a binary stream, not str"),
    ({"stdin": io.StringIO("text")}, "not a text stream"),
    ({"stdin": 42}, "not int"),
    ({"stdout": io.StringIO()}, "stdout must be a binary stream, not a text stream"),
    ({"stdout": b""}, "stdout must be None or a binary stream with write(), not bytes"),
    ({"ctl": "echo"}, "ctl must be None or a callable, not str"),
])
def test_instantiate_refuses_host_io_of_the_wrong_kind(kwargs: dict[str, object], message: str) -> None:
    module = zjit.Engine(backend="interp").load(EXAMPLES / "upper.s")
    with pytest.raises(TypeError) as info:
        module.instantiate(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_instantiate_takes_bytes_and_binary_streams() -> None:
    module = zjit.Engine(backend="interp").load(EXAMPLES / "upper.s")
    out = io.BytesIO()
    assert module.instantiate(stdin=io.BytesIO(b"ab"), stdout=out).run().ok and out.getvalue() == b"AB"
    for data in (b"cd", bytearray(b"cd"), memoryview(b"cd")):
        assert module.instantiate(stdin=data).run().stdout == b"CD"
