"""Ctrl-C stops a running guest on every engine (issue 11 finding 1, docs/api.md).

Each test runs in a subprocess whose main thread runs the guest, and sends it
SIGINT once the guest has written ``ready`` (it then spins forever): through
``zjit run`` (exit 1 with a TIMEOUT trap line) and through the API (``run()``
returns the TIMEOUT Result with a KeyboardInterrupt cause; a second Ctrl-C raises
KeyboardInterrupt; the instance runs again afterwards).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zjit.asm import assemble
from zjit.container.detect import dump_image
from zjit.runtime import available_backends

SPIN = """
        PUBLIC main
msg:    DB "ready", 10
main:   LD HL, msg
        LD DE, 6
        OUT
spin:   INC DE
        JR spin
"""
BOUND = 3.0
"""Seconds from SIGINT to the end of the run allowed here (generous: a loaded
machine; the engines react within one interrupt poll and a 50 ms wait)."""

ENGINES = available_backends()


def _spin_pc() -> int:
    image = assemble(SPIN, "spin.s")
    line = next(n for n, text in enumerate(SPIN.splitlines(), 1) if text.startswith("spin:"))
    return next(pc for pc, d in image.debug.items() if d.line == line)


@pytest.mark.parametrize("engine", ENGINES)
def test_zjit_run_exits_1_with_a_timeout_trap_on_sigint(engine: str, tmp_path: Path) -> None:
    mod = tmp_path / "spin.zasm.bin"
    mod.write_bytes(dump_image(assemble(SPIN, "spin.s"), "zasm"))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))  # a cold compile, then the run
    proc = subprocess.Popen([sys.executable, "-m", "zjit", "run", "--engine", engine, str(mod)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(0.2)  # well inside the spin loop
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert err.decode().startswith("zjit: trap: TIMEOUT at pc=0x"), err
    assert "KeyboardInterrupt" in err.decode()
    assert elapsed < BOUND, elapsed


API_SCRIPT = r"""
import json, os, signal, sys, threading, time
import zjit
from zjit.asm import assemble

engine, source, presses = sys.argv[1], sys.argv[2], int(sys.argv[3])
ready, release, state = threading.Event(), threading.Event(), {}

class Out:
    def write(self, data):
        ready.set()
        return len(data)
    def flush(self):
        pass

def ctl(request):
    # the second press lands while the guest waits for this handler
    release.wait(10)
    return b"ok"

eng = zjit.Engine(zjit.Policy(use_cache=False), backend=engine)
inst = eng.load(assemble(source, "spin.s")).instantiate(stdout=Out(), log=None, ctl=ctl)

def press():
    ready.wait()
    time.sleep(0.2)
    for k in range(presses):
        state["sent"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)
        while not inst.machine.interrupted:  # the first press was handled
            time.sleep(0.001)
    time.sleep(0.1)
    release.set()

threading.Thread(target=press, daemon=True).start()
out = {}
try:
    r = inst.run()
    out["trap"] = r.trap.kind.name if r.trap else None
    out["cause"] = type(r.trap.cause).__name__ if r.trap else None
    out["pc"] = r.trap.pc if r.trap else None
except KeyboardInterrupt:
    out["raised"] = "KeyboardInterrupt"
out["elapsed"] = time.monotonic() - state["sent"]
out["handler_restored"] = signal.getsignal(signal.SIGINT) is signal.default_int_handler
again = inst.call("main", fuel=100)  # the instance still runs (and nothing is pending)
out["again"] = again.trap.kind.name if again.trap else None
print(json.dumps(out))
"""

# the guest spins calling CTL (whose handler blocks once the presses begin)
SPIN_CTL = SPIN.replace("spin:   INC DE", """        LD BC, 0x100
        LD IX, 16
spin:   LD HL, msg
        CTL
        INC DE""")


def _api(engine: str, presses: int, source: str = SPIN) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", API_SCRIPT, engine, source, str(presses)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("engine", ENGINES)
def test_api_run_returns_timeout_with_keyboard_interrupt_cause(engine: str) -> None:
    out = _api(engine, 1)
    assert out["trap"] == "TIMEOUT" and out["cause"] == "KeyboardInterrupt", out
    assert out["pc"] == _spin_pc()  # the loop header, where the guest polls
    assert float(out["elapsed"]) < BOUND  # type: ignore[arg-type]
    assert out["handler_restored"] is True
    assert out["again"] == "FUEL"


@pytest.mark.parametrize("engine", ENGINES)
def test_second_ctrl_c_raises_keyboard_interrupt(engine: str) -> None:
    out = _api(engine, 2, SPIN_CTL)
    assert out.get("raised") == "KeyboardInterrupt", out
    assert float(out["elapsed"]) < BOUND + 0.5  # type: ignore[arg-type]
    assert out["handler_restored"] is True
    assert out["again"] == "FUEL"
