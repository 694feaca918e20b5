"""The documentation cannot drift: every shell command and Python sample in
README.md and docs/*.md runs (issue 12).

Fenced blocks tagged ``sh`` run as ``bash -e -o pipefail`` scripts, blocks tagged
``python`` are executed in one namespace per page; both in document order, in a
fresh directory per page holding a copy of ``examples/``, with ``zjit`` on PATH
(this interpreter's ``python -m zjit``) and a private code cache. A command that
is meant to fail says so itself (``zjit verify bad.bin || test $? -eq 3``).

Every fence names its language, so nothing runnable hides in an untagged block. A
sample that cannot run here is preceded by a visible marker
``<!-- not-run: reason -->``; markers are few (:data:`MAX_NOT_RUN`) and each gives
its reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = ("sh", "python")
MAX_NOT_RUN = 4
"""The budget of not-run markers over all pages."""
_FENCE = re.compile(r"^```(\S*)\s*$")
_NOT_RUN = re.compile(r"^<!-- not-run: (.+?) -->$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its page, the line of its opening fence, language, text and
    the not-run reason of a marker before it (None: it runs)."""

    page: Path
    line: int
    language: str
    text: str
    not_run: str | None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` (a fence may not be left open)."""
    lines = page.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == "```"), None)
        assert end is not None, f"{page.name}:{start + 1}: fence never closed"
        marker = _NOT_RUN.match(lines[start - 1]) if start else None
        out.append(Block(page, start + 1, m.group(1), "\n".join(lines[start + 1:end]) + "\n",
                         marker.group(1) if marker else None))
        i = end + 1
    return out


ALL = [b for page in PAGES for b in blocks(page)]


def test_every_fence_names_its_language() -> None:
    untagged = [str(b) for b in ALL if not b.language]
    assert untagged == [], "tag these blocks (sh, python, text, json, asm, c...)"


def test_not_run_markers_are_rare_and_say_why() -> None:
    marked = [b for b in ALL if b.not_run is not None]
    assert all(b.language in RUN for b in marked), [str(b) for b in marked if b.language not in RUN]
    assert all(len(b.not_run or "") >= 20 for b in marked), [str(b) for b in marked]
    assert len(marked) <= MAX_NOT_RUN, [f"{b}: {b.not_run}" for b in marked]
    markers = sum(1 for p in PAGES for line in p.read_text().splitlines() if _NOT_RUN.match(line))
    assert markers == len(marked), "a not-run marker must stand right before a sh or python fence"
    assert sum(1 for b in ALL if b.language in RUN and b.not_run is None) >= 15  # the test below has work


def _workdir(tmp_path: Path) -> dict[str, str]:
    """The page's directory (examples copied in) and the environment of its samples."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "zjit"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m zjit "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["ZJIT_CACHE_DIR"] = str(tmp_path / ".cache")
    return env


def _run_python(block: Block, namespace: dict[str, object]) -> None:
    code = compile(block.text, str(block), "exec")
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, namespace)  # noqa: S102 - the documentation's own samples


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.language in RUN for b in blocks(p))],
                         ids=lambda p: p.name)
def test_samples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _workdir(tmp_path)
    for key in ("PATH", "ZJIT_CACHE_DIR"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in blocks(page):
        if block.language not in RUN or block.not_run is not None:
            continue
        if block.language == "python":
            _run_python(block, namespace)
            continue
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{block}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
