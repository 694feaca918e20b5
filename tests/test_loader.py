"""ELF parser, linker and the memfd W^X loader (x86-64 native, AArch64 in unicorn)."""

from __future__ import annotations

import ctypes
import gc
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llvm_samples import PROBE_IR, SIMPLE_IR, probe_expected_switch
from zjit.backends import targets
from zjit.backends.native import loader
from zjit.backends.native.loader import load_object
from zjit.backends.objfile import elf, linker
from zjit.backends.objfile.compiler import compile_ir
from zjit.backends.objfile.elf import ObjectFileError
from zjit.backends.objfile.linker import link_image

from zjit.errors import ZjitError

X86 = targets.X86_64_TRIPLE
A64 = targets.AARCH64_TRIPLE

I64_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)
_callback = I64_FN(lambda x: x * 1000)
_ext_data = ctypes.c_int64(55)
EXTERNALS = {"ext_fn": ctypes.cast(_callback, ctypes.c_void_p).value or 0, "ext_data": ctypes.addressof(_ext_data)}


@pytest.fixture(scope="module")
def probe() -> dict[int, bytes]:
    return {lvl: compile_ir(PROBE_IR, triple=X86, opt_level=lvl) for lvl in (0, 1, 2)}


@pytest.fixture(scope="module")
def probe_a64() -> dict[int, bytes]:
    return {lvl: compile_ir(PROBE_IR, triple=A64, opt_level=lvl) for lvl in (0, 2)}


def _maps() -> list[tuple[int, int, str, str]]:
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, parts[1], parts[5] if len(parts) > 5 else ""))
    return out


def _in_range(lo: int, hi: int) -> list[tuple[int, int, str, str]]:
    return [m for m in _maps() if m[0] < hi and m[1] > lo]


# --------------------------------------------------------------------------- x86-64


def _reloc_types(obj: bytes) -> set[tuple[str, int]]:
    parsed = elf.parse_elf(obj)
    return {(parsed.sections[r.target].name, r.type) for r in parsed.relocations}


def test_probe_exercises_every_relocation_kind(probe: dict[int, bytes]) -> None:
    for lvl, obj in probe.items():
        types = {t for _sec, t in _reloc_types(obj)}
        assert {linker.R_X86_64_PC32, linker.R_X86_64_PLT32, linker.R_X86_64_64} <= types, lvl
        assert types & {linker.R_X86_64_REX_GOTPCRELX, linker.R_X86_64_GOTPCREL}, lvl
    secs = {s.name for s in elf.parse_elf(probe[2]).sections}
    assert any(s.startswith(".rodata") for s in secs)  # jump table and constant pool
    assert {".data.rel.ro", ".eh_frame"} <= secs


@pytest.mark.parametrize("level", [0, 1, 2])
def test_probe_runs_natively(probe: dict[int, bytes], level: int) -> None:
    with load_object(probe[level], externals=EXTERNALS) as code:
        switchy = I64_FN(code.symbol("switchy"))
        assert [switchy(x) for x in range(-2, 9)] == [probe_expected_switch(x) for x in range(-2, 9)]
        scale = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(code.symbol("scale"))
        assert scale(2.0) == 2.0 * 3.25 + 0.125
        use = I64_FN(code.symbol("use_externs"))
        assert use(3) == 3000 + 55 + 7
        assert use(4) == 4000 + 55 + 8  # @counter lives in private writable data
        via = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(code.symbol("via_table"))
        assert (via(0, 10), via(1, 10)) == (11, 20)
        # The extern call went through a stub placed after the generated code.
        start, end = code.code_range()
        assert end - start > linker.plan(probe[level]).code_size


def test_each_load_has_its_own_data(probe: dict[int, bytes]) -> None:
    a = load_object(probe[2], externals=EXTERNALS)
    b = load_object(probe[2], externals=EXTERNALS)
    try:
        ua, ub = I64_FN(a.symbol("use_externs")), I64_FN(b.symbol("use_externs"))
        assert ua(0) == 55 + 7 and ua(0) == 55 + 8
        assert ub(0) == 55 + 7  # the memfd's rw- mapping is private per load
        assert a.symbol("counter") != b.symbol("counter")
    finally:
        a.close()
        b.close()


def test_simple_function() -> None:
    with load_object(compile_ir(SIMPLE_IR, triple=X86, opt_level=2)) as code:
        assert set(code.symbols()) == {"add_mul", "sum_to"}
        assert ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(code.symbol("add_mul"))(4, 6) == 30
        with pytest.raises(KeyError):
            code.symbol("nope")


def test_mapping_permissions_and_unmap(probe: dict[int, bytes]) -> None:
    code = load_object(probe[2], externals=EXTERNALS)
    lo, hi = code.base, code.base + code.size
    maps = _in_range(lo, hi)
    perms = sorted(m[2] for m in maps)
    assert perms == ["r--s", "r-xs", "rw-p"]
    for m_lo, m_hi, p, path in maps:
        assert not ("w" in p and "x" in p)
        assert "zjit-code" in path  # all three come from the memfd
        assert lo <= m_lo and m_hi <= hi
    text = [m for m in maps if m[2] == "r-xs"][0]
    start, end = code.code_range()
    assert text[0] <= start < end <= text[1]
    assert [(s, e, p) for s, e, p in code.regions()] == [(m[0], m[1], m[2][:-1].replace("-", "")) for m in
                                                          sorted(maps)]
    assert ctypes.string_at(start, end - start) == code.text_bytes()
    code.close()
    code.close()  # idempotent
    assert code.closed
    assert _in_range(lo, hi) == []
    with pytest.raises(ValueError):
        code.symbol("switchy")


def test_garbage_collection_unmaps(probe: dict[int, bytes]) -> None:
    code = load_object(probe[0], externals=EXTERNALS)
    lo, hi = code.base, code.base + code.size
    assert _in_range(lo, hi)
    del code
    gc.collect()
    assert _in_range(lo, hi) == []


def test_shared_code_cannot_be_made_writable(probe: dict[int, bytes]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    with load_object(probe[2], externals=EXTERNALS) as code:
        for start, end, perms in code.regions():
            if perms in ("rx", "r"):
                # The memfd was sealed before mapping: no write permission can be added.
                assert libc.mprotect(start, end - start, loader.PROT_READ | loader.PROT_WRITE) != 0


def test_missing_external_fails_cleanly(probe: dict[int, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    reserved: list[tuple[int, int]] = []
    real_map = loader._map

    def spy(addr: int, size: int, prot: int, flags: int, fd: int, offset: int) -> int:
        res = real_map(addr, size, prot, flags, fd, offset)
        if prot == loader.PROT_NONE:
            reserved.append((res, size))
        return int(res)

    monkeypatch.setattr(loader, "_map", spy)
    with pytest.raises(ObjectFileError) as info:
        load_object(probe[2], externals={"ext_fn": 0x1000})
    assert info.value.code == "COMPILE_FAILED"
    assert "ext_data" in info.value.message
    ((base, size),) = reserved
    assert _in_range(base, base + size) == []


def _rela_entries(obj: bytes) -> list[elf.Relocation]:
    return [r for r in elf.parse_elf(obj).relocations if r.target]


def test_unsupported_relocation_type_is_rejected(probe: dict[int, bytes]) -> None:
    obj = bytearray(probe[2])
    rel = next(r for r in _rela_entries(bytes(obj)) if r.type == linker.R_X86_64_PLT32)
    struct.pack_into("<I", obj, rel.file_offset + 8, 3)  # R_X86_64_GOT32
    with pytest.raises(ObjectFileError) as info:
        load_object(bytes(obj), externals=EXTERNALS)
    assert "unsupported x86-64 relocation type 3" in info.value.message
    assert info.value.offset is not None


def test_static_relocation_model_overflows_clearly() -> None:
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    mod = llvm.parse_assembly("@g = dso_local global i64 1\ndefine ptr @f() {\n  ret ptr @g\n}\n")
    mod.triple = X86
    tm = llvm.Target.from_triple(X86).create_target_machine(reloc="static", codemodel="small")
    obj = tm.emit_object(mod)
    assert {t for _s, t in _reloc_types(obj)} & {linker.R_X86_64_32, linker.R_X86_64_32S}
    with pytest.raises(ObjectFileError) as info:
        load_object(obj)
    assert "does not fit" in info.value.message or "32-bit" in info.value.message
    # Linked low enough, the same object is fine.
    image = link_image(obj, 0x400000)
    data = image.region("data")
    assert data is not None and image.symbols["g"] == 0x400000 + data.offset


def test_wrong_architecture_is_rejected(probe_a64: dict[int, bytes]) -> None:
    with pytest.raises(ObjectFileError) as info:
        load_object(probe_a64[2], externals=EXTERNALS)
    assert "not the host" in info.value.message


def test_bss_common_and_external_pointer_in_data() -> None:
    ir = (
        "@zero = global [64 x i64] zeroinitializer\n"
        "@com = common global i64 0, align 8\n"
        "@init = global i64 5\n"
        "declare i64 @ext_fn(i64)\n"
        "@fnptr = global ptr @ext_fn\n"
        "define i64 @bump(i64 %i) {\n"
        "  %p = getelementptr [64 x i64], ptr @zero, i64 0, i64 %i\n"
        "  %v = load i64, ptr %p\n  %v1 = add i64 %v, 1\n  store i64 %v1, ptr %p\n"
        "  %c = load i64, ptr @com\n  %c1 = add i64 %c, %v1\n  store i64 %c1, ptr @com\n"
        "  %n = load i64, ptr @init\n  %f = load ptr, ptr @fnptr\n  %r = call i64 %f(i64 %n)\n"
        "  %s = add i64 %r, %c1\n  ret i64 %s\n}\n"
    )
    for lvl in (0, 2):
        obj = compile_ir(ir, triple=X86, opt_level=lvl)
        with load_object(obj, externals=EXTERNALS) as code:
            bump = I64_FN(code.symbol("bump"))
            assert bump(3) == 5000 + 1
            assert bump(3) == 5000 + 3
            assert bump(63) == 5000 + 4
            assert ctypes.c_int64.from_address(code.symbol("init")).value == 5


_BIND = {"STB_LOCAL": 0, "STB_GLOBAL": 1, "STB_WEAK": 2}
_TYPE = {"STT_NOTYPE": 0, "STT_OBJECT": 1, "STT_FUNC": 2, "STT_SECTION": 3, "STT_FILE": 4}


def test_parser_agrees_with_pyelftools(probe: dict[int, bytes], probe_a64: dict[int, bytes]) -> None:
    import io

    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    for obj in [*probe.values(), *probe_a64.values()]:
        ours = elf.parse_elf(obj)
        ref = ELFFile(io.BytesIO(obj))
        assert [(s.name, s.offset, s.size, s.flags, s.align) for s in ours.sections] == [
            (s.name, s["sh_offset"], s["sh_size"], s["sh_flags"], max(1, s["sh_addralign"]))
            for s in ref.iter_sections()
        ]
        special = {"SHN_UNDEF": elf.SHN_UNDEF, "SHN_ABS": elf.SHN_ABS, "SHN_COMMON": elf.SHN_COMMON}
        symtab: Any = ref.get_section_by_name(".symtab")
        assert [(s.name, s.value, s.size, s.bind, s.type, s.shndx) for s in ours.symbols] == [
            (s.name, s["st_value"], s["st_size"], _BIND[s["st_info"]["bind"]], _TYPE[s["st_info"]["type"]],
             special.get(s["st_shndx"], s["st_shndx"]))
            for s in symtab.iter_symbols()
        ]
        theirs = []
        for sec in ref.iter_sections():
            if isinstance(sec, RelocationSection):
                target = ref.get_section(sec["sh_info"])
                if target["sh_flags"] & elf.SHF_ALLOC:
                    theirs += [(sec["sh_info"], r["r_offset"], r["r_info_type"], r["r_info_sym"], r["r_addend"])
                               for r in sec.iter_relocations()]
        assert sorted(theirs) == sorted((r.target, r.offset, r.type, r.sym, r.addend) for r in ours.relocations)


def test_truncated_and_malformed_objects(probe: dict[int, bytes]) -> None:
    obj = probe[2]
    for n in list(range(0, 80, 7)) + [len(obj) // 2, len(obj) - 1]:
        with pytest.raises(ZjitError) as info:
            link_image(obj[:n], 0x400000, EXTERNALS)
        assert info.value.code == "COMPILE_FAILED"
    bad = bytearray(obj)
    bad[4] = 1  # ELFCLASS32
    with pytest.raises(ObjectFileError, match="ELF64"):
        elf.parse_elf(bytes(bad))
    with pytest.raises(ObjectFileError, match="not an ELF"):
        elf.parse_elf(b"\x7fELG" + obj[4:])
    with pytest.raises(ObjectFileError, match="relocatable"):
        elf.parse_elf(obj[:16] + struct.pack("<H", 2) + obj[18:])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_objects_never_crash_the_linker(probe: dict[int, bytes], data: st.DataObject) -> None:
    obj = bytearray(probe[data.draw(st.sampled_from([0, 2]))])
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(obj) - 1))
        obj[pos] = data.draw(st.integers(0, 255))
    try:
        image = link_image(bytes(obj), 0x7F0000000000, EXTERNALS)
    except ZjitError as exc:
        assert exc.code == "COMPILE_FAILED"
    else:
        assert image.size >= sum(len(r.data) for r in image.regions)


# --------------------------------------------------------------------------- AArch64


def _run_a64(obj: bytes, calls: list[tuple[str, tuple[int, ...]]], fcall: float) -> tuple[list[int], float]:
    from unicorn import (  # type: ignore[attr-defined]
        UC_ARCH_ARM64,
        UC_HOOK_CODE,
        UC_MODE_ARM,
        UC_PROT_EXEC,
        UC_PROT_READ,
        UC_PROT_WRITE,
        Uc,
    )
    from unicorn import arm64_const as a

    base, host, data, stack = 0x400000, 0x10_0000_0000, 0x20_0000_0000, 0x30_0000_0000
    image = link_image(obj, base, {"ext_fn": host, "ext_data": data})
    uc: Any = Uc(UC_ARCH_ARM64, UC_MODE_ARM)  # type: ignore[no-untyped-call]
    uc.reg_write(a.UC_ARM64_REG_CPACR_EL1, uc.reg_read(a.UC_ARM64_REG_CPACR_EL1) | (3 << 20))
    prot = {"rx": UC_PROT_READ | UC_PROT_EXEC, "r": UC_PROT_READ, "rw": UC_PROT_READ | UC_PROT_WRITE}
    for r in image.regions:
        uc.mem_map(base + r.offset, r.size, prot[r.perms])
        uc.mem_write(base + r.offset, r.data)
    sentinel = host + 0x100
    uc.mem_map(host, 0x1000, UC_PROT_READ | UC_PROT_EXEC)
    uc.mem_write(host, struct.pack("<I", 0xD65F03C0))  # ret
    uc.mem_write(sentinel, struct.pack("<I", 0xD4200000))  # brk #0
    uc.mem_map(data, 0x1000, UC_PROT_READ | UC_PROT_WRITE)
    uc.mem_write(data, struct.pack("<q", 55))
    uc.mem_map(stack, 0x10000, UC_PROT_READ | UC_PROT_WRITE)

    def on_host(uc: Any, address: int, size: int, user: object) -> None:
        uc.reg_write(a.UC_ARM64_REG_X0, (uc.reg_read(a.UC_ARM64_REG_X0) * 1000) & (2**64 - 1))

    uc.hook_add(UC_HOOK_CODE, on_host, begin=host, end=host)

    def call(name: str, args: tuple[int, ...]) -> None:
        for i, v in enumerate(args):
            uc.reg_write(a.UC_ARM64_REG_X0 + i, v & (2**64 - 1))
        uc.reg_write(a.UC_ARM64_REG_SP, stack + 0x10000)
        uc.reg_write(a.UC_ARM64_REG_LR, sentinel)
        uc.emu_start(image.symbols[name], sentinel, count=100000)

    out = []
    for name, args in calls:
        call(name, args)
        out.append(struct.unpack("<q", struct.pack("<Q", uc.reg_read(a.UC_ARM64_REG_X0)))[0])
    uc.reg_write(a.UC_ARM64_REG_D0, struct.unpack("<Q", struct.pack("<d", fcall))[0])
    call("scale", ())
    return out, struct.unpack("<d", struct.pack("<Q", uc.reg_read(a.UC_ARM64_REG_D0)))[0]


@pytest.mark.parametrize("level", [0, 2])
def test_aarch64_probe_in_unicorn(probe_a64: dict[int, bytes], level: int) -> None:
    obj = probe_a64[level]
    types = {t for _s, t in _reloc_types(obj)}
    assert {linker.R_AARCH64_ADR_PREL_PG_HI21, linker.R_AARCH64_CALL26, linker.R_AARCH64_ABS64,
            linker.R_AARCH64_ADR_GOT_PAGE, linker.R_AARCH64_LD64_GOT_LO12_NC} <= types
    calls = [("switchy", (x,)) for x in range(-2, 9)] + [
        ("use_externs", (3,)), ("use_externs", (4,)), ("via_table", (0, 10)), ("via_table", (1, 10))]
    results, scaled = _run_a64(obj, calls, 2.0)
    assert results == [probe_expected_switch(x) for x in range(-2, 9)] + [3062, 4063, 11, 20]
    assert scaled == 6.625


def test_aarch64_veneer_and_got_encoding(probe_a64: dict[int, bytes]) -> None:
    image = link_image(probe_a64[2], 0x400000, {"ext_fn": 0x1122334455667788, "ext_data": 0x8877665544332211})
    text = image.region("text")
    rodata = image.region("rodata")
    assert text is not None and rodata is not None
    veneer = text.data[-16:]
    assert veneer == struct.pack("<IIQ", 0x58000050, 0xD61F0200, 0x1122334455667788)
    assert struct.pack("<Q", 0x8877665544332211) in rodata.data  # GOT slot
    with pytest.raises(ObjectFileError, match="page-aligned"):
        link_image(probe_a64[2], 0x400010, {"ext_fn": 0, "ext_data": 0})
