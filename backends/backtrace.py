"""Guest call stacks at a trap, walked from the guest's native (or emulated) stack.

Nothing is recorded per CALL: after a run stopped at a trap, the engine reads
the stack the guest code left behind (``word(address)``) and walks its frames
from the trap outwards. Every native frame of compiled code is one guest
function activation, and the return address a frame holds lies in the native
code of its caller's CALL:

* **O2 code** (whole-module objects and tier-up objects, compiled with
  ``CodegenOptions.call_sites``): the object's frame table
  (:mod:`zjit.backends.objfile.frames`) maps a return address to the guest
  CALL's pc and gives the frame's CFA rule and where its own return address
  is saved;
* **baseline code** (docs/tiering.md, "Stacks"): a function runs with the
  stack pointer ``S`` it was entered with; the CALL stencil of the block the
  return address lies in is the guest CALL (the next block's leader is its pc
  + 4) and saves a fixed number of bytes below ``S`` (:data:`BASELINE_CALL`).

A walk state is ``(ret, sp)``: a return address into the caller's code and the
caller's stack pointer right after that call returns. The walk ends at a run's
entry routine (an O2 entry body ``body_<pc>`` or baseline's ``zjit.bl_entry``)
and gives up (None: no backtrace, never a guessed one) at anything else it
cannot vouch for.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from .objfile.frames import ENTRY, FrameTable, frame_table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .baseline.image import BaselineImage

BASELINE_CALL = {True: (8, 16), False: (24, 32)}
"""x86-64 (True) / AArch64: where a baseline function's return address is
relative to ``sp`` at its CALL stencil's call, and how far above ``sp`` its own
``S`` (its caller's ``sp`` after the call) is. x86-64: the stencil pushes one
word and calls, ``[S]`` is the return address (``S = sp + 8``, and the
caller's ``sp`` after returning is ``S + 8``); AArch64: ``sub sp, sp, #32;
stp x29, x30, [sp, #16]; blr``, so the return address is at ``sp + 24`` and
``S = sp + 32``."""


@dataclass(slots=True)
class O2Code:
    """An O2 object as mapped: its code at ``start .. end`` and the object bytes
    its frame table is read from (on the first trap that needs it)."""

    start: int
    end: int
    obj: bytes
    _table: FrameTable | None = None
    _read: bool = False

    def table(self) -> FrameTable | None:
        """The frame table (None when the object has none)."""
        if not self._read:
            self._table = frame_table(self.obj)
            self._read = True
        return self._table


@dataclass(slots=True)
class BaselineCode:
    """Baseline code as mapped at ``base``."""

    base: int
    image: BaselineImage
    end: int = field(init=False)

    def __post_init__(self) -> None:
        self.end = self.base + len(self.image.code)


Region = O2Code | BaselineCode


def walk(regions: list[Region], ret: int, sp: int, word: Callable[[int], int], x86: bool,
         limit: int, trapping: bool, lr: int | None = None) -> list[int] | None:
    """The pcs of the active guest CALLs, innermost first, from the walk state
    ``(ret, sp)``; ``trapping``: ``ret`` lies in the trapping function itself
    (its call of the trap helper, no guest CALL). ``regions`` are the code
    areas sorted by start. At most ``limit`` frames; None when a frame cannot
    be followed. ``lr``: the trapping function's own return address where its
    frame does not hold it (AArch64 O2 code without a frame, ``ctx.trap_lr``)."""
    starts = [r.start if isinstance(r, O2Code) else r.base for r in regions]
    calls: list[int] = []
    for _ in range(limit + 2):
        k = bisect.bisect_right(starts, ret) - 1
        region = regions[k] if k >= 0 else None
        if region is None or ret >= region.end:
            return None
        if isinstance(region, BaselineCode):
            if trapping:
                return None
            image = region.image
            off, offsets = ret - region.base, image.block_offsets
            if not offsets:
                return None
            if off < offsets[0]:
                return calls  # the run's entry routine (zjit.bl_entry): the outermost frame
            b = bisect.bisect_right(offsets, off) - 1
            if b + 1 >= len(image.block_pcs):
                return None
            calls.append(image.block_pcs[b + 1] - 4)
            at, up = BASELINE_CALL[x86]
            ret, sp = word(sp + at), sp + up
            continue
        table = region.table()
        if table is None:
            return None
        step = table.frame_at(ret - region.start) if trapping else table.step(ret - region.start)
        if step is None:
            return None
        if step.kind == ENTRY and not trapping:
            return calls
        if step.call is not None:
            calls.append(step.call)
        cfa = sp + step.cfa
        if step.ra is None:  # still in the link register: only the trapping function
            if not trapping or not lr:
                return None
            ret, sp = lr, cfa
        else:
            ret, sp = word(cfa + step.ra), cfa
        trapping = False
    return None


def call_stack(ctx: object, regions: list[Region], word: Callable[[int], int], x86: bool,
               limit: int) -> list[int] | None:
    """The guest call stack at the trap ``ctx`` records (read before a baseline
    trap record is decoded), innermost first; None when it cannot be walked.

    O2 code's trap helper stores ``trap_ret`` (its return address, in the
    trapping function) and ``trap_sp`` (the trapping function's stack pointer
    after that call). A baseline trap (``TRAP_SITE``) leaves the stub's return
    address in ``trap_pc``; the stub saved the trapping function's state below
    its ``S`` (:func:`baseline_start`)."""
    from .context import TRAP_SITE

    regions = sorted(regions, key=lambda r: r.start if isinstance(r, O2Code) else r.base)
    kind, sp = int(ctx.trap_kind), int(ctx.trap_sp)  # type: ignore[attr-defined]
    if kind == TRAP_SITE:
        start = baseline_start(int(ctx.trap_pc), sp, word, x86)  # type: ignore[attr-defined]
        if start is None:
            return None
        return walk(regions, start[0], start[1], word, x86, limit, False)
    return walk(regions, int(ctx.trap_ret), sp, word, x86, limit, True,  # type: ignore[attr-defined]
                None if x86 else int(ctx.trap_lr))  # type: ignore[attr-defined]


def baseline_start(stub_ret: int, sp: int, word: Callable[[int], int], x86: bool) -> tuple[int, int] | None:
    """The walk state of a baseline trap: the trapping function's return
    address and ``S`` + 8 (x86-64) or ``S`` (AArch64).

    x86-64: a trap stub pushes one word and calls ``trap_site``, whose entry
    stack pointer holds the stub's return address (``trap_pc``) at or a few
    words above ``trap_sp``; the trapping function's ``S`` is 16 bytes above
    it and ``[S]`` its return address. AArch64: the stub saves x30 (the
    function's return address) at ``S - 16`` and calls ``trap_site``, which
    saves the stub's return address 16 bytes lower."""
    for _ in range(4):
        if word(sp) == stub_ret:
            break
        sp += 8
    else:
        return None
    s = sp + 16 if x86 else sp + 32
    return (word(s), s + 8) if x86 else (word(s - 16), s)
