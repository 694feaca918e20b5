"""The error hierarchy: stable codes, documentation, and test coverage of every code."""

from __future__ import annotations

import pathlib
import re

import pytest

from zjit import errordoc
from zjit.errors import CODES, WARNING_CODES, ContainerError, SegmentError, ZjitError

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_docs_errors_md_is_current() -> None:
    assert (ROOT / "docs" / "errors.md").read_text() == errordoc.render()


def test_unregistered_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        ContainerError("NOT_A_CODE", "x")


def test_message_names_code_and_location() -> None:
    err = SegmentError("OVERLAP", "segments overlap", segments=("a", "b"))
    assert str(err) == "OVERLAP at segment 'a', 'b': segments overlap"
    assert isinstance(err, ZjitError)
    assert ContainerError("BAD_MAGIC", "no", offset=0x10).where() == "offset 0x10"
    assert err.to_dict()["segments"] == ["a", "b"]


def test_every_code_has_a_negative_test() -> None:
    """Each registered code must appear as an asserted code in some test file."""
    text = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py")
                     if p.name != "test_errors.py")
    missing = [c for c in CODES if not re.search(rf"[\"']{c}[\"']", text)]
    assert missing == [], f"codes without a negative test: {missing}"


def test_every_warning_code_is_tested_and_documented() -> None:
    text = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py")
                     if p.name != "test_errors.py")
    docs = (ROOT / "docs" / "errors.md").read_text()
    for code in WARNING_CODES:
        assert re.search(rf"[\"']{code}[\"']", text), code
        assert f"| `{code}` |" in docs
