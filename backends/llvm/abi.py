"""The guest calling convention per target (docs/jit.md, "Calls").

A guest function takes the state tuple S, in this order::

    S = (ctx: ptr, mem: ptr, room: i64, HL, DE, A, BC, IX: i64, CMP: i64, fuel: i64)

``mem`` is ``ctx.mem_base``; ``room`` how many more guest calls may nest; CMP is
packed (lo32 = lhs, hi32 = rhs; unpacked into two i32 values inside a
function); ``fuel`` the fuel left (0 when unmetered). The whole of S travels in
registers both ways, so a caller keeps nothing live across a CALL:

* x86-64: ``x86_regcallcc`` (arguments and results in the same registers, in
  the same order); a function returns the whole of S (``%S``). Under regcall
  XMM8-15 are callee-saved, so calls to C functions (memmove, memset,
  ``host_call``) go through small ``noinline x86_regcallcc`` adapters
  (:func:`adapters_text`), which save them only when they run;
* aarch64: ``preserve_nonecc``; at most 8 values come back in registers, so a
  function returns S without ctx and mem (``%R``); callers keep their own. C
  functions are called directly (a ``preserve_none`` function saves nothing).

:class:`GuestABI` is the one place that knows these per-target differences.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..context import OFFSETS

CTX, MEM, ROOM, CMP, FUEL = 0, 1, 2, 8, 9
"""Positions in S (registers are 3..7: HL DE A BC IX)."""
REG0 = 3
S_NAMES = ("ctx", "mem", "room", "HL", "DE", "A", "BC", "IX", "CMP", "fuel")
S_TYPES = ("ptr", "ptr") + ("i64",) * 8

MEMMOVE = "zjit.memmove"
MEMSET = "zjit.memset"
HOST_CALL = "zjit.host_call"
"""Names of the C-call adapters (x86-64) of ``fn_memmove``, ``fn_memset`` and ``host_call``."""
_C_FIELD = {MEMMOVE: "fn_memmove", MEMSET: "fn_memset", HOST_CALL: "host_call"}
C_SIGS = {
    MEMMOVE: ("ptr", ("ptr", "ptr", "i64")),
    MEMSET: ("ptr", ("ptr", "i32", "i64")),
    HOST_CALL: ("i64", ("ptr", "i64", "i64", "i64", "i64", "i64")),
}
"""Adapter -> (C return type, C parameter types); ``host_call``'s first is ctx."""


@dataclass(frozen=True)
class GuestABI:
    """Calling convention facts of one target."""

    cc: str
    """LLVM calling convention keyword of guest functions and the trap helper."""
    ret: str
    """Name of the return struct type."""
    ret_fields: tuple[int, ...]
    """Positions of S returned, in order."""
    adapters: bool
    """C functions are called through regcall adapters."""

    @property
    def returns_ctx(self) -> bool:
        """ctx and mem come back from a call (a caller need not keep them)."""
        return CTX in self.ret_fields

    def type_defs(self) -> list[str]:
        """The module's type definitions for S and the return struct."""
        s = f"%S = type {{ {', '.join(S_TYPES)} }}"
        if self.ret == "%S":
            return [s]
        return [s, f"{self.ret} = type {{ {', '.join(S_TYPES[i] for i in self.ret_fields)} }}"]

    def ret_index(self, pos: int) -> int | None:
        """Index of S position ``pos`` in the return struct (None: not returned)."""
        return self.ret_fields.index(pos) if pos in self.ret_fields else None


X86_64 = GuestABI("x86_regcallcc", "%S", tuple(range(10)), adapters=True)
AARCH64 = GuestABI("preserve_nonecc", "%R", tuple(range(ROOM, 10)), adapters=False)


def guest_abi(triple: str) -> GuestABI:
    """The :class:`GuestABI` of ``triple``."""
    return AARCH64 if triple.startswith(("aarch64", "arm64")) else X86_64


def c_field(adapter: str) -> str:
    """The context field holding the C function an adapter calls."""
    return _C_FIELD[adapter]


def c_call_text(abi: GuestABI, adapter: str, fn: str, args: list[str]) -> str:
    """The call instruction (without result name) of the C function behind
    ``adapter``: through the adapter, which takes ctx and loads the function
    itself (x86-64; ``args`` start with ``ptr %ctx``), or directly through ``fn``,
    the loaded function pointer (aarch64; ``args`` are the C arguments)."""
    ret, _ = C_SIGS[adapter]
    if abi.adapters:
        return f'call {abi.cc} {ret} @"{adapter}"({", ".join(args)})'
    return f"call {ret} {fn}({', '.join(args)})"


def adapters_text(abi: GuestABI, used: set[str]) -> list[str]:
    """The adapter definitions for the C calls the module makes (none on aarch64).

    An adapter is ``x86_regcallcc`` like its callers, so calling it clobbers only
    regcall's scratch registers; it saves what the C function may clobber beyond
    those (XMM8-15 among them) in its own prologue, which runs only when the slow
    path does.
    """
    if not abi.adapters:
        return []
    out: list[str] = []
    for name in sorted(used):
        ret, params = C_SIGS[name]
        if name == HOST_CALL:
            params = params[1:]  # ctx is the adapter's own first parameter
        ps = "".join(f", {t} %a{i}" for i, t in enumerate(params))
        args = ", ".join((["ptr %ctx"] if name == HOST_CALL else []) + [f"{t} %a{i}" for i, t in enumerate(params)])
        out.append(f'define internal {abi.cc} {ret} @"{name}"(ptr %ctx{ps}) #4 {{\n'
                   f"entry:\n  %p = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[_C_FIELD[name]]}\n"
                   f"  %fn = load ptr, ptr %p, align 8, !invariant.load !0\n"
                   f"  %r = call {ret} %fn({args})\n  ret {ret} %r\n}}")
    return out
