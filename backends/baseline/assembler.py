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
  (``POLL``) and, when tier-up is on, the tier-up counter (``COUNT``); then, in
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

from zjit.isa import MASK32, MASK64, NUM_REGS, OPS, Family, OpInfo

from ..llvm.abi import HOST_CALL
from ..llvm.stencil_names import (
    TRAP_SITE_FN,
    cp_name,
    fixed_name,
    jr_name,
    mem_name,
    rrr_name,
    shift_name,
    unary_name,
)
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


def _dispatch(lib: StencilLibrary) -> dict[int, Entry]:
    """``word >> 12`` (opcode and register fields) -> how to emit it; built once
    per library. Keys of invalid field combinations never occur in verified code."""
    if lib.dispatch is not None:
        return lib.dispatch
    st = lib.stencils
    out: dict[int, Entry] = {}
    regs = range(NUM_REGS)

    def key(op: OpInfo, rd: int, rs1: int, rs2: int) -> int:
        return op.opcode << 12 | rd << 8 | rs1 << 4 | rs2

    for op in OPS:
        fam = op.family
        if fam in (Family.ALU, Family.DIV, Family.CMPSET):
            for a in regs:
                for b in regs:
                    for c in regs:
                        out[key(op, a, b, c)] = (_PLAIN, st[rrr_name(op, a, b, c)], None, 0)
        elif fam is Family.SHIFT:
            for a in regs:
                for b in regs:
                    out[key(op, a, b, b)] = (_SHIFT, st[shift_name(op, a, b)], None, op.width)
        elif fam in (Family.BITCOUNT, Family.INCDEC):
            for a in regs:
                out[key(op, a, a, a if fam is Family.BITCOUNT else 0)] = (_PLAIN, st[unary_name(op, a)], None, 0)
        elif fam is Family.MOV:
            for a in regs:
                for b in regs:
                    out[key(op, a, b, 0)] = (_NONE, None, None, 0) if a == b else (_PLAIN, st[f"MOV_{a}{b}"], None, 0)
        elif fam is Family.NOP:
            for a in regs:
                out[key(op, a, 0, 0)] = (_NONE, None, None, 0)
        elif fam is Family.CP:
            for a in regs:
                rhs: tuple[int | None, ...] = tuple(regs) if op.operation == "cp" else (None,)
                for r in rhs:
                    fused = (None, *(st[cp_name(a, r, cond)] for cond in range(1, 11)))
                    out[key(op, a, a, 0 if r is None else r)] = (_CP if r is not None else _CPI,
                                                                 st[cp_name(a, r)], fused, 0)
        elif fam is Family.LDI:
            for a in regs:
                out[key(op, a, 0, 0)] = (_LDI, st[f"LDI_{a}"], st[f"LDQ_{a}"], a)
        elif fam is Family.LOAD:
            for a in regs:
                for b in regs:
                    out[key(op, a, b, b)] = (_MEM, st[mem_name(op, a, b)], None, op.width)
        elif fam is Family.STORE:
            for b in regs:
                for c in regs:
                    out[key(op, c, b, c)] = (_MEM, st[mem_name(op, b, c)], st[mem_name(op, b, c, True)], op.width)
        elif fam in (Family.BULK, Family.PRIM):
            twin = st.get(fixed_name(op, True))
            out[key(op, 0, 0, 0)] = (_PLAIN, st[fixed_name(op)], twin, 0)
        elif fam is Family.JR:
            for cond in range(11):
                out[key(op, 0, cond, 0)] = (_JR, st[jr_name(cond)], None, cond)
        elif fam is Family.CALL:
            out[key(op, 0, 0, 0)] = (_CALL, st["CALL"], st["ROOM"], 0)
        elif fam is Family.RET:
            out[key(op, 0, 0, 0)] = (_PLAIN, st["RET"], None, 0)
    lib.dispatch = out
    return out


# --------------------------------------------------------------------------- assembling

_MODULE_SLOTS = (_LIMIT, _MEMSIZE, _ROLO, _ROHI)
_SPECIAL_KEEP = 100_000
"""Most specialised stencils a library keeps (then its memo starts again)."""
"""Value holes that are constant in one module (patched once per stencil)."""


_EXITS: dict[int, bytes] = {}
"""Dispatch table (by id; tables live as long as their library) -> the most trap
exits of any stencil of each opcode."""


def _exit_bound(program: VerifiedProgram, table: dict[int, Entry], metered: bool, nids: int) -> int:
    """An upper bound of the trap exits the code will have: per opcode byte of
    CODE (LD's extension words count too) the most any of its stencils has,
    plus the block-entry checks."""
    most = _EXITS.get(id(table))
    if most is None:
        counts = bytearray(256)
        for key, (_cat, st, twin, _extra) in table.items():
            n = max(len(x.traps) for x in (st, twin) if isinstance(x, Stencil)) if st is not None else 0
            counts[key >> 12] = max(counts[key >> 12], n)
        most = _EXITS[id(table)] = bytes(counts)
    exits = int(sum(program.image.code[3::4].translate(most)))
    return exits + (len(program.blocks) if metered else 0) + nids


class _Sites:
    """The trap stub area: chunks of :data:`SITES_PER_CHUNK` identical stubs, each
    chunk followed by a jump to ``trap_site`` (so a stub's call needs no patch)."""

    def __init__(self, lib: StencilLibrary, base: int, bound: int) -> None:
        site, jmp = lib.stencils["SITE"], lib.stencils["JMP"]
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
    table = _dispatch(lib)
    stencils = lib.stencils
    words = memoryview(program.image.code).cast("I")
    nwords = len(words)
    ids = entry_ids(program)
    nids = len(ids)
    blocks = program.blocks
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
    sites = _Sites(lib, len(buf), _exit_bound(program, table, metered, nids))
    buf += sites.area
    site_pcs = array("I")
    site_exits = array("H")
    add_pc, add_exit = site_pcs.append, site_exits.append
    nsites = 0
    stub_len, chunk_len, site_base = sites.stub, sites.chunk, sites.base

    tail = bytearray()  # after the blocks: a trampoline to host_call, then the TIERUP stubs
    jmp, tier_stub = stencils["JMP"], stencils["TIERUP"]
    host_call = lib.symbols.get(HOST_CALL)
    if tierup and host_call is not None:
        tail += jmp.code + jmp.tail
    tier_fix: list[tuple[int, int, Patcher, int]] = []
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
            stub = len(tail)
            tail.extend(tier_stub.code)
            for o, slot, add, p in tier_stub.values:
                p(tail, stub + o, values[slot] + add)
            for o, _ref, adj, p in tier_stub.runtime:
                p(tail, stub + o, 0 - (stub + o) + adj)  # the host_call trampoline at the start
            for o, _ref, adj, p in st.tierup:
                tier_fix.append((off + o, adj, p, stub))

    poll, count, fuel = stencils["POLL"], stencils["COUNT"], stencils["FUEL"]
    neg = [stencils[f"LDN_{r}"] for r in range(NUM_REGS)]
    leaders = program.leaders
    k = (leaders[0] if leaders else 4 * nwords) // 4
    emitted = 0
    while k < nwords:
        pc = 4 * k
        if pc in blocks:
            block_off[pc] = len(buf)
            eid = ids.get(pc)
            if eid is not None:
                put(poll, pc)
                if tierup:
                    values[_CNT8] = 8 * (nids + eid)
                    values[_ID] = eid
                    values[_FID8] = 8 * eid
                    put(count, pc)
            if metered:
                values[_COST] = blocks[pc].cost
                put(fuel, pc)
        w = words[k]
        cat, st, twin, extra = table[w >> 12]
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
                st1, slot = neg[extra], _NEG
            else:
                st1, slot, v = twin, _IMM64, v & MASK64
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
            if nxt >> 24 == _JR_OP and nxt >> 16 & 0xF and 4 * k not in blocks:
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

    # the tier-up stubs, then the fixups
    tail_base = len(buf) + (-len(buf) % 16)
    buf += b"\xcc" * (tail_base - len(buf))
    buf += tail
    if tier_fix and host_call is not None:
        (o, _ref, adj, p), = jmp.target + jmp.tail_refs
        p(buf, tail_base + o, host_call - (tail_base + o) + adj)
    for at, adj, p, stub in tier_fix:
        p(buf, at, tail_base + stub - at + adj)
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
                                              "tierup_stubs": len(tier_fix)})
