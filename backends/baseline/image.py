"""Baseline code of one program as the assembler leaves it, and its cache form.

A :class:`BaselineImage` is position-independent code plus what a run needs:
the runtime routines' offsets, the entry ids and the code offset of each
(:attr:`~BaselineImage.ftab`), the trap stubs' sites (to decode a trap) and the
blocks' offsets (to name the guest pc of a code address). :meth:`BaselineImage.encode`
and :func:`decode` give its code cache form, so a later load of the same
program (same specialisation) maps the code without assembling it again, and
without loading the stencil library. Loading one imports only light modules
(docs/startup.md).

Payload: ``MAGIC``, ``u32`` length of the metadata JSON, the metadata, then the
code and the arrays (each ``u32`` item count and the items, little-endian).
"""

from __future__ import annotations

import json
import struct
from array import array
from dataclasses import dataclass, field

from zjit.isa import MASK32, MASK64

from ..llvm.stencil_names import TrapExit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from zjit.verifier import VerifiedProgram

    from zjit.isa import OpInfo

SITES_PER_CHUNK = 64
"""Trap stubs between two trampolines to ``trap_site`` in the stub area."""
MAGIC = b"ZJITBLI1"
_HEAD = struct.Struct("<8sI")
_COUNT = struct.Struct("<I")
_ARRAYS = (("code", "B"), ("entry_pcs", "I"), ("ftab", "Q"), ("site_pcs", "I"), ("site_exits", "H"),
           ("block_offsets", "Q"), ("block_pcs", "I"))


@dataclass
class BaselineImage:
    """Position-independent baseline code and what runs it needs."""

    code: bytes
    symbols: dict[str, int]
    """Runtime routine -> offset in :attr:`code`."""
    entry_pcs: array[int]
    """The pc of every entry id (function table slot), in id order."""
    ftab: array[int]
    """Code offset of every entry id."""
    site_base: int
    site_chunk: int
    site_stub: int
    site_pcs: array[int]
    """The pc of every trap stub's site, in stub order."""
    site_exits: array[int]
    """What each trap stub reports: an index into :attr:`exits`."""
    exits: list[TrapExit]
    block_offsets: array[int] = field(default_factory=lambda: array("Q"))
    """Code offset of every block, in pc order (which is code order)."""
    block_pcs: array[int] = field(default_factory=lambda: array("I"))
    """The leader of every block, in the same order."""
    instructions: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    _ids: dict[int, int] | None = None

    @property
    def ids(self) -> dict[int, int]:
        """Entry pc -> entry id."""
        if self._ids is None:
            self._ids = {pc: i for i, pc in enumerate(self.entry_pcs)}
        return self._ids

    def block_at(self, offset: int) -> int | None:
        """The leader of the block whose code contains ``offset``."""
        import bisect

        k = bisect.bisect_right(self.block_offsets, offset) - 1
        return self.block_pcs[k] if k >= 0 else None

    def site_at(self, ret: int) -> tuple[int, TrapExit] | None:
        """The trap site whose stub left return address ``ret`` (a code offset)."""
        x = ret - self.site_base
        chunk, within = divmod(x, self.site_chunk)
        j, rest = divmod(within - self.site_stub, self.site_stub)
        s = chunk * SITES_PER_CHUNK + j
        if x < 0 or rest or not 0 <= j < SITES_PER_CHUNK or s >= len(self.site_pcs):
            return None
        return self.site_pcs[s], self.exits[self.site_exits[s]]

    def encode(self) -> bytes:
        """The code cache payload."""
        meta = {"symbols": self.symbols, "site": [self.site_base, self.site_chunk, self.site_stub],
                "exits": [[e.kind, e.addr, e.length] for e in self.exits],
                "instructions": self.instructions, "stats": self.stats}
        raw = json.dumps(meta).encode()
        parts = [_HEAD.pack(MAGIC, len(raw)), raw]
        for name, code in _ARRAYS:
            items = getattr(self, name)
            data = items if code == "B" else items.tobytes()
            parts += [_COUNT.pack(len(items)), bytes(data)]
        return b"".join(parts)


def decode(payload: bytes) -> BaselineImage | None:
    """The image in a code cache payload, or None when it is not exactly one."""
    try:
        magic, n = _HEAD.unpack_from(payload)
        if magic != MAGIC:
            return None
        at = _HEAD.size + n
        meta = json.loads(payload[_HEAD.size:at])
        arrays: dict[str, object] = {}
        for name, code in _ARRAYS:
            (count,) = _COUNT.unpack_from(payload, at)
            at += _COUNT.size
            size = count * array(code).itemsize
            if at + size > len(payload):
                return None
            chunk = payload[at:at + size]
            if code == "B":
                arrays[name] = bytes(chunk)
            else:
                items = array(code)
                items.frombytes(chunk)
                arrays[name] = items
            at += size
        if at != len(payload):
            return None
        base, chunk_len, stub = (int(v) for v in meta["site"])
        image = BaselineImage(symbols={str(k): int(v) for k, v in meta["symbols"].items()},
                              site_base=base, site_chunk=chunk_len, site_stub=stub,
                              exits=[TrapExit(int(k), str(a), str(b)) for k, a, b in meta["exits"]],
                              instructions=int(meta["instructions"]),
                              stats={str(k): int(v) for k, v in meta["stats"].items()},
                              **arrays)  # type: ignore[arg-type]
    except (ValueError, KeyError, TypeError, struct.error):
        return None
    size = len(image.code)
    if (len(image.ftab) != len(image.entry_pcs) or len(image.site_pcs) != len(image.site_exits)
            or len(image.block_pcs) != len(image.block_offsets)
            or any(not 0 <= v < size for v in image.symbols.values())
            or any(not 0 <= v < size for v in image.ftab)
            or any(e >= len(image.exits) for e in image.site_exits)):
        return None
    return image


def decode_operand(shape: str, regs: list[int], disp: int, width: int) -> int:
    """The address or length of a trap exit shape (see :class:`TrapExit`) from
    the registers at the trap, the instruction's displacement and access width."""
    if shape == "n":
        return 0
    if shape == "c":
        return width
    r = regs[int(shape[1:])]
    if shape[0] == "z":
        return r & MASK32
    if shape[0] == "d":
        return (r + disp) & MASK64
    return r


def instruction_at(program: VerifiedProgram, pc: int) -> tuple[OpInfo | None, int]:
    """The operation and sign-extended IMM12 of the instruction at ``pc``."""
    from zjit.isa import BY_OPCODE

    w = int.from_bytes(program.image.code[pc:pc + 4], "little")
    imm = w & 0xFFF
    return BY_OPCODE[w >> 24], imm - 0x1000 if imm & 0x800 else imm
