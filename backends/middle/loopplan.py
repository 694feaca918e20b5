"""What the loop analysis proves about a versioned loop and its guard checks at run time.

A leaf module of plain records (the IR's :class:`~zjit.backends.middle.ir.LoopGuard`
carries a :class:`LoopPlan`; :mod:`.ivs` fills them in; the lowering's
``emit_loops`` turns them into the guard's code).

Every quantity is described by *position*, not by SSA value: ``H[v]`` is the
value of state variable ``v`` when control enters the loop header (the guard's
entry state), and iterations are counted ``k = 0, 1, ...`` from there. A
:class:`Linear` is an exact integer function of ``k``::

    value(k) = const + sum(H[v] for v in vars) + k * slope

where ``H[v]`` are read as unsigned 64-bit numbers, ``const`` is a signed
integer and ``slope`` (the step of the one induction variable among ``vars``,
:attr:`LoopPlan.steps`) is ``step.const + sx(H[step.var])``. The guest value the
SSA analysis attached it to is that integer modulo 2**64, provided the values in
:attr:`Linear.pre` stay inside ``[0, 2**32)`` (32-bit operations on the way wrap
otherwise); the guard checks these.
"""

from __future__ import annotations

from dataclasses import dataclass

U32 = 1 << 32


@dataclass(frozen=True, slots=True)
class Step:
    """How much an induction variable grows per iteration: ``const`` plus the
    header value of the loop-invariant state variable ``var`` (sign-extended)."""

    const: int
    var: int | None = None


@dataclass(frozen=True, slots=True)
class Linear:
    """``const + sum(H[v] for v in vars) + k * slope(iv)`` (module docstring)."""

    const: int
    vars: tuple[int, ...] = ()
    iv: int | None = None
    """The induction variable among ``vars`` (None: the value is loop-invariant)."""
    pre: tuple[Linear, ...] = ()
    """Values that must lie in ``[0, 2**32)`` for the guest value to equal this
    one modulo 2**64 (inputs of 32-bit operations that produced it)."""

    def shifted(self, delta: int) -> Linear:
        """This value plus the constant ``delta``."""
        return Linear(self.const + delta, self.vars, self.iv, self.pre)


@dataclass(frozen=True, slots=True)
class RangeCheck:
    """For every iteration ``k`` of the chunk: ``value(k) + lo >= 0`` and
    ``value(k) + hi <= limit``, where ``limit`` is the guest memory size
    (``u32`` false) or ``2**32`` (``u32`` true). With ``write`` the whole span
    ``[min value + lo, max value + hi)`` must also miss every read-only range."""

    value: Linear
    lo: int
    hi: int
    u32: bool = False
    write: bool = False


@dataclass(frozen=True, slots=True)
class ExitTest:
    """The loop's exit test, normalised: iteration ``k`` continues iff
    ``P(u_k, b)`` where ``u_k = lo32(value(k)) ^ flip`` and ``b = lo32(bound) ^ flip``,
    ``P`` being ``u != b`` (``kind`` "ne"), ``u < b`` ("lt") or ``u <= b``
    ("le"), unsigned 32-bit. ``flip`` turns signed and decreasing tests into
    this form (``0x80000000``: signed; ``0xFFFFFFFF``: mirrored, with the step
    negated, ``negate``). For "ne" ``inverse`` is the inverse of the (odd,
    constant) step modulo 2**32."""

    value: Linear
    bound: Linear
    kind: str
    flip: int = 0
    negate: bool = False
    inverse: int = 0


@dataclass(frozen=True, slots=True)
class LoopPlan:
    """A loop the lifter versions: its guard computes how many iterations ``n``
    the next chunk may run (the trip count left, at most :attr:`chunk`, at most
    what the fuel pays for at :attr:`max_cost` per iteration) and runs the fast
    copy for them when every check holds, else the checked loop."""

    header: int
    """Leader of the loop header (after rotation)."""
    latch: int
    """Leader of the block whose exit test ends each iteration."""
    body: frozenset[int]
    """Leaders of the loop's blocks."""
    steps: dict[int, Step]
    """Induction variables (state variable -> step)."""
    test: ExitTest
    checks: tuple[RangeCheck, ...]
    unchecked: frozenset[int]
    """Pcs of the loads and stores whose bounds and write-protect checks the
    guard's range checks make redundant in the fast copy."""
    exact: frozenset[int]
    """Pcs of 32-bit INC/DEC/ADD/SUB whose results the guard proves below 2**32
    (the fast copy computes them without the wrap)."""
    max_cost: int
    """The most fuel one iteration can use (the costliest path through the body)."""
    chunk: int
    """The most iterations between two interrupt polls."""
    unroll: int = 1
    """How many times the fast copy may be unrolled (a code generation hint)."""
