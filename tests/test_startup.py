"""Start-up guards (docs/startup.md): what a cache-hit ``zjit run`` and ``import zjit``
import, and the start-up shortcuts behaving exactly like what they replace.

Import checks run in a child interpreter started with ``-S`` (no ``site``, so no
``.pth`` file imports anything first) that finds zjit's packages where this
process found them: every module in the child's ``sys.modules`` was imported by
zjit itself (or by the interpreter's own start-up).
"""

from __future__ import annotations

import ast
import hashlib
import os
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zjit.backends import fingerprint

import zjit
from zjit.cli import build_parser, cmd_run
from zjit.container import detect, rom, zasm_bin

SMALL = """\
        PUBLIC main
main:   LD BC, 100
        LD A, 0
loop:   ADD64 A, A, BC
        DEC BC
        CPI BC, 0
        JR ne, loop
        LD HL, msg
        LD DE, 6
        OUT
        MOV HL, A
        RET
        ORG 0x1000
msg:    DB "hello", 10
"""

NEVER = {
    # standard library modules the cache-hit path avoids (docs/startup.md); `dataclasses`
    # (with `inspect`, `ast`, `dis`, `re`...) is imported, and so are `json`, `hashlib`,
    # `hmac` and `pathlib`: zjit uses the standard modules, not stand-ins of its own
    "typing", "tempfile", "argparse", "platform", "subprocess", "importlib.util",
    "shutil", "signal", "importlib.metadata", "bisect",
    # the compiler: lifting, lowering, LLVM and its worker process
    "llvmlite", "zjit.backends.middle.lift", "zjit.backends.middle.ir", "zjit.backends.objfile.compiler",
    "zjit.backends.objfile.compile_worker", "zjit.backends.llvm.module", "zjit.backends.llvm.function",
    # other container formats and commands
    "zjit.container.rom", "zjit.container.manifest", "zjit.cli.cmd_asm", "zjit.cli.cmd_compile",
    "zjit.cli.cmd_disasm", "zjit.cli.cmd_fuzz", "zjit.cli.cmd_verify", "zjit.asm", "zjit.fuzz",
    "zjit.interp", "zjit.container.text", "zjit.cli._tooling",
}

HINT = ("imported on the cache-hit path; see docs/startup.md: import names used only in annotations "
        "under TYPE_CHECKING, import the rest where it is used")

CHILD = """
import sys
import _frozen_importlib_external as _ext
before = set(sys.modules)
LOCATIONS = eval(sys.argv[1])
class _Finder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        where = LOCATIONS.get(name)
        if where is None:
            return None
        if name == "zjit":
            return _ext.PathFinder.find_spec(name, [where])
        return _ext.spec_from_file_location(name, where + "/__init__.py", submodule_search_locations=[where])
sys.meta_path.insert(0, _Finder)
sys.path.extend(eval(sys.argv[2]))
try:
    if sys.argv[3] == "import":
        import zjit
    else:
        from zjit.cli import main
        main(sys.argv[4:])
        sys.stdout.flush()
finally:
    sys.stderr.write("\\nMODULES " + repr(sorted(set(sys.modules) - before)) + "\\n")
"""


def _locations() -> dict[str, str]:
    """Where this process found zjit's packages (for ``zjit``: the folder holding it)."""
    out: dict[str, str] = {}
    for name in ("zjit", "zjit.backends", "zjit.verifier", "zjit.fuzz"):
        folder = list(__import__(name, fromlist=["_"]).__path__)[0]
        out[name] = os.path.dirname(folder) if name == "zjit" else folder
    return out


def _child(mode: str, *argv: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    site_paths = [*site.getsitepackages(), site.getusersitepackages()]
    proc = subprocess.run(
        [sys.executable, "-S", "-c", CHILD, repr(_locations()), repr(site_paths), mode, *argv],
        capture_output=True, text=True, env=env, timeout=300)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES ")]
    assert line, proc.stderr
    return proc, set(ast.literal_eval(line[-1][len("MODULES "):]))


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


def test_cache_hit_run_imports(tmp_path: Path, child_env: dict[str, str]) -> None:
    from zjit.asm import assemble

    mod = tmp_path / "small.zasm.bin"
    mod.write_bytes(detect.dump_image(assemble(SMALL, "small.s"), "zasm"))
    first, first_modules = _child("run", "run", "--tier", "optimized", str(mod), env=child_env)  # fills the cache
    assert first.stdout == "hello\n", first.stderr
    assert "zjit.backends.objfile.compiler" in first_modules  # the guard below can fail
    hit, modules = _child("run", "run", "--tier", "optimized", str(mod), env=child_env)
    assert hit.stdout == "hello\n" and hit.returncode == 0, hit.stderr
    assert {"zjit.backends.native.engine", "zjit.backends.native.loader", "zjit.container.zasm_bin"} <= modules
    assert sorted(modules & NEVER) == [], HINT
    assert sorted(m for m in modules if m.startswith("zjit.backends.llvm.")) == ["zjit.backends.llvm.options"]
    interp, interp_modules = _child("run", "run", "--engine", "interp", str(mod), env=child_env)
    assert interp.stdout == "hello\n" and "zjit.interp.executable" in interp_modules, interp.stderr
    assert sorted(interp_modules & (NEVER - {"zjit.interp"})) == [], HINT
    assert not any(m.startswith("zjit.backends") for m in interp_modules)
    # a usage error still goes through argparse, with its usual message
    bad, bad_modules = _child("run", "run", "--eng", "interp", "--fuel", "-1", str(mod), env=child_env)
    assert bad.returncode == 2 and "argument --fuel: must be >= 0" in bad.stderr and "argparse" in bad_modules


def test_cache_hit_run_imports_baseline_code(tmp_path: Path, child_env: dict[str, str]) -> None:
    """The default tier: a second run maps the baseline code from the cache,
    without the stencil library, the assembler or anything of the compiler."""
    from zjit.asm import assemble

    mod = tmp_path / "small.zasm.bin"
    mod.write_bytes(detect.dump_image(assemble(SMALL, "small.s"), "zasm"))
    first, first_modules = _child("run", "run", str(mod), env=child_env)  # fills the cache
    assert first.stdout == "hello\n", first.stderr
    assert "zjit.backends.baseline.assembler" in first_modules  # the guard below can fail
    hit, modules = _child("run", "run", str(mod), env=child_env)
    assert hit.stdout == "hello\n" and hit.returncode == 0, hit.stderr
    assert "zjit.backends.baseline.image" in modules
    baseline_build = {"zjit.backends.baseline.assembler", "zjit.backends.baseline.library",
                      "zjit.backends.llvm.stencils", "zjit.backends.tiering.job"}
    assert sorted(modules & (NEVER | baseline_build)) == [], HINT


def test_import_zjit_imports(child_env: dict[str, str]) -> None:
    _, modules = _child("import", env=child_env)
    assert "zjit" in modules  # the guard below can fail
    # the package's names load on first use: not even the records (dataclasses) load
    heavy = NEVER | {"ctypes", "json", "dataclasses", "zjit.runtime", "zjit.policy", "zjit.backends",
                     "zjit.verifier", "zjit.container", "zjit.cli"}
    assert sorted(modules & heavy) == [], HINT


# --------------------------------------------------------------------------- zjit run's parser

TOKENS = ["m.zasm.bin", "x", "", "--engine", "jit", "interp", "arm64", "bogus", "--fuel", "10", "0x10",
          "-1", "abc", "--mem-size", "0", "--stdin", "in.txt", "--json", "--call", "f", "--timeout",
          "0.5", "nan", "inf", "--eng", "--fuel=5", "--engine=interp", "--json=1", "-h", "--help", "--",
          "-", "--stdin=-x", "--timeout=0", "--call=", "--mem-size=4096", "-5", "--format", "raw", "asm",
          "auto", "--format=asm", "--format=elf", "--reg", "HL=5", "de=-1", "--reg=BC=0x10", "IX=", "X=1",
          "--tier", "baseline", "optimized", "--tier=auto", "--tier-threshold", "1", "--tier-threshold=0",
          "--max-output", "--max-output=0", "--max-output=-1"]


def _argparse(argv: list[str]) -> dict[str, Any] | None:
    try:
        return vars(build_parser("run").parse_args(["run", *argv]))
    except SystemExit:
        return None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=7))
def test_plain_run_parser_agrees_with_argparse(argv: list[str]) -> None:
    fast = cmd_run.parse_plain(argv)
    if fast is not None:
        assert vars(fast) == _argparse(argv)


def test_plain_run_parser_checks_every_engine_occurrence() -> None:
    # argparse rejects an invalid choice even when a later option overrides it
    argv = ["--engine", "10", "interp", "--engine=interp"]
    assert _argparse(argv) is None and cmd_run.parse_plain(argv) is None


@pytest.mark.parametrize("argv", [
    ["m.zasm.bin"], ["--engine", "interp", "m"], ["m", "--fuel", "0x10", "--json"],
    ["--mem-size=4096", "--stdin", "in", "--call", "f", "--timeout", "0.5", "m"], ["--fuel=5", "m", "--engine=jit"],
])
def test_plain_run_lines_skip_argparse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    fast = cmd_run.parse_plain(argv)
    assert fast is not None and vars(fast) == _argparse(argv)


# --------------------------------------------------------------------------- replacements


def _module_level_imports(tree: ast.Module) -> list[str]:
    """Modules a file imports when it is loaded (``TYPE_CHECKING`` blocks apart)."""
    found: list[str] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Try):
            todo += [*node.body, *node.orelse, *node.finalbody, *(s for h in node.handlers for s in h.body)]
        elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            todo += [*node.body, *node.orelse]
    return found














def test_container_magics() -> None:
    assert (detect._ZASB_MAGIC, detect._ROM_MAGIC) == (zasm_bin.MAGIC, rom.MAGIC)


def test_code_fingerprint_hashes_the_sources() -> None:
    """The memoised fingerprint equals a fresh hash of the files (every ``.py`` of
    the hashed packages, subpackages included, named by their path)."""
    root = Path(zjit.__file__).resolve().parent
    files = [(f"zjit/{n}", root / n) for n in fingerprint.SOURCE_FILES]
    for package in fingerprint.SOURCE_PACKAGES:
        folder = Path(__import__(f"zjit.{package}", fromlist=["_"]).__path__[0]).resolve()
        found = [f for f in folder.rglob("*.py") if "__pycache__" not in f.parts]
        found.sort(key=lambda f: f.relative_to(folder).parts)
        files.extend((f"{package}/{f.relative_to(folder)}", f) for f in found)
    assert any(name.startswith("backends/middle/") for name, _ in files)
    h = hashlib.sha256()
    for name, f in files:
        data = f.read_bytes()
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    fingerprint.code_fingerprint.cache_clear()
    assert fingerprint.code_fingerprint() == h.hexdigest()


def test_fingerprint_memo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = tmp_path / "a.py"
    src.write_text("one")
    calls: list[str] = []

    def digest() -> str:
        calls.append(src.read_text())
        return hashlib.sha256(src.read_bytes()).hexdigest()

    first = fingerprint.memoised_fingerprint("t", [str(src)], digest)
    assert fingerprint.memoised_fingerprint("t", [str(src)], digest) == first
    assert calls == ["one"]  # the second call read the memo, not the file
    memo = tmp_path / "cache" / "zjit" / "fingerprints" / "t"
    assert memo.is_file() and oct(memo.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "cache" / "zjit").stat().st_mode & 0o077) == "0o0"
    old = src.stat()
    src.write_text("two")  # same size, and the old mtime put back: only the ctime moves
    os.utime(src, ns=(old.st_atime_ns, old.st_mtime_ns))
    second = fingerprint.memoised_fingerprint("t", [str(src)], digest)
    assert second != first and calls == ["one", "two"]
    memo.write_text("garbage")
    assert fingerprint.memoised_fingerprint("t", [str(src)], digest) == second
    assert calls == ["one", "two", "two"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=True),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4),
    max_leaves=12,
)


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - comparing exceptions
        return type(exc).__name__, str(exc)








def test_gc_freeze_only_for_the_process_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    import gc

    from zjit.asm import assemble
    from zjit.cli import main

    mod = tmp_path / "small.zasm.bin"
    mod.write_bytes(detect.dump_image(assemble(SMALL, "small.s"), "zasm"))
    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["run", "--engine", "interp", str(mod)]) == 0 and frozen == []
    monkeypatch.setattr(sys, "argv", ["zjit", "run", "--engine", "interp", str(mod)])
    assert main() == 0 and frozen == [True]
    assert capsysbinary.readouterr().out == b"hello\nhello\n"
