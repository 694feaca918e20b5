"""Compile worker, pool recycling and crash handling, target constants."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from llvm_samples import SIMPLE_IR, big_ir
from zjit.backends import targets
from zjit.backends.native.loader import load_object
from zjit.backends.objfile import compiler, elf
from zjit.backends.objfile.compiler import CompilerPool, compile_ir, compile_ir_inprocess, llvm_version

from zjit.errors import PolicyError

X86 = targets.X86_64_TRIPLE
A64 = targets.AARCH64_TRIPLE


@pytest.fixture
def pool() -> CompilerPool:
    p = CompilerPool(max_workers=1, max_modules=3)
    yield p
    p.shutdown()


def test_target_constants_match_llvm() -> None:
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    for t in targets.TARGETS.values():
        tm = llvm.Target.from_triple(t.triple).create_target_machine(cpu="generic", reloc="pic", codemodel="small")
        assert str(tm.target_data) == t.data_layout
    assert targets.HOST_TRIPLE == llvm.get_process_triple() == X86
    assert targets.AARCH64_TRIPLE == "aarch64-unknown-linux-gnu"
    assert targets.data_layout(A64) == targets.AARCH64_DATA_LAYOUT


def test_llvm_version_constant_matches_llvmlite() -> None:
    import llvmlite
    import llvmlite.binding as llvm

    assert compiler.llvmlite_version() == llvmlite.__version__
    assert compiler.bundled_llvm_version() == ".".join(map(str, llvm.llvm_version_info))
    assert llvm_version() == f"LLVM {compiler.bundled_llvm_version()} (llvmlite {llvmlite.__version__})"


def test_version_and_worker_compile_do_not_import_llvmlite() -> None:
    code = (
        "import sys\n"
        "from zjit.backends.objfile.compiler import compile_ir, llvm_version\n"
        "v = llvm_version()\n"
        f"obj = compile_ir('define i64 @f() {{\\n ret i64 4\\n}}\\n', triple='{X86}', opt_level=2)\n"
        "assert obj[:4] == b'\\x7fELF'\n"
        "print(v, 'llvmlite' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"
    assert out.stdout.startswith("LLVM 22.")


def _call(obj: bytes, name: str, *args: int) -> int:
    with load_object(obj) as code:
        proto = ctypes.CFUNCTYPE(ctypes.c_int64, *([ctypes.c_int64] * len(args)))
        return int(proto(code.symbol(name))(*args))


@pytest.mark.parametrize("level", [0, 1, 2])
def test_compile_and_run_each_level(level: int) -> None:
    obj = compile_ir(SIMPLE_IR, triple=X86, opt_level=level)
    assert obj[:4] == b"\x7fELF"
    assert _call(obj, "add_mul", 2, 5) == 21
    assert _call(obj, "sum_to", 100) == 5050
    # The worker and the in-process path produce the same object.
    assert compile_ir_inprocess(SIMPLE_IR, triple=X86, opt_level=level) == obj


def test_levels_differ_in_code() -> None:
    ir, _ops = big_ir(300)
    sizes = {lvl: len(compile_ir(ir, triple=X86, opt_level=lvl)) for lvl in (0, 1, 2)}
    assert sizes[0] > sizes[2]  # O0 keeps every value in memory
    assert sizes[1] != sizes[0]


def test_aarch64_object() -> None:
    obj = compile_ir(SIMPLE_IR, triple=A64, opt_level=2)
    parsed = elf.parse_elf(obj)
    assert parsed.machine == targets.EM_AARCH64
    assert {s.name for s in parsed.symbols} >= {"add_mul", "sum_to"}


def test_invalid_ir_is_compile_failed_and_keeps_worker() -> None:
    pool = CompilerPool(max_modules=10)
    pool.compile(SIMPLE_IR, triple=X86, opt_level=0)
    (pid,) = pool.pids()
    with pytest.raises(PolicyError) as info:
        pool.compile("define i64 @f( {", triple=X86, opt_level=0)
    assert info.value.code == "COMPILE_FAILED"
    assert "invalid LLVM IR" in info.value.message
    with pytest.raises(PolicyError) as info:  # parses, but does not verify
        pool.compile(
            "define i64 @f() {\n  %a = add i64 %b, 1\n  %b = add i64 %a, 1\n  ret i64 %b\n}\n",
            triple=X86,
            opt_level=2,
        )
    assert info.value.code == "COMPILE_FAILED"
    assert "dominate" in info.value.message
    assert pool.pids() == [pid]
    pool.shutdown()


def test_bad_arguments() -> None:
    with pytest.raises(PolicyError) as info:
        compile_ir(SIMPLE_IR, triple=X86, opt_level=3)
    assert info.value.code == "BAD_POLICY"
    with pytest.raises(PolicyError) as info:
        compile_ir(SIMPLE_IR, triple="nonsense-unknown-nowhere", opt_level=0)
    assert info.value.code == "COMPILE_FAILED"
    assert "nonsense" in info.value.message
    with pytest.raises(PolicyError) as info:
        compile_ir_inprocess("garbage", triple=X86, opt_level=0)
    assert info.value.code == "COMPILE_FAILED"


def test_worker_recycled_after_max_modules(pool: CompilerPool) -> None:
    seen = []
    for _ in range(7):
        pool.compile(SIMPLE_IR, triple=X86, opt_level=0)
        seen.append(pool.pids()[0])
    # max_modules=3: modules 1-2 on worker A, the 3rd retires A (the replacement is
    # already idle), and so on.
    assert seen[0] == seen[1]
    assert seen[2] != seen[1] and seen[2] == seen[3] == seen[4]
    assert seen[5] != seen[4]
    assert pool.started == 3
    for old in (seen[1], seen[4]):  # retired workers exit and are reaped
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _exists(old):
            time.sleep(0.05)
        assert not _exists(old)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_idle_worker_killed_is_replaced_silently(pool: CompilerPool) -> None:
    pool.compile(SIMPLE_IR, triple=X86, opt_level=0)
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    obj = pool.compile(SIMPLE_IR, triple=X86, opt_level=0)
    assert _call(obj, "add_mul", 1, 1) == 6
    assert pool.pids() and pool.pids()[0] != pid


def _compile_in_thread(pool: CompilerPool, ir: str) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pool.compile(ir, triple=X86, opt_level=2)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t, errors


def _busy_worker_pid(pool: CompilerPool) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        busy = pool.pids(busy=True)
        if busy:
            return int(busy[0])
        time.sleep(0.005)
    raise AssertionError("no busy worker found")


def test_worker_killed_mid_compile_fails_module_then_recovers(pool: CompilerPool) -> None:
    pool.compile(SIMPLE_IR, triple=X86, opt_level=0)  # worker warm
    ir, _ = big_ir(40000)
    t, errors = _compile_in_thread(pool, ir)
    pid = _busy_worker_pid(pool)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    t.join(60)
    assert len(errors) == 1
    err = errors[0]
    assert isinstance(err, PolicyError) and err.code == "COMPILE_FAILED"
    assert "SIGKILL" in err.message and str(pid) in err.message
    obj = pool.compile(SIMPLE_IR, triple=X86, opt_level=1)
    assert _call(obj, "sum_to", 10) == 55
    assert pool.pids()[0] != pid


def test_worker_abort_reports_its_stderr(pool: CompilerPool) -> None:
    pool.compile(SIMPLE_IR, triple=X86, opt_level=0)
    ir, _ = big_ir(40000)
    t, errors = _compile_in_thread(pool, ir)
    pid = _busy_worker_pid(pool)
    # What an LLVM assertion failure looks like: a message on stderr, then SIGABRT.
    with open(f"/proc/{pid}/fd/2", "a") as f:
        f.write("SelectionDAG.cpp:123: Assertion `x' failed.\n")
    os.kill(pid, signal.SIGABRT)
    t.join(60)
    assert len(errors) == 1 and isinstance(errors[0], PolicyError)
    assert "SIGABRT" in errors[0].message
    assert "Assertion `x' failed" in errors[0].message


def test_timeout_kills_worker() -> None:
    p = CompilerPool(max_workers=1, timeout=0.05)
    try:
        ir, _ = big_ir(40000)
        with pytest.raises(PolicyError) as info:
            p.compile(ir, triple=X86, opt_level=2)
        assert "timed out" in info.value.message
    finally:
        p.shutdown()


def test_threads_share_a_pool() -> None:
    p = CompilerPool(max_workers=2, max_modules=5)
    results: dict[int, int] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            ir = SIMPLE_IR.replace("mul i64 %s, 3", f"mul i64 %s, {i}")
            obj = p.compile(ir, triple=X86, opt_level=i % 3)
            results[i] = _call(obj, "add_mul", 1, 2)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2, 14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    p.shutdown()
    assert not errors
    assert results == {i: 3 * i for i in range(2, 14)}
    assert 2 <= p.started <= 6  # at most two at a time, recycled every 5 modules
    with pytest.raises(PolicyError):
        p.compile(SIMPLE_IR, triple=X86, opt_level=0)


def test_worker_protocol_rejects_garbage() -> None:
    from zjit.backends.objfile import compile_worker as cw

    env = dict(os.environ, ZJIT_WORKER_PRELOAD="0")
    out = subprocess.run(
        [sys.executable, "-m", "zjit.backends.objfile.compile_worker"],
        input=b"XXXX" + bytes(cw.REQ_HEADER.size - 4),
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2
    assert b"bad request magic" in out.stderr
