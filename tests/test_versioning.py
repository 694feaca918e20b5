"""Versioned loops (sandbox-critical): the guard's checks against adversarial loops.

Every program here runs on the interpreter and on the jit engine's optimized
tier at O2 (where loops are versioned), with the same memory size, registers and fuel; Results
and the final guest memory must be identical. The loops are built so the guard
has to get its arithmetic exactly right: accesses that leave memory only on the
last iteration (and only in the last chunk), addresses that wrap around 2**64
or 2**32, steps of 2**32 + 1 and beyond, trip counts near 2**32, loops that
change their bound, stores that reach a read-only segment, and fuel that runs
out at every position of a chunk. Each test also checks, on the IR, that the
loop it means is versioned and which accesses the fast copy leaves unchecked
(a test that cannot fail is a defect).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zjit.backends.middle.ir import LoopGuard
from zjit.backends.middle.lift import lift
from zjit.backends.native.engine import JitBackend
from zjit.verifier import verify

import zjit
from zjit.asm import assemble
from zjit.image import ModuleImage, SegmentDesc

pytestmark = pytest.mark.skipif(not JitBackend.available(), reason="native code not supported here")

MEM = 1 << 16
_ENGINES: dict[tuple[str, int], zjit.Engine] = {}


def _engine(backend: str, mem_size: int) -> zjit.Engine:
    key = (backend, mem_size)
    if key not in _ENGINES:
        _ENGINES[key] = zjit.Engine(zjit.Policy(use_cache=False, mem_size=mem_size, opt_level=2, tier="optimized"), backend=backend)
    return _ENGINES[key]


def image(src: str, segments: tuple[SegmentDesc, ...] = ()) -> ModuleImage:
    img = assemble("PUBLIC main\nmain:\n" + src.strip("\n") + "\n", "loop.s")
    if segments:
        img = dataclasses.replace(img, segments=img.segments + segments)
    return img


def guards(img: ModuleImage) -> list[LoopGuard]:
    """The versioned loops' guards in the IR of ``img`` (as lifted for O2)."""
    mod = lift(verify(img), versioning=True)
    return [b.term for fn in mod.functions.values() for b in fn.blocks.values() if isinstance(b.term, LoopGuard)]


def agree(img: ModuleImage, mem_size: int = MEM, fuel: int | None = None, **regs: int) -> zjit.Result:
    """Run ``main`` on both engines; assert the same Result and memory; return it."""
    out: list[tuple[zjit.Result, bytes]] = []
    for backend in ("interp", "jit"):
        inst = _engine(backend, mem_size).load(img).instantiate(log=None)
        r = inst.call("main", fuel=fuel, **regs)
        out.append((r, bytes(inst.memory)))
    (ri, mi), (rj, mj) = out
    assert rj == ri, f"jit {rj} != interp {ri}"
    assert mj == mi, "final memory differs"
    return ri


def trap_of(r: zjit.Result) -> tuple[str, int] | None:
    return None if r.trap is None else (r.trap.kind.name, r.trap.pc)


# A copy loop: A = mem[HL + 0], mem[HL + 1] = A, HL += 1 (32-bit INC) while HL < IX
# (unsigned, low 32 bits). pcs: 0x0 LD8U, 0x4 ST8, 0x8 INC, 0xc CP, 0x10 JR.
SHIFT = """
loop:   LD8U A, (HL+0)
        ST8 (HL+1), A
        INC HL
        CP HL, IX
        JR ltu, loop
        RET
"""


def test_copy_loop_is_versioned_with_both_accesses_unchecked() -> None:
    (g,) = guards(image(SHIFT))
    assert g.plan.unchecked == {0x0, 0x4}
    assert g.plan.exact == {0x8}
    assert g.plan.test.kind == "lt"


@pytest.mark.parametrize("n", [1, 2, 3, 5461, 5462, 5463, 20000])
@pytest.mark.parametrize("end_gap", [2, 1, 0])
def test_last_iteration_leaves_memory(n: int, end_gap: int) -> None:
    # the store of the last iteration reaches mem_size - end_gap (end_gap 0: one past)
    end = MEM - end_gap
    r = agree(image(SHIFT), hl=end - n, ix=end)
    assert (r.trap is None) == (end_gap > 0)
    if r.trap is not None:
        assert trap_of(r) == ("OOB", 0x4) and r.trap.address == MEM and r.reg("HL") == MEM - 1


@pytest.mark.parametrize("fuel", [0, 1, 4, 5, 6, 5 * 3276 - 1, 5 * 3276, 5 * 3276 + 1, 5 * 3276 + 4, 99_999, 100_001])
def test_fuel_runs_out_anywhere_in_a_chunk(fuel: int) -> None:
    r = agree(image(SHIFT), fuel=fuel, hl=0x100, ix=0x100 + 30_000)
    assert r.trap is not None and r.trap.kind.name == "FUEL" and r.trap.pc == 0x0


def test_fuel_exact_over_many_chunks() -> None:
    r = agree(image(SHIFT), fuel=10**7, hl=0x100, ix=0x100 + 30_000)
    assert r.ok and r.fuel_left == 10**7 - 5 * 30_000 - 1


# 64-bit induction variable with a 64-bit step from a register.
STRIDE = """
loop:   ST8 (HL-8), A
        LD64 A, (HL+0)
        ADD64 HL, HL, DE
        CP HL, IX
        JR ltu, loop
        RET
"""


def test_register_step_is_versioned() -> None:
    (g,) = guards(image(STRIDE))
    assert g.plan.unchecked == {0x0, 0x4}
    assert g.plan.steps[0].var == 1  # HL += DE


@pytest.mark.parametrize(("hl", "de", "ix"), [
    (0x100, 8, 0x8000),                        # plain
    (0x100, 8, MEM - 7),                       # the last LD64 ends exactly at mem_size
    (0x100, 8, MEM - 6),                       # ... one byte past it
    (0x100, (1 << 32) + 1, 0x110),             # low 32 bits step 1, the address jumps by 2**32 + 1
    (0x100, (1 << 63) + 1, 0x110),             # a step of 2**63 + 1 (negative as 64-bit)
    ((1 << 64) - 8, 8, 0x40),                  # HL wraps around 2**64 into memory (HL-8 does not)
    (0x100, 0, 0x110),                         # step 0: the test never fails (fuel ends it)
    (0x100, (1 << 32) - 8, 0x10),              # step -8 in the low half: counts down past 0
    (0x100, 1 << 32, 0x110),                   # the low half does not move at all
])
def test_strides(hl: int, de: int, ix: int) -> None:
    agree(image(STRIDE), fuel=200_000, hl=hl, de=de, ix=ix)


# Address 2**64 - 16 + 32 wraps to 16: in bounds for the guest, out of range as an integer.
WRAP64 = """
loop:   LD8U A, (HL+32)
        ADD64 BC, BC, A
        ADD64 HL, 1
        CP HL, IX
        JR ne, loop
        RET
"""


def test_address_wrapping_around_two_to_the_64() -> None:
    (g,) = guards(image(WRAP64))
    assert g.plan.unchecked == {0x0}
    img = image(WRAP64)
    r = agree(img, hl=(1 << 64) - 16, ix=16)  # 32 iterations, addresses 16 .. 47
    assert r.ok and r.reg("BC") == 0
    r = agree(img, hl=(1 << 64) - 64, ix=(1 << 32) - 1)  # starts at 2**64 - 32: OOB at once
    assert trap_of(r) == ("OOB", 0x0) and r.trap is not None and r.trap.address == (1 << 64) - 32


# A 32-bit counter (INC) that wraps at 2**32 while it addresses memory.
WRAP32 = """
loop:   LD8U A, (HL+0)
        ADD64 BC, BC, A
        INC HL
        CP HL, IX
        JR ne, loop
        RET
"""


@pytest.mark.parametrize(("hl", "ix"), [
    ((1 << 32) - 3, 4),       # wraps from 2**32 - 1 to 0: the first accesses are out of bounds
    (MEM - 3, 4),             # runs to 2**32 and on: OOB at mem_size
    ((1 << 40) + 5, 9),       # high bits set at entry: INC clears them after one iteration
    (5, 5),                   # the test fails only after 2**32 iterations (fuel ends it)
])
def test_32_bit_counter_wraps(hl: int, ix: int) -> None:
    agree(image(WRAP32), fuel=300_000, hl=hl, ix=ix)


# Counting down to zero with DEC (not-equal test) while the address counts up:
# a trip count of 2**32 when BC starts at 0.
DOWN = """
loop:   ST16 (HL+0), BC
        ADD64 HL, HL, DE
        DEC BC
        CPI BC, 0
        JR ne, loop
        RET
"""


@pytest.mark.parametrize(("bc", "hl", "de"), [
    (100, 0x100, 2),
    (0, 0x100, 0),              # 2**32 iterations (fuel ends it); the address does not move
    (0, 0x100, 2),              # ... and moves to the end of memory: OOB first
    ((MEM - 0x100) // 2, 0x100, 2),      # the last ST16 ends exactly at mem_size
    ((MEM - 0x100) // 2 + 1, 0x100, 2),  # one more: OOB
    (7, MEM - 2, (1 << 64) - 2),         # counting down in memory to the top
])
def test_count_down(bc: int, hl: int, de: int) -> None:
    (g,) = guards(image(DOWN))
    assert g.plan.test.kind == "ne" and g.plan.unchecked == {0x0}
    agree(image(DOWN), fuel=300_000, bc=bc, hl=hl, de=de)


# Signed, decreasing: continue while (int32)HL > (int32)IX; the store address (DE)
# goes up by 4 per iteration.
SIGNED = """
loop:   ST32 (DE+0), HL
        ADD64 DE, DE, A
        DEC HL
        CP HL, IX
        JR gts, loop
        RET
"""


@pytest.mark.parametrize(("hl", "ix"), [(5, (1 << 32) - 4), (3, 3), (2, 7), (0x7FFF_FFFF, 0x7FFF_FFF0),
                                        (0x8000_0002, 0x7FFF_FFF0), (10, 0x8000_0000)])
def test_signed_decreasing(hl: int, ix: int) -> None:
    (g,) = guards(image(SIGNED))
    assert g.plan.test.flip == 0x7FFF_FFFF and g.plan.test.negate
    agree(image(SIGNED), fuel=100_000, hl=hl, ix=ix, de=0x200, a=4)


# Loops whose bound is not invariant are never versioned: the bound (IX) changes
# on some iterations, or comes from memory the loop writes.
MOVING_BOUND = """
loop:   LD8U A, (HL+0)
        CPI A, 0
        JR ne, keep
        INC IX
keep:   INC HL
        CP HL, IX
        JR ltu, loop
        RET
"""
BOUND_IN_MEMORY = """
loop:   LD64 IX, (BC+0)
        ST64 (BC+0), HL
        INC HL
        CP HL, IX
        JR ltu, loop
        RET
"""


@pytest.mark.parametrize("src", [MOVING_BOUND, BOUND_IN_MEMORY])
def test_loops_that_change_their_bound_are_not_versioned(src: str) -> None:
    img = image(src)
    assert guards(img) == []
    agree(img, fuel=100_000, hl=0x100, ix=0x180, bc=0x400)


# A top-tested loop with an early exit in the middle (rotated, then versioned).
EARLY_EXIT = """
top:    CP HL, IX
        JR geu, done
        LD8U A, (HL+0)
        CPI A, 0x7F
        JR eq, done
        ST8 (HL+0x100), A
        INC HL
        JR top
done:   RET
"""


def test_rotated_loop_with_an_early_exit() -> None:
    img = image(EARLY_EXIT)
    (g,) = guards(img)
    assert g.plan.unchecked == {0x8, 0x14}
    assert agree(img, hl=0x10, ix=0x90).ok
    r = agree(img, hl=MEM - 0x110, ix=MEM - 0xF0)  # the store leaves memory on the 17th iteration
    assert trap_of(r) == ("OOB", 0x14)
    agree(img, fuel=77, hl=0x10, ix=0x90)
    for fuel in range(6):  # the first block run is the copy of the test that enters the loop
        r = agree(img, fuel=fuel, hl=0x10, ix=0x90)
        assert trap_of(r) == ("FUEL", 0x0 if fuel < 2 else 0x8 if fuel < 5 else 0x14)


RO = (SegmentDesc("rodata", 0x3000, 0x100, "r", b"\x01" * 0x100),)
STORES = """
loop:   ST64 (HL+0), BC
        ADD64 HL, HL, DE
        INC BC
        CP BC, IX
        JR ltu, loop
        RET
"""


@pytest.mark.parametrize(("hl", "de", "n"), [
    (0x2000, 8, 0x200),          # stops right below the read-only segment
    (0x2000, 8, 0x201),          # its last store is the first to touch it
    (0x2F00, 8, 0x20),           # the last store ends exactly at the segment's start
    (0x2F01, 8, 0x20),           # one byte further: the last store overlaps it
    (0x3100, 8, 0x20),           # above it
    (0x30FF, 8, 0x20),           # the first store's first byte is the segment's last
    (0x3200, (1 << 64) - 8, 0x21),   # downwards: the last store is at 0x3100, right above it
    (0x3200, (1 << 64) - 8, 0x22),   # ... one more is at 0x30F8, inside it
])
def test_stores_meet_a_read_only_segment(hl: int, de: int, n: int) -> None:
    img = image(STORES, RO)
    (g,) = guards(img)
    assert g.plan.unchecked == {0x0} and any(c.write for c in g.plan.checks)
    agree(img, hl=hl, de=de, bc=0, ix=n)


@pytest.mark.parametrize(("n", "trap"), [(9, None), (10, ("OOB", 0x0)), (5000, ("OOB", 0x0))])
def test_counting_down_below_address_zero(n: int, trap: tuple[str, int] | None) -> None:
    # HL = 0x40 - 8k: the 10th store would be at -8 (2**64 - 8)
    img = image(STORES)
    r = agree(img, hl=0x40, de=(1 << 64) - 8, bc=0, ix=n)
    assert trap_of(r) == trap


def test_first_access_one_byte_below_memory() -> None:
    img = image("""
loop:   LD8U A, (HL-1)
        ST8 (HL+0), A
        INC HL
        CPI HL, 100
        JR ltu, loop
        RET
""")
    assert guards(img)[0].plan.unchecked == {0x0, 0x4}
    assert trap_of(agree(img, hl=0)) == ("OOB", 0x0)
    assert agree(img, hl=1).ok


# A counter that is not the address: 64-bit (its low half wraps past 2**32 in
# the not-equal test) or 32-bit (INC: its exact value must stay below 2**32).
COUNTED = """
loop:   LD8U A, (HL+0)
        ST8 (HL+0x100), A
        INC HL
        {step}
        CP BC, IX
        JR ne, loop
        RET
"""


@pytest.mark.parametrize(("step", "bc", "ix", "trips"), [
    ("ADD64 BC, 1", (1 << 32) - 2, 3, 5),          # the low half wraps
    ("ADD64 BC, 1", (1 << 33) - 2, 3, 5),          # ... with high bits
    ("ADD64 BC, -1", 2, (1 << 32) - 3, 5),         # downwards through 0
    ("INC BC", (1 << 32) - 5, 0, 5),               # INC reaches 2**32 (that is, 0) on the last iteration
    ("INC BC", (1 << 32) - 6, (1 << 32) - 1, 5),   # ... stops right below it
    ("DEC BC", 4, (1 << 32) - 2, 6),               # DEC passes below 0
])
def test_counter_wraps_around_two_to_the_32(step: str, bc: int, ix: int, trips: int) -> None:
    img = image(COUNTED.format(step=step))
    (g,) = guards(img)
    assert g.plan.unchecked == {0x0, 0x4} and g.plan.test.kind == "ne"
    r = agree(img, hl=0x100, bc=bc, ix=ix)
    assert r.ok and r.reg("HL") == 0x100 + trips


_NEGATED = {"eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "le": "gt", "gt": "le",
            "ltu": "geu", "geu": "ltu", "leu": "gtu", "gtu": "leu"}
_SWAPPED = {"eq": "eq", "ne": "ne", "lt": "gt", "gt": "lt", "le": "ge", "ge": "le",
            "ltu": "gtu", "gtu": "ltu", "leu": "geu", "geu": "leu"}
_EDGES = (0, 1, 5, 0x7FFF_FFFE, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF)


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("step", ["INC BC", "DEC BC", "ADD64 BC, 3", "SUB64 BC, 2"])
@pytest.mark.parametrize("top", [False, True])
@pytest.mark.parametrize("cond", ["eq", "ne", "lt", "le", "gt", "ge", "ltu", "leu", "gtu", "geu"])
def test_every_condition_and_direction(cond: str, top: bool, step: str, swap: bool) -> None:
    """Exit tests of every condition, at the top or the bottom, with the counter
    on either side, counting up or down by 1, 2 or 3 from values around 0, 2**31
    and 2**32, a few iterations from the bound: the fast copy must stop exactly
    where the test does."""
    body = "LD8U A, (HL+0)\nST8 (HL+0x80), A\nINC HL\n" + step
    test = "CP IX, BC" if swap else "CP BC, IX"
    if top:
        src = f"loop:\n{test}\nJR {cond}, out\n{body}\nJR loop\nout: RET\n"
    else:
        src = f"loop:\n{body}\n{test}\nJR {cond}, loop\nRET\n"
    img = image(src)
    cont = _NEGATED[cond] if top else cond  # the condition under which the loop goes on
    if swap:
        cont = _SWAPPED[cont]
    delta = {"INC BC": 1, "DEC BC": -1, "ADD64 BC, 3": 3, "SUB64 BC, 2": -2}[step]
    countable = (cont == "ne" and delta % 2 == 1) or (cont[:2] in ("lt", "le") and delta > 0) \
        or (cont[:2] in ("gt", "ge") and delta < 0)
    assert len(guards(img)) == int(countable)
    for bc in _EDGES:
        for delta in (0, 1, 3, 7, -1, -3):
            agree(img, fuel=3000, hl=0x100, bc=bc, ix=(bc + delta) & 0xFFFF_FFFF)


def test_nested_loops_version_the_inner_one() -> None:
    img = image("""
        LD DE, 0
outer:  LD HL, 0x100
inner:  LD8U A, (HL+0)
        ADD64 DE, DE, A
        INC HL
        CPI HL, 0x180
        JR ltu, inner
        INC BC
        CPI BC, 50
        JR ltu, outer
        RET
""")
    (g,) = guards(img)
    assert g.plan.header == 0x8
    assert agree(img).ok


# ---------------------------------------------------------------------------------- random loops

_COND = ("eq", "ne", "lt", "le", "gt", "ge", "ltu", "leu", "gtu", "geu")
_SIZES = (1 << 12, 1 << 16, (1 << 16) + 3)
_WEIRD = st.sampled_from([0, 1, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 32) + 1,
                          (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 64) - 8])


@st.composite
def loops(draw: Any) -> tuple[str, dict[str, int], int, int]:
    """A loop over an address HL (INC/DEC, ADD64/SUB64 by a constant, ADD/ADD64 by
    DE), tested against a bound (HL itself, or a counter BC), loading and storing
    at displacements from HL; start, bound and step mostly keep the accesses in
    memory for a while and end them near the edges, so the fast copy runs."""
    mem = draw(st.sampled_from(_SIZES))
    step = draw(st.sampled_from(["INC HL", "DEC HL", "ADD64 HL, HL, DE", "ADD64 HL, 3",
                                 "SUB64 HL, 2", "ADD HL, HL, DE", "ADD64 HL, -1", "ADD HL, 5"]))
    de = draw(st.one_of(st.sampled_from([1, 2, 8, (1 << 64) - 1, (1 << 64) - 4, (1 << 32) - 1]), _WEIRD))
    counted = draw(st.booleans())  # the test is on a separate counter BC (INC or DEC)
    cond = draw(st.sampled_from(_COND))
    iv = "BC" if counted else "HL"
    test = draw(st.sampled_from([f"CP {iv}, IX", f"CP IX, {iv}", f"CPI {iv}, 100", f"CPI {iv}, -5"]))
    load_w = draw(st.sampled_from(["LD8U", "LD16U", "LD32", "LD64"]))
    store_w = draw(st.sampled_from(["ST8", "ST16", "ST32", "ST64"]))
    near = st.integers(-80, 80)
    d1, d2 = draw(st.one_of(near, st.integers(-2048, 2047))), draw(st.one_of(near, st.integers(-2048, 2047)))
    top = draw(st.booleans())
    body = [f"{load_w} A, (HL{d1:+d})", f"{store_w} (HL{d2:+d}), A", step]
    if counted:
        body.append(draw(st.sampled_from(["INC BC", "DEC BC"])))
    if top:
        text = "loop:\n" + f"{test}\nJR {cond}, out\n" + "\n".join(body) + "\nJR loop\nout: RET\n"
    else:
        text = "loop:\n" + "\n".join(body) + f"\n{test}\nJR {cond}, loop\nRET\n"
    hl = draw(st.one_of(st.integers(0, mem - 1), st.integers(max(mem - 300, 0), mem + 8),
                        st.integers(0, 300), _WEIRD))
    count = draw(st.one_of(st.integers(0, 12), st.integers(0, 12000)))
    start = draw(st.integers(0, 0xFFFF_FFFF)) if counted else hl
    bound = draw(st.one_of(st.just((start + count) & 0xFFFF_FFFF), st.just((start - count) & 0xFFFF_FFFF),
                           st.integers(0, 0xFFFF_FFFF), _WEIRD))
    regs = {"hl": hl, "de": de, "ix": bound, "bc": start}
    fuel = draw(st.sampled_from([300, 5000, 60_000]))
    return text, regs, mem, fuel


def test_generated_shapes_are_versioned() -> None:
    """The shapes the generator draws do reach the guard (else the property
    below would test the checked loop only)."""
    assert len(guards(image("loop:\nLD8U A, (HL+1)\nST8 (HL-3), A\nINC HL\nINC BC\nCP BC, IX\n"
                            "JR ltu, loop\nRET\n"))) == 1
    assert len(guards(image("loop:\nCPI HL, -5\nJR geu, out\nLD64 A, (HL+1)\n"
                            "ST8 (HL-3), A\nADD64 HL, 2\nJR loop\nout: RET\n"))) == 1


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=loops())
def test_random_loops_agree(case: tuple[str, dict[str, int], int, int]) -> None:
    text, regs, mem, fuel = case
    img = image(text)
    r = agree(img, mem_size=mem, fuel=fuel, **regs)
    if r.trap is None or r.trap.kind.name != "FUEL":  # it ends by itself: the unmetered code too
        agree(img, mem_size=mem, **regs)


def test_only_modules_with_fast_copies_get_the_loop_pipeline() -> None:
    """The lowering marks modules with versioned loops' fast copies (and only
    those) for the compile worker's loop pipeline; both sides spell the mark
    alike, and a module with a plain loop stays on the checked-loop pass list."""
    from zjit.backends.llvm import lower
    from zjit.backends.llvm.module import LOOPS_MARK
    from zjit.backends.llvm.options import CodegenOptions
    from zjit.backends.objfile import compile_worker

    assert LOOPS_MARK == compile_worker.LOOPS_MARK
    opts = CodegenOptions(opt_level=2, mem_size=MEM)
    versioned = lower(lift(verify(image(SHIFT)), versioning=True), opts).text
    assert LOOPS_MARK in versioned
    assert LOOPS_MARK not in lower(lift(verify(image(SHIFT)), versioning=False), opts).text
    off = dataclasses.replace(opts, loop_pipeline=False)
    assert LOOPS_MARK not in lower(lift(verify(image(SHIFT)), versioning=True), off).text
