"""Host primitive emitters (``isa.md`` 2.8): IN OUT LOG ALLOC FREE CTL.

Spans are checked first (:func:`emit_memory.check_span`), in the order the spec
gives, so a failing span traps with the primitive having no effect.

* ALLOC and FREE run entirely in generated code (the heap top lives in the
  context).
* IN with in-memory input copies from ``in_ptr``/``in_pos`` natively; OUT appends
  to the context's output buffer natively and calls the host only when the
  buffer is full (or for stream output, where the capacity is 0). Every OUT is
  first charged to the output budget ``out_room`` (:func:`charge_output`, issue
  13): past it the code traps ``TRAP_OUTPUT_LIMIT`` (reported as HOST) with
  nothing of the OUT done, without a host call.
* Stream input, LOG and CTL call the host. Every host call is the context's
  ``host_call(ctx, op, a, b, c, d)`` (op: :data:`~zjit.backends.context.HOST_OPS`;
  on x86-64 through its regcall adapter, :mod:`.abi`); it returns non-zero when
  the handler failed, and the generated code then traps HOST at the primitive's
  pc (registers unchanged).
"""

from __future__ import annotations

from zjit.isa import Family, TrapKind

from ..context import HOST_OPS, TRAP_OUTPUT_LIMIT
from ..middle.ir import Inst
from .abi import HOST_CALL, MEMMOVE
from .emit_alu import Emitter
from .emit_memory import check_span
from .emit_traps import guard
from .function import LIKELY, FnEmitter


def _host_call(fe: FnEmitter, ins: Inst, op: str, args: list[str]) -> None:
    """``host_call`` of primitive ``op``; trap HOST on failure."""
    while len(args) < 4:
        args.append("0")
    s, ok = fe.tmp("hs"), fe.tmp("c")
    fe.c_call(HOST_CALL, [f"ptr {fe.ctx}", f"i64 {HOST_OPS[op]}", *(f"i64 {a}" for a in args)], s)
    fe.emit(f"{ok} = icmp eq i64 {s}, 0")
    guard(fe, ok, int(TrapKind.HOST), ins.pc, ins.regs)


def emit_in(fe: FnEmitter, ins: Inst) -> None:
    """IN: HL := bytes read (at most lo32(DE)) into HL."""
    p = fe.val(ins.args[0])
    cap = fe.zext32(ins.args[1])
    check_span(fe, ins.pc, ins.regs, p, cap, write=True)
    mode = fe.tmp("c")
    native, host, done = fe.label("in.mem"), fe.label("in.host"), fe.label("in.done")
    fe.emit(f"{mode} = icmp eq i64 {fe.inv('in_mode')}, 0")
    fe.emit(f"br i1 {mode}, label %{native}, label %{host}, !prof {LIKELY}")
    fe.start(native)
    pos = fe.load_field("in_pos")
    avail, less, n, src, npos = fe.tmp(), fe.tmp("c"), fe.tmp(), fe.tmp("a"), fe.tmp()
    fe.emit(f"{avail} = sub i64 {fe.inv('in_len')}, {pos}")
    fe.emit(f"{less} = icmp ult i64 {cap}, {avail}")
    fe.emit(f"{n} = select i1 {less}, i64 {cap}, i64 {avail}")
    fe.emit(f"{src} = getelementptr i8, ptr {fe.inv('in_ptr')}, i64 {pos}")
    dst = fe.host_ptr(p)
    fe.c_call(MEMMOVE, [f"ptr {dst}", f"ptr {src}", f"i64 {n}"])
    fe.emit(f"{npos} = add i64 {pos}, {n}")
    fe.store_field("in_pos", npos)
    fe.emit(f"br label %{done}")
    native_end = fe.current
    fe.start(host)
    _host_call(fe, ins, "in", [p, cap])
    r = fe.load_field("host_result")
    fe.emit(f"br label %{done}")
    host_end = fe.current
    fe.start(done)
    fe.emit(f"{fe.dest(ins.dests[0])} = phi i64 [ {n}, %{native_end} ], [ {r}, %{host_end} ]")


def charge_output(fe: FnEmitter, ins: Inst, n: str) -> str:
    """SANDBOX-CRITICAL (issue 13): trap ``TRAP_OUTPUT_LIMIT`` at the OUT unless its
    ``n`` bytes fit in the output budget ``out_room``; the budget left after it,
    which the caller stores once the OUT has been done (the host sets ``out_room``
    to 2**64-1 when nothing is counted)."""
    room, ok, left = fe.load_field("out_room"), fe.tmp("c"), fe.tmp()
    fe.emit(f"{ok} = icmp ule i64 {n}, {room}")
    guard(fe, ok, TRAP_OUTPUT_LIMIT, ins.pc, ins.regs)
    fe.emit(f"{left} = sub i64 {room}, {n}")
    return left


def emit_out(fe: FnEmitter, ins: Inst) -> None:
    """OUT: append lo32(DE) bytes at HL to the output."""
    p = fe.val(ins.args[0])
    n = fe.zext32(ins.args[1])
    check_span(fe, ins.pc, ins.regs, p, n, write=False)
    left = charge_output(fe, ins, n)
    olen = fe.load_field("out_len")
    room, fits = fe.tmp(), fe.tmp("c")
    buf, host, done = fe.label("out.buf"), fe.label("out.host"), fe.label("out.done")
    fe.emit(f"{room} = sub i64 {fe.inv('out_cap')}, {olen}")
    fe.emit(f"{fits} = icmp ule i64 {n}, {room}")
    fe.emit(f"br i1 {fits}, label %{buf}, label %{host}, !prof {LIKELY}")
    fe.start(buf)
    dst, nlen = fe.tmp("a"), fe.tmp()
    fe.emit(f"{dst} = getelementptr i8, ptr {fe.inv('out_ptr')}, i64 {olen}")
    src = fe.host_ptr(p)
    fe.c_call(MEMMOVE, [f"ptr {dst}", f"ptr {src}", f"i64 {n}"])
    fe.emit(f"{nlen} = add i64 {olen}, {n}")
    fe.store_field("out_len", nlen)
    fe.emit(f"br label %{done}")
    fe.start(host)
    _host_call(fe, ins, "out", [p, n])
    fe.emit(f"br label %{done}")
    fe.start(done)
    fe.store_field("out_room", left)


def emit_log(fe: FnEmitter, ins: Inst) -> None:
    """LOG: topic (HL, lo32 DE) and message (BC, lo32 IX) to the host."""
    hl, de, bc, ix = ins.args
    tp, tn = fe.val(hl), fe.zext32(de)
    mp, mn = fe.val(bc), fe.zext32(ix)
    check_span(fe, ins.pc, ins.regs, tp, tn, write=False)
    check_span(fe, ins.pc, ins.regs, mp, mn, write=False)
    _host_call(fe, ins, "log", [tp, tn, mp, mn])


def emit_ctl(fe: FnEmitter, ins: Inst) -> None:
    """CTL: request (HL, lo32 DE), response buffer (BC, lo32 IX); HL := result."""
    hl, de, bc, ix = ins.args
    rp, rn = fe.val(hl), fe.zext32(de)
    bp, cap = fe.val(bc), fe.zext32(ix)
    check_span(fe, ins.pc, ins.regs, rp, rn, write=False)
    check_span(fe, ins.pc, ins.regs, bp, cap, write=True)
    _host_call(fe, ins, "ctl", [rp, rn, bp, cap])
    fe.bind(ins.dests[0], fe.load_field("host_result"))


def emit_alloc(fe: FnEmitter, ins: Inst) -> None:
    """ALLOC: 8-aligned bump allocation; HL := address, or 0 (size 0 or no room)."""
    size = fe.val(ins.args[0])
    top = fe.load_field("heap_top")
    msize = fe.mem_size()
    t7, a, zero, over1, room, over2, fail1, fail, newtop, keep = (
        fe.tmp() for _ in range(10)
    )
    fe.emit(f"{t7} = add i64 {top}, 7")
    fe.emit(f"{a} = and i64 {t7}, -8")
    fe.emit(f"{zero} = icmp eq i64 {size}, 0")
    fe.emit(f"{over1} = icmp ugt i64 {a}, {msize}")
    fe.emit(f"{room} = sub i64 {msize}, {a}")
    fe.emit(f"{over2} = icmp ugt i64 {size}, {room}")
    fe.emit(f"{fail1} = or i1 {zero}, {over1}")
    fe.emit(f"{fail} = or i1 {fail1}, {over2}")
    fe.emit(f"{newtop} = add i64 {a}, {size}")
    fe.emit(f"{keep} = select i1 {fail}, i64 {top}, i64 {newtop}")
    fe.store_field("heap_top", keep)
    fe.emit(f"{fe.dest(ins.dests[0])} = select i1 {fail}, i64 0, i64 {a}")


def emit_free(fe: FnEmitter, ins: Inst) -> None:
    """FREE: memory is never reused; nothing to do."""


EMITTERS: dict[tuple[Family, str], Emitter] = {
    (Family.PRIM, "in"): emit_in,
    (Family.PRIM, "out"): emit_out,
    (Family.PRIM, "log"): emit_log,
    (Family.PRIM, "ctl"): emit_ctl,
    (Family.PRIM, "alloc"): emit_alloc,
    (Family.PRIM, "free"): emit_free,
}
