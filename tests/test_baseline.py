"""The baseline tier's parts (docs/tiering.md): the stencil library, the entry ids,
the baseline image and its cache form. Behaviour (Results equal to the
interpreter's) is the conformance suite's and the differential tests' job."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from zjit.backends.baseline import image as image_mod
from zjit.backends.baseline.assembler import BaselineSpec, assemble
from zjit.backends.baseline.library import StencilLibrary, decode, library
from zjit.backends.llvm.stencil_names import VALUE_HOLES, field_keys, instruction_stencils
from zjit.backends.middle.entries import entry_ids, loop_headers
from zjit.backends.objfile.elf import ObjectFileError
from zjit.backends.objfile.stencils import IMM8, RawStencil, diff_hole
from zjit.backends.targets import AARCH64_TRIPLE, HOST_SUPPORTED, HOST_TRIPLE
from zjit.fuzz.program import GenProgram
from zjit.fuzz.strategies import programs
from zjit.verifier import verify

import zjit
from zjit.asm import assemble as assemble_text
from zjit.isa import OPS

TRIPLES = [t for t, ok in ((HOST_TRIPLE, HOST_SUPPORTED),
                           (AARCH64_TRIPLE, "arm64" in zjit.available_backends())) if ok]
pytestmark = pytest.mark.skipif(not TRIPLES, reason="no compiling engine here")


@pytest.fixture(scope="module", params=TRIPLES)
def lib(request: pytest.FixtureRequest) -> StencilLibrary:
    return library(request.param)


def test_every_instruction_shape_has_its_stencils(lib: StencilLibrary) -> None:
    names = set(lib.names())
    for op in OPS:
        for rd, rs1, rs2 in field_keys(op):
            missing = [n for n in instruction_stencils(op, rd, rs1, rs2) if n not in names]
            assert missing == [], (op.mnemonic, rd, rs1, rs2)
    assert {"POLL", "HEAD", "FUEL", "SITE", "TIERUP", "JMP", "ROOM", "CALL", "RET"} <= names


def test_every_stencil_decodes_with_known_holes(lib: StencilLibrary) -> None:
    tails = 0
    for name in lib.names():
        st = lib.get(name)
        code = st.code + st.tail
        for offset, slot, _add, _patch in st.values:
            assert 0 <= offset <= len(st.code) - 1 and 0 <= slot < len(VALUE_HOLES)
        for group in (st.runtime, st.cont, st.target, st.traps, st.tierup):
            for offset, _ref, _adj, _patch in group:
                assert 0 <= offset <= len(st.code) - 4, name
        assert {k for _, k, _, _ in st.traps} == set(range(len(st.exits))) and len(st.exit_ids) == len(st.exits), name
        tails += bool(st.tail)
        assert code.startswith(st.code)
    assert tails > len(lib.names()) // 2  # most stencils end in their continuation jump, left out


def test_x86_stencils_are_tight(lib: StencilLibrary) -> None:
    if lib.triple != HOST_TRIPLE or not HOST_TRIPLE.startswith("x86_64"):
        pytest.skip("x86-64 facts")
    add = lib.get("ADD64_012")
    assert add.tail[:1] == b"\xe9" and add.simple and len(add.code) <= 4  # lea rdi, [rsi + r8]
    load = lib.get("LD64_01")
    assert len(load.traps) == 1 and load.tail  # a conditional jump to the trap stub, no cold code
    assert lib.get("SLA64_12").one is not None  # the shift count is one byte


def test_payload_round_trip_and_damage(lib: StencilLibrary) -> None:
    from zjit.backends.baseline.library import _HEAD, library_dir, library_key  # noqa: F401
    from zjit.backends.cache import CodeCache

    payload = CodeCache(library_dir()).get(library_key(lib.triple, lib.cpu))
    if payload is None:
        pytest.skip("the library was not cached on disk")
    again = decode(payload, lib.triple, lib.cpu)
    assert again is not None and again.names() == lib.names() and again.runtime == lib.runtime
    assert decode(payload[:-7] + b"garbage", "other-triple", lib.cpu) is None
    assert decode(b"ZJITSTL1" + payload[8:40], lib.triple, lib.cpu) is None
    assert decode(b"nonsense", lib.triple, lib.cpu) is None


def test_diff_hole_finds_one_byte() -> None:
    a = RawStencil("s", b"\x48\xc1\xe7\x0d\xe9\0\0\0\0", (), 5)
    b = RawStencil("s", b"\x48\xc1\xe7\x15\xe9\0\0\0\0", (), 5)
    merged = diff_hole(a, b, "s", [("_JIT_SH", 13, 21)])
    assert merged.holes[0].offset == 3 and merged.holes[0].kind == IMM8 and merged.code[3] == 0
    rol = RawStencil("s", b"\x48\xc1\xc7\x33", (), 0)
    ror = RawStencil("s", b"\x48\xc1\xc7\x2b", (), 0)
    assert diff_hole(rol, ror, "s", [("_JIT_SH", 13, 21), ("_JIT_SHN", 51, 43)]).holes[0].symbol == "_JIT_SHN"
    with pytest.raises(ObjectFileError):
        diff_hole(a, RawStencil("s", b"\x48\xc1\xe8\x15\xe9\0\0\0\0", (), 5), "s", [("_JIT_SH", 13, 21)])


_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SETTINGS
@given(program=programs())
def test_loop_headers_are_the_backward_jr_targets(program: GenProgram) -> None:
    verified = verify(program.image())
    expected = {ins.target for ins in verified.instrs if ins.op.mnemonic == "JR" and ins.target <= ins.pc}
    assert loop_headers(verified) == tuple(sorted(expected - set(verified.functions)))
    ids = entry_ids(verified)
    assert sorted(ids.values()) == list(range(len(ids)))
    assert list(ids)[:len(verified.functions)] == list(verified.functions)


def test_extension_words_that_look_like_jumps_are_not_jumps() -> None:
    # LD's 32-bit value 0x02000FFF is a word with JR's opcode and displacement -1
    verified = verify(assemble_text("PUBLIC main\nmain: LD HL, 0x02000FFF\nRET\n", "t.s"))
    assert loop_headers(verified) == ()


def test_image_round_trip_and_damage(lib: StencilLibrary) -> None:
    src = "PUBLIC main\nmain: LD HL, 3\nloop: LD64 DE, (HL+8)\nDEC HL\nCPI HL, 0\nJR ne, loop\nDIVU A, DE, HL\nRET\n"
    program = verify(assemble_text(src, "t.s"))
    img = assemble(program, lib, BaselineSpec(True, 4096, (), True))
    back = image_mod.decode(img.encode())
    assert back is not None
    assert (back.code, back.symbols, list(back.entry_pcs), list(back.ftab)) == \
        (img.code, img.symbols, list(img.entry_pcs), list(img.ftab))
    assert list(back.site_pcs) == list(img.site_pcs) and back.ids == img.ids
    assert [back.exits[e] for e in back.site_exits] == [img.exits[e] for e in img.site_exits]
    payload = img.encode()
    for bad in (payload[:-1], payload + b"x", b"ZJITBLI2" + payload[8:], payload[:20]):
        assert image_mod.decode(bad) is None
    # every trap stub names its site
    for s in range(len(img.site_pcs)):
        ret = img.site_base + (s // image_mod.SITES_PER_CHUNK) * img.site_chunk \
            + (s % image_mod.SITES_PER_CHUNK) * img.site_stub + img.site_stub
        assert img.site_at(ret) == (img.site_pcs[s], img.exits[img.site_exits[s]])
    assert img.site_at(img.site_base) is None
    assert img.block_at(img.ftab[0]) == 0
