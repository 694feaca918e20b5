"""``zjit compile``: AOT outputs, run by a C host (x86-64) and in unicorn (AArch64)."""

from __future__ import annotations

import ctypes
import hashlib
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from zjit.backends.aot import AotOptions, build_aot, safe_file_name
from zjit.backends.context import CTX_SIZE, STATUS_OK, STATUS_TRAPPED, TRAP_OUTPUT_LIMIT, Ctx
from zjit.backends.objfile import elf
from zjit.backends.objfile.linker import link_image
from zjit.backends.targets import EM_AARCH64, EM_X86_64

import zjit
from zjit.asm import assemble
from zjit.cli import main as cli
from zjit.container.detect import dump_image
from zjit.image import ModuleImage, SegmentDesc
from zjit.isa import TrapKind

PROGRAM = """
        PUBLIC main
        PUBLIC sum
        PUBLIC oob
table:  DQ 10, 20, 30, 40
out:    RESB 32
main:   LD HL, table
        LD BC, 4
        LD DE, 0
loop:   LD64 A, (HL)
        ADD64 DE, DE, A
        LD A, 8
        ADD64 HL, HL, A
        DEC BC
        CPI BC, 0
        JR ne, loop
        LD IX, out
        ST64 (IX+8), DE
        MOV HL, DE
        RET
sum:    ADD64 HL, HL, DE
        RET
oob:    LD HL, 0x7fffff00
        LD64 A, (HL)
        RET
"""


@pytest.fixture(scope="module")
def module_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("aot") / "prog.zasm.bin"
    path.write_bytes(dump_image(assemble(PROGRAM, "prog"), "zasm"))
    return path


def _reference(export: str) -> zjit.Result:
    engine = zjit.Engine(zjit.Policy(), backend="interp")
    inst = engine.load(assemble(PROGRAM, "prog")).instantiate()
    return inst.call(export) if export != "main" else inst.run()


def _compile(module_file: Path, out: Path, *extra: str) -> dict[str, Any]:
    assert cli(["compile", str(module_file), "-o", str(out), *extra]) == 0
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return manifest


def test_outputs_and_manifest(module_file: Path, tmp_path: Path) -> None:
    m = _compile(module_file, tmp_path, "--target", "x86_64")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "prog.o", "segments", "zjit.h",
                                                         "zjit_module.c", "zjit_module.h"]
    assert m["helper"] == {"source": "zjit_module.c", "header": "zjit_module.h"}
    assert m["format"] == "zjit-aot/1"
    assert m["llvm_version"].startswith("22.") and m["zjit_version"] == zjit.__version__
    assert m["target"]["triple"] == "x86_64-unknown-linux-gnu"
    assert m["module"]["sha256"] == hashlib.sha256(module_file.read_bytes()).hexdigest()
    assert m["object"] == "prog.o"
    obj = (tmp_path / "prog.o").read_bytes()
    assert m["object_sha256"] == hashlib.sha256(obj).hexdigest()
    parsed = elf.parse_elf(obj)
    assert parsed.machine == EM_X86_64
    globals_ = {s.name for s in parsed.symbols if s.bind == elf.STB_GLOBAL and s.defined}
    syms = {m["entry"]["symbol"]} | {e["symbol"] for e in m["exports"].values()}
    assert syms <= globals_
    assert m["undefined_symbols"] == []
    assert set(m["exports"]) == {"main", "sum", "oob"}
    assert m["imports"] == {"mask": 0, "primitives": []}
    assert m["memory"]["size"] == 2 << 20 and m["memory"]["heap_start"] >= 4096 + 64
    assert m["codegen"]["metered"] is False and m["codegen"]["max_call_depth"] == 1024
    (seg,) = m["segments"]
    data = (tmp_path / seg["init_path"]).read_bytes()
    assert seg["init_path"] == "segments/data.0.bin" and seg["init_size"] == len(data)
    assert seg["sha256"] == hashlib.sha256(data).hexdigest()
    assert seg["permissions"] == "rw" and seg["base"] == 4096
    header = (tmp_path / "zjit.h").read_text()
    assert f"int32_t {m['exports']['sum']['symbol']}(zjit_ctx *ctx);" in header
    assert f"sizeof(zjit_ctx) == {CTX_SIZE}" in header


def test_options_are_recorded_and_change_the_code(module_file: Path, tmp_path: Path) -> None:
    plain = _compile(module_file, tmp_path / "a", "--target", "x86_64")
    metered = _compile(module_file, tmp_path / "b", "--target", "x86_64", "--fuel", "500",
                       "--max-call-depth", "7", "-O", "0", "--name", "custom")
    assert metered["codegen"]["metered"] is True and metered["codegen"]["fuel"] == 500
    assert metered["codegen"]["max_call_depth"] == 7 and metered["codegen"]["opt_level"] == 0
    assert metered["object"] == "custom.o" and (tmp_path / "b" / "custom.o").exists()
    assert metered["object_sha256"] != plain["object_sha256"]


C_PRELUDE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zjit.h"

/* Guest memory with the first segment's bytes in place. */
static uint8_t *load_memory(void) {
    uint8_t *mem = calloc(1, MEM_SIZE);
    FILE *f = fopen(SEG_PATH, "rb");
    if (!mem || !f || fread(mem + SEG_BASE, 1, SEG_SIZE, f) != SEG_SIZE) exit(99);
    fclose(f);
    return mem;
}
"""

C_HOST = C_PRELUDE + r"""
static zjit_ctx ctx;

static void report(const char *what, int32_t st) {
    printf("%s %d", what, (int)st);
    for (int i = 0; i < 5; i++) printf(" %llu", (unsigned long long)ctx.regs[i]);
    printf(" %llu %llu %llu\n", (unsigned long long)ctx.trap_kind, (unsigned long long)ctx.trap_pc,
           (unsigned long long)ctx.trap_addr);
}

int main(void) {
    uint8_t *mem = load_memory();
    ctx.mem_base = mem;
    ctx.mem_size = MEM_SIZE;
    ctx.max_depth = MAX_DEPTH;
    ctx.heap_top = HEAP_START;
    ctx.fn_memmove = memmove;
    ctx.fn_memset = memset;
    report("main", ENTRY_MAIN(&ctx));
    uint64_t stored;
    memcpy(&stored, mem + OUT_ADDR, 8);
    printf("stored %llu\n", (unsigned long long)stored);
    ctx.regs[0] = 5; ctx.regs[1] = 7;
    report("sum", ENTRY_SUM(&ctx));
    report("oob", ENTRY_OOB(&ctx));
    return 0;
}
"""


def _c_host(out: Path, m: dict[str, Any], source: str, defines: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Build ``source`` (with the first segment's file and the memory size defined)
    against the object in ``out`` and run it."""
    seg = m["segments"][0]
    defines = {"MEM_SIZE": m["memory"]["size"], "SEG_PATH": json.dumps(str(out / seg["init_path"])),
               "SEG_BASE": seg["base"], "SEG_SIZE": seg["init_size"], **defines}
    (out / "host.c").write_text(source)
    cmd = ["gcc", "-std=c11", "-Wall", "-Werror", "-o", str(out / "host"), str(out / "host.c"), str(out / m["object"])]
    cmd += [f"-D{k}={v}" for k, v in defines.items()]
    subprocess.run(cmd, check=True, capture_output=True, cwd=out)
    return subprocess.run([str(out / "host")], capture_output=True, text=True, timeout=30, check=True)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_host_links_and_runs_the_object(module_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "build"
    m = _compile(module_file, out, "--target", "x86_64")
    defines = {
        "MAX_DEPTH": m["codegen"]["max_call_depth"],
        "HEAP_START": m["memory"]["heap_start"],
        "OUT_ADDR": 4096 + 32 + 8,
        "ENTRY_MAIN": m["entry"]["symbol"],
        "ENTRY_SUM": m["exports"]["sum"]["symbol"],
        "ENTRY_OOB": m["exports"]["oob"]["symbol"],
    }
    run = _c_host(out, m, C_HOST, defines)
    lines = {ln.split()[0]: ln.split()[1:] for ln in run.stdout.splitlines()}

    ref = _reference("main")
    assert lines["main"][:6] == [str(STATUS_OK)] + [str(v) for v in ref.registers.values()]
    assert lines["stored"] == ["100"]
    assert lines["sum"][:2] == [str(STATUS_OK), "12"]
    trap = _reference("oob").trap
    assert trap is not None and trap.kind == TrapKind.OOB
    assert lines["oob"][0] == str(STATUS_TRAPPED)
    assert int(lines["oob"][6]) == int(TrapKind.OOB)
    assert int(lines["oob"][7]) == trap.pc
    assert int(lines["oob"][8]) == trap.address


HOST_PROGRAM = """
        PUBLIC greet
        PUBLIC fail
hello:  DB "hi!"
greet:  LD HL, hello
        LD DE, 3
        OUT
        LD BC, hello
        LD IX, 2
        LD DE, 3
        LOG
        INC A
        RET
fail:   LD HL, hello
        LD DE, 1
        LD BC, hello
        LD IX, 3
        CTL
        RET
"""

C_HOST_CALLS = C_PRELUDE + r"""
/* host_call: OUT to stdout, LOG as [topic] message, CTL fails (a HOST trap). */
static int64_t host_call(zjit_ctx *c, uint64_t op, uint64_t a, uint64_t b, uint64_t x, uint64_t d) {
    switch (op) {
    case ZJIT_HOST_OUT: fwrite(c->mem_base + a, 1, b, stdout); return 0;
    case ZJIT_HOST_LOG:
        printf("[%.*s] %.*s\n", (int)b, (const char *)c->mem_base + a, (int)d, (const char *)c->mem_base + x);
        return 0;
    default: return 1;
    }
}

int main(void) {
    static zjit_ctx ctx;
    ctx.mem_base = load_memory();
    ctx.mem_size = MEM_SIZE;
    ctx.max_depth = 16;
    ctx.out_cap = 0;          /* every OUT calls host_call */
    ctx.out_room = UINT64_MAX; /* no output budget */
    ctx.host_call = host_call;
    ctx.fn_memmove = memmove;
    ctx.fn_memset = memset;
    int32_t st = ENTRY_GREET(&ctx);
    printf("\ngreet %d %llu\n", (int)st, (unsigned long long)ctx.regs[ZJIT_REG_A]);
    st = ENTRY_FAIL(&ctx);
    printf("fail %d %llu %llu\n", (int)st, (unsigned long long)ctx.trap_kind, (unsigned long long)ctx.trap_pc);
    ctx.out_room = 2;         /* the code's own budget check: OUT of 3 bytes traps, host_call is not called */
    st = ENTRY_GREET(&ctx);
    printf("budget %d %llu %llu %llu\n", (int)st, (unsigned long long)ctx.trap_kind, (unsigned long long)ctx.trap_pc,
           (unsigned long long)ctx.out_room);
    ctx.out_room = 3;         /* exactly enough */
    st = ENTRY_GREET(&ctx);
    printf("\nexact %d %llu\n", (int)st, (unsigned long long)ctx.out_room);
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_host_serves_host_calls(tmp_path: Path) -> None:
    src = tmp_path / "hc.zasm.bin"
    src.write_bytes(dump_image(assemble(HOST_PROGRAM, "hc"), "zasm"))
    out = tmp_path / "build"
    m = _compile(src, out, "--target", "x86_64")
    assert m["abi"]["host_ops"] == {"in": 1, "out": 2, "log": 3, "ctl": 4}
    assert "zjit_host_call_fn host_call;" in (out / "zjit.h").read_text()
    run = _c_host(out, m, C_HOST_CALLS, {"ENTRY_GREET": m["exports"]["greet"]["symbol"],
                                          "ENTRY_FAIL": m["exports"]["fail"]["symbol"]})
    module = zjit.Engine(zjit.Policy(use_cache=False), backend="interp").load(assemble(HOST_PROGRAM, "hc"))
    trap = module.instantiate(log=None, ctl=lambda r: 1 // 0).call("fail").trap
    assert trap is not None and trap.kind == TrapKind.HOST
    # OUT "hi!", LOG topic "hi!" message "hi"; then greet's status and A, fail's trap;
    # greet past the output budget traps OUTPUT_LIMIT at its OUT, nothing written
    over = zjit.Engine(zjit.Policy(use_cache=False, max_output_bytes=2), backend="interp").load(
        assemble(HOST_PROGRAM, "hc")).instantiate(log=None).call("greet").trap
    assert over is not None
    out_pc = over.pc
    assert run.stdout == (f"hi![hi!] hi\n\ngreet {STATUS_OK} 1\nfail {STATUS_TRAPPED} {int(TrapKind.HOST)} {trap.pc}\n"
                          f"budget {STATUS_TRAPPED} {TRAP_OUTPUT_LIMIT} {out_pc} 2\n"
                          f"hi![hi!] hi\n\nexact {STATUS_OK} 0\n")


def _run_a64(obj: bytes, m: dict[str, Any], data: bytes, calls: list[tuple[str, dict[int, int]]]) -> list[Ctx]:
    from unicorn import (  # type: ignore[attr-defined]
        UC_ARCH_ARM64,
        UC_MODE_ARM,
        UC_PROT_EXEC,
        UC_PROT_READ,
        UC_PROT_WRITE,
        Uc,
    )
    from unicorn import arm64_const as a

    base, mem_at, ctx_at, stack, sentinel = 0x400000, 0x1000_0000, 0x2000_0000, 0x3000_0000, 0x4000_0000
    image = link_image(obj, base)
    uc: Any = Uc(UC_ARCH_ARM64, UC_MODE_ARM)  # type: ignore[no-untyped-call]
    uc.reg_write(a.UC_ARM64_REG_CPACR_EL1, uc.reg_read(a.UC_ARM64_REG_CPACR_EL1) | (3 << 20))
    prot = {"rx": UC_PROT_READ | UC_PROT_EXEC, "r": UC_PROT_READ, "rw": UC_PROT_READ | UC_PROT_WRITE}
    for r in image.regions:
        uc.mem_map(base + r.offset, r.size, prot[r.perms])
        uc.mem_write(base + r.offset, r.data)
    size = m["memory"]["size"]
    uc.mem_map(mem_at, size, UC_PROT_READ | UC_PROT_WRITE)
    seg = m["segments"][0]
    uc.mem_write(mem_at + seg["base"], data)
    uc.mem_map(ctx_at, 0x1000, UC_PROT_READ | UC_PROT_WRITE)
    uc.mem_map(stack, 0x100000, UC_PROT_READ | UC_PROT_WRITE)
    uc.mem_map(sentinel, 0x1000, UC_PROT_READ | UC_PROT_EXEC)
    uc.mem_write(sentinel, struct.pack("<I", 0xD4200000))  # brk #0
    results = []
    for name, regs in calls:
        ctx = Ctx()
        ctx.mem_base, ctx.mem_size = mem_at, size
        ctx.max_depth = m["codegen"]["max_call_depth"]
        ctx.heap_top = m["memory"]["heap_start"]
        for i, v in regs.items():
            ctx.regs[i] = v
        uc.mem_write(ctx_at, bytes(ctx))
        uc.reg_write(a.UC_ARM64_REG_X0, ctx_at)
        uc.reg_write(a.UC_ARM64_REG_SP, stack + 0x100000)
        uc.reg_write(a.UC_ARM64_REG_LR, sentinel)
        sym = m["entry"]["symbol"] if name == "main" else m["exports"][name]["symbol"]
        uc.emu_start(image.symbols[sym], sentinel, count=1_000_000)
        back = Ctx.from_buffer_copy(bytes(uc.mem_read(ctx_at, ctypes.sizeof(Ctx))))
        back.trap_kind = back.trap_kind if uc.reg_read(a.UC_ARM64_REG_X0) == STATUS_TRAPPED else 0
        results.append(back)
    return results


@pytest.mark.parametrize("level", ["0", "2"])
def test_aarch64_object_runs_in_unicorn(module_file: Path, tmp_path: Path, level: str) -> None:
    m = _compile(module_file, tmp_path, "--target", "aarch64", "-O", level)
    obj = (tmp_path / m["object"]).read_bytes()
    assert elf.parse_elf(obj).machine == EM_AARCH64
    assert m["target"]["triple"] == "aarch64-unknown-linux-gnu"
    data = (tmp_path / m["segments"][0]["init_path"]).read_bytes()
    main, total, oob = _run_a64(obj, m, data, [("main", {}), ("sum", {0: 5, 1: 7}), ("oob", {})])
    ref = _reference("main")
    assert list(main.regs) == list(ref.registers.values())
    assert total.regs[0] == 12
    trap = _reference("oob").trap
    assert trap is not None
    assert (oob.trap_kind, oob.trap_pc, oob.trap_addr) == (int(TrapKind.OOB), trap.pc, trap.address)


def test_readonly_zeroed_and_odd_segment_names(tmp_path: Path) -> None:
    code = assemble("main: RET\n", "m").code
    image = ModuleImage(
        code=code,
        segments=(
            SegmentDesc("rodata", 0x1000, 256, "r", b"hello"),
            SegmentDesc("bss", 0x2000, 4096, "rw", None),
            SegmentDesc("../evil/name", 0x4000, 16, "rw", b"x" * 16),
            SegmentDesc(".hidden", 0x5000, 16, "rw", b"y" * 16),
        ),
        name="m",
        mem_min=1 << 16,
    )
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "stale.bin").write_bytes(b"old")
    m = build_aot(image, tmp_path, AotOptions(target="x86_64", opt_level=0))
    segs = {s["name"]: s for s in m["segments"]}
    assert segs["bss"] == {"name": "bss", "base": 0x2000, "size": 4096, "permissions": "rw", "zeroed": True}
    assert segs["rodata"]["init_size"] == 5 and segs["rodata"]["permissions"] == "r"
    assert segs["../evil/name"]["init_path"] == "segments/_.._evil_name.bin"
    assert segs[".hidden"]["init_path"] == "segments/_.hidden.bin"
    files = sorted(p.name for p in (tmp_path / "segments").iterdir())
    assert files == ["_.._evil_name.bin", "_.hidden.bin", "rodata.bin"]  # stale.bin removed
    assert m["memory"]["readonly_ranges"] == [[0x1000, 0x1100]]
    assert m["memory"]["size"] == 1 << 16 and m["memory"]["min_bytes"] == 1 << 16
    assert safe_file_name("a/b\\c d") == "a_b_c_d"


def test_rejected_modules_and_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["compile", str(tmp_path / "missing.zasm.bin"), "--target", "x86_64", "-o", str(tmp_path)]) == 3
    assert "BAD_PATH" in capsys.readouterr().err
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\xff\xff\xff\xff")  # raw code, invalid opcode
    assert cli(["compile", str(bad), "--target", "x86_64", "-o", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "bad.bin" in err and ("BAD_OPCODE" in err or "FALLS_OFF_END" in err)
    assert not (tmp_path / "o" / "manifest.json").exists()
    with pytest.raises(SystemExit) as info:
        cli(["compile", str(bad), "--target", "mips", "-o", str(tmp_path)])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli(["compile", str(bad), "-o", str(tmp_path)])
    assert info.value.code == 2
    small = tmp_path / "s.zasm.bin"
    small.write_bytes(dump_image(assemble(PROGRAM, "s"), "zasm"))
    assert cli(["compile", str(small), "--target", "x86_64", "-o", str(tmp_path / "p"), "--mem-size", "4096"]) == 3
    assert "OUT_OF_BOUNDS" in capsys.readouterr().err
