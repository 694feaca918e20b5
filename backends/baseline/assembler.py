"""The baseline tier's code generator: one linear pass of copy-and-patch.

:func:`assemble` turns a verified program into one position-independent code
buffer (:class:`BaselineImage`) without running LLVM: it walks CODE once in pc
order and, for every instruction, appends the stencil of its operation and
operand shape (:mod:`.library`) with the holes filled in. Every verifier block
is emitted exactly once, in pc order, so fall-through and the code after a CALL
or a conditional JR are simply the next bytes (each stencil's final jump to its
continuation is left out). Guest functions are only entry points: a block that
several functions reach is not duplicated.

Layout of the buffer::

    runtime block (trap helper, adapters, run entry...)  | blocks in pc order | cold area

* **Block entry**, in this order: at every *entry* (function entries and loop
  headers: :func:`~zjit.backends.middle.entries.entry_ids`) the interrupt poll
  (``POLL``), with tier-up together with the entry's counter (``HEAD``); then, in
  metered code, the fuel charge of the block (``FUEL``).
* **Calls** go through the function table (``ctx.ftab``, slot per entry id);
  RET returns S (``RET``). Branch targets are patched once every block has its
  place.
* **Traps**: a stencil's trap exit jumps to a 5-byte (x86-64) or 4-byte
  (AArch64) stub in the cold area that calls the runtime routine ``trap_site``;
  the site table (:attr:`BaselineImage.sites`) maps the stub back to the kind,
  pc, address and length (:meth:`BaselineImage.decode_trap`), so the hot path
  carries no per-site constants. Tier-up counters that run out jump to a
  ``TIERUP`` stub there too.

Per instruction the Python work is a table lookup on the word's operation and
register fields, one ``bytearray`` append and the patch of its holes.
"""

from __future__ import annotations

import dataclasses
import gc
from array import array
from dataclasses import dataclass

from zjit.verifier import VerifiedProgram

from zjit.isa import BY_OPCODE, MASK32, MASK64, OPS, Family

from ..llvm.stencil_names import TRAP_SITE_FN, instruction_stencils
from ..middle.entries import entry_ids
from ..objfile.stencils import Patcher
from .image import SITES_PER_CHUNK, BaselineImage
from .library import SLOTS, Stencil, StencilLibrary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Dispatch categories.
_NONE, _PLAIN, _SHIFT, _MEM, _LDI, _CPI, _JR, _CALL, _CP = range(9)
_JR_OP = next(o.opcode for o in OPS if o.family is Family.JR)
_DISP, _LIMIT, _MEMSIZE = SLOTS["_JIT_DISP"], SLOTS["_JIT_LIMIT"], SLOTS["_JIT_MEMSIZE"]
_ROLO, _ROHI, _IMM, _IMM64 = SLOTS["_JIT_ROLO"], SLOTS["_JIT_ROHI"], SLOTS["_JIT_IMM"], SLOTS["_JIT_IMM64"]
_NEG = SLOTS["_JIT_NEG"]
_CPI_SLOT, _COST, _FID8, _CNT8, _ID = (SLOTS[s] for s in ("_JIT_CPI", "_JIT_COST", "_JIT_FID8", "_JIT_CNT8",
                                                         "_JIT_ID"))
_SH, _SHN = SLOTS["_JIT_SH"], SLOTS["_JIT_SHN"]
_LD_EXT = {0x800: 1, 0x801: 2}

Entry = tuple[int, "Stencil | None", "Any", int]
"""Dispatch entry: (category, stencil, its twin (write-protecting, long form) or
for CP/CPI the fused CP+JR stencils by condition, access size or register)."""


@dataclass(frozen=True, slots=True)
class BaselineSpec:
    """What baseline code is specialised for (everything it hard-wires)."""

    metered: bool
    mem_size: int
    readonly: tuple[tuple[int, int], ...]
    tierup: bool
    """Count entries and ask for tier-up (``Policy.tier == "auto"``)."""


# --------------------------------------------------------------------------- dispatch


_CATEGORY = {Family.ALU: _PLAIN, Family.DIV: _PLAIN, Family.CMPSET: _PLAIN, Family.BITCOUNT: _PLAIN,
             Family.INCDEC: _PLAIN, Family.MOV: _PLAIN, Family.BULK: _PLAIN, Family.PRIM: _PLAIN,
             Family.RET: _PLAIN, Family.SHIFT: _SHIFT, Family.LOAD: _MEM, Family.STORE: _MEM,
             Family.LDI: _LDI, Family.JR: _JR, Family.CALL: _CALL}


def _entry(lib: StencilLibrary, key: int) -> Entry:
    """How to emit the instructions whose ``word >> 12`` (opcode and register
    fields) is ``key`` (the stencils of :func:`instruction_stencils`); kept in
    ``lib.dispatch``."""
    op = BY_OPCODE[key >> 12]
    assert op is not None
    rd, rs1, rs2 = key >> 8 & 0xF, key >> 4 & 0xF, key & 0xF
    names = instruction_stencils(op, rd, rs1, rs2)
    st = [lib.get(n) for n in names]
    fam = op.family
    entry: Entry
    if not st:
        entry = (_NONE, None, None, 0)
    elif fam is Family.CP:
        entry = (_CP if op.operation == "cp" else _CPI, st[0], (None, *st[1:]), 0)
    elif fam is Family.LDI:
        entry = (_LDI, st[0], (st[1], st[2]), 0)
    elif fam in (Family.LOAD, Family.STORE):
        entry = (_MEM, st[0], st[1] if len(st) > 1 else None, op.width)
    elif fam is Family.JR:
        entry = (_JR, st[0], None, rs1)
    elif fam is Family.SHIFT:
        entry = (_SHIFT, st[0], None, op.width)
    else:
        entry = (_CATEGORY[fam], st[0], st[1] if len(st) > 1 else None, 0)
    lib.dispatch[key] = entry
    return entry


# --------------------------------------------------------------------------- assembling

_MODULE_SLOTS = (_LIMIT, _MEMSIZE, _ROLO, _ROHI)
_SPECIAL_KEEP = 100_000
"""Most specialised stencils a library keeps (then its memo starts again)."""
"""Value holes that are constant in one module (patched once per stencil)."""


def _exit_bound(program: VerifiedProgram, lib: StencilLibrary, metered: bool, nids: int) -> int:
    """An upper bound of the trap exits the code will have: per opcode byte of
    CODE (LD's extension words count too) the most any of its stencils has,
    plus the block-entry checks."""
    exits = int(sum(program.image.code[3::4].translate(lib.exit_bound)))
    return exits + (len(program.leaders) if metered else 0) + nids


class _Sites:
    """The trap stub area: chunks of :data:`SITES_PER_CHUNK` identical stubs, each
    chunk followed by a jump to ``trap_site`` (so a stub's call needs no patch)."""

    def __init__(self, lib: StencilLibrary, base: int, bound: int) -> None:
        site, jmp = lib.get("SITE"), lib.get("JMP")
        self.stub = len(site.code) + len(site.tail)
        self.base = base
        n = SITES_PER_CHUNK
        tramp = n * self.stub
        chunk = bytearray()
        for _ in range(n):
            at = len(chunk)
            chunk += site.code + site.tail
            for o, _ref, adj, p in site.runtime + site.tail_refs:
                p(chunk, at + o, tramp - (at + o) + adj)
        self.tramp_at = len(chunk)
        chunk += jmp.code + jmp.tail
        self.chunk = len(chunk) + (-len(chunk) % 16)
        chunk += b"\xcc" * (self.chunk - len(chunk))
        self.chunks = max(1, -(-bound // n))
        self.area = bytearray(bytes(chunk) * self.chunks)
        routine = lib.symbols[TRAP_SITE_FN]
        (o, _ref, adj, p), = jmp.target + jmp.tail_refs
        for c in range(self.chunks):
            at = c * self.chunk + self.tramp_at + o
            p(self.area, at, routine - (base + at) + adj)
        self.capacity = self.chunks * n

    def offset(self, s: int) -> int:
        """Code offset of stub ``s``."""
        return self.base + (s >> 6) * self.chunk + (s & 63) * self.stub


def assemble(program: VerifiedProgram, lib: StencilLibrary, spec: BaselineSpec) -> BaselineImage:
    """Baseline code for ``program`` (see the module docstring)."""
    gc_was = gc.isenabled()
    gc.disable()  # many small tuples and no cycles: the collector only costs time here
    try:
        return _assemble(program, lib, spec)
    finally:
        if gc_was:
            gc.enable()


def _assemble(program: VerifiedProgram, lib: StencilLibrary, spec: BaselineSpec) -> BaselineImage:
    table = lib.dispatch
    get = lib.get
    words = memoryview(program.image.code).cast("I")
    nwords = len(words)
    ids = entry_ids(program)
    nids = len(ids)
    ro = 1 if spec.readonly else 0
    metered, tierup = spec.metered, spec.tierup
    size = spec.mem_size
    if size >= 1 << 31:
        raise ValueError("baseline code needs guest memory below 2 GiB")

    values = [0] * len(SLOTS)
    limits = {n: max(size - n + 1, 0) for n in (1, 2, 4, 8)}
    values[_MEMSIZE] = size
    if spec.readonly:
        values[_ROLO] = min(r[0] for r in spec.readonly)
        values[_ROHI] = max(r[1] for r in spec.readonly)

    buf = bytearray(lib.runtime)
    buf += b"\xcc" * (-len(buf) % 16)
    sites = _Sites(lib, len(buf), _exit_bound(program, lib, metered, nids))
    buf += sites.area
    site_pcs = array("I")
    site_exits = array("H")
    add_pc, add_exit = site_pcs.append, site_exits.append
    nsites = 0
    stub_len, chunk_len, site_base = sites.stub, sites.chunk, sites.base

    tier_fix: list[tuple[int, int, Patcher]] = []
    target_fix: list[tuple[int, int, Patcher, int]] = []
    block_off: dict[int, int] = {}
    shared = lib.special
    if len(shared) > _SPECIAL_KEEP:
        shared.clear()
    consts = (values[_MEMSIZE], values[_ROLO], values[_ROHI])
    memo: dict[Stencil, Stencil] = {}

    def special(st: Stencil, n: int) -> Stencil:
        """``st`` with this module's constants (memory limits, read-only bounds) in."""
        got = memo.get(st)
        if got is None:
            key = (id(st), *consts)
            got = shared.get(key)
            if got is None:
                code = bytearray(st.code)
                keep = []
                for o, slot, add, p in st.values:
                    if slot in _MODULE_SLOTS:
                        p(code, o, (limits[n] if slot == _LIMIT else values[slot]) + add)
                    else:
                        keep.append((o, slot, add, p))
                got = shared[key] = dataclasses.replace(st, code=bytes(code), values=tuple(keep))
            memo[st] = got
        return got

    def put(st: Stencil, pc: int, target: int = 0) -> None:
        """Append a stencil to the block being emitted."""
        nonlocal nsites
        off = len(buf)
        buf.extend(st.code)
        for o, slot, add, p in st.values:
            p(buf, off + o, values[slot] + add)
        for o, ref, adj, p in st.runtime:
            at = off + o
            p(buf, at, ref - at + adj)
        for o, k, adj, p in st.traps:
            at = off + o
            s = nsites
            nsites += 1
            p(buf, at, site_base + (s >> 6) * chunk_len + (s & 63) * stub_len - at + adj)
            add_pc(pc)
            add_exit(st.exit_ids[k])
        if st.target:
            for o, _ref, adj, p in st.target:
                target_fix.append((off + o, adj, p, target))
        if st.cont:
            for o, _ref, adj, p in st.cont:
                at = off + o
                p(buf, at, len(buf) - at + adj)
        if st.tierup:
            for o, _ref, adj, p in st.tierup:
                tier_fix.append((off + o, adj, p))

    poll, head, fuel = get("POLL"), get("HEAD"), get("FUEL")
    cost_holes = [(o, add, p) for o, _slot, add, p in fuel.values]  # the block's cost: patched when it ends
    cost_at = -1
    leader_iter = iter(program.leaders)
    leader = next(leader_iter, -1)
    k = leader // 4 if leader >= 0 else nwords
    emitted = block_start = 0
    while k < nwords:
        pc = 4 * k
        if pc == leader:  # a block starts (blocks run from one leader to the next)
            leader = next(leader_iter, -1)
            block_off[pc] = len(buf)
            eid = ids.get(pc)
            if eid is not None:
                if tierup:
                    values[_CNT8] = 8 * (nids + eid)
                    values[_ID] = eid
                    put(head, pc)
                else:
                    put(poll, pc)
            if metered:
                if cost_at >= 0:
                    for o, add, p in cost_holes:
                        p(buf, cost_at + o, emitted - block_start + add)
                cost_at = len(buf)
                put(fuel, pc)
                block_start = emitted
        w = words[k]
        cat, st, twin, extra = table.get(w >> 12) or _entry(lib, w >> 12)
        emitted += 1
        k += 1
        if cat == _PLAIN:
            if ro and twin is not None:
                st = twin
            assert st is not None
            if st.values:
                put(special(st, 0), pc)
            elif st.simple:
                buf += st.code
            else:
                put(st, pc)
        elif cat == _MEM:
            if ro and twin is not None:
                st = twin
            assert st is not None
            imm = w & 0xFFF
            values[_DISP] = imm - 0x1000 if imm & 0x800 else imm
            put(special(st, extra), pc)
        elif cat == _JR:
            imm = w & 0xFFF
            target = pc + 4 * (imm - 0x1000 if imm & 0x800 else imm)
            if target != pc + 4:
                put(st, pc, target)  # type: ignore[arg-type]
        elif cat == _CALL:
            imm = w & 0xFFF
            values[_FID8] = 8 * ids[pc + 4 * (imm - 0x1000 if imm & 0x800 else imm)]
            put(twin, pc)  # the depth check
            put(st, pc)  # type: ignore[arg-type]
        elif cat == _SHIFT:
            values[_SH] = c = w & 0x3F
            values[_SHN] = -c % extra
            one = st.one  # type: ignore[union-attr]
            if one is None:
                put(st, pc)  # type: ignore[arg-type]
            else:
                off = len(buf)
                buf += st.code  # type: ignore[union-attr]
                one[3](buf, off + one[0], values[one[1]] + one[2])
        elif cat == _LDI:
            imm = w & 0xFFF
            ext = _LD_EXT.get(imm, 0)
            if ext == 0:
                v = imm - 0x1000 if imm & 0x800 else imm
            elif ext == 1:
                v = words[k]
                v = v - (1 << 32) if v & 0x8000_0000 else v
            else:
                v = words[k] | words[k + 1] << 32
                v = v - (1 << 64) if v >> 63 else v
            k += ext
            if 0 <= v < 1 << 31:
                st1, slot = st, _IMM
            elif -(1 << 31) <= v < 0:
                st1, slot = twin[0], _NEG
            else:
                st1, slot, v = twin[1], _IMM64, v & MASK64
            one = st1.one  # type: ignore[union-attr]
            if one is None:  # AArch64: the value is four movz/movk holes
                values[slot] = v
                put(st1, pc)  # type: ignore[arg-type]
            else:
                off = len(buf)
                buf += st1.code  # type: ignore[union-attr]
                one[3](buf, off + one[0], v + one[2])
        elif cat in (_CP, _CPI):
            if cat == _CPI:
                imm = w & 0xFFF
                values[_CPI_SLOT] = (imm - 0x1000 if imm & 0x800 else imm) & MASK32
            nxt = words[k] if k < nwords else 0
            if nxt >> 24 == _JR_OP and nxt >> 16 & 0xF and 4 * k != leader:
                imm = nxt & 0xFFF
                target = 4 * k + 4 * (imm - 0x1000 if imm & 0x800 else imm)
                if target != 4 * k + 4:  # CP + JR in one: the JR compares the registers
                    put(twin[nxt >> 16 & 0xF], pc, target)
                    k += 1
                    emitted += 1
                    continue
            put(st, pc)  # type: ignore[arg-type]
        # _NONE: MOV to itself, DROP
    assert nsites <= sites.capacity, "trap exit bound"
    if cost_at >= 0:
        for o, add, p in cost_holes:
            p(buf, cost_at + o, emitted - block_start + add)

    # after the blocks: the TIERUP stub, then the fixups
    if tier_fix:
        tier_stub = get("TIERUP")
        assert not tier_stub.values and not tier_stub.traps
        buf += b"\xcc" * (-len(buf) % 16)
        stub = len(buf)
        buf += tier_stub.code + tier_stub.tail
        for o, ref, adj, p in tier_stub.runtime:  # x86-64: the runtime's host_call adapter
            p(buf, stub + o, ref - (stub + o) + adj)
        for at, adj, p in tier_fix:
            p(buf, at, stub - at + adj)
    for at, adj, p, target in target_fix:
        p(buf, at, block_off[target] - at + adj)
    entry_pcs = array("I", bytes(4 * nids))
    ftab = array("Q", bytes(8 * nids))
    for pc, eid in ids.items():
        entry_pcs[eid] = pc
        ftab[eid] = block_off[pc]
    return BaselineImage(bytes(buf), dict(lib.symbols), entry_pcs, ftab, site_base, chunk_len, stub_len,
                         site_pcs, site_exits, lib.exits, array("Q", block_off.values()),
                         array("I", block_off), emitted, {"sites": nsites, "site_capacity": sites.capacity,
                                              "counted_entries": len(tier_fix)})
