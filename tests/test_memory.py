"""Segment descriptors, memory initialisation and the memory size rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zjit.errors import ContainerError, PolicyError, SegmentError, ZjitError
from zjit.image import ModuleImage, SegmentDesc
from zjit.memory import (
    Descriptor,
    MemoryImage,
    build_memory,
    descriptors_from_json,
    init_memory,
    resolve_mem_size,
    validate_descriptors,
)
from zjit.policy import Policy

MEM = 0x10000


def d(**kw: Any) -> Descriptor:
    base: dict[str, Any] = {"name": "s", "base": 0x100, "size": 16, "permissions": "r", "zeroed": True}
    base.update(kw)
    return Descriptor(**{k: v for k, v in base.items() if v is not ...})


def seg_err(descs: list[Descriptor], inits: dict[str, bytes] | None = None, mem: int = MEM) -> SegmentError:
    with pytest.raises(SegmentError) as info:
        validate_descriptors(mem, descs, inits or {})
    return info.value


# --------------------------------------------------------------------------- good path


def test_init_memory_byte_for_byte() -> None:
    descs = [
        Descriptor("rodata", 0x1000, 32, "r", "ro.bin", 5),
        Descriptor("data", 0x2000, 8, "rw", "d.bin", 8),
        Descriptor("bss", 0x3000, 0x100, "rw", zeroed=True),
        Descriptor("bss2", 0x3100, None, "rw", bss_size=3),
        Descriptor("code", 0x20, 8, "xr", init_size=2),
    ]
    inits = {"rodata": b"hello", "data": bytes(range(1, 9)), "code": b"\x01\x02"}
    img = init_memory(MEM, descs, inits)
    assert isinstance(img, MemoryImage) and img.mem_size == MEM
    expected = bytearray(MEM)
    expected[0x1000:0x1005] = b"hello"
    expected[0x2000:0x2008] = bytes(range(1, 9))
    expected[0x20:0x22] = b"\x01\x02"
    assert img.memory == expected
    assert img.readonly == ((0x20, 0x28), (0x1000, 0x1020))
    assert img.heap_start == 0x3108  # align8(0x3103)


def test_heap_start_floor_and_merge() -> None:
    img = init_memory(MEM, [d(name="a", base=0, size=3), d(name="b", base=3, size=2)], {})
    assert img.readonly == ((0, 5),)
    assert img.heap_start == 16
    assert init_memory(MEM, [], {}).heap_start == 16


def test_segment_may_end_exactly_at_memory_end() -> None:
    segs = validate_descriptors(MEM, [d(base=MEM - 16, size=16)], {})
    assert segs == (SegmentDesc("s", MEM - 16, 16, "r", None),)


def test_permissions_are_canonicalised() -> None:
    (seg,) = validate_descriptors(MEM, [d(permissions="wr")], {})
    assert seg.perms == "rw" and seg.writable


def test_descriptors_from_json() -> None:
    descs = descriptors_from_json([{"name": "a", "base": 1, "size": 2, "permissions": "r", "zeroed": True}])
    assert descs == [Descriptor("a", 1, 2, "r", zeroed=True, origin="$.segments[0]")]


def test_descriptors_from_json_shape_errors() -> None:
    with pytest.raises(SegmentError) as info:
        descriptors_from_json({"a": 1})
    assert (info.value.code, info.value.path) == ("BAD_DESCRIPTOR", "$.segments")
    with pytest.raises(SegmentError) as info:
        descriptors_from_json([{}, 3])
    assert (info.value.code, info.value.path, info.value.segments) == ("BAD_DESCRIPTOR", "$.segments[1]", ("#1",))
    with pytest.raises(ContainerError) as cinfo:
        descriptors_from_json([{"name": "a"}, {"name": "b", "foo": 1}])
    assert (cinfo.value.code, cinfo.value.path) == ("UNKNOWN_KEY", "$.segments[1].foo")


# --------------------------------------------------------------------------- step 1


@pytest.mark.parametrize(
    ("desc", "field"),
    [
        (d(name=""), "name"),
        (d(name=5), "name"),
        (d(base=-1), "base"),
        (d(base=True), "base"),
        (d(base="0"), "base"),
        (d(size=0), "size"),
        (d(size=2.5), "size"),
        (d(size=None), "size"),
        (d(permissions="w"), "permissions"),
        (d(permissions="rr"), "permissions"),
        (d(permissions="rz"), "permissions"),
        (d(permissions=""), "permissions"),
        (d(permissions=None), "permissions"),
        (d(zeroed=False), "zeroed"),
        (d(zeroed=None), "init_size"),
        (d(init_size=4), "zeroed"),
        (d(zeroed=None, init_path="x"), "init_size"),
        (d(zeroed=None, init_path="", init_size=1), "init_path"),
        (d(zeroed=None, init_size=-1), "init_size"),
        (d(zeroed=None, bss_size=0), "bss_size"),
        (d(zeroed=None, bss_size=8, size=16), "bss_size"),
    ],
)
def test_field_errors(desc: Descriptor, field: str) -> None:
    desc.origin = "$.segments[0]"
    e = seg_err([desc])
    assert e.code == "BAD_DESCRIPTOR"
    assert e.path == f"$.segments[0].{field}"
    assert len(e.segments) == 1


def test_duplicate_name() -> None:
    e = seg_err([d(name="a", base=0), d(name="a", base=0x200)])
    assert (e.code, e.segments) == ("BAD_DESCRIPTOR", ("a",))


def test_field_checks_run_in_declaration_order_before_everything() -> None:
    # descriptor 0 has an init problem, descriptor 1 a field problem: field wins
    e = seg_err([d(name="a", zeroed=None, init_size=4), d(name="b", size=0)])
    assert (e.code, e.segments) == ("BAD_DESCRIPTOR", ("b",))


# --------------------------------------------------------------------------- step 2


def test_missing_init() -> None:
    e = seg_err([d(name="a", zeroed=None, init_path="a.bin", init_size=4)])
    assert (e.code, e.segments) == ("MISSING_INIT", ("a",))


def test_init_size_exceeds_size() -> None:
    e = seg_err([d(name="a", size=4, zeroed=None, init_size=5)], {"a": b"12345"})
    assert (e.code, e.segments) == ("BAD_SIZE", ("a",))


def test_init_size_differs_from_bytes() -> None:
    e = seg_err([d(name="a", zeroed=None, init_size=4)], {"a": b"123"})
    assert (e.code, e.segments) == ("BAD_SIZE", ("a",))


def test_bytes_for_zero_filled_segment() -> None:
    e = seg_err([d(name="a")], {"a": b""})
    assert (e.code, e.segments) == ("BAD_SIZE", ("a",))


def test_bytes_for_unknown_segment() -> None:
    e = seg_err([d(name="a")], {"zz": b"1", "b": b"2"})
    assert (e.code, e.segments) == ("BAD_DESCRIPTOR", ("b",))


def test_size_errors_before_bounds() -> None:
    e = seg_err([d(name="a", base=MEM), d(name="b", zeroed=None, init_size=1)])
    assert (e.code, e.segments) == ("MISSING_INIT", ("b",))


# --------------------------------------------------------------------------- steps 3, 4


def test_out_of_bounds() -> None:
    e = seg_err([d(name="a"), d(name="b", base=MEM - 8, size=16)])
    assert (e.code, e.segments) == ("OUT_OF_BOUNDS", ("b",))


def test_bounds_before_overlap() -> None:
    e = seg_err([d(name="a", base=0), d(name="b", base=0), d(name="c", base=MEM)])
    assert (e.code, e.segments) == ("OUT_OF_BOUNDS", ("c",))


def test_overlap_first_pair_by_base() -> None:
    descs = [
        d(name="late1", base=0x900, size=0x20),
        d(name="late2", base=0x910, size=4),
        d(name="early", base=0x100, size=0x100),
        d(name="inner", base=0x180, size=4),
    ]
    e = seg_err(descs)
    assert (e.code, e.segments) == ("OVERLAP", ("early", "inner"))


def test_overlap_with_long_earlier_segment() -> None:
    descs = [d(name="big", base=0, size=0x1000), d(name="mid", base=0x10, size=4), d(name="x", base=0x800, size=4)]
    assert seg_err(descs).segments == ("big", "mid")
    # a segment after a short one but inside the long one still overlaps the long one
    descs = [d(name="big", base=0, size=0x1000), d(name="small", base=0, size=4), d(name="x", base=0x800, size=4)]
    assert seg_err(descs).segments == ("big", "small")


def test_adjacent_segments_do_not_overlap() -> None:
    assert len(validate_descriptors(MEM, [d(name="a", base=0, size=8), d(name="b", base=8, size=8)], {})) == 2


@st.composite
def descriptor_lists(draw: st.DrawFn) -> tuple[list[Descriptor], dict[str, bytes]]:
    n = draw(st.integers(0, 5))
    descs: list[Descriptor] = []
    inits: dict[str, bytes] = {}
    for i in range(n):
        name = draw(st.sampled_from([f"s{i}", f"s{i}", "dup", ""]))
        base = draw(st.sampled_from([0, 8, 16, 0x100, MEM - 8, MEM, -1]))
        size = draw(st.sampled_from([1, 8, 16, 0x200, 0, None]))
        perms = draw(st.sampled_from(["r", "rw", "rx", "w", "rwx"]))
        if draw(st.booleans()):
            isz = draw(st.sampled_from([0, 1, 8, 20]))
            descs.append(Descriptor(name, base, size, perms, "f", isz))
            if draw(st.integers(0, 3)):
                inits[name] = bytes(draw(st.sampled_from([0, 1, 8, 20])))
        else:
            descs.append(Descriptor(name, base, size, perms, zeroed=True))
    return descs, inits


@settings(max_examples=200, deadline=None)
@given(descriptor_lists())
def test_validation_is_deterministic_and_sound(case: tuple[list[Descriptor], dict[str, bytes]]) -> None:
    descs, inits = case
    try:
        img = init_memory(MEM, descs, inits)
    except SegmentError as e:
        with pytest.raises(SegmentError) as again:
            init_memory(MEM, descs, inits)
        assert (again.value.code, again.value.segments) == (e.code, e.segments)
        assert e.segments
        return
    segs = validate_descriptors(MEM, descs, inits)
    spans = sorted((s.base, s.end) for s in segs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    for s in segs:
        assert s.end <= MEM
        want = (s.init or b"") + bytes(s.size - len(s.init or b""))
        assert img.memory[s.base : s.end] == want
        assert img.heap_start >= s.end


# --------------------------------------------------------------------------- size rule


@pytest.mark.parametrize(
    ("policy", "mem_min", "mem_max", "expected"),
    [
        (Policy(), None, None, 2 << 20),
        (Policy(), 1 << 20, None, 1 << 20),
        (Policy(mem_size=3 << 20), 1 << 20, 0, 3 << 20),
        (Policy(mem_size=1 << 20), 1 << 20, 1 << 20, 1 << 20),
        (Policy(mem_size=4096), None, None, 4096),
    ],
)
def test_resolve_mem_size(policy: Policy, mem_min: int | None, mem_max: int | None, expected: int) -> None:
    image = ModuleImage(code=b"\0\0\0\x01", mem_min=mem_min, mem_max=mem_max)
    assert resolve_mem_size(image, policy) == expected


@pytest.mark.parametrize(
    ("policy", "mem_min", "mem_max", "code"),
    [
        (Policy(mem_size=65536), 1 << 20, None, "MEM_TOO_SMALL"),
        (Policy(mem_size=2 << 20), 65536, 1 << 20, "MEM_TOO_LARGE"),
        (Policy(), None, 1 << 20, "MEM_TOO_LARGE"),
        (Policy(max_mem_size=1 << 20), None, None, "MEM_TOO_LARGE"),
        (Policy(mem_size=3 << 30), None, None, "MEM_TOO_LARGE"),
        (Policy(max_mem_size=1 << 20), 4 << 20, None, "MEM_TOO_LARGE"),
    ],
)
def test_resolve_mem_size_errors(policy: Policy, mem_min: int | None, mem_max: int | None, code: str) -> None:
    image = ModuleImage(code=b"\0\0\0\x01", mem_min=mem_min, mem_max=mem_max)
    with pytest.raises(PolicyError) as info:
        resolve_mem_size(image, policy)
    assert info.value.code == code


def test_build_memory() -> None:
    image = ModuleImage(
        code=b"\0\0\0\x01",
        mem_min=65536,
        segments=(SegmentDesc("code", 0x40, 8, "rx", b"\1\2\3\4"), SegmentDesc("bss", 0x1000, 0x10, "rw")),
    )
    mem = build_memory(image, Policy())
    assert mem.mem_size == 65536
    assert mem.memory[0x40:0x48] == b"\1\2\3\4\0\0\0\0"
    assert mem.readonly == ((0x40, 0x48),)
    assert mem.heap_start == 0x1010


@pytest.mark.parametrize(
    ("segments", "code", "names"),
    [
        ((SegmentDesc("a", 0, 0, "rw"),), "BAD_DESCRIPTOR", ("a",)),
        ((SegmentDesc("a", 0, 4, "w"),), "BAD_DESCRIPTOR", ("a",)),
        ((SegmentDesc("a", -4, 4, "r"),), "BAD_DESCRIPTOR", ("a",)),
        ((SegmentDesc("a", 0, 4, "r"), SegmentDesc("a", 8, 4, "r")), "BAD_DESCRIPTOR", ("a",)),
        ((SegmentDesc("a", 0, 2, "r", b"abc"),), "BAD_SIZE", ("a",)),
        ((SegmentDesc("a", 65530, 8, "r"),), "OUT_OF_BOUNDS", ("a",)),
        ((SegmentDesc("a", 0, 8, "r"), SegmentDesc("b", 4, 8, "rw")), "OVERLAP", ("a", "b")),
    ],
)
def test_build_memory_errors(segments: tuple[SegmentDesc, ...], code: str, names: tuple[str, ...]) -> None:
    image = ModuleImage(code=b"\0\0\0\x01", mem_min=65536, segments=segments)
    with pytest.raises(ZjitError) as info:
        build_memory(image, Policy())
    assert (info.value.code, info.value.segments) == (code, names)
