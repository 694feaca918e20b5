"""Container fuzzing (issue 11, finding 7): mutated .zasm.bin, ROM and module.json
inputs through loading, verification and memory provisioning raise nothing but
ZjitError, each within the campaign's guard; plus the inputs that escaped before.

The hypothesis tests drive the campaign's own input generators
(:mod:`zjit.fuzz.containers`) with hypothesis' choices, so they shrink; the
campaign itself (10^6 inputs per format) is ``make fuzz-containers``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zjit.fuzz.choosers import DrawChooser
from zjit.fuzz.containers import FORMATS, Campaign, JsonInput, guard, run_format

from zjit.container.manifest import read_manifest
from zjit.errors import ZjitError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    yield Campaign(7, tmp_path_factory.mktemp("fixtures"))


def _run(campaign: Campaign, item: bytes | JsonInput) -> str:
    with guard():
        return campaign.run(item)  # anything but ZjitError propagates and fails the test


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(data=st.data())
def test_mutated_inputs_raise_only_zjit_errors(campaign: Campaign, fmt: str, data: st.DataObject) -> None:
    item = campaign.make_input(fmt, DrawChooser(data.draw))
    assert _run(campaign, item)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_short_campaign_has_no_escape_or_hang(campaign: Campaign, fmt: str, tmp_path: Path) -> None:
    stats = run_format(campaign, fmt, 300, tmp_path)
    assert stats.inputs == 300 and not stats.escapes and not stats.hangs
    assert stats.outcomes["ok"] > 0  # some damaged inputs still load, verify and run
    assert len(stats.outcomes) > 5  # and the others fail in many different ways
    assert not list(tmp_path.iterdir())


def test_inputs_are_reproducible_from_seed_format_and_index(campaign: Campaign) -> None:
    for fmt in FORMATS:
        assert campaign.input_for(fmt, 12) == campaign.input_for(fmt, 12)
        assert campaign.input_for(fmt, 12) != campaign.input_for(fmt, 13)


# --------------------------------------------------------------------------- what escaped before


def _manifest(tmp_path: Path, **kw: object) -> Path:
    (tmp_path / "prog.code").write_bytes(bytes([0, 0, 0, 1]))  # RET
    path = tmp_path / "module.json"
    path.write_text(json.dumps({"format": "zjit-module/1", "code": "prog.code", **kw}))
    return path


def _segment(init_path: str) -> dict[str, object]:
    return {"name": "d", "base": 4096, "size": 16, "permissions": "rw", "init_path": init_path, "init_size": 4}


@pytest.mark.parametrize("name", ["\ud800", "a\udc80b.bin", "loop"])
@pytest.mark.parametrize("where", ["code", "segments", "init_path"])
def test_paths_that_escaped_as_other_exceptions_are_bad_path(tmp_path: Path, name: str, where: str) -> None:
    # UnicodeEncodeError (a JSON string with a lone surrogate) and RuntimeError
    # (pathlib's symlink loop) came out of read_manifest before issue 11
    os.symlink("loop", tmp_path / "loop")
    if where == "code":
        path = _manifest(tmp_path, code=name)
    elif where == "segments":
        path = _manifest(tmp_path, segments=name)
    else:
        path = _manifest(tmp_path, segments=[_segment(name)])
    with pytest.raises(ZjitError) as info:
        read_manifest(path)
    assert info.value.code == "BAD_PATH"
    assert info.value.path == {"code": "$.code", "segments": "$.segments",
                               "init_path": "$.segments[0].init_path"}[where]


def test_a_manifest_reached_through_a_symlink_loop_is_bad_path(tmp_path: Path) -> None:
    os.symlink("module.json", tmp_path / "module.json")
    with pytest.raises(ZjitError) as info:
        read_manifest(tmp_path / "module.json")
    assert info.value.code == "BAD_PATH"
