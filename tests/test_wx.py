"""Kernel-enforced W^X: compile, load and run JIT code under PR_SET_MDWE.

The process stays W^X while guest code makes every kind of host call (stream
input and output, LOG, CTL): host calls are served through the context, not by
ctypes callbacks, so no libffi closure (whose memfd is mapped writable and
executable) exists, and no executable mapping has a writable shared alias.

``tests/wx_harness.py`` turns MDWE on before anything imports zjit, runs the code
and fails when any mapping of the process is both writable and executable. Other
suites (the native engine) can reuse it the same way: ``_run_under_mdwe(code)``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("wx_harness.py")
SKIP = 77


def _run_under_mdwe(code: str, timeout: float = 180) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(HARNESS), "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parent,
    )
    if out.returncode == SKIP:
        pytest.skip("the kernel refused PR_SET_MDWE")
    assert out.returncode == 0, out.stdout + out.stderr
    line = [x for x in out.stdout.splitlines() if x.startswith("WX-CHECK ")][-1]
    report: dict[str, object] = json.loads(line[len("WX-CHECK ") :])
    report["stdout"] = out.stdout
    return report


RUN_PROBE = r"""
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
m = mmap.mmap(-1, 4096)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
# MDWE is really on: a writable mapping can no longer become executable.
assert libc.mprotect(addr, 4096, 5) != 0

from llvm_samples import PROBE_IR
from zjit.backends.objfile.compiler import compile_ir
from zjit.backends.native.loader import load_object

cb = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(lambda x: x * 1000)
data = ctypes.c_int64(55)
ext = {"ext_fn": ctypes.cast(cb, ctypes.c_void_p).value, "ext_data": ctypes.addressof(data)}
for level in (0, 1, 2):
    code = load_object(compile_ir(PROBE_IR, triple="x86_64-unknown-linux-gnu", opt_level=level), externals=ext)
    use = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(code.symbol("use_externs"))
    sw = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(code.symbol("switchy"))
    assert use(3) == 3062 and sw(4) == 544
    maps = open("/proc/self/maps").read()
    assert maps.count("zjit-code") == 3, maps
    if level < 2:
        code.close()
print("RAN-OK")
"""


def test_compile_load_run_under_mdwe() -> None:
    report = _run_under_mdwe(RUN_PROBE)
    assert report["mdwe"] == 1
    assert report["wx"] == []
    assert "RAN-OK" in str(report["stdout"])


def test_cached_load_under_mdwe(tmp_path: Path) -> None:
    code = RUN_PROBE.replace(
        "load_object(compile_ir(PROBE_IR, triple=\"x86_64-unknown-linux-gnu\", opt_level=level), externals=ext)",
        "load_object(_cached(level), externals=ext)",
    ).replace(
        "for level in (0, 1, 2):",
        "from zjit.backends.cache import CodeCache, cache_key\n"
        f"cache = CodeCache({str(tmp_path)!r})\n"
        "def _cached(level):\n"
        "    key = cache_key('probe', triple='x86_64-unknown-linux-gnu', cpu='generic', options={'o': level})\n"
        "    obj = cache.get(key)\n"
        "    if obj is None:\n"
        "        obj = compile_ir(PROBE_IR, triple='x86_64-unknown-linux-gnu', opt_level=level)\n"
        "        cache.put(key, obj)\n"
        "    return obj\n"
        "for level in (0, 1, 2, 0, 1, 2):",
    )
    assert "_cached(level)" in code
    report = _run_under_mdwe(code)
    assert report["wx"] == []


def test_harness_detects_wx_mappings() -> None:
    # Negative control, without MDWE: an rwx mapping is reported by the scanner.
    code = (
        "import ctypes, sys\n"
        f"sys.path.insert(0, {str(HARNESS.parent)!r})\n"
        "import wx_harness\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.mmap.restype = ctypes.c_void_p\n"
        "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]\n"
        "p = libc.mmap(None, 4096, 7, 0x22, -1, 0)\n"
        "print(len(wx_harness.wx_mappings()) >= 1, hex(p)[2:] in ' '.join(wx_harness.wx_mappings()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "True"], out.stderr


WHOLE_MODULE = r"""
import sys
import zjit
from zjit.asm import assemble

src = '''
        PUBLIC main
msg:    DB "hello from jit", 10
main:   LD HL, msg
        LD DE, 15
        OUT
        LD BC, 1000
        LD A, 0
loop:   ADD64 A, A, BC
        DEC BC
        CPI BC, 0
        JR ne, loop
        MOV HL, A
        RET
'''
image = assemble(src, "wx")
ref = zjit.Engine(zjit.Policy(cache_dir=sys.argv[1]), backend="interp").load(image).instantiate().run()
# Baseline code, the whole module at O2, and baseline code promoted while it runs.
tiers = ({"tier": "baseline"}, {"tier": "optimized"}, {"tier": "auto", "tier_threshold": 1})
for tier in tiers:
    engine = zjit.Engine(zjit.Policy(cache_dir=sys.argv[1], **tier), backend="jit")
    inst = engine.load(image).instantiate()
    for _ in range(3):
        jit = inst.run()
        assert jit.ok and jit.stdout == b"hello from jit\n" == ref.stdout, (tier, jit, ref)
        assert jit.registers == ref.registers and jit.registers["HL"] == 500500, (tier, jit.registers)
assert "llvmlite" not in sys.modules  # compiled in the worker, not here
print("MODULE-OK")
"""


def test_whole_module_on_the_jit_under_mdwe(tmp_path: Path) -> None:
    report = _run_under_mdwe(WHOLE_MODULE.replace("sys.argv[1]", repr(str(tmp_path))))
    assert report["wx"] == []
    assert "MODULE-OK" in str(report["stdout"])


HOST_CALLS = r"""
import io, sys
import wx_harness
import zjit
from zjit.asm import assemble

head = '''
        PUBLIC main
topic:  DB "t"
buf:    RESB 64
main:   LD HL, buf
        LD DE, 16
'''
body = {  # one host call each
    "stdin stream": "IN",
    "stdout stream": "LD DE, 4\n OUT",
    "LOG": "LD HL, topic\n LD DE, 1\n LD BC, buf\n LD IX, 2\n LOG",
    "CTL": "LD HL, topic\n LD DE, 1\n LD BC, buf\n LD IX, 16\n CTL",
}
engine = zjit.Engine(zjit.Policy(cache_dir=sys.argv[1]), backend="jit")
out, logs, checks = io.BytesIO(), [], {}
for what, code in body.items():
    inst = engine.load(assemble(head + code + "\n RET\n", "wx")).instantiate(
        stdin=io.BytesIO(b"hi there"), stdout=out, log=lambda t, m: logs.append((t, m)), ctl=lambda r: b"answer")
    for _ in range(2):  # a guest thread is reused for the second run
        assert inst.run().ok
        checks[what] = (wx_harness.wx_mappings(), wx_harness.writable_aliases())
        assert checks[what] == ([], []), (what, checks[what])
    assert "r-xs /memfd:zjit-code (deleted)" in wx_harness.code_mappings(), wx_harness.code_mappings()
assert out.getvalue() == b"\0" * 8 and logs == [(b"t", b"\0\0")] * 2, (out.getvalue(), logs)
assert "llvmlite" not in sys.modules  # compiled in the worker: llvmlite's import makes a libffi closure
assert not [m for m in open("/proc/self/maps") if "memfd:libffi" in m]  # no ctypes callback exists
print("HOSTCALLS-OK", sorted(checks))
"""


def test_host_calls_make_no_writable_executable_memory(tmp_path: Path) -> None:
    report = _run_under_mdwe(HOST_CALLS.replace("sys.argv[1]", repr(str(tmp_path))))
    assert report["wx"] == []
    assert "HOSTCALLS-OK ['CTL', 'LOG', 'stdin stream', 'stdout stream']" in str(report["stdout"])


def test_alias_scanner_sees_a_libffi_closure() -> None:
    # Negative control: under MDWE a ctypes callback is a memfd mapped rw-s and
    # r-xs (libffi's fallback), which the scanner reports.
    code = (
        "import ctypes, wx_harness\n"
        "cb = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 1)\n"
        "assert cb() == 1\n"
        "assert wx_harness.writable_aliases(), open('/proc/self/maps').read()\n"
        "print('SCANNER-OK')\n"
    )
    report = _run_under_mdwe(code)
    assert "SCANNER-OK" in str(report["stdout"])
