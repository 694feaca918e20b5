"""Format detection (load_image) and dump_image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zjit.container.detect import dump_image, load_image, module_name, sniff
from zjit.encoding import ld_words, pack, words_to_bytes
from zjit.errors import ZjitError
from zjit.image import ModuleImage, SegmentDesc
from zjit.isa import BY_MNEMONIC, HL
from zjit.testing import mutated

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "segments"
RET = pack(BY_MNEMONIC["RET"].opcode)
CODE = words_to_bytes([*ld_words(HL, 123), RET])  # starts with byte 0x7B == '{'
IMAGE = ModuleImage(code=CODE, exports={"main": 0}, segments=(SegmentDesc("data.0", 0x1000, 4, "rw", b"abcd"),))


def test_sniff() -> None:
    assert CODE[:1] == b"{"
    assert sniff(dump_image(IMAGE, "zasm")) == "zasm"
    assert sniff(dump_image(IMAGE, "rom")) == "rom"
    assert sniff(b'  {"format": 1}') == "json"
    assert sniff(CODE) == "raw"
    assert sniff(b"{\xff\xfe\x00") == "raw"
    assert sniff(b"") == "unknown"
    assert sniff(b"abc") == "unknown"
    assert sniff(b"{abc") == "json"


def test_load_bytes_each_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = load_image(dump_image(IMAGE, "zasm"), name="m")
    assert (z.source_format, z.name, z.code, z.exports) == ("zasm", "m", CODE, {"main": 0})
    r = load_image(bytearray(dump_image(IMAGE, "rom")))
    assert (r.source_format, r.name, r.code) == ("rom", "module", CODE)
    raw = load_image(CODE)
    assert (raw.source_format, raw.entry_pc, raw.exports, raw.code) == ("raw", 0, {}, CODE)
    (tmp_path / "p.code").write_bytes(CODE)
    monkeypatch.chdir(tmp_path)
    j = load_image(json.dumps({"format": "zjit-module/1", "code": "p.code"}).encode())
    assert (j.source_format, j.code) == ("manifest", CODE)


@pytest.mark.parametrize("data", [b"", b"abc", b"\x00" * 7])
def test_unknown_format(data: bytes) -> None:
    with pytest.raises(ZjitError) as info:
        load_image(data)
    assert (info.value.code, info.value.offset) == ("UNKNOWN_FORMAT", 0)


def test_load_paths(tmp_path: Path) -> None:
    (tmp_path / "prog.zasm.bin").write_bytes(dump_image(IMAGE, "zasm"))
    (tmp_path / "prog.rom").write_bytes(dump_image(IMAGE, "rom"))
    (tmp_path / "prog.code").write_bytes(CODE)
    (tmp_path / "weird.txt").write_text(json.dumps({"format": "zjit-module/1", "code": "prog.code"}))
    assert load_image(tmp_path / "prog.zasm.bin").name == "prog"
    assert load_image(str(tmp_path / "prog.rom")).source_format == "rom"
    assert load_image(tmp_path / "prog.code").source_format == "raw"
    weird = load_image(tmp_path / "weird.txt")
    assert (weird.source_format, weird.name) == ("manifest", "weird.txt")
    example = load_image(EXAMPLE / "module.json")
    assert (example.source_format, example.name, len(example.segments)) == ("manifest", "segments", 3)


def test_json_suffix_always_means_manifest(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_bytes(CODE)
    with pytest.raises(ZjitError) as info:
        load_image(tmp_path / "x.json")
    assert info.value.code == "BAD_JSON"


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ZjitError) as info:
        load_image(tmp_path / "nope.zasm.bin")
    assert (info.value.code, info.value.path) == ("BAD_PATH", str(tmp_path / "nope.zasm.bin"))


def test_copied_example_resolves_against_its_own_directory(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "copy")
    assert load_image(tmp_path / "copy" / "module.json").name == "copy"


def test_module_name() -> None:
    assert module_name(Path("a/b/prog.zasm.bin")) == "prog"
    assert module_name(Path("x.rom")) == "x"
    assert module_name(Path(".rom")) == ".rom"


def test_dump_round_trips_and_unknown_format() -> None:
    for fmt in ("zasm", "rom"):
        back = load_image(dump_image(IMAGE, fmt))
        assert back.code == CODE and back.exports == {"main": 0}
        assert back.segments == (SegmentDesc("data.0", 0x1000, 4, "rw", b"abcd"),)
    with pytest.raises(ValueError):
        dump_image(IMAGE, "elf")


SEEDS = [dump_image(IMAGE, "zasm"), dump_image(IMAGE, "rom"), CODE,
         json.dumps({"format": "zjit-module/1", "code": "prog.code", "segments": []}).encode()]


def inputs() -> st.SearchStrategy[bytes]:
    """Random bytes, or a valid file of any format after a few edits."""
    return st.one_of(st.binary(max_size=200), mutated(SEEDS, max_extend=16))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_load_image_only_zjit_errors(data: bytes) -> None:
    try:
        img = load_image(data)
    except ZjitError as e:
        assert e.code
        return
    assert img.code
