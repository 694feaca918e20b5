"""Regenerate the binary files of this example (prog.code, rodata.bin, data.bin).

The program loads a u64 from the read-only segment, adds a u64 from the writable
data segment, stores the sum into the data segment and into the bss segment, and
returns it in HL:

    LD    HL, 0x1000        ; rodata
    LD64  DE, (HL+8)        ; DE = 40
    LD    HL, 0x2000        ; data
    LD64  BC, (HL)          ; BC = 2
    ADD64 DE, DE, BC        ; DE = 42
    ST64  (HL+8), DE        ; data[8..16] = 42
    LD    IX, 0x3000        ; bss
    ST64  (IX), DE          ; bss[0..8] = 42
    MOV   HL, DE
    RET

Expected result: HL = 42, memory[0x2008:0x2010] and memory[0x3000:0x3008] hold
42 little-endian, everything else as initialised.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from pathlib import Path

from zjit.encoding import ld_words, pack, words_to_bytes
from zjit.isa import BC, BY_MNEMONIC, DE, HL, IX

RODATA = struct.pack("<QQ", 0x1122334455667788, 40)
DATA = struct.pack("<QQ", 2, 0xAAAA_AAAA_AAAA_AAAA)


def op(name: str) -> int:
    return BY_MNEMONIC[name].opcode


def program() -> bytes:
    """The example's CODE bytes."""
    words = [
        *ld_words(HL, 0x1000),
        pack(op("LD64"), DE, HL, HL, 8),
        *ld_words(HL, 0x2000),
        pack(op("LD64"), BC, HL, HL, 0),
        pack(op("ADD64"), DE, DE, BC),
        pack(op("ST64"), DE, HL, DE, 8),
        *ld_words(IX, 0x3000),
        pack(op("ST64"), DE, IX, DE, 0),
        pack(op("MOV"), HL, DE),
        pack(op("RET")),
    ]
    return words_to_bytes(words)


def rodata() -> bytes:
    """Initial bytes of the read-only segment."""
    return RODATA


def data() -> bytes:
    """Initial bytes of the writable data segment."""
    return DATA


FILES: dict[str, Callable[[], bytes]] = {"prog.code": program, "rodata.bin": rodata, "data.bin": data}


def main() -> int:
    here = Path(__file__).parent
    for name, make in FILES.items():
        (here / name).write_bytes(make())
    return 0


if __name__ == "__main__":
    sys.exit(main())
