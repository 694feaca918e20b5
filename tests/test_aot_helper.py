"""``zjit compile --prefix`` and the generated C helper (issue 12, item 4).

A C host built against ``<prefix>module.c``/``.h`` only (no knowledge of the
context) runs every primitive, trap kind and helper feature, compared with the
interpreter; two builds of one module with different prefixes link into one
program (and with the same prefix they do not: the test can fail); every global
symbol and every declared name carries the prefix, on both targets.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from zjit.backends.aot import AotOptions, build_aot, check_prefix
from zjit.backends.aot.c_helper import c_comment, c_string
from zjit.backends.objfile import elf

import zjit
from zjit.asm import assemble
from zjit.cli import main as cli
from zjit.errors import PolicyError
from zjit.isa import MASK64, TrapKind

HAVE_GCC = shutil.which("gcc") is not None and platform.machine() == "x86_64"
needs_gcc = pytest.mark.skipif(not HAVE_GCC, reason="needs gcc on an x86-64 host")
CFLAGS = ["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wmissing-prototypes"]

PROGRAM = """
        PUBLIC main
        PUBLIC greet
        PUBLIC hi
        PUBLIC echo
        PUBLIC ask
        PUBLIC spin
        PUBLIC deep
        PUBLIC poke
        PUBLIC sum
        PUBLIC count
        PUBLIC flood
        SEGMENT rodata, r
msg:    DB "read only"
        ENDS
hello:  DB "hello, helper", 10
topic:  DB "note"
buf:    RESB 64
resp:   RESB 16

main:   LD HL, hello                    ; output, then a trap: the output is kept
        LD DE, 14
        OUT
        LD HL, 0x7fffff00
        LD64 A, (HL)
        RET
greet:  LD HL, hello                    ; OUT and LOG, A = 7
        LD DE, 14
        OUT
        LD HL, topic
        LD DE, 4
        LD BC, msg
        LD IX, 9
        LOG
        LD A, 7
        RET
hi:     LD HL, hello
        LD DE, 14
        OUT
        RET
echo:   LD HL, buf                      ; input to output, 64 bytes at a time
        LD DE, 64
        IN
        CPI HL, 0
        JR eq, edone
        MOV DE, HL
        LD HL, buf
        OUT
        JR echo
edone:  RET
ask:    LD HL, hello                    ; CTL "hello"; HL = the result
        LD DE, 5
        LD BC, resp
        LD IX, 16
        CTL
        RET
spin:   CALL ask                        ; the host's ctl handler interrupts the run
sloop:  JR sloop
deep:   CALL deep
        RET
poke:   LD HL, msg
        LD DE, 1
        ST8 (HL), DE
        RET
sum:    ADD64 HL, HL, DE
        RET
count:  DEC HL                          ; HL iterations
        CPI HL, 0
        JR ne, count
        RET
flood:  LD BC, 10000                    ; 140,000 bytes: more than the output buffer
fl:     LD HL, hello
        LD DE, 14
        OUT
        DEC BC
        CPI BC, 0
        JR ne, fl
        RET
"""

HOST = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "p_module.h"
#include "m_module.h"

static p_instance *inst;

static void show(const char *what, p_result r) {
    printf("%s %d %llu %llu %llu %llu", what, r.status, (unsigned long long)r.trap_kind,
           (unsigned long long)r.trap_pc, (unsigned long long)r.trap_addr, (unsigned long long)r.trap_len);
    for (int i = 0; i < P_NUM_REGS; i++) printf(" %llu", (unsigned long long)r.regs[i]);
    printf(" %llu %s\n", (unsigned long long)r.fuel, p_trap_name(r.trap_kind));
}

static int refuse(void *user, const uint8_t *src, size_t len) {
    (void)user; (void)src; (void)len;
    return 1;
}

static int pong(void *user, const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap, int64_t *result) {
    (void)user;
    if (req_len != 5 || memcmp(req, "hello", 5) != 0 || cap < 4) return 1;
    memcpy(resp, "pong", 4);
    *result = 4;
    return 0;
}

static int stop(void *user, const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap, int64_t *result) {
    (void)req; (void)req_len; (void)resp; (void)cap;
    p_interrupt((p_instance *)user);
    *result = 0;
    return 0;
}

static char captured[64];
static size_t captured_len;

static int capture(void *user, const uint8_t *src, size_t len) {
    (void)user;
    if (captured_len + len > sizeof captured) return 1;
    memcpy(captured + captured_len, src, len);
    captured_len += len;
    return 0;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "";
    inst = p_instantiate();
    if (inst == NULL) return 99;
    uint64_t regs[P_NUM_REGS] = {5, 7, 0, 0, 0};
    if (strcmp(cmd, "sum") == 0) {
        show("sum", p_run(inst, "sum", regs, 0));
    } else if (strcmp(cmd, "nosuch") == 0) {
        show("nosuch", p_run(inst, "nosuch", NULL, 0));
    } else if (strcmp(cmd, "entry") == 0) {
        show("entry", p_run(inst, NULL, NULL, 0));
    } else if (strcmp(cmd, "ask-handler") == 0) {
        p_io io = {0};
        io.ctl = pong;
        p_set_io(inst, &io);
        p_result r = p_run(inst, "ask", NULL, 0);
        show("ask", r);
        uint8_t *mem = p_memory(inst);
        printf("resp %.4s\n", (const char *)mem + RESP);
    } else if (strcmp(cmd, "spin") == 0) {
        p_io io = {0};
        io.user = inst;
        io.ctl = stop;
        p_set_io(inst, &io);
        show("spin", p_run(inst, "spin", NULL, 0));
    } else if (strcmp(cmd, "refuse") == 0) {
        p_io io = {0};
        io.out = refuse;
        p_set_io(inst, &io);
        show("hi", p_run(inst, "hi", NULL, 0));
        show("greet", p_run(inst, "greet", NULL, 0));
    } else if (strcmp(cmd, "capture") == 0) {
        p_io io = {0};
        io.out = capture;
        p_set_io(inst, &io);
        p_set_input(inst, "abc", 3);
        show("echo", p_run(inst, "echo", NULL, 0));
        printf("captured %.*s\n", (int)captured_len, captured);
    } else if (strcmp(cmd, "deep-small") == 0) {
        p_set_stack_budget(inst, 1024);
        show("deep", p_run(inst, "deep", NULL, 0));
    } else if (strcmp(cmd, "metered") == 0) {
        m_instance *m = m_instantiate();
        uint64_t n[M_NUM_REGS] = {10, 0, 0, 0, 0};
        m_result r = m_run(m, "count", n, M_DEFAULT_FUEL);
        printf("count %d %llu %llu %llu\n", r.status, (unsigned long long)r.trap_kind,
               (unsigned long long)r.trap_pc, (unsigned long long)r.fuel);
        n[0] = 1000;
        r = m_run(m, "count", n, M_DEFAULT_FUEL);
        printf("count %d %llu %llu %llu %s\n", r.status, (unsigned long long)r.trap_kind,
               (unsigned long long)r.trap_pc, (unsigned long long)r.fuel, m_trap_name(r.trap_kind));
        m_free(m);
    } else {
        show(cmd, p_run(inst, cmd, NULL, 0));
    }
    p_free(inst);
    return 0;
}
"""

FUEL = 100


@pytest.fixture(scope="module")
def image() -> zjit.ModuleImage:
    return assemble(PROGRAM, "helper")


def _interp(image: zjit.ModuleImage, export: str | None, fuel: int | None = None, **regs: int) -> zjit.Result:
    engine = zjit.Engine(zjit.Policy(fuel=fuel, use_cache=False), backend="interp")
    inst = engine.load(image).instantiate(stdin=b"", log=None, ctl=None)
    return inst.run(**regs) if export is None else inst.call(export, **regs)


@pytest.fixture(scope="module")
def host(image: zjit.ModuleImage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host above, linked with the module built twice: prefix p_ and, metered, m_."""
    out = tmp_path_factory.mktemp("helper")
    build_aot(image, out / "p", AotOptions(target="x86_64", prefix="p_", opt_level=1))
    build_aot(image, out / "m", AotOptions(target="x86_64", prefix="m_", opt_level=1, fuel=FUEL))
    if not HAVE_GCC:
        return out
    (out / "host.c").write_text(HOST)
    resp = next(s.base for s in image.segments if s.name != "rodata") + 14 + 4 + 64
    cmd = ["gcc", *CFLAGS, f"-DRESP={resp}", "-I", "p", "-I", "m", "-o", "host", "host.c",
           "p/p_module.c", "p/helper.o", "m/m_module.c", "m/helper.o"]
    done = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def _run(host: Path, cmd: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([str(host / "host"), cmd], input=stdin, capture_output=True, timeout=60)
    assert done.returncode == 0, done
    return done


def _line(text: str, what: str) -> list[str]:
    (found,) = [ln.split()[1:] for ln in text.splitlines() if ln.split()[:1] == [what]]
    return found


def _expect(res: zjit.Result, fuel: int = 0) -> list[str]:
    """The host's fields for ``res``: status, trap kind/pc/addr/len, registers, fuel, name."""
    t = res.trap
    fields = [1 if t else 0, int(t.kind) if t else 0, t.pc if t else 0, (t.address or 0) if t else 0,
              (t.length or 0) if t else 0, *(v & MASK64 for v in res.registers.values()),
              res.fuel_left if res.fuel_left is not None else fuel]
    return [str(v) for v in fields] + [t.kind.name if t else "?"]


@needs_gcc
@pytest.mark.parametrize("export", ["main", "greet", "poke", "deep", "ask"])
def test_helper_runs_like_the_interpreter(host: Path, image: zjit.ModuleImage, export: str) -> None:
    done = _run(host, export)
    ref = _interp(image, export)
    assert _line(done.stdout.decode(), export) == _expect(ref)
    # output before the trap (main) or before the end is there, in order, before the result line
    assert done.stdout.decode().startswith(ref.stdout.decode())
    if export == "greet":
        assert done.stderr == b"[note] read only\n"  # the default log sink
    if export == "ask":
        assert ref.registers["HL"] == -7 & MASK64 == int(_line(done.stdout.decode(), "ask")[5])


@needs_gcc
def test_registers_entry_and_unknown_exports(host: Path, image: zjit.ModuleImage) -> None:
    assert _line(_run(host, "sum").stdout.decode(), "sum") == _expect(_interp(image, "sum", hl=5, de=7))
    entry = _run(host, "entry").stdout.decode()
    assert entry.startswith("hello, helper\n") and _line(entry, "entry") == _expect(_interp(image, None))
    assert _line(_run(host, "nosuch").stdout.decode(), "nosuch")[0] == "-1"


@needs_gcc
def test_default_input_and_buffered_output(host: Path) -> None:
    data = bytes(range(256)) * 300  # 76,800 bytes, not a multiple of 64
    done = _run(host, "echo", stdin=data)
    assert done.stdout[:len(data)] == data and _line(done.stdout[len(data):].decode(), "echo")[0] == "0"
    flood = _run(host, "flood").stdout  # 140,000 bytes through a 64 KiB buffer, nothing lost
    assert flood[:140_000] == b"hello, helper\n" * 10_000 and flood[140_000:].startswith(b"flood 0 ")


@needs_gcc
def test_replaced_handlers(host: Path, image: zjit.ModuleImage) -> None:
    ask = _run(host, "ask-handler").stdout.decode()
    assert _line(ask, "ask")[:6] == ["0", "0", "0", "0", "0", "4"] and "resp pong" in ask
    spin = _line(_run(host, "spin").stdout.decode(), "spin")
    assert spin[:2] == ["1", str(int(TrapKind.TIMEOUT))] and spin[-1] == "TIMEOUT"
    refused = _run(host, "refuse").stdout.decode()
    assert _line(refused, "hi")[0] == "-2"  # OUT went to the buffer; the final flush failed
    greet = _line(refused, "greet")  # the pending output fails at LOG: a HOST trap there
    engine = zjit.Engine(zjit.Policy(use_cache=False), backend="interp")
    failed_log = engine.load(image).instantiate(log=lambda topic, msg: 1 // 0).call("greet").trap
    assert failed_log is not None and greet[:3] == ["1", str(int(TrapKind.HOST)), str(failed_log.pc)]
    captured = _run(host, "capture").stdout.decode()
    assert "captured abc" in captured and _line(captured, "echo")[0] == "0"


@needs_gcc
def test_stack_budget_and_fuel(host: Path, image: zjit.ModuleImage) -> None:
    deep = _line(_run(host, "deep-small").stdout.decode(), "deep")
    assert deep[:2] == ["1", "255"] and deep[-1] == "NATIVE_STACK"
    lines = [ln.split() for ln in _run(host, "metered").stdout.decode().splitlines()]
    ok, out_of_fuel = _interp(image, "count", fuel=FUEL, hl=10), _interp(image, "count", fuel=FUEL, hl=1000)
    assert ok.trap is None and lines[0][1:] == ["0", "0", "0", str(ok.fuel_left)]
    assert out_of_fuel.trap is not None and out_of_fuel.trap.kind == TrapKind.FUEL
    assert lines[1][1:] == ["1", str(int(TrapKind.FUEL)), str(out_of_fuel.trap.pc), str(out_of_fuel.fuel_left),
                            "FUEL"]


# -- prefixes ---------------------------------------------------------------------------


def _globals(obj: bytes) -> tuple[set[str], set[str]]:
    """(defined, undefined) global symbol names of an ELF object."""
    syms = elf.parse_elf(obj).symbols
    defined = {s.name for s in syms if s.bind == elf.STB_GLOBAL and s.defined and s.name}
    undefined = {s.name for s in syms if s.index and s.shndx == elf.SHN_UNDEF and s.name}
    return defined, undefined


def _declared(text: str) -> list[str]:
    """Names a C file declares at file scope: macros, struct tags, typedefs,
    functions and arrays (by the shapes the generator writes)."""
    found = re.findall(r"#define (\w+)", text) + re.findall(r"\bstruct (\w+)", text)
    found += re.findall(r"^typedef [^;]*?\(\*(\w+)\)", text, re.M)
    found += re.findall(r"^\} (\w+);", text, re.M) + re.findall(r"^typedef struct \w+ (\w+);", text, re.M)
    found += re.findall(r"^[A-Za-z][\w ]*?\**(\w+)\(", text, re.M)
    found += re.findall(r"^[A-Za-z][^=(\n]*?\**(\w+)\[", text, re.M)
    return found


@pytest.mark.parametrize("target", ["x86_64", "aarch64"])
def test_every_global_symbol_and_declared_name_carries_the_prefix(image: zjit.ModuleImage, tmp_path: Path,
                                                                  target: str) -> None:
    m = build_aot(image, tmp_path, AotOptions(target=target, prefix="Tst9_", opt_level=0))
    defined, undefined = _globals((tmp_path / m["object"]).read_bytes())
    assert undefined == set() and defined and all(s.startswith("Tst9_entry_") for s in defined), defined
    assert m["codegen"]["symbol_prefix"] == "Tst9_" and m["helper"] == {"source": "Tst9_module.c",
                                                                          "header": "Tst9_module.h"}
    for name in ("zjit.h", "Tst9_module.h", "Tst9_module.c"):
        text = (tmp_path / name).read_text()
        assert re.search(r"\b(zjit|ZJIT)_", text) is None, name
        names = _declared(text)
        assert len(names) > 10 and all(n.startswith(("TST9_", "Tst9_")) for n in names), (name, names)
    # the default prefix keeps the earlier names
    d = build_aot(image, tmp_path / "d", AotOptions(target=target, opt_level=0))
    assert d["entry"]["symbol"] == "zjit_entry_0" and "typedef struct zjit_ctx {" in (tmp_path / "d/zjit.h").read_text()
    assert "#define ZJIT_TRAP_OOB 2" in (tmp_path / "d/zjit.h").read_text()


@needs_gcc
def test_helper_compiles_to_prefixed_globals_only(host: Path) -> None:
    subprocess.run(["gcc", *CFLAGS, "-c", "-I", "p", "p/p_module.c", "-o", "p/helper_c.o"], cwd=host, check=True)
    defined, undefined = _globals((host / "p/helper_c.o").read_bytes())
    assert defined and all(s.startswith("p_") for s in defined), defined
    assert {s for s in undefined if not s.startswith("p_entry_")} <= {
        "calloc", "free", "memcpy", "memmove", "memset", "strcmp", "fread", "fwrite", "fputc", "fputs",
        "fflush", "ferror", "stdin", "stdout", "stderr", "_GLOBAL_OFFSET_TABLE_"}, undefined


@needs_gcc
def test_two_prefixes_link_and_one_prefix_twice_does_not(host: Path, image: zjit.ModuleImage) -> None:
    # the host links p_ and m_ builds of the same module; the same prefix twice clashes
    build_aot(image, host / "q", AotOptions(target="x86_64", prefix="p_", opt_level=0, name="again"))
    (host / "twice.c").write_text("int main(void) { return 0; }\n")
    done = subprocess.run(["gcc", "-o", "twice", "twice.c", "p/helper.o", "q/again.o"], cwd=host,
                          capture_output=True, text=True)
    assert done.returncode != 0 and "multiple definition of `p_entry_" in done.stderr


def test_prefix_is_checked(image: zjit.ModuleImage, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("", "9x", "_x", "a-b", "a b", "x" * 65, "é"):
        with pytest.raises(ValueError):
            check_prefix(bad)
        with pytest.raises(PolicyError) as info:
            build_aot(image, tmp_path, AotOptions(prefix=bad))
        assert info.value.code == "BAD_POLICY"
    assert check_prefix("a") == "a" and check_prefix("Mod_2_") == "Mod_2_"
    src = tmp_path / "m.s"
    src.write_text("main: RET\n")
    with pytest.raises(SystemExit) as exit_info:
        cli(["compile", str(src), "--target", "x86_64", "-o", str(tmp_path / "o"), "--prefix", "1up"])
    assert exit_info.value.code == 2 and "--prefix" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_c_literals_are_escaped() -> None:
    assert c_string('a"b\\c?\n') == '"a\\042b\\134c\\077\\012"'
    assert c_string("é") == '"\\303\\251"'
    assert c_comment("x */ y\n") == "x *_/ y?"


@needs_gcc
def test_odd_names_and_segments_compile(tmp_path: Path) -> None:
    """Export and module names that are no C identifiers, several read-only ranges,
    a zero-filled and an all-zero segment: the helper compiles cleanly and runs."""
    from zjit.image import ModuleImage, SegmentDesc

    code = assemble("        PUBLIC main\nmain:   LD HL, 0x1000\n        LD8U HL, (HL)\n        RET\n", "m").code
    image = ModuleImage(code=code, exports={"main": 0, 'say "hi"?\\': 0, "zähler */": 0}, name="odd */ name",
                        segments=(SegmentDesc("a", 0x1000, 16, "r", b"\x2a" + bytes(15)),
                                  SegmentDesc("b", 0x2000, 16, "rw", None),
                                  SegmentDesc("c", 0x3000, 16, "r", bytes(16)),
                                  SegmentDesc("d", 0x5000, 8, "r", b"12345678")))
    m = build_aot(image, tmp_path, AotOptions(target="x86_64", prefix="odd_", opt_level=0))
    assert m["memory"]["readonly_ranges"] == [[0x1000, 0x1010], [0x3000, 0x3010], [0x5000, 0x5008]]
    (tmp_path / "main.c").write_text(r"""
#include <stdio.h>
#include <string.h>
#include "odd_module.h"
int main(void) {
    odd_instance *inst = odd_instantiate();
    for (const char *const *e = odd_exports; *e != NULL; e++) {
        odd_result r = odd_run(inst, *e, NULL, 0);
        printf("%s|%d %llu\n", *e, r.status, (unsigned long long)r.regs[ODD_REG_HL]);
    }
    printf("%d\n", memcmp(odd_memory(inst) + 0x5000, "12345678", 8));
    odd_free(inst);
    return 0;
}
""")
    subprocess.run(["gcc", *CFLAGS, "-o", "main", "main.c", "odd_module.c", m["object"]], cwd=tmp_path, check=True)
    done = subprocess.run([str(tmp_path / "main")], capture_output=True, timeout=60, check=True)
    assert done.stdout.decode() == 'main|0 42\nsay "hi"?\\|0 42\nzähler */|0 42\n0\n'
