"""Read-only views of a verified program that decode on demand.

A :class:`~zjit.verifier.program.VerifiedProgram` keeps CODE's words, one byte per
word (the scan's opcode or extension mark), one byte per word of control-flow
marks and the sorted leader and function pcs as u32 arrays. These views give the
answers the tuples and dicts they replace gave (``instrs``, ``by_pc``,
``leaders``, ``functions``, ``blocks``), creating :class:`~zjit.encoding.Instr`
and :class:`~zjit.verifier.block.Block` objects only when asked; blocks are kept
once built.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import compress

from zjit.encoding import Instr

from .block import Block
from .cfg import FUNCTION, LEADER, build_block
from .decode import EXTENSION, Scan, decode_at

TYPE_CHECKING = False  # typing stays unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from typing import overload

_STARTS = bytes(int(k != EXTENSION) for k in range(256))


def _word_of(pc: object, length: int) -> int | None:
    """The word index of ``pc`` when it is a word offset inside ``length`` words."""
    if isinstance(pc, int) and 0 <= pc < 4 * length and not pc & 3:
        return pc >> 2
    return None


class PcList(Sequence[int]):
    """Sorted, distinct pcs (4 bytes each, 8 past 4 GiB of CODE), equal to a tuple or
    list of the same pcs; ``pc in pcs`` looks at the program's marks."""

    __slots__ = ("_pcs", "_marks", "_bit")

    def __init__(self, word_indices: Iterable[int], marks: bytearray, bit: int) -> None:
        self._pcs = array("I" if len(marks) <= 0x3FFF_FFFF else "Q", (4 * i for i in word_indices))
        self._marks = marks
        self._bit = bit

    def __len__(self) -> int:
        return len(self._pcs)

    if TYPE_CHECKING:
        @overload
        def __getitem__(self, k: int) -> int: ...
        @overload
        def __getitem__(self, k: slice) -> tuple[int, ...]: ...

    def __getitem__(self, k: int | slice) -> int | tuple[int, ...]:
        return tuple(self._pcs[k]) if isinstance(k, slice) else self._pcs[k]

    def __iter__(self) -> Iterator[int]:
        return iter(self._pcs)

    def __contains__(self, pc: object) -> bool:
        i = _word_of(pc, len(self._marks))
        return i is not None and bool(self._marks[i] & self._bit)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PcList):
            return self._pcs == other._pcs
        if isinstance(other, (tuple, list)):
            return len(other) == len(self._pcs) and all(a == b for a, b in zip(self._pcs, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._pcs))

    def __repr__(self) -> str:
        return f"PcList({list(self._pcs)!r})"


class InstrList(Sequence[Instr]):
    """The instructions in pc order, decoded on access (like the tuple it replaces)."""

    __slots__ = ("_scan", "_len", "_index")

    def __init__(self, scan: Scan) -> None:
        self._scan = scan
        self._len = scan.instruction_count()
        self._index: array[int] | None = None  # word of each instruction, built on first indexing

    def __len__(self) -> int:
        return self._len

    def _words(self) -> Iterator[int]:
        return compress(range(len(self._scan.kinds)), self._scan.kinds.translate(_STARTS))

    def __iter__(self) -> Iterator[Instr]:
        words = self._scan.words
        return (decode_at(words, i) for i in self._words())

    if TYPE_CHECKING:
        @overload
        def __getitem__(self, k: int) -> Instr: ...
        @overload
        def __getitem__(self, k: slice) -> tuple[Instr, ...]: ...

    def __getitem__(self, k: int | slice) -> Instr | tuple[Instr, ...]:
        if self._index is None:
            self._index = array("I" if len(self._scan.kinds) <= 0xFFFF_FFFF else "Q", self._words())
        words = self._scan.words
        if isinstance(k, slice):
            return tuple(decode_at(words, i) for i in self._index[k])
        return decode_at(words, self._index[k])


class InstrMap(Mapping[int, Instr]):
    """pc -> instruction for every instruction start, decoded on access."""

    __slots__ = ("_scan", "_len")

    def __init__(self, scan: Scan) -> None:
        self._scan = scan
        self._len = scan.instruction_count()

    def _start(self, pc: object) -> int | None:
        i = _word_of(pc, len(self._scan.kinds))
        return None if i is None or self._scan.kinds[i] == EXTENSION else i

    def __getitem__(self, pc: int) -> Instr:
        i = self._start(pc)
        if i is None:
            raise KeyError(pc)
        return decode_at(self._scan.words, i)

    def __contains__(self, pc: object) -> bool:
        return self._start(pc) is not None

    def __iter__(self) -> Iterator[int]:
        kinds = self._scan.kinds
        return compress(range(0, 4 * len(kinds), 4), kinds.translate(_STARTS))

    def __len__(self) -> int:
        return self._len


class BlockMap(Mapping[int, Block]):
    """leader pc -> :class:`~zjit.verifier.block.Block`, in leader order; each block
    is decoded on first access and kept."""

    __slots__ = ("_scan", "_marks", "_leaders", "_built")

    def __init__(self, scan: Scan, marks: bytearray, leaders: PcList) -> None:
        self._scan = scan
        self._marks = marks
        self._leaders = leaders
        self._built: dict[int, Block] = {}

    def __getitem__(self, pc: int) -> Block:
        block = self._built.get(pc)
        if block is not None:
            return block
        if pc not in self._leaders:
            raise KeyError(pc)
        start = pc >> 2
        # the next leader (marks are 0, LEADER or LEADER | FUNCTION) or the end of CODE
        ends = [j for j in (self._marks.find(LEADER, start + 1), self._marks.find(LEADER | FUNCTION, start + 1)) if j >= 0]
        block = self._built[pc] = build_block(self._scan, start, min(ends, default=len(self._marks)))
        return block

    def __contains__(self, pc: object) -> bool:
        return pc in self._leaders

    def __iter__(self) -> Iterator[int]:
        return iter(self._leaders)

    def __len__(self) -> int:
        return len(self._leaders)
