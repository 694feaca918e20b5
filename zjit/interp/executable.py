"""The interpreter's Executable: lazily generated block functions and the dispatch loop.

Generated code hard-wires a few per-instance facts (memory size, read-only
ranges, call-depth limit, metered or not: a :class:`~zjit.machine.Specialisation`),
so an executable keeps one :class:`BlockFunctions` per distinct specialisation;
instances of one module under one engine normally share a single one. Blocks
are compiled in chunks on first entry: every block name starts bound to a
:class:`_Stub` that compiles its chunk and then runs the real function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from zjit.isa import NUM_REGS, TrapKind
from zjit.machine import Machine, Outcome, Specialisation, keep_frames
from zjit.policy import Policy
from zjit.verifier.program import VerifiedProgram

from . import helpers as H
from .codegen import chunk_source
from .templates import block_name

TYPE_CHECKING = False  # typing stays unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

    BlockFn = Callable[[list[Any], bytearray, list[Any]], Any]

CHECK_EVERY = 512
"""Block entries between two deadline/interrupt checks."""
CHUNK_BLOCKS = 64
"""Blocks compiled together when one of them is first entered."""

_RANGE = range(CHECK_EVERY)


def _base_namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {
        "TRAP": H.trap,
        "DIVS": H.divs, "REMS": H.rems,
        "U16": H.U16, "S16": H.S16, "U32": H.U32, "S32": H.S32, "U64": H.U64,
        "P16": H.P16, "P32": H.P32, "P64": H.P64,
    }
    for kind in TrapKind:
        ns[kind.name] = kind
    for name, fn in H.PRIMS.items():
        ns[f"PRIM_{name.upper()}"] = fn
    for name, fn in H.BULK.items():
        ns[f"BULK_{name.upper()}"] = fn
    return ns


class _Stub:
    """Stands in for a block function until its chunk is compiled."""

    __slots__ = ("blocks", "pc")

    def __init__(self, blocks: BlockFunctions, pc: int) -> None:
        self.blocks = blocks
        self.pc = pc

    def __call__(self, S: list[Any], M: bytearray, K: list[Any]) -> Any:
        return self.blocks.materialise(self.pc)(S, M, K)


class BlockFunctions:
    """Block functions of one program for one :class:`~zjit.machine.Specialisation`."""

    def __init__(self, program: VerifiedProgram, spec: Specialisation) -> None:
        self.program = program
        self.spec = spec
        self.ns = _base_namespace()
        self.pc_of: dict[Any, int] = {}
        self._lock = threading.Lock()
        leaders = program.leaders
        self._chunk_of: dict[int, int] = {}
        self._chunks: list[tuple[int, ...]] = []
        for k in range(0, len(leaders), CHUNK_BLOCKS):
            chunk = tuple(leaders[k:k + CHUNK_BLOCKS])
            for pc in chunk:
                self._chunk_of[pc] = len(self._chunks)
            self._chunks.append(chunk)
        self._compiled: set[int] = set()
        for pc in leaders:
            stub = _Stub(self, pc)
            self.ns[block_name(pc)] = stub
            self.pc_of[stub] = pc

    def entry(self, pc: int) -> BlockFn:
        """The function (or stub) for the block at ``pc``."""
        fn: BlockFn = self.ns[block_name(pc)]
        return fn

    def materialise(self, pc: int) -> BlockFn:
        """Compile the chunk holding block ``pc`` (once) and return its function."""
        k = self._chunk_of[pc]
        with self._lock:
            if k not in self._compiled:
                blocks = [self.program.blocks[b] for b in self._chunks[k]]
                source = chunk_source(blocks, self.spec)
                code = compile(source, f"<zjit-interp {self.program.digest[:12]} chunk {k}>", "exec")
                local: dict[str, Any] = {}
                exec(code, self.ns, local)
                for b in self._chunks[k]:
                    fn = local[block_name(b)]
                    self.pc_of[fn] = b
                self.ns.update(local)
                self._compiled.add(k)
        return self.entry(pc)

    def source(self) -> str:
        """Source of every block (for reading and debugging)."""
        return chunk_source((self.program.blocks[b] for b in self.program.leaders), self.spec)


class InterpExecutable:
    """A verified program ready to run on the reference interpreter."""

    def __init__(self, program: VerifiedProgram, policy: Policy) -> None:
        self.program = program
        self.policy = policy
        self._blocks: dict[Specialisation, BlockFunctions] = {}
        self._lock = threading.Lock()

    def blocks_for(self, machine: Machine) -> BlockFunctions:
        """The block functions for ``machine``'s :class:`~zjit.machine.Specialisation`."""
        spec = Specialisation.of(machine)
        with self._lock:
            blocks = self._blocks.get(spec)
            if blocks is None:
                blocks = self._blocks[spec] = BlockFunctions(self.program, spec)
        return blocks

    def execute(self, machine: Machine, entry_pc: int, registers: list[int]) -> Outcome:
        """Run from ``entry_pc`` until RET on an empty stack or a trap."""
        if entry_pc not in self.program.blocks:
            raise ValueError(f"entry pc {entry_pc:#x} is not a block leader")
        blocks = self.blocks_for(machine)
        S: list[Any] = [r & 0xFFFF_FFFF_FFFF_FFFF for r in registers]
        S += [0, 0, machine.fuel, None, machine]
        K: list[Any] = []
        _dispatch(blocks, blocks.entry(entry_pc), S, K, machine)
        if machine.fuel is not None:
            machine.fuel = S[H.FUEL]
        regs = S[:NUM_REGS]
        info = S[H.TRAP]
        if info is None:
            return Outcome(regs)
        kind, pc, address, length, cause = info
        # The call stack K holds the return points' block functions (or their
        # stubs), outermost first; each CALL is the word before its return point.
        kept, omitted = keep_frames(K)
        backtrace = tuple(blocks.pc_of[fn] - 4 for fn in kept)
        return Outcome(regs, kind, pc, address, length, cause, backtrace, omitted)


def _dispatch(blocks: BlockFunctions, fn: BlockFn | None, S: list[Any], K: list[Any], machine: Machine) -> None:
    """Call block functions until one returns None; check for TIMEOUT before the
    first block and then every :data:`CHECK_EVERY` block entries. ``K`` is the
    call stack (empty at the start)."""
    M = machine.memory
    timed_out = machine.timed_out
    while fn is not None:
        if timed_out():
            H.trap(S, TrapKind.TIMEOUT, blocks.pc_of[fn])
            return
        for _ in _RANGE:
            fn = fn(S, M, K)
            if fn is None:
                return
