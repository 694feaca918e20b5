"""The verified program: the only input later stages (engines, JIT, AOT) accept."""

from __future__ import annotations

from zjit.image import ModuleImage

from .block import Block
from .cfg import FUNCTION, LEADER, function_words, leader_words
from .decode import Scan
from .views import BlockMap, InstrList, InstrMap, PcList

__all__ = ["Block", "VerifiedProgram"]

_TOKEN = object()


class VerifiedProgram:
    """Decoded, fully checked CODE plus everything later stages need.

    Instances are created only by :func:`zjit.verifier.verify`; constructing one
    elsewhere raises, so unverified code has no path into an engine.

    The program keeps CODE's words, two bytes per word (opcode or extension mark;
    leader and function marks) and the leader and function pcs as arrays
    (docs/verifier.md); instructions and blocks are decoded when asked for.

    Attributes:
        image: the module it was verified from (segments, memory requirements...).
        instrs: instructions in pc order (a sequence decoding on access).
        by_pc: pc -> instruction, for every instruction start (a mapping).
        leaders: block leaders, ascending (a :class:`~zjit.verifier.views.PcList`,
            equal to the tuple of the same pcs).
        blocks: leader pc -> Block, in leader order (a mapping; blocks are built
            on first access and kept).
        functions: guest function entry pcs (entry, exports, CALL targets),
            ascending (a PcList).
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
        scan: Scan,
        marks: bytearray,
        prims_used: int,
        digest: str,
    ) -> None:
        if token is not _TOKEN:
            raise TypeError("VerifiedProgram is created only by zjit.verifier.verify()")
        self.image = image
        self.instrs = InstrList(scan)
        self.by_pc = InstrMap(scan)
        self.leaders = PcList(leader_words(marks), marks, LEADER)
        self.blocks = BlockMap(scan, marks, self.leaders)
        self.functions = PcList(function_words(marks), marks, FUNCTION)
        self.entry = image.entry_pc
        self.exports = dict(image.exports)
        self.prims_used = prims_used
        self.digest = digest

    @property
    def has_readonly(self) -> bool:
        """True when some segment is read-only (write-protect checks needed)."""
        return any(not s.writable for s in self.image.segments)
