"""``zjit fuzz --jobs N`` (worker processes, results merged in program order) and
Ctrl-C during a campaign (the statistics so far, exit 130 or 1)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from zjit.fuzz.campaign import run_campaign
from zjit.fuzz.checking import CampaignPlan, ProgramRecord
from zjit.fuzz.parallel import parallel_records

from zjit.cli.exits import EXIT_INTERRUPTED, EXIT_TRAP


@pytest.mark.slow
def test_jobs_give_the_same_campaign_as_one_process(tmp_path: Path) -> None:
    one = run_campaign(count=14, seed=42, engines=("interp", "interp"), out_dir=tmp_path, progress=None)
    three = run_campaign(count=14, seed=42, engines=("interp", "interp"), out_dir=tmp_path, progress=None,
                         jobs=3)
    assert three.history == one.history and len(one.history) == 14
    assert (three.programs, three.runs, three.ok, three.traps) == (one.programs, one.runs, one.ok, one.traps)
    assert not three.failed and not three.interrupted


@pytest.mark.slow
def test_failures_found_by_workers_are_saved_and_merged(tmp_path: Path) -> None:
    """The fakes are known in the workers; failures come back in program order."""
    stats = run_campaign(count=12, seed=5, engines=("interp", "broken-always"), out_dir=tmp_path,
                         progress=None, shrink_seconds=0, jobs=2)
    assert stats.failed and stats.mismatches + stats.crashes == 12
    indices = [int(p.stem.rsplit("-", 1)[1]) for p in stats.failures]
    assert indices == sorted(indices) and len(indices) == 12
    assert all(p.exists() for p in stats.failures)


@pytest.mark.slow
def test_a_worker_that_dies_is_reported_with_its_program(tmp_path: Path) -> None:
    """A worker killed in the middle of a program (as an engine crash would) ends the
    campaign with that program saved as a crash, instead of waiting for it."""
    plan = CampaignPlan(seed=9, engines=("interp",), out_dir=tmp_path, count=None,
                        deadline=time.monotonic() + 60)
    records = parallel_records(plan, 2)
    first = next(records)
    assert isinstance(first, ProgramRecord)
    for child in _children():
        os.kill(child, signal.SIGKILL)
    died = [r for r in records if r.stats.crashes]
    assert len(died) == 1 and "died (signal 9)" in died[0].messages[0]
    saved = died[0].stats.failures[0]
    assert saved.read_text().startswith("; zjit fuzz reproducer: a fuzz worker process died (signal 9)")


def _children() -> list[int]:
    """Process ids of this process's fuzz workers."""
    import multiprocessing

    return [p.pid for p in multiprocessing.active_children() if p.name.startswith("zjit-fuzz-") and p.pid]


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_prints_the_statistics_so_far(tmp_path: Path, jobs: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zjit", "fuzz", "--seconds", "60", "--seed", "3", "--engines", "interp",
         "--jobs", str(jobs), "--quiet", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("zjit fuzz: seed 3")
    time.sleep(3.0)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_INTERRUPTED, err
    lines = err.splitlines()
    assert lines[0].startswith("fuzz ") and " programs " in lines[0]
    assert lines[-1].split(": ")[2] == "INTERRUPTED"
    assert lines[-1].startswith("zjit: fuzz: INTERRUPTED: stopped by Ctrl-C after ")
    assert "Traceback" not in err
    deadline = time.monotonic() + 10  # multiprocessing's resource tracker leaves after its parent
    while _process_tree(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _process_tree(proc.pid), "processes left behind"


def _process_tree(pid: int) -> list[str]:
    """Command lines of the live processes of the session ``pid`` led (the campaign,
    its workers and theirs)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == pid and fields[0] != "Z":  # session id, not a zombie
                with contextlib.suppress(OSError):
                    out.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return out


@pytest.mark.slow
def test_ctrl_c_after_a_failure_exits_1(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zjit", "fuzz", "--seconds", "60", "--seed", "3", "--jobs", "1",
         "--engines", "interp,broken-always", "--shrink-seconds", "0", "--quiet", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("fail-*.s")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_TRAP, err
    assert "zjit fuzz: reproducer " in err and "FAILED" in err
