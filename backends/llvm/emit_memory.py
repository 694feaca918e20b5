"""Memory emitters: loads, stores, LDIR, FILL and the span checks primitives use.

###########################################################################
#  SANDBOX-CRITICAL CODE.  Every guest memory access made by JIT code is   #
#  checked here.  A mistake in this file lets untrusted guest code read    #
#  or write host memory.  Changes need two reviewers and must keep         #
#  tests/test_lowering.py (guard placement) and the differential tests     #
#  (tests/test_differential.py) passing.                                   #
###########################################################################

Rules implemented (``isa.md`` 2.5-2.8):

* An access of ``n`` bytes at address ``a`` (64-bit, wrapping address
  arithmetic) is allowed iff ``a + n <= mem_size`` without overflow. For the
  fixed sizes 1, 2, 4, 8 this is one unsigned compare ``a < limit_n`` with
  ``limit_n = mem_size - n + 1`` (0 when ``mem_size < n``) computed once per
  function from the invariant context fields.
* A span ``(p, n)`` with a run-time length passes when ``n == 0``, else iff
  ``n <= mem_size && p <= mem_size - n``.
* Writes (stores, LDIR/FILL destinations, IN/CTL buffers) are checked against
  the read-only ranges only when the module has read-only segments. With the
  ranges compiled in (native engine) it is one interval test per range; with
  ranges read from the context (AOT) a fast test against the hull
  ``[ro_lo, ro_hi)`` and, on a hit, an exact scan (``@zjit.wp_conflict``).
  Bounds are always checked first.
* When the memory size is compiled in and an address or length is a constant,
  the check is decided while compiling (no code, or an unconditional trap).
* Every check branches to the trap exit *before* the access; the host address
  is formed (``getelementptr`` on the memory base) only after the checks pass.
* The one exception: loads and stores marked ``unchecked`` by the lifter (in a
  versioned loop's fast copy), whose every execution in the chunk the loop's
  guard has checked (:mod:`.emit_loops`).
"""

from __future__ import annotations

from zjit.isa import MASK64, Family, TrapKind, sext

from ..context import OFFSETS
from ..middle.ir import Const, Inst, Operand
from .abi import MEMMOVE, MEMSET
from .emit_alu import Emitter
from .emit_traps import guard
from .function import UNLIKELY, FnEmitter, const_int

WP_HELPER = "zjit.wp_conflict"
"""Name of the internal exact read-only-range scan."""


def wp_helper_text(cc: str) -> str:
    """``i1 @zjit.wp_conflict(ptr ctx, i64 a, i64 n)``: does ``[a, a+n)`` (n > 0, in
    bounds) intersect a read-only range? It has the guest calling convention
    ``cc`` (a C function would make regcall callers save XMM8-15)."""
    return f"""define internal {cc} i1 @"{WP_HELPER}"(ptr noalias %ctx, i64 %a, i64 %n) #2 {{
entry:
  %pr = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS['ro_ranges']}
  %ranges = load ptr, ptr %pr, align 8
  %pc = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS['ro_count']}
  %count = load i64, ptr %pc, align 8
  %end = add i64 %a, %n
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i.next, %next ]
  %more = icmp ult i64 %i, %count
  br i1 %more, label %body, label %none
body:
  %k = shl i64 %i, 1
  %ps = getelementptr inbounds i64, ptr %ranges, i64 %k
  %s = load i64, ptr %ps, align 8
  %pe = getelementptr inbounds i64, ptr %ps, i64 1
  %e = load i64, ptr %pe, align 8
  %c1 = icmp ult i64 %a, %e
  %c2 = icmp ugt i64 %end, %s
  %c = and i1 %c1, %c2
  br i1 %c, label %hit, label %next
next:
  %i.next = add i64 %i, 1
  br label %loop
hit:
  ret i1 true
none:
  ret i1 false
}}
"""


def check_access(fe: FnEmitter, pc: int, regs: list[Operand], addr: str, n: int, write: bool) -> None:
    """Trap unless an ``n``-byte access at ``addr`` is allowed (``n`` in 1, 2, 4, 8)."""
    a = const_int(addr)
    size = fe.opts.mem_size
    if a is not None and size is not None:
        if (a & MASK64) + n > size:
            guard(fe, "false", int(TrapKind.OOB), pc, regs, addr, str(n))
            return
    else:
        ok = fe.tmp("inb")
        fe.emit(f"{ok} = icmp ult i64 {addr}, {fe.limit(n)}")
        guard(fe, ok, int(TrapKind.OOB), pc, regs, addr, str(n))
    if write:
        _check_readonly(fe, pc, regs, addr, str(n))


def check_span(fe: FnEmitter, pc: int, regs: list[Operand], p: str, n: str, write: bool) -> None:
    """Trap unless the span ``(p, n)`` is allowed (``n == 0`` always is)."""
    pv, nv = const_int(p), const_int(n)
    if nv is not None:
        nv &= MASK64
        if nv == 0:
            return
        size = fe.opts.mem_size
        if pv is not None and size is not None:
            if nv > size or (pv & MASK64) > size - nv:
                guard(fe, "false", int(TrapKind.OOB), pc, regs, p, n)
                return
        else:
            ok = fe.tmp("inb")
            fe.emit(f"{ok} = icmp ult i64 {p}, {fe.limit(nv)}")
            guard(fe, ok, int(TrapKind.OOB), pc, regs, p, n)
        if write:
            _check_readonly(fe, pc, regs, p, n)
        return
    size_text = fe.mem_size()
    z, fits, room, inb, both, ok = (fe.tmp("c") for _ in range(6))
    fe.emit(f"{z} = icmp eq i64 {n}, 0")
    fe.emit(f"{fits} = icmp ule i64 {n}, {size_text}")
    fe.emit(f"{room} = sub i64 {size_text}, {n}")
    fe.emit(f"{inb} = icmp ule i64 {p}, {room}")
    fe.emit(f"{both} = and i1 {fits}, {inb}")
    fe.emit(f"{ok} = or i1 {z}, {both}")
    guard(fe, ok, int(TrapKind.OOB), pc, regs, p, n)
    if write:
        _check_readonly(fe, pc, regs, p, n, z)


def _check_readonly(fe: FnEmitter, pc: int, regs: list[Operand], addr: str, n: str,
                    empty: str | None = None) -> None:
    """Trap WRITE_PROTECT if ``[addr, addr + n)`` touches a read-only range. The
    caller has checked bounds, so ``addr + n`` does not overflow. ``empty`` (an i1)
    is true when the span is empty, which never conflicts; None means not empty."""
    if not fe.has_readonly:
        return
    ranges = fe.opts.readonly
    if ranges is not None:
        _check_readonly_static(fe, pc, regs, addr, n, empty, ranges)
        return
    end = fe.tmp()
    fe.emit(f"{end} = add i64 {addr}, {n}")
    h1, h2, hit = fe.tmp("c"), fe.tmp("c"), fe.tmp("c")
    fe.emit(f"{h1} = icmp ult i64 {addr}, {fe.inv('ro_hi')}")
    fe.emit(f"{h2} = icmp ugt i64 {end}, {fe.inv('ro_lo')}")
    fe.emit(f"{hit} = and i1 {h1}, {h2}")
    if empty is not None:
        ne, hit2 = fe.tmp("c"), fe.tmp("c")
        fe.emit(f"{ne} = xor i1 {empty}, true")
        fe.emit(f"{hit2} = and i1 {hit}, {ne}")
        hit = hit2
    slow, done = fe.label("wp"), fe.label("wpok")
    fe.emit(f"br i1 {hit}, label %{slow}, label %{done}, !prof {UNLIKELY}")
    fe.start(slow)
    conflict, ok = fe.tmp("c"), fe.tmp("c")
    fe.helpers.add(WP_HELPER)
    fe.emit(f'{conflict} = call {fe.abi.cc} i1 @"{WP_HELPER}"(ptr {fe.ctx}, i64 {addr}, i64 {n})')
    fe.emit(f"{ok} = xor i1 {conflict}, true")
    guard(fe, ok, int(TrapKind.WRITE_PROTECT), pc, regs, addr, n)
    fe.emit(f"br label %{done}")
    fe.start(done)


def _check_readonly_static(fe: FnEmitter, pc: int, regs: list[Operand], addr: str, n: str,
                           empty: str | None, ranges: tuple[tuple[int, int], ...]) -> None:
    """WRITE_PROTECT check against read-only ranges compiled in as constants."""
    if not ranges:
        return
    av, nv = const_int(addr), const_int(n)
    if av is not None and nv is not None:
        a, e = av & MASK64, (av & MASK64) + (nv & MASK64)
        if nv & MASK64 and any(a < hi and e > lo for lo, hi in ranges):
            guard(fe, "false", int(TrapKind.WRITE_PROTECT), pc, regs, addr, n)
        return
    end = fe.tmp()
    fe.emit(f"{end} = add i64 {addr}, {n}")
    hits: list[str] = []
    for lo, hi in ranges:
        c1, c2, c = fe.tmp("c"), fe.tmp("c"), fe.tmp("c")
        fe.emit(f"{c1} = icmp ult i64 {addr}, {hi}")
        fe.emit(f"{c2} = icmp ugt i64 {end}, {lo}")
        fe.emit(f"{c} = and i1 {c1}, {c2}")
        hits.append(c)
    hit = hits[0]
    for h in hits[1:]:
        t = fe.tmp("c")
        fe.emit(f"{t} = or i1 {hit}, {h}")
        hit = t
    if empty is not None:
        t = fe.tmp("c")
        fe.emit(f"{t} = select i1 {empty}, i1 false, i1 {hit}")
        hit = t
    ok = fe.tmp("c")
    fe.emit(f"{ok} = xor i1 {hit}, true")
    guard(fe, ok, int(TrapKind.WRITE_PROTECT), pc, regs, addr, n)


def _address(fe: FnEmitter, base: Operand, disp: int) -> str:
    """``(base + sx(disp)) mod 2^64``."""
    if disp == 0:
        return fe.val(base)
    if isinstance(base, Const):
        return str(sext((base.value + disp) & MASK64, 64))
    a = fe.tmp("ea")
    fe.emit(f"{a} = add i64 {fe.val(base)}, {disp}")
    return a


def emit_load(fe: FnEmitter, ins: Inst) -> None:
    """LD8U .. LD32S64: bounds check, little-endian load, zero/sign extension."""
    op = ins.op
    n = op.width
    addr = _address(fe, ins.args[0], ins.imm)
    if not ins.unchecked:  # else a versioned loop's guard has checked it (emit_loops)
        check_access(fe, ins.pc, ins.regs, addr, n, write=False)
    p = fe.host_ptr(addr)
    bits = 8 * n
    t = fe.tmp()
    fe.emit(f"{t} = load i{bits}, ptr {p}, align 1")
    d = fe.dest(ins.dests[0])
    if bits == 64:
        fe.bind(ins.dests[0], t)
    elif op.signed and not op.ext64:
        s = fe.tmp()
        fe.emit(f"{s} = sext i{bits} {t} to i32")
        fe.emit(f"{d} = zext i32 {s} to i64")
    else:
        fe.emit(f"{d} = {'sext' if op.signed else 'zext'} i{bits} {t} to i64")


def emit_store(fe: FnEmitter, ins: Inst) -> None:
    """ST8 .. ST64: bounds and write-protect checks, little-endian store."""
    n = ins.op.width
    addr = _address(fe, ins.args[0], ins.imm)
    if not ins.unchecked:  # else a versioned loop's guard has checked it (emit_loops)
        check_access(fe, ins.pc, ins.regs, addr, n, write=True)
    p = fe.host_ptr(addr)
    v = fe.val(ins.args[1])
    bits = 8 * n
    if bits < 64:
        t = fe.tmp()
        fe.emit(f"{t} = trunc i64 {v} to i{bits}")
        v = t
    fe.emit(f"store i{bits} {v}, ptr {p}, align 1")


def _skip_if_zero(fe: FnEmitter, n: str) -> str:
    """Branch around the rest when ``n == 0``; returns the label to end at."""
    z = fe.tmp("c")
    body, done = fe.label("bulk"), fe.label("bulkdone")
    fe.emit(f"{z} = icmp eq i64 {n}, 0")
    fe.emit(f"br i1 {z}, label %{done}, label %{body}")
    fe.start(body)
    return done


def emit_ldir(fe: FnEmitter, ins: Inst) -> None:
    """LDIR: memmove BC bytes from HL to DE after checking both spans."""
    hl, de, bc = (fe.val(a) for a in ins.args)
    done = _skip_if_zero(fe, bc)
    check_span(fe, ins.pc, ins.regs, hl, bc, write=False)
    check_span(fe, ins.pc, ins.regs, de, bc, write=True)
    dst, src = fe.host_ptr(de), fe.host_ptr(hl)
    fe.c_call(MEMMOVE, [f"ptr {dst}", f"ptr {src}", f"i64 {bc}"])
    fe.emit(f"br label %{done}")
    fe.start(done)


def emit_fill(fe: FnEmitter, ins: Inst) -> None:
    """FILL: write BC bytes of lo8(A) at HL after checking the span."""
    hl, bc, a = (fe.val(x) for x in ins.args)
    done = _skip_if_zero(fe, bc)
    check_span(fe, ins.pc, ins.regs, hl, bc, write=True)
    dst = fe.host_ptr(hl)
    byte = fe.tmp()
    fe.emit(f"{byte} = and i64 {a}, 255")
    b32 = fe.tmp()
    fe.emit(f"{b32} = trunc i64 {byte} to i32")
    fe.c_call(MEMSET, [f"ptr {dst}", f"i32 {b32}", f"i64 {bc}"])
    fe.emit(f"br label %{done}")
    fe.start(done)


EMITTERS: dict[tuple[Family, str], Emitter] = {
    (Family.LOAD, "load"): emit_load,
    (Family.STORE, "store"): emit_store,
    (Family.BULK, "ldir"): emit_ldir,
    (Family.BULK, "fill"): emit_fill,
}
