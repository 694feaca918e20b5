"""Every engine configuration gives the identical Result and final memory.

With a single available engine this only checks determinism (two runs agree);
it starts comparing engines as soon as more backends are available.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_harness import CONFIGS, run_asm
from test_control import CMP_STATE, NESTED, RECURSE
from test_fuel import CALLS, FALLTHROUGH
from test_primitives import ALLOC, HELLO, LOG, _segments_example
from test_traps import CTL, DIV

from zjit.image import SegmentDesc

KITCHEN_SINK = """
PUBLIC main
main:
    LD HL, table
    LD DE, 0x7FFFFFFF
    LD BC, -3
    LD IX, 0x123456789ABCDEF0
    ADD A, DE, BC
    ST32 (HL+0), A
    MUL64 A, IX, BC
    ST64 (HL+4), A
    DIVS A, BC, DE
    ST64 (HL+12), A
    REMS64 A, IX, BC
    ST64 (HL+20), A
    SRA A, BC, 7
    ST64 (HL+28), A
    ROR64 A, IX, 13
    ST64 (HL+36), A
    CLZ64 IX
    POPC BC
    LD8S64 A, (HL+3)
    GTS DE, BC, A
    CP BC, IX
    JR ge, skip
    ST16 (HL+44), BC
skip:
    LD HL, table
    LD DE, table + 64
    LD BC, 44
    LDIR
    LD A, 0x5A
    LD HL, table + 128
    LD BC, 9
    FILL
    LD HL, 24
    ALLOC
    RET
table: RESB 256
"""

CORPUS: dict[str, tuple[Any, dict[str, Any]]] = {
    "segments_example": (_segments_example(), {}),
    "kitchen_sink": (KITCHEN_SINK, {}),
    "kitchen_sink_fuel": (KITCHEN_SINK, {"fuel": 30}),
    "calls": (CALLS, {"fuel": 1000}),
    "calls_short_fuel": (CALLS, {"fuel": 19}),
    "fallthrough_oob": (FALLTHROUGH, {"fuel": 50, "registers": {"ix": 1 << 40}}),
    "nested": (NESTED, {}),
    "recurse_depth": (RECURSE, {"registers": {"de": 2000}, "max_call_depth": 100}),
    "cmp": (CMP_STATE, {"registers": {"hl": 9, "de": 9}}),
    "div0": (DIV, {"fuel": 100}),
    "hello": (HELLO, {}),
    "log": (LOG, {}),
    "alloc": (ALLOC, {"registers": {"hl": 100}}),
    "ctl": (CTL, {"ctl": lambda req: b"resp:" + req}),
    "write_protect": ("PUBLIC main\nmain:\nLD HL, 0x8004\nST8 (HL), HL\nRET\n",
                      {"segments": (SegmentDesc("ro", 0x8000, 16, "r", b"abc"),)}),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_all_engines_agree(name: str) -> None:
    text, kwargs = CORPUS[name]
    baseline = None
    for cfg in CONFIGS + CONFIGS[:1]:   # the first again: runs are deterministic
        result, memory = run_asm(cfg, text, **kwargs)
        if baseline is None:
            baseline = (cfg.id, result, memory)
            continue
        first, want, want_mem = baseline
        assert result == want, f"{cfg.id} differs from {first}: {result} != {want}"
        assert memory == want_mem, f"{cfg.id} memory differs from {first}"


def test_kitchen_sink_outcome() -> None:
    result, memory = run_asm(CONFIGS[0], KITCHEN_SINK)
    assert result.ok and result.reg("HL") != 0
    assert memory[0x1000 + 128:0x1000 + 137] == b"\x5a" * 9
