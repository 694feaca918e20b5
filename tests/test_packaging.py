"""pyproject.toml's package list matches the package folders (a package missing
from it would be left out of a regular install); the data packages (examples,
documentation) hold what their package-data patterns name."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return table


DATA_PACKAGES = {"zjit.docs": "docs"}
"""Packages of data files only (no ``__init__.py``): package name -> folder."""


def test_package_list_is_every_package_folder() -> None:
    config = _setuptools()
    package_dir = config["package-dir"]
    assert isinstance(package_dir, dict)
    found: set[str] = set(DATA_PACKAGES)
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
    """No module lies in a folder without ``__init__.py`` (it would not be installed),
    unless a package-data pattern ships it as a file (a script of an example)."""
    config = _setuptools()
    package_dir = config["package-dir"]
    data = config["package-data"]
    assert isinstance(package_dir, dict) and isinstance(data, dict)
    for package, folder in package_dir.items():
        as_data = {p for pattern in data.get(package, ()) for p in (ROOT / folder).glob(pattern)}
        for source in (ROOT / folder).rglob("*.py"):
            assert (source.parent / "__init__.py").is_file() or source in as_data, source


def test_data_packages_ship_their_files() -> None:
    """Every example and every documentation page matches a package-data pattern
    (the wheel test installs them and runs the README's commands)."""
    config = _setuptools()
    data = config["package-data"]
    package_dir = config["package-dir"]
    assert isinstance(data, dict) and isinstance(package_dir, dict)
    for package, folder in (("zjit.examples", "examples"), *DATA_PACKAGES.items()):
        assert package_dir[package] == folder
        base = ROOT / folder
        shipped = {p for pattern in data[package] for p in base.glob(pattern) if p.is_file()}
        wanted = {p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.name != "__init__.py"}
        assert wanted and shipped == wanted, sorted(str(p) for p in wanted ^ shipped)
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
