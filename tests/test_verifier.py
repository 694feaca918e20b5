"""Verifier: every rule of isa.md 3 with positive and negative cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_verifier import reference_verify
from zjit.fuzz.generators import random_program
from zjit.verifier import VerifiedProgram, verify, verify_all
from zjit.verifier.decode import _LD_RD_BYTES, _mark_extensions, _mark_extensions_in_order
from zjit.verifier.fields import check_fields, valid_registers, word_bounds
from zjit.verifier.verify import MAX_ERRORS_KEPT

from zjit.encoding import ld_words, pack, words_to_bytes
from zjit.errors import VerifyError, ZjitError
from zjit.image import ModuleImage, SegmentDesc
from zjit.isa import BY_MNEMONIC, BY_OPCODE, OPS, Fmt, sext
from zjit.policy import Policy

RET = pack(0x01)


def op(m: str) -> int:
    return BY_MNEMONIC[m].opcode


def image(*words: int, **kw: object) -> ModuleImage:
    return ModuleImage(words_to_bytes(list(words)), **kw)  # type: ignore[arg-type]


def fails(img: ModuleImage, code: str, policy: Policy | None = None) -> VerifyError:
    with pytest.raises(VerifyError) as info:
        verify(img, policy)
    assert info.value.code == code, str(info.value)
    return info.value


def test_minimal_ret_verifies() -> None:
    prog = verify(image(RET))
    assert isinstance(prog, VerifiedProgram)
    assert prog.leaders == (0,) and prog.blocks[0].cost == 1 and prog.functions == (0,)


def test_program_object_cannot_be_forged() -> None:
    with pytest.raises(TypeError):
        VerifiedProgram(object(), image=image(RET), instrs=(), leaders=(), blocks={},
                        functions=(), prims_used=0, digest="")


def test_reference_toolchain_duplicated_fields_are_required() -> None:
    # CP HL, DE as the reference assembler writes it: RD repeats RS1.
    verify(image(pack(op("CP"), 0, 0, 1), RET))
    err = fails(image(pack(op("CP"), 0, 2, 1), RET), "BAD_FIELD")
    assert err.pc == 0 and err.offset == 0
    # stores: RD repeats RS2; loads: RS2 repeats RS1; shifts: RS2 repeats RS1
    verify(image(pack(op("ST32"), 1, 0, 1, 8), pack(op("LD32"), 2, 0, 0, -4),
                 pack(op("SLA"), 0, 3, 3, 31), pack(op("CLZ64"), 4, 4, 4), RET))
    fails(image(pack(op("ST32"), 0, 0, 1, 8), RET), "BAD_FIELD")
    fails(image(pack(op("LD32"), 2, 0, 1, 0), RET), "BAD_FIELD")
    fails(image(pack(op("CLZ"), 2, 2, 0), RET), "BAD_FIELD")


def test_empty_code() -> None:
    err = fails(ModuleImage(b"", code_offset=40), "EMPTY_CODE")
    assert err.offset == 40


def test_code_align() -> None:
    err = fails(ModuleImage(words_to_bytes([RET]) + b"\x00\x00", code_offset=100), "CODE_ALIGN")
    assert err.offset == 104


def test_code_too_large() -> None:
    fails(image(RET, RET, RET), "CODE_TOO_LARGE", Policy(max_code_bytes=8))


def test_data_too_large() -> None:
    seg = SegmentDesc("data.0", 0x1000, 64, "rw", b"\x01" * 64)
    fails(image(RET, segments=(seg,)), "DATA_TOO_LARGE", Policy(max_data_bytes=63))


@pytest.mark.parametrize("opcode", [0x09, 0x0F, 0x1A, 0x38, 0x48, 0x6A, 0x7D, 0x87, 0x92, 0xE0, 0xEF, 0xF6, 0xFF])
def test_bad_opcode(opcode: int) -> None:
    err = fails(image(RET, opcode << 24, RET, code_offset=40), "BAD_OPCODE")
    assert err.pc == 4 and err.offset == 44 and err.opcode == opcode


def test_bad_register_every_register_field() -> None:
    for rd, rs1, rs2, mnem in [(5, 0, 0, "MOV"), (0, 7, 0, "MOV"), (0, 0, 15, "ADD"), (0, 9, 9, "LD8U"),
                               (5, 0, 5, "ST8")]:
        err = fails(image(pack(op(mnem), rd, rs1, rs2), RET), "BAD_REGISTER")
        assert err.pc == 0


@pytest.mark.parametrize("info", [o for o in OPS if o.fmt in (Fmt.NONE, Fmt.CALL)], ids=lambda o: o.mnemonic)
def test_bad_field_nonzero(info: object) -> None:
    from zjit.isa import OpInfo
    assert isinstance(info, OpInfo)
    body = [pack(info.opcode, 1, 0, 0, 0 if info.fmt is Fmt.NONE else 1), RET]
    fails(image(*body), "BAD_FIELD")
    if info.fmt is Fmt.NONE:
        fails(image(pack(info.opcode, 0, 0, 0, 1), RET), "BAD_FIELD")


def test_bad_imm_shift_count_and_condition() -> None:
    verify(image(pack(op("SLA"), 0, 0, 0, 31), pack(op("SLA64"), 0, 0, 0, 63), RET))
    err = fails(image(RET, pack(op("SLA"), 0, 0, 0, 32)), "BAD_IMM")
    assert err.pc == 4
    fails(image(pack(op("ROR64"), 0, 0, 0, 64), RET), "BAD_IMM")
    fails(image(pack(op("SRL"), 0, 0, 0, -1), RET), "BAD_IMM")
    verify(image(pack(op("JR"), 0, 10, 0, 1), RET))
    fails(image(pack(op("JR"), 0, 11, 0, 1), RET), "BAD_IMM")


def test_truncated_extension_words() -> None:
    err = fails(image(RET, pack(0x70, 0, 0, 0, -2047), 5), "TRUNCATED_EXT")
    assert err.pc == 4
    fails(image(RET, pack(0x70, 0, 0, 0, -2048)), "TRUNCATED_EXT")


def test_ld_extension_values() -> None:
    words = ld_words(0, -2048) + ld_words(1, -2047) + ld_words(2, 1 << 40) + ld_words(3, -5) + [RET]
    prog = verify(image(*words))
    assert [i.imm for i in prog.instrs[:4]] == [-2048, -2047, 1 << 40, -5]
    assert [i.nwords for i in prog.instrs[:4]] == [2, 2, 3, 1]


def test_branch_into_extension_word_rejected() -> None:
    # JR al +2 words from pc 0 lands on LD's extension word at pc 8.
    words = [pack(op("JR"), 0, 0, 0, 2)] + ld_words(0, 100000) + [RET]
    err = fails(image(*words), "BAD_TARGET")
    assert err.pc == 0


@pytest.mark.parametrize("disp", [-1, 3, 100])
def test_bad_target_outside(disp: int) -> None:
    fails(image(pack(op("CALL"), 0, 0, 0, disp), RET), "BAD_TARGET")


def test_falls_off_end() -> None:
    err = fails(image(RET, pack(op("INC"), 0, 0)), "FALLS_OFF_END")
    assert err.pc == 4
    fails(image(pack(op("JR"), 0, 1, 0, 0)), "FALLS_OFF_END")  # conditional JR last
    verify(image(pack(op("JR"), 0, 0, 0, 0)))  # JR al to itself is fine for the verifier


def test_bad_entry_and_export() -> None:
    words = [pack(0x70, 0, 0, 0, -2048), 7, RET]
    err = fails(image(*words, entry_pc=4), "BAD_ENTRY")
    assert err.pc == 4
    err = fails(image(*words, exports={"f": 4}), "BAD_EXPORT")
    assert err.pc == 4 and err.path == "export f"
    fails(image(*words, entry_pc=12), "BAD_ENTRY")


def test_imports_must_match_use() -> None:
    out, alloc = pack(0xF1), pack(0xF3)
    verify(image(out, alloc, RET, imports=0b1010))
    fails(image(out, alloc, RET, imports=0b0010), "IMPORT_MISMATCH")
    fails(image(RET, imports=0b1), "IMPORT_MISMATCH")
    verify(image(out, RET))  # no IMPT: nothing declared, nothing to compare


def test_primitive_disallowed_by_policy() -> None:
    err = fails(image(RET, pack(0xF5), RET), "PRIM_DISALLOWED", Policy(allowed_prims=0b011111))
    assert err.pc == 4


def test_every_error_is_collected() -> None:
    errs = verify_all(image(0x09 << 24, pack(op("SLA"), 0, 0, 0, 40), pack(op("CALL"), 0, 0, 0, 50),
                            pack(op("INC"), 0, 0)))
    assert [e.code for e in errs] == ["BAD_OPCODE", "BAD_IMM", "BAD_TARGET"]


def test_blocks_and_leaders_follow_isa_4_1() -> None:
    words = [
        pack(0x70, 0, 0, 0, 3),          # 0   LD HL, 3
        pack(op("CALL"), 0, 0, 0, 5),    # 4   CALL 24
        pack(op("DEC"), 0, 0),           # 8   loop: DEC HL
        pack(op("CPI"), 0, 0, 0, 0),     # 12  CPI HL, 0
        pack(op("JR"), 0, 2, 0, -2),     # 16  JR ne, loop(8)
        RET,                             # 20  RET
        pack(op("INC"), 1, 1),           # 24  f: INC DE
        RET,                             # 28  RET
    ]
    prog = verify(image(*words, exports={"g": 12}))
    assert prog.leaders == (0, 8, 12, 20, 24)
    assert {s: b.cost for s, b in prog.blocks.items()} == {0: 2, 8: 1, 12: 2, 20: 1, 24: 2}
    assert prog.blocks[0].successors == (24, 8)
    assert prog.blocks[12].successors == (8, 20)
    assert prog.blocks[20].successors == ()
    assert prog.functions == (0, 12, 24)


def test_digest_changes_with_content() -> None:
    a = verify(image(RET)).digest
    assert a == verify(image(RET)).digest
    assert a != verify(image(RET, exports={"main": 0})).digest
    seg = SegmentDesc("data.0", 0x1000, 4, "rw", b"abcd")
    assert a != verify(image(RET, segments=(seg,))).digest


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=12), st.integers(0, 64))
def test_random_code_only_raises_verify_errors(words: list[int], entry: int) -> None:
    try:
        prog = verify(ModuleImage(words_to_bytes(words), entry_pc=entry))
    except ZjitError:
        return
    # Whatever verifies has a well-formed block partition.
    covered = [i.pc for b in prog.blocks.values() for i in b.instrs]
    assert len(covered) == len(set(covered))
    assert all(b.cost == len(b.instrs) >= 1 for b in prog.blocks.values())


# --------------------------------------------------------------------------- the table-driven verifier (issue 11, finding 8)


def test_word_table_agrees_with_the_field_rules() -> None:
    # The rules depend on an opcode's format and width only: one opcode of each kind
    # is compared exhaustively (every register field value with IMM12 0, then every
    # IMM12 value with registers the rules accept), the others must share its row.
    bounds = word_bounds()
    row_of: dict[tuple[Fmt, int], int] = {}
    for opcode in range(256):
        row = BY_OPCODE[opcode]
        cells = bounds[opcode << 12:(opcode + 1) << 12]
        if row is None:
            assert not any(cells), opcode
            continue
        kind = (row.fmt, row.width)
        if kind in row_of:
            assert cells == bounds[row_of[kind] << 12:(row_of[kind] + 1) << 12], row.mnemonic
            continue
        row_of[kind] = opcode
        for regs in range(1 << 12):
            rd, rs1, rs2 = regs >> 8, regs >> 4 & 15, regs & 15
            assert (cells[regs] > 0) == (check_fields(row, rd, rs1, rs2, 0) is None), (row.mnemonic, regs)
        rd, rs1, rs2 = valid_registers(row.fmt)[-1]
        for raw in range(1 << 12):
            rules_ok = check_fields(row, rd, rs1, rs2, sext(raw, 12)) is None
            assert (raw < cells[rd << 8 | rs1 << 4 | rs2]) == rules_ok, (row.mnemonic, raw)


def _error_tuple(e: VerifyError) -> tuple[object, ...]:
    return (e.code, e.message, e.pc, e.offset, e.opcode, e.path)


def _same_as_reference(img: ModuleImage, policy: Policy | None = None) -> None:
    errors, instrs, leaders, blocks, functions, prims = reference_verify(img, policy)
    assert [_error_tuple(e) for e in verify_all(img, policy)] == [_error_tuple(e) for e in errors]
    if errors:
        with pytest.raises(VerifyError) as info:
            verify(img, policy)
        assert _error_tuple(info.value) == _error_tuple(errors[0])
        return
    prog = verify(img, policy)
    assert tuple(prog.instrs) == instrs and len(prog.instrs) == len(instrs)
    assert prog.leaders == leaders and prog.functions == functions and prog.prims_used == prims
    assert list(prog.blocks) == list(blocks) == list(leaders)
    assert {pc: (b.start, b.end, b.instrs, b.cost, b.successors) for pc, b in prog.blocks.items()} == blocks
    assert dict(prog.by_pc) == {i.pc: i for i in instrs}
    if instrs:
        k = len(instrs) // 2
        assert prog.instrs[k] == instrs[k] and prog.instrs[-1] == instrs[-1] and prog.instrs[1:3] == instrs[1:3]


_OPCODES = [o.opcode for o in OPS]


_WORD = st.one_of(
    st.integers(0, 2**32 - 1),
    st.builds(lambda rd, imm: pack(0x70, rd, 0, 0, imm), st.integers(0, 5), st.sampled_from([-2048, -2047])),
    st.builds(lambda opcode, rd, rs, same, imm: pack(opcode, rd, *((rd, rd) if same else rs), imm),
              st.sampled_from(_OPCODES), st.integers(0, 5), st.tuples(st.integers(0, 5), st.integers(0, 5)),
              st.booleans(), st.integers(-3, 3) | st.integers(-2048, 2047)),
)


@st.composite
def _words(draw: st.DrawFn) -> list[int]:
    """Mostly decodable words (valid opcodes, small register fields, LD sentinels),
    some arbitrary ones, ending in RET more often than not."""
    out: list[int] = draw(st.lists(_WORD, max_size=40))
    return out + [RET] if draw(st.integers(0, 3)) else out


@settings(max_examples=300, deadline=None)
@given(_words(), st.integers(0, 48), st.dictionaries(st.sampled_from(["f", "g"]), st.integers(0, 48)),
       st.integers(0, 63), st.none() | st.integers(0, 63))
def test_same_verdict_and_structure_as_the_reference(words: list[int], entry: int, exports: dict[str, int],
                                                     allowed: int, imports: int | None) -> None:
    img = ModuleImage(words_to_bytes(words), entry_pc=entry, exports=exports, imports=imports,
                      code_offset=8)
    _same_as_reference(img, Policy(allowed_prims=allowed))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), st.data())
def test_generated_programs_match_the_reference(seed: int, data: st.DataObject) -> None:
    img = random_program(seed).image()
    _same_as_reference(img)
    damaged = bytearray(img.code)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] = data.draw(st.integers(0, 255))
    _same_as_reference(ModuleImage(bytes(damaged), entry_pc=img.entry_pc, exports=img.exports))


def test_verify_keeps_a_bounded_number_of_errors() -> None:
    garbage = image(*([0x09 << 24] * 5000))
    with pytest.raises(VerifyError) as info:
        verify(garbage)
    assert len(info.value.all_errors) == MAX_ERRORS_KEPT  # type: ignore[attr-defined]
    assert len(verify_all(garbage)) == 5000 and len(verify_all(garbage, limit=7)) == 7


def test_an_ld_inside_another_lds_extension_words_is_data() -> None:
    # The second word looks like an LD with two extension words but is the first
    # LD's value: decoding runs in order, so the RET after it is an instruction.
    ld64 = pack(0x70, 1, 0, 0, -2047)
    words = [pack(0x70, 0, 0, 0, -2048), ld64, RET]
    prog = verify(image(*words))
    assert [(i.pc, i.nwords) for i in prog.instrs] == [(0, 2), (8, 1)]
    _same_as_reference(image(*words))
    _same_as_reference(image(ld64, ld64, ld64, RET, RET))
    _same_as_reference(image(RET, ld64, pack(0x70, 0, 0, 0, -2048)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([pack(0x70, 0, 0, 0, -2048), pack(0x70, 4, 0, 0, -2047), RET,
                                 pack(0x70, 5, 0, 0, -2048)]), max_size=12))
def test_extension_words_all_at_once_equal_in_order(words: list[int]) -> None:
    code = words_to_bytes(words)
    fast, slow = bytearray(code[3::4]), bytearray(code[3::4])
    first = _mark_extensions(code, fast, 0)
    second = _mark_extensions_in_order(code, slow, 0)
    assert fast == slow and (first and _error_tuple(first)) == (second and _error_tuple(second))


def test_sentinel_ld_bytes_match_the_field_rules() -> None:
    # _mark_extensions recognises a valid sentinel LD from its bytes: RS2 = 0 and
    # RD << 4 | RS1 among _LD_RD_BYTES (RS1 = 0); check that against the rules.
    ld = BY_MNEMONIC["LD"]
    for rd in range(16):
        for rs1 in range(16):
            for rs2 in range(16):
                ok = check_fields(ld, rd, rs1, rs2, -2048) is None
                assert ok == (rs2 == 0 and bytes([rd << 4 | rs1]) in _LD_RD_BYTES), (rd, rs1, rs2)
