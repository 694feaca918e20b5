"""pyproject.toml's package list matches the package folders (a package missing
from it would be left out of a regular install)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return table


def test_package_list_is_every_package_folder() -> None:
    config = _setuptools()
    package_dir = config["package-dir"]
    assert isinstance(package_dir, dict)
    found: set[str] = set()
    for package, folder in package_dir.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([package, *rel.parts]))
    listed = config["packages"]
    assert isinstance(listed, list)
    assert sorted(listed) == sorted(found)
    assert {"zjit.backends.middle", "zjit.backends.native"} <= found  # the walk reaches down


def test_every_python_file_is_in_a_listed_package() -> None:
    """No module lies in a folder without ``__init__.py`` (it would not be installed)."""
    config = _setuptools()
    package_dir = config["package-dir"]
    assert isinstance(package_dir, dict)
    for folder in package_dir.values():
        for source in (ROOT / folder).rglob("*.py"):
            assert (source.parent / "__init__.py").is_file(), source
