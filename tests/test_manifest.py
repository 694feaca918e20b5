"""module.json: the sample module, sidecars, merging with a .zasm.bin, every error."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zjit.container.manifest import read_manifest, read_manifest_bytes, read_manifest_obj
from zjit.container.zasm_bin import write_zasm_bin
from zjit.encoding import pack, words_to_bytes
from zjit.errors import ZjitError
from zjit.image import ModuleImage, SegmentDesc
from zjit.isa import BY_MNEMONIC
from zjit.memory import build_memory
from zjit.policy import Policy

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "segments"
RET = words_to_bytes([pack(BY_MNEMONIC["RET"].opcode)])


def _example_module() -> Any:
    spec = importlib.util.spec_from_file_location("make_example", EXAMPLE / "make_example.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- the sample module


def test_example_files_are_generated_by_the_script() -> None:
    mod = _example_module()
    for name, make in mod.FILES.items():
        assert (EXAMPLE / name).read_bytes() == make(), name


def test_example_loads_and_initial_memory_matches_descriptors() -> None:
    image = read_manifest(EXAMPLE / "module.json")
    assert image.name == "segments" and image.source_format == "manifest"
    assert image.entry_pc == 0 and image.exports == {"main": 0}
    assert (image.mem_min, image.mem_max) == (65536, 0)
    manifest = json.loads((EXAMPLE / "module.json").read_text())
    mem = build_memory(image, Policy())
    assert mem.mem_size == 65536
    expected = bytearray(65536)
    for desc in manifest["segments"]:
        if "init_path" in desc:
            raw = (EXAMPLE / desc["init_path"]).read_bytes()
            assert len(raw) == desc["init_size"]
            expected[desc["base"] : desc["base"] + len(raw)] = raw
    assert mem.memory == expected
    bss = next(d for d in manifest["segments"] if d.get("zeroed"))
    assert not any(mem.memory[bss["base"] : bss["base"] + bss["size"]])
    assert mem.readonly == ((4096, 4096 + 256),)
    assert mem.heap_start == 12288 + 4096


# --------------------------------------------------------------------------- helpers


def make(tmp_path: Path, manifest: dict[str, Any] | str, files: dict[str, bytes] | None = None) -> Path:
    files = {"prog.code": RET, **(files or {})}
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "module.json"
    path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return path


def base(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"format": "zjit-module/1", "code": "prog.code"}
    out.update(kw)
    return out


def seg(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "s", "base": 4096, "size": 16, "permissions": "rw", "zeroed": True}
    out.update(kw)
    return {k: v for k, v in out.items() if v is not None}


def fail(tmp_path: Path, manifest: dict[str, Any] | str, files: dict[str, bytes] | None = None) -> ZjitError:
    path = make(tmp_path, manifest, files)
    with pytest.raises(ZjitError) as info:
        read_manifest(path)
    return info.value


# --------------------------------------------------------------------------- good inputs


def test_minimal_manifest(tmp_path: Path) -> None:
    image = read_manifest(make(tmp_path, base()))
    assert image == ModuleImage(code=RET, source_format="manifest", name=tmp_path.name)


def test_entry_as_pc_and_default_main(tmp_path: Path) -> None:
    code = RET * 3
    img = read_manifest(make(tmp_path, base(entry=8), {"prog.code": code}))
    assert img.entry_pc == 8
    img = read_manifest(make(tmp_path, base(exports={"main": 4, "f": 8}), {"prog.code": code}))
    assert img.entry_pc == 4
    img = read_manifest(make(tmp_path, base(exports={"main": 4, "f": 8}, entry="f"), {"prog.code": code}))
    assert img.entry_pc == 8


def test_sidecar_segments(tmp_path: Path) -> None:
    sidecar = [seg(name="ro", permissions="r", zeroed=None, init_path="sub/ro.bin", init_size=3),
               seg(name="bss", base=8192, zeroed=None, bss_size=32, size=None)]
    path = make(tmp_path, base(segments="segs.json"), {"segs.json": json.dumps(sidecar).encode(),
                                                      "sub/ro.bin": b"abc"})
    img = read_manifest(path)
    assert img.segments == (SegmentDesc("ro", 4096, 16, "r", b"abc"), SegmentDesc("bss", 8192, 32, "rw", None))


def test_code_may_be_a_zasm_bin(tmp_path: Path) -> None:
    inner = ModuleImage(code=RET * 2, entry_pc=4, exports={"f": 4}, imports=0, mem_min=1 << 17,
                        segments=(SegmentDesc("data.0", 0x100, 4, "rw", b"abcd"),))
    files = {"prog.bin": write_zasm_bin(inner)}
    img = read_manifest(make(tmp_path, base(code="prog.bin", exports={"g": 0}, segments=[seg()]), files))
    assert img.code == RET * 2 and img.entry_pc == 4
    assert img.exports == {"f": 4, "g": 0} and img.imports == 0 and img.mem_min == 1 << 17
    assert [s.name for s in img.segments] == ["data.0", "s"]
    assert img.code_offset == 40 + 20 * 5


def test_read_manifest_bytes_and_obj(tmp_path: Path) -> None:
    (tmp_path / "prog.code").write_bytes(RET)
    assert read_manifest_bytes(json.dumps(base()).encode(), tmp_path).code == RET
    assert read_manifest_obj(base(memory={"min_bytes": 65536}), tmp_path, name="x").name == "x"


def test_inner_path_components_that_stay_inside_are_fine(tmp_path: Path) -> None:
    img = read_manifest(make(tmp_path, base(code="sub/../prog.code"), {"sub/x": b""}))
    assert img.code == RET


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("manifest", "code", "path"),
    [
        ("[1, 2]", "BAD_JSON", "$"),
        (json.dumps(base(format="zjit-module/2")), "BAD_JSON", "$.format"),
        (json.dumps({"code": "prog.code"}), "BAD_JSON", "$.format"),
        (json.dumps({"format": "zjit-module/1"}), "BAD_JSON", "$.code"),
        (json.dumps(base(code=5)), "BAD_JSON", "$.code"),
        (json.dumps(base(code="")), "BAD_JSON", "$.code"),
        (json.dumps(base(exports=[1])), "BAD_JSON", "$.exports"),
        (json.dumps(base(exports={"f": -1})), "BAD_JSON", "$.exports.f"),
        (json.dumps(base(exports={"f": True})), "BAD_JSON", "$.exports.f"),
        (json.dumps(base(exports={"": 0})), "BAD_NAME", "$.exports"),
        (json.dumps(base(entry="nope")), "BAD_JSON", "$.entry"),
        (json.dumps(base(entry=-4)), "BAD_JSON", "$.entry"),
        (json.dumps(base(entry=1.5)), "BAD_JSON", "$.entry"),
        (json.dumps(base(memory=5)), "BAD_JSON", "$.memory"),
        (json.dumps(base(memory={"min_bytes": "1"})), "BAD_JSON", "$.memory.min_bytes"),
        (json.dumps(base(memory={"min_bytes": 4096})), "BAD_MEM", "$.memory.min_bytes"),
        (json.dumps(base(memory={"min_bytes": 1 << 20, "max_bytes": 1 << 16})), "BAD_MEM", "$.memory.max_bytes"),
        (json.dumps(base(foo=1)), "UNKNOWN_KEY", "$.foo"),
        (json.dumps(base(memory={"min": 1})), "UNKNOWN_KEY", "$.memory.min"),
        (json.dumps(base(segments=[seg(), seg(name="t", base=8192, foo=1)])), "UNKNOWN_KEY", "$.segments[1].foo"),
        (json.dumps(base(segments={"a": 1})), "BAD_DESCRIPTOR", "$.segments"),
        (json.dumps(base(segments=[seg(size=0)])), "BAD_DESCRIPTOR", "$.segments[0].size"),
        (json.dumps(base(segments=[seg(permissions="w")])), "BAD_DESCRIPTOR", "$.segments[0].permissions"),
        (json.dumps(base(segments=[seg(zeroed=None, init_size=4)])), "MISSING_INIT", "$.segments[0].init_size"),
        (json.dumps(base(segments=[seg(zeroed=None, init_path="/etc/passwd", init_size=4)])),
         "BAD_PATH", "$.segments[0].init_path"),
        (json.dumps(base(segments=[seg(zeroed=None, init_path="../x.bin", init_size=4)])),
         "BAD_PATH", "$.segments[0].init_path"),
        (json.dumps(base(segments=[seg(zeroed=None, init_path="missing.bin", init_size=4)])),
         "BAD_PATH", "$.segments[0].init_path"),
        (json.dumps(base(segments=[seg(zeroed=None, init_path="prog.code", init_size=8)])),
         "BAD_SIZE", "$.segments[0].init_size"),
        (json.dumps(base(segments=[seg(zeroed=None, init_path="prog.code", init_size=2)])),
         "BAD_SIZE", "$.segments[0].init_size"),
        (json.dumps(base(segments=[seg(zeroed=None, init_path="prog.code", init_size=32)])),
         "BAD_SIZE", "$.segments[0].init_size"),
        (json.dumps(base(segments="segs.json")), "BAD_PATH", "$.segments"),
        (json.dumps(base(segments="../segs.json")), "BAD_PATH", "$.segments"),
        (json.dumps(base(code="/etc/hostname")), "BAD_PATH", "$.code"),
        (json.dumps(base(code="nothere")), "BAD_PATH", "$.code"),
        (json.dumps(base(code=".")), "BAD_PATH", "$.code"),
        ('{"format": "zjit-module/1", "format": "zjit-module/1", "code": "prog.code"}', "BAD_JSON", "$"),
        ('{"format": NaN}', "BAD_JSON", "$"),
        ("[" * 100_000, "BAD_JSON", "$"),
        ("", "BAD_JSON", "$"),
    ],
)
def test_manifest_errors(tmp_path: Path, manifest: str, code: str, path: str) -> None:
    e = fail(tmp_path, manifest)
    assert (e.code, e.path) == (code, path)


def test_bad_json_reports_line_and_offset(tmp_path: Path) -> None:
    e = fail(tmp_path, '{\n  "format": "zjit-module/1",\n  "code": ,\n}')
    assert (e.code, e.line, e.offset) == ("BAD_JSON", 3, 41)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "module.json"
    path.write_bytes(b'{"format": "\xff"}')
    with pytest.raises(ZjitError) as info:
        read_manifest(path)
    assert (info.value.code, info.value.offset) == ("BAD_JSON", 12)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ZjitError) as info:
        read_manifest(tmp_path / "nope.json")
    assert info.value.code == "BAD_PATH"


def test_symlink_escaping_the_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"abcd")
    mod = tmp_path / "mod"
    mod.mkdir()
    os.symlink(outside, mod / "link.bin")
    e = fail(mod, base(segments=[seg(zeroed=None, init_path="link.bin", init_size=4)]))
    assert (e.code, e.path) == ("BAD_PATH", "$.segments[0].init_path")
    # a symlink that stays inside is fine
    os.symlink(mod / "prog.code", mod / "inside.code")
    assert read_manifest(make(mod, base(code="inside.code"))).code == RET


def test_sidecar_errors(tmp_path: Path) -> None:
    e = fail(tmp_path, base(segments="s.json"), {"s.json": b"{nope"})
    assert (e.code, e.path) == ("BAD_JSON", "$.segments")
    e = fail(tmp_path, base(segments="s.json"), {"s.json": json.dumps([seg(bad=1)]).encode()})
    assert (e.code, e.path) == ("UNKNOWN_KEY", "$.segments[0].bad")


def test_field_errors_before_file_errors(tmp_path: Path) -> None:
    segs = [seg(name="a", zeroed=None, init_path="missing.bin", init_size=4), seg(name="b", base=-1)]
    e = fail(tmp_path, base(segments=segs))
    assert (e.code, e.segments) == ("BAD_DESCRIPTOR", ("b",))


def test_segment_names_clash_with_code_file_data(tmp_path: Path) -> None:
    inner = ModuleImage(code=RET, segments=(SegmentDesc("data.0", 0x100, 4, "rw", b"abcd"),))
    e = fail(tmp_path, base(code="p.bin", segments=[seg(name="data.0")]), {"p.bin": write_zasm_bin(inner)})
    assert (e.code, e.segments) == ("BAD_DESCRIPTOR", ("data.0",))


def test_export_conflicts_with_code_file(tmp_path: Path) -> None:
    inner = ModuleImage(code=RET * 2, exports={"f": 4})
    e = fail(tmp_path, base(code="p.bin", exports={"f": 0}), {"p.bin": write_zasm_bin(inner)})
    assert (e.code, e.path) == ("BAD_JSON", "$.exports.f")


@pytest.mark.parametrize(("data", "code"), [(b"", "EMPTY_CODE"), (b"\x01\x00", "CODE_ALIGN")])
def test_raw_code_file_size(tmp_path: Path, data: bytes, code: str) -> None:
    e = fail(tmp_path, base(), {"prog.code": data})
    assert (e.code, e.path) == (code, "$.code")


def test_errors_inside_a_zasm_code_file_name_it(tmp_path: Path) -> None:
    bad = bytearray(write_zasm_bin(ModuleImage(code=RET)))
    struct.pack_into("<H", bad, 4, 3)
    e = fail(tmp_path, base(code="p.bin"), {"p.bin": bytes(bad)})
    assert (e.code, e.offset, e.path) == ("BAD_VERSION", 4, "$.code (p.bin)")


@pytest.mark.parametrize(
    ("segments", "mem", "code", "names"),
    [
        ([seg(base=65536 - 8)], {"min_bytes": 65536}, "OUT_OF_BOUNDS", ("s",)),
        ([seg(name="a"), seg(name="b", base=4100)], {"min_bytes": 65536}, "OVERLAP", ("a", "b")),
    ],
)
def test_layout_errors_at_instantiation(
    tmp_path: Path, segments: list[dict[str, Any]], mem: dict[str, int], code: str, names: tuple[str, ...]
) -> None:
    image = read_manifest(make(tmp_path, base(segments=segments, memory=mem)))
    with pytest.raises(ZjitError) as info:
        build_memory(image, Policy())
    assert (info.value.code, info.value.segments) == (code, names)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.sampled_from(["prog.code", "main", "r", "rw", "x", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "base", "size", "permissions", "init_path", "init_size", "zeroed",
                         "bss_size", "min_bytes", "max_bytes", "main", "zz"]), inner, max_size=5),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["format", "code", "entry", "exports", "memory", "segments", "x"]),
                       json_values, max_size=6))
def test_random_manifests_only_zjit_errors(obj: dict[str, Any]) -> None:
    obj.setdefault("format", "zjit-module/1")
    with contextlib.suppress(ZjitError):
        read_manifest_obj(obj, EXAMPLE)
