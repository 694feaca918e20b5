"""The verified program: the only input later stages (engines, JIT, AOT) accept."""

from __future__ import annotations

from dataclasses import dataclass

from zjit.encoding import Instr
from zjit.image import ModuleImage

_TOKEN = object()


@dataclass(frozen=True, slots=True)
class Block:
    """A basic block of ``isa.md`` 4.1: ``instrs`` run from leader ``start``.

    ``cost`` is the fuel charged on entry (number of instructions). ``end`` is the
    pc after the last instruction. ``successors`` are the pcs control may reach next
    inside the same run (fall-through, branch target, call target and return point);
    a RET block has none.
    """

    start: int
    end: int
    instrs: tuple[Instr, ...]
    cost: int
    successors: tuple[int, ...]


class VerifiedProgram:
    """Decoded, fully checked CODE plus everything later stages need.

    Instances are created only by :func:`zjit.verifier.verify`; constructing one
    elsewhere raises, so unverified code has no path into an engine.

    Attributes:
        image: the module it was verified from (segments, memory requirements...).
        instrs: instructions in pc order.
        by_pc: pc -> instruction, for every instruction start.
        leaders: block leaders (sorted).
        blocks: leader pc -> Block.
        functions: guest function entry pcs (entry, exports, CALL targets), sorted.
        entry: the entry pc; exports: name -> pc.
        prims_used: mask of primitives CODE uses (bit i = opcode 0xF0+i).
        digest: sha256 hex of the canonical verified content (code, entry,
            exports, segments, memory requirements) used as a cache key.
    """

    __slots__ = (
        "image", "instrs", "by_pc", "leaders", "blocks", "functions",
        "entry", "exports", "prims_used", "digest",
    )

    def __init__(
        self,
        token: object,
        *,
        image: ModuleImage,
        instrs: tuple[Instr, ...],
        leaders: tuple[int, ...],
        blocks: dict[int, Block],
        functions: tuple[int, ...],
        prims_used: int,
        digest: str,
    ) -> None:
        if token is not _TOKEN:
            raise TypeError("VerifiedProgram is created only by zjit.verifier.verify()")
        self.image = image
        self.instrs = instrs
        self.by_pc: dict[int, Instr] = {i.pc: i for i in instrs}
        self.leaders = leaders
        self.blocks = blocks
        self.functions = functions
        self.entry = image.entry_pc
        self.exports = dict(image.exports)
        self.prims_used = prims_used
        self.digest = digest

    @property
    def has_readonly(self) -> bool:
        """True when some segment is read-only (write-protect checks needed)."""
        return any(not s.writable for s in self.image.segments)
