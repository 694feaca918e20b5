"""``examples/aot`` (issue 12, item 4): two modules with different prefixes in one C
program that writes its input in capitals, then the number of lines.

On x86-64 ``make -C examples/aot run`` builds and runs it (a copy: the checkout is
never written to). The aarch64 objects of the same example run in the arm64
engine's emulator, served as the generated helper serves them (in-memory input,
output buffer flushed after the run); with a cross compiler installed the whole
program is cross-built, and with ``qemu-aarch64`` it runs too.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from zjit.backends.context import HOST_OPS, STATUS_OK
from zjit.backends.objfile import elf
from zjit.backends.targets import EM_AARCH64

from zjit.cli import main as cli
from zjit.isa import MASK64

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "aot"
ZJIT = f"{sys.executable} -m zjit"
CROSS_CC = "aarch64-linux-gnu-gcc"
CROSS_SYSROOT = Path("/usr/aarch64-linux-gnu")

TEXT = b"".join(b"line %d: Hello, zjit! abc xyz {|} \xc3\xa9\n" % i for i in range(4000)) + b"no newline at the end"
"""About 160 KB (more than the helper's 64 KiB output buffer), 4000 newlines."""


def expected(data: bytes) -> bytes:
    """What the program writes: the input with a-z in capitals, then the newline count."""
    return data.upper() + b"%d\n" % data.count(b"\n")


def _make(work: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(["make", "-s", "-C", str(work), f"ZJIT={ZJIT}", *args], input=stdin,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    return done


@pytest.fixture
def example(tmp_path: Path) -> Path:
    work = tmp_path / "aot"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("build"))
    return work


@pytest.mark.skipif(platform.machine() != "x86_64" or not (shutil.which("gcc") and shutil.which("make")),
                    reason="needs gcc and make on an x86-64 host")
def test_make_run_on_x86_64(example: Path) -> None:
    done = _make(example, "run", "CC=gcc", stdin=TEXT)
    assert done.stdout == expected(TEXT)
    assert _make(example, "run", "CC=gcc", stdin=b"").stdout == b"0\n"  # rebuilds nothing, empty input
    program = example / "build" / "x86_64" / "caps-lines"
    again = subprocess.run([str(program)], input=b"one\ntwo\n", capture_output=True, timeout=60,
                           env={"SHOW_HL": "1"})
    assert again.stdout == b"ONE\nTWO\n2\n" and again.stderr == b"HL = 2\n"


def _compile_a64(example: Path) -> dict[str, dict[str, Any]]:
    manifests = {}
    for module in ("caps", "lines"):
        out = example / "a64" / module
        assert cli(["compile", str(example / f"{module}.s"), "--target", "aarch64", "--prefix", f"{module}_",
                    "-o", str(out)]) == 0
        manifests[module] = json.loads((out / "manifest.json").read_text()) | {"dir": str(out)}
    return manifests


def _run_in_emulator(m: dict[str, Any], data: bytes) -> tuple[int, bytes, int]:
    """The module's entry on ``data``, as the helper runs it: (status, output, HL)."""
    from zjit.backends.arm64.emulator import CODE_BASE, MEM_BASE, OUT_BASE, OUT_BUFFER_BYTES, Emulator
    from zjit.backends.objfile.linker import link_image

    out_dir = Path(m["dir"])
    image = link_image((out_dir / m["object"]).read_bytes(), CODE_BASE)
    emu = Emulator()
    try:
        emu.bind_code(m, image)
        memory = bytearray(m["memory"]["size"])
        for seg in m["segments"]:
            if "init_path" in seg:
                memory[seg["base"]:seg["base"] + seg["init_size"]] = (out_dir / seg["init_path"]).read_bytes()
        view = emu.bind_memory(memory)
        assert not m["memory"]["readonly_ranges"]
        emu.reset_ctx(())
        ctx = emu.ctx
        ctx.mem_base, ctx.mem_size = MEM_BASE, m["memory"]["size"]
        ctx.max_depth = m["codegen"]["max_call_depth"]
        ctx.heap_top = m["memory"]["heap_start"]
        ctx.in_mode, ctx.in_ptr, ctx.in_len = 0, emu.bind_input(data), len(data)
        ctx.out_ptr, ctx.out_cap, ctx.out_room = OUT_BASE, OUT_BUFFER_BYTES, MASK64
        for field, address in emu.functions.items():
            setattr(ctx, field, address)
        ctx.stack_limit = emu.ensure_stack(1 << 20) + (64 << 10)
        output = bytearray()

        def flush() -> None:
            output.extend(emu.out[:ctx.out_len])
            ctx.out_len = 0

        def host_call(op: int, a: int, b: int, c: int, d: int) -> int:
            if op != HOST_OPS["out"]:
                return 1
            flush()
            output.extend(view[a:a + b])
            return 0

        emu.handler = host_call
        status = emu.run(image.symbols[m["entry"]["symbol"]])
        flush()  # what <prefix>run does after every run
        return status, bytes(output), int(ctx.regs[0])
    finally:
        emu.close()


def test_aarch64_objects_run_in_the_emulator(example: Path) -> None:
    manifests = _compile_a64(example)
    symbols = {}
    for module, m in manifests.items():
        obj = elf.parse_elf((Path(m["dir"]) / m["object"]).read_bytes())
        assert obj.machine == EM_AARCH64
        symbols[module] = {s.name for s in obj.symbols if s.bind == elf.STB_GLOBAL and s.defined}
        assert symbols[module] and all(s.startswith(f"{module}_") for s in symbols[module])
    assert not symbols["caps"] & symbols["lines"]  # one program can hold both
    caps_status, caps_out, _ = _run_in_emulator(manifests["caps"], TEXT)
    lines_status, lines_out, lines_hl = _run_in_emulator(manifests["lines"], TEXT)
    assert caps_status == lines_status == STATUS_OK
    assert caps_out + lines_out == expected(TEXT)
    assert lines_hl == TEXT.count(b"\n")


@pytest.mark.skipif(shutil.which(CROSS_CC) is None or shutil.which("make") is None,
                    reason=f"needs {CROSS_CC} (Debian: gcc-aarch64-linux-gnu) and make")
def test_aarch64_program_cross_builds(example: Path) -> None:
    _make(example, "all", "TARGET=aarch64", f"CC={CROSS_CC}", "CFLAGS=-std=c11 -O2 -Wall -Wextra -Werror")
    program = example / "build" / "aarch64" / "caps-lines"
    head = program.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == EM_AARCH64  # e_machine
    if shutil.which("qemu-aarch64") is None or not CROSS_SYSROOT.is_dir():
        pytest.skip("the aarch64 program is built; running it needs qemu-aarch64 (Debian: qemu-user)")
    done = subprocess.run(["qemu-aarch64", "-L", str(CROSS_SYSROOT), str(program)], input=TEXT,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected(TEXT)
