"""The wheel is complete (issue 12, item 1): built from the repository's files, it
holds the examples, the documentation and the licence; installed (not editable)
into a fresh virtual environment it runs the README's commands from another
directory, with the examples the installed package ships.

The wheel is built with ``pip wheel`` (build isolation fetches setuptools like any
build does). The fresh environment gets zjit from the wheel alone; its
dependencies (llvmlite, capstone, unicorn, pyelftools) are those of the environment running
the tests, reached through a ``.pth`` file, as ``--system-site-packages`` would.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPENDENCIES = ("llvmlite", "capstone", "unicorn", "elftools")
pytestmark = pytest.mark.slow


def _sources(dest: Path) -> Path:
    """The files a build reads (pyproject.toml, README, LICENSE, every package
    folder), copied without caches: the checkout itself is never written to."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = sorted(set(config["tool"]["setuptools"]["package-dir"].values()))
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    for folder in folders:
        shutil.copytree(ROOT / folder, dest / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _sources(tmp / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
                    "-w", str(tmp / "dist"), str(src)], check=True, timeout=600)
    (found,) = (tmp / "dist").glob("zjit-*.whl")
    return found


def test_the_wheel_holds_examples_docs_and_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for example in (ROOT / "examples").rglob("*"):
        rel = example.relative_to(ROOT / "examples")
        if example.is_file() and "__pycache__" not in rel.parts:
            assert f"zjit/examples/{rel}" in names, rel
    for page in (ROOT / "docs").glob("*.md"):
        assert f"zjit/docs/{page.name}" in names, page.name
    licences = [n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n]
    assert licences, sorted(n for n in names if ".dist-info/" in n)
    assert zipfile.ZipFile(wheel).read(licences[0]).decode().startswith("MIT License")
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License: MIT" in zipfile.ZipFile(wheel).read(metadata).decode()


def _dependency_dirs() -> list[str]:
    out = []
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, name
        out.append(str(Path(next(iter(spec.submodule_search_locations))).parent))
    return sorted(set(out))


def test_installed_wheel_runs_the_readme_commands_elsewhere(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)  # this pip installs into it (no ensurepip needed)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", "--disable-pip-version-check", str(wheel)], check=True, timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zjit-test-dependencies.pth").write_text("\n".join(_dependency_dirs()) + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["ZJIT_CACHE_DIR"] = str(tmp_path / "cache")
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # the installed zjit for make
    zjit = str(env_dir / "bin" / "zjit")

    def run(*argv: str, stdin: bytes = b"") -> str:
        done = subprocess.run(argv, cwd=work, env=env, input=stdin, capture_output=True, timeout=300)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        return done.stdout.decode()

    where = run(str(python), "-c", "import zjit, zjit.examples; print(zjit.__file__); print(zjit.examples.__file__)")
    assert all(line.startswith(str(site)) for line in where.split()), where  # the wheel, not the checkout
    assert (site / "zjit" / "docs" / "api.md").is_file() and (site / "zjit" / "docs" / "testing.md").is_file()

    assert "hello.s" in run(zjit, "examples")
    assert run(zjit, "examples", "--copy", "examples").startswith("copied")
    # the README's commands (and `make demo`'s steps), from this directory
    assert "hello.zasm.bin" in run(zjit, "asm", "examples/hello.s", "-o", "hello.zasm.bin")
    assert run(zjit, "verify", "hello.zasm.bin").startswith("ok: ")
    assert '"ok": true' in run(zjit, "verify", "hello.zasm.bin", "--json")
    assert "OUT" in run(zjit, "disasm", "hello.zasm.bin")
    assert run(zjit, "run", "hello.zasm.bin", "--engine", "interp", "--fuel", "10000") == "Hello, world!\n"
    assert run(zjit, "run", "hello.zasm.bin", "--engine", "jit") == "Hello, world!\n"
    assert run(zjit, "run", "examples/hello.s") == "Hello, world!\n"
    assert run(zjit, "run", "examples/upper.s", stdin=b"wheel\n") == "WHEEL\n"
    assert run(zjit, "run", "examples/segments/module.json", "--json").count('"HL": 42') == 1
    assert run(str(python), "-m", "zjit", "run", "examples/loop.s") == "5050\n"
    # the AOT example (docs/aot.md) builds with the installed zjit
    if platform.machine() == "x86_64" and shutil.which("gcc") and shutil.which("make"):
        assert run("make", "-s", "-C", "examples/aot", "run", stdin=b"wheel\nok\n") == "WHEEL\nOK\n2\n"
