"""The guard of a versioned loop: one set of checks per chunk instead of per access.

###########################################################################
#  SANDBOX-CRITICAL CODE.  When the guard lets a chunk run in the fast      #
#  copy, the loads and stores of LoopPlan.unchecked run there without any  #
#  bounds or write-protect check.  A mistake here lets guest code read or  #
#  write host memory.  Keep tests/test_versioning.py (adversarial loops)   #
#  and the differential tests passing.                                     #
###########################################################################

The plan (:class:`~zjit.backends.middle.loopplan.LoopPlan`, made by
:mod:`zjit.backends.middle.ivs`) describes values as exact integer functions of
the iteration ``k`` of the header values ``H`` (the guard's entry state). The
guard, entered from outside the loop and after every chunk:

1. polls the interrupt flag (TIMEOUT at the loop header, with the header's
   registers and fuel: the fast copy itself never polls);
2. counts iterations ``T`` the loop's own exit test lets run from here
   (:class:`~zjit.backends.middle.loopplan.ExitTest`; at least 1, at most
   ``2**32 + 1``, never more than the test really lets run);
3. takes ``n = min(T, chunk)``, and when metered ``min(n, fuel / max_cost)``,
   so no FUEL trap can happen in the chunk (the fast copy only subtracts);
4. checks every range of the plan for ``k = 0 .. n-1``: a value is linear in
   ``k``, so its extremes are at ``k = 0`` and ``k = n - 1``; the arithmetic
   is done in ``i128``, where none of it can overflow (``|const|`` below
   2**66, ``H`` below 2**64, ``n`` below 2**32, steps below 2**65);
5. runs the chunk in the fast copy with ``cnt = n`` when ``n > 0`` and every
   check holds, else continues in the checked loop (which then runs to the
   loop's end, polling and checking every iteration as unversioned code does).

Only sufficient conditions are checked: a value the plan cannot prove in range
(an address that wraps around 2**64, a 32-bit counter that wraps) sends the run
to the checked loop, which traps where the interpreter does. The fast copy runs
exactly ``n`` iterations (:class:`~zjit.backends.middle.ir.Countdown`) and then
the loop's own exit test decides between leaving and the next chunk, so a
``T`` that is too small would only cost time; ``T`` is never too large.
"""

from __future__ import annotations

from zjit.isa import MASK32, MASK64, NUM_REGS, TrapKind, sext

from ..middle.ir import LoopGuard
from ..middle.loopplan import U32, ExitTest, Linear, LoopPlan, RangeCheck
from .emit_control import TermEmitter, block_label
from .emit_traps import guard
from .function import FnEmitter


def _i64(value: int) -> str:
    return str(sext(value & MASK64, 64))


class _Guard:
    """The guard's arithmetic on the header values ``H`` (LLVM i64 operands)."""

    def __init__(self, fe: FnEmitter, plan: LoopPlan, h: list[str]) -> None:
        self.fe = fe
        self.plan = plan
        self.h = h
        self.h128: dict[int, str] = {}

    def emit(self, line: str) -> None:
        self.fe.emit(line)

    def tmp(self) -> str:
        return self.fe.tmp("g")

    def op(self, text: str) -> str:
        t = self.tmp()
        self.emit(f"{t} = {text}")
        return t

    def at0(self, v: Linear, exact: bool = True) -> str:
        """``value(0)``: exactly as i128 (header values unsigned), or modulo 2**64."""
        ty = "i128" if exact else "i64"
        acc = str(v.const) if exact else _i64(v.const)
        for var in v.vars:
            acc = self.op(f"add {ty} {acc}, {self.wide(var) if exact else self.h[var]}")
        return acc

    def step_i64(self, iv: int) -> str:
        """The step of induction variable ``iv`` modulo 2**64."""
        s = self.plan.steps[iv]
        if s.var is None:
            return _i64(s.const)
        return self.op(f"add i64 {self.h[s.var]}, {_i64(s.const)}")

    def wide(self, var: int, signed: bool = False) -> str:
        if not signed and var in self.h128:
            return self.h128[var]
        t = self.op(f"{'sext' if signed else 'zext'} i64 {self.h[var]} to i128")
        if not signed:
            self.h128[var] = t
        return t

    def slope(self, v: Linear) -> str | None:
        """The exact step of ``v`` per iteration (None: loop-invariant)."""
        if v.iv is None:
            return None
        s = self.plan.steps[v.iv]
        if s.var is None:
            return str(s.const)
        return self.op(f"add i128 {self.wide(s.var, signed=True)}, {s.const}")

    def extremes(self, v: Linear, last: str) -> tuple[str, str]:
        """The least and the greatest of ``value(k)`` for ``k`` in ``0 .. n-1``
        (``last`` = ``n - 1`` as i128)."""
        first = self.at0(v)
        slope = self.slope(v)
        if slope is None:
            return first, first
        end = self.op(f"add i128 {first}, {self.op(f'mul i128 {last}, {slope}')}")
        up = self.op(f"icmp slt i128 {first}, {end}")
        return self.op(f"select i1 {up}, i128 {first}, i128 {end}"), self.op(f"select i1 {up}, i128 {end}, i128 {first}")

    # -- the checks -------------------------------------------------------------------------
    def trip_count(self, test: ExitTest) -> str:
        """How many iterations (at least 1) the exit test lets run from here, or
        fewer: never more.

        "ne": the first ``k`` with ``u0 + k*t == b`` modulo 2**32 is
        ``(b - u0) * t**-1``. "lt" ("le": ``b + 1``, up to 2**32): if ``u0 < b``,
        ``k* = ceil((b - u0) / t)`` for a step ``t`` in 1 .. 2**32 - 1; for every
        ``k < k*`` the exact ``u0 + k*t`` is below ``b``, so it did not wrap and
        the test passed: the loop runs at least ``k* + 1`` iterations (it may run
        more when the value at ``k*`` wraps past 2**32; the chunk's tail runs the
        test itself). A step of 0 counts as 1 (the loop then runs forever, so any
        count is not too many)."""
        mask = str(MASK32)
        u0 = self.op(f"and i64 {self.at0(test.value, exact=False)}, {mask}")
        b = self.op(f"and i64 {self.at0(test.bound, exact=False)}, {mask}")
        assert test.value.iv is not None
        if test.kind == "ne":
            diff = self.op(f"sub i64 {b}, {u0}")
            k = self.op(f"and i64 {self.op(f'mul i64 {diff}, {test.inverse}')}, {mask}")
            return self.op(f"add i64 {k}, 1")
        if test.flip:
            u0 = self.op(f"xor i64 {u0}, {test.flip}")
            b = self.op(f"xor i64 {b}, {test.flip}")
        t = self.op(f"and i64 {self.step_i64(test.value.iv)}, {mask}")
        if test.negate:
            t = self.op(f"and i64 {self.op(f'sub i64 0, {t}')}, {mask}")
        if test.kind == "le":
            b = self.op(f"add i64 {b}, 1")  # u <= B is u < B + 1
        t = self.op(f"call i64 @llvm.umax.i64(i64 {t}, i64 1)")
        self.fe.intrinsic("declare i64 @llvm.umax.i64(i64, i64)")
        more = self.op(f"icmp ult i64 {u0}, {b}")
        num = self.op(f"add i64 {self.op(f'sub i64 {b}, {u0}')}, {self.op(f'sub i64 {t}, 1')}")
        k = self.op(f"select i1 {more}, i64 {self.op(f'udiv i64 {num}, {t}')}, i64 0")
        return self.op(f"add i64 {k}, 1")

    def range_ok(self, c: RangeCheck, last: str) -> str:
        """Does ``c`` hold for every iteration of the chunk?"""
        fe = self.fe
        lo, hi = self.extremes(c.value, last)
        start = self.op(f"add i128 {lo}, {c.lo}")
        end = self.op(f"add i128 {hi}, {c.hi}")
        if c.u32:
            limit = str(U32)
        else:
            limit = self.op(f"zext i64 {fe.mem_size()} to i128")
        ok = self.op(f"and i1 {self.op(f'icmp sge i128 {start}, 0')}, {self.op(f'icmp sle i128 {end}, {limit}')}")
        if c.write and fe.has_readonly:
            ok = self.op(f"and i1 {ok}, {self.writable(start, end)}")
        return ok

    def writable(self, start: str, end: str) -> str:
        """Does ``[start, end)`` (in bounds) miss every read-only range?"""
        fe = self.fe
        ranges = fe.opts.readonly
        if ranges is None:  # ranges in the context: their hull
            ro_lo = self.op(f"zext i64 {fe.inv('ro_lo')} to i128")
            ro_hi = self.op(f"zext i64 {fe.inv('ro_hi')} to i128")
            bounds = [(ro_lo, ro_hi)]
        else:
            bounds = [(str(a), str(b)) for a, b in ranges]
        ok = "true"
        for a, b in bounds:
            below = self.op(f"icmp sle i128 {end}, {a}")
            above = self.op(f"icmp sge i128 {start}, {b}")
            ok = self.op(f"and i1 {ok}, {self.op(f'or i1 {below}, {above}')}")
        return ok


def emit_loop_guard(fe: FnEmitter, t: object) -> None:
    """A versioned loop's guard (module docstring): poll, count, check, dispatch."""
    assert isinstance(t, LoopGuard)
    b = fe.block
    assert b is not None
    plan = t.plan
    regs = b.entry_state[:NUM_REGS]
    if fe.opts.interrupts:
        flag, calm = fe.tmp("irq"), fe.tmp("c")
        fe.emit(f"{flag} = load volatile i64, ptr {fe.field_ptr('interrupt')}, align 8")
        fe.emit(f"{calm} = icmp eq i64 {flag}, 0")
        guard(fe, calm, int(TrapKind.TIMEOUT), b.leader, regs)
    g = _Guard(fe, plan, [fe.val(x) for x in regs])
    n = g.op(f"call i64 @llvm.umin.i64(i64 {g.trip_count(plan.test)}, i64 {plan.chunk})")
    fe.intrinsic("declare i64 @llvm.umin.i64(i64, i64)")
    if fe.opts.fuel:
        paid = g.op(f"udiv i64 {fe.fuel}, {plan.max_cost}")
        n = g.op(f"call i64 @llvm.umin.i64(i64 {n}, i64 {paid})")
    ok = g.op(f"icmp ne i64 {n}, 0")
    if plan.checks:
        last = g.op(f"zext i64 {g.op(f'sub i64 {n}, 1')} to i128")
        for c in plan.checks:
            ok = g.op(f"and i1 {ok}, {g.range_ok(c, last)}")
    fe.st["cnt"] = n
    fe.emit(f"br i1 {ok}, label %{block_label(t.fast)}, label %{block_label(t.slow)}")


LOOP_TERMINATORS: dict[type, TermEmitter] = {LoopGuard: emit_loop_guard}
"""Terminator class -> emitter for versioned loops."""
