"""Run-time helpers called by the interpreter's generated block code.

Generated blocks keep the hot, simple instructions inline; everything that is
rare, needs the host, or has many cases (division, LDIR/FILL, the six host
primitives) lives here as plain Python so it is easy to audit.

State layout shared with :mod:`zjit.interp.codegen`: ``S`` is a list
``[HL, DE, A, BC, IX, cmp_lhs, cmp_rhs, fuel, trap, machine]``. A helper that
traps stores ``(kind, pc, address, length, cause)`` in ``S[TRAP]`` and returns
False; the generated code then returns None to the dispatch loop.
"""

from __future__ import annotations

import struct

from zjit.isa import BC, DE, HL, IX, MASK32, MASK64, A, TrapKind
from zjit.machine import Machine

CMP_L, CMP_R, FUEL, TRAP, MACH = 5, 6, 7, 8, 9
"""Indices of the non-register slots of the state list ``S``."""

TYPE_CHECKING = False  # typing stays unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

    State = list[Any]
TrapInfo = tuple[TrapKind, int, "int | None", "int | None", "BaseException | None"]

# Little-endian accessors used by generated loads and stores.
U16 = struct.Struct("<H").unpack_from
S16 = struct.Struct("<h").unpack_from
U32 = struct.Struct("<I").unpack_from
S32 = struct.Struct("<i").unpack_from
U64 = struct.Struct("<Q").unpack_from
P16 = struct.Struct("<H").pack_into
P32 = struct.Struct("<I").pack_into
P64 = struct.Struct("<Q").pack_into


def trap(S: State, kind: TrapKind, pc: int, address: int | None = None,
         length: int | None = None, cause: BaseException | None = None) -> None:
    """Record a trap in ``S`` (the caller returns None to stop the run)."""
    S[TRAP] = (kind, pc, address, length, cause)


# --- division (isa.md 2.1): callers have already trapped on a zero divisor ------

def _signed(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) else x


def _tdiv(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return -q if (x < 0) != (y < 0) else q


def divs(x: int, y: int, bits: int) -> int:
    """Signed division truncating toward zero; INT_MIN / -1 wraps to INT_MIN."""
    return _tdiv(_signed(x, bits), _signed(y, bits)) & ((1 << bits) - 1)


def rems(x: int, y: int, bits: int) -> int:
    """Signed remainder with the sign of the dividend; INT_MIN % -1 is 0."""
    sx, sy = _signed(x, bits), _signed(y, bits)
    return (sx - _tdiv(sx, sy) * sy) & ((1 << bits) - 1)


# --- spans (isa.md 2.5, 2.8) ------------------------------------------------------

def span_fault(m: Machine, p: int, n: int, write: bool) -> TrapKind | None:
    """Why the span ``(p, n)`` may not be accessed, or None when it may.

    n = 0 always passes. Bounds are checked before write permission.
    """
    if n == 0:
        return None
    if p + n > len(m.memory):
        return TrapKind.OOB
    if write:
        end = p + n
        for lo, hi in m.readonly:
            if p < hi and end > lo:
                return TrapKind.WRITE_PROTECT
    return None


def _check(S: State, pc: int, p: int, n: int, write: bool) -> bool:
    kind = span_fault(S[MACH], p, n, write)
    if kind is None:
        return True
    trap(S, kind, pc, p, n)
    return False


# --- LDIR and FILL (isa.md 2.7) ---------------------------------------------------

def op_ldir(S: State, M: bytearray, pc: int) -> bool:
    """memmove BC bytes from HL to DE; registers unchanged."""
    n = S[BC]
    if n == 0:
        return True
    src, dst = S[HL], S[DE]
    if not (_check(S, pc, src, n, False) and _check(S, pc, dst, n, True)):
        return False
    M[dst:dst + n] = bytes(M[src:src + n])
    return True


def op_fill(S: State, M: bytearray, pc: int) -> bool:
    """Write BC copies of lo8(A) at HL; registers unchanged."""
    n = S[BC]
    if n == 0:
        return True
    dst = S[HL]
    if not _check(S, pc, dst, n, True):
        return False
    M[dst:dst + n] = bytes((S[A] & 0xFF,)) * n
    return True


# --- host primitives (isa.md 2.8) -------------------------------------------------

def _host_failed(S: State, pc: int, exc: Exception) -> bool:
    trap(S, TrapKind.HOST, pc, cause=exc)
    return False


def prim_in(S: State, M: bytearray, pc: int) -> bool:
    """IN: read up to lo32(DE) bytes of input to HL; HL := bytes read."""
    p, cap = S[HL], S[DE] & MASK32
    if not _check(S, pc, p, cap, True):
        return False
    try:
        data = S[MACH].host.read(cap)
        if len(data) > cap:
            raise ValueError(f"input handler returned {len(data)} bytes for a read of {cap}")
    except Exception as exc:
        return _host_failed(S, pc, exc)
    n = len(data)
    M[p:p + n] = data
    S[HL] = n
    return True


def prim_out(S: State, M: bytearray, pc: int) -> bool:
    """OUT: append lo32(DE) bytes at HL to the output."""
    p, n = S[HL], S[DE] & MASK32
    if not _check(S, pc, p, n, False):
        return False
    try:
        S[MACH].host.write(memoryview(M)[p:p + n])  # charged to the output budget first
    except Exception as exc:
        return _host_failed(S, pc, exc)
    return True


def prim_log(S: State, M: bytearray, pc: int) -> bool:
    """LOG: topic (HL, lo32 DE), message (BC, lo32 IX) to the log sink."""
    tp, tn = S[HL], S[DE] & MASK32
    mp, mn = S[BC], S[IX] & MASK32
    if not (_check(S, pc, tp, tn, False) and _check(S, pc, mp, mn, False)):
        return False
    try:
        view = memoryview(M)
        S[MACH].host.log(view[tp:tp + tn], view[mp:mp + mn])  # charged to the output budget first
    except Exception as exc:
        return _host_failed(S, pc, exc)
    return True


def prim_alloc(S: State, M: bytearray, pc: int) -> bool:
    """ALLOC: bump-allocate HL bytes (8-aligned); HL := address or 0."""
    m: Machine = S[MACH]
    size = S[HL]
    if size == 0:
        S[HL] = 0
        return True
    a = (m.heap_top + 7) & ~7
    if a + size > len(M):
        S[HL] = 0
        return True
    m.heap_top = a + size
    S[HL] = a
    return True


def prim_free(S: State, M: bytearray, pc: int) -> bool:
    """FREE: memory is never reused; no effect."""
    return True


def prim_ctl(S: State, M: bytearray, pc: int) -> bool:
    """CTL: request (HL, lo32 DE) to the control handler, response to (BC, lo32 IX)."""
    rp, rn = S[HL], S[DE] & MASK32
    bp, cap = S[BC], S[IX] & MASK32
    if not (_check(S, pc, rp, rn, False) and _check(S, pc, bp, cap, True)):
        return False
    try:
        value, data = S[MACH].host.ctl(bytes(M[rp:rp + rn]), cap)
        if not isinstance(value, int) or len(data) > cap:
            raise ValueError("control handler result is malformed")
    except Exception as exc:
        return _host_failed(S, pc, exc)
    M[bp:bp + len(data)] = data
    S[HL] = value & MASK64
    return True


PRIMS = {"in": prim_in, "out": prim_out, "log": prim_log,
         "alloc": prim_alloc, "free": prim_free, "ctl": prim_ctl}
"""Primitive operation name (``OpInfo.operation``) -> helper."""
BULK = {"ldir": op_ldir, "fill": op_fill}
"""Bulk operation name -> helper."""
PRIM_WRITES_HL = frozenset({"in", "alloc", "ctl"})
"""Operations after which HL must be re-read from the state."""
