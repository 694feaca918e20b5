"""THE run-context layout shared by generated code and its hosts.

Generated code reaches guest memory, limits, the trap record, I/O buffers and host
functions only through one pointer to this structure, so the objects it compiles
to carry no relocations. :data:`FIELDS` is the single table; from it come

* :data:`OFFSETS` (byte offsets used by the LLVM lowering),
* :class:`Ctx` (the :mod:`ctypes` Structure the native engine fills), and
* :func:`c_header` (the C declarations written as ``zjit.h`` for AOT builds).

Every field is 8 bytes and 8-aligned, so the layout is the same on x86-64 and
aarch64 and trivially matches C.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from hashlib import sha256

from zjit.isa import CTL_NO_HANDLER, NUM_REGS, REG_NAMES, TrapKind


@dataclass(frozen=True, slots=True)
class Field:
    """One context field: ``kind`` is ``u64``, ``i64``, ``ptr`` or ``fn``.

    ``invariant`` fields never change while guest code runs (generated code may
    load them once per function and mark the loads ``!invariant.load``).
    """

    name: str
    kind: str
    doc: str
    count: int = 1
    invariant: bool = False

    @property
    def size(self) -> int:
        """Size in bytes."""
        return 8 * self.count


FIELDS: tuple[Field, ...] = (
    Field("mem_base", "ptr", "guest memory, mem_size bytes", invariant=True),
    Field("mem_size", "u64", "guest memory size in bytes", invariant=True),
    Field("ro_ranges", "ptr", "ro_count (start, end) u64 pairs: read-only ranges", invariant=True),
    Field("ro_count", "u64", "number of read-only ranges", invariant=True),
    Field("ro_lo", "u64", "lowest read-only start (0 when there is none)", invariant=True),
    Field("ro_hi", "u64", "highest read-only end (0 when there is none)", invariant=True),
    Field("max_depth", "u64", "maximum guest call depth (Policy.max_call_depth)", invariant=True),
    Field("stack_limit", "u64", "lowest native stack address guest calls may reach", invariant=True),
    Field("interrupt", "u64", "non-zero: trap TIMEOUT at the next poll (set by other threads)"),
    Field("fuel", "u64", "in: fuel at the start; out: fuel left (metered code)"),
    Field("regs", "u64", "in: registers at the start; out: at the end or at the trap", NUM_REGS),
    Field("trap_kind", "u64", "out: trap kind code when the entry returns TRAPPED (1)"),
    Field("trap_pc", "u64", "out: pc of the trapping instruction (or block leader)"),
    Field("trap_addr", "u64", "out: address of the failing access or span (OOB, WRITE_PROTECT)"),
    Field("trap_len", "u64", "out: length of the failing access or span"),
    Field("heap_top", "u64", "bump allocator top (ALLOC), in and out"),
    Field("in_mode", "u64", "0: input is in memory (in_ptr/in_len/in_pos); 1: IN calls host_call", invariant=True),
    Field("in_ptr", "ptr", "in-memory input bytes", invariant=True),
    Field("in_len", "u64", "in-memory input length", invariant=True),
    Field("in_pos", "u64", "bytes of in-memory input consumed, in and out"),
    Field("out_ptr", "ptr", "output buffer (out_cap bytes)", invariant=True),
    Field("out_len", "u64", "bytes pending in the output buffer"),
    Field("out_cap", "u64", "output buffer capacity (0: every OUT calls host_call)", invariant=True),
    Field("out_room", "u64", "output budget: bytes OUT may still send; past it TRAP_OUTPUT_LIMIT (in and out)"),
    Field("host_result", "i64", "value a host call returns for HL (IN, CTL)"),
    Field("host_call", "fn", "host_call(ctx, op, a, b, c, d): the host primitives (HOST_* codes)", invariant=True),
    Field("fn_memmove", "fn", "memmove(dst, src, n) (C library)", invariant=True),
    Field("fn_memset", "fn", "memset(dst, byte, n) (C library)", invariant=True),
    Field("ftab", "ptr", "code address per entry id (tier-up indirection; 0 when unused)", invariant=True),
    Field("exit_sp", "u64", "rt_enter's stack pointer, where a trap returns to (runtime)"),
    Field("trap_sp", "u64", "out: stack pointer of the trapping code (backtraces)"),
    Field("trap_ret", "u64", "out: return address into the trapping code (backtraces)"),
    Field("trap_lr", "u64", "out: AArch64 O2 code: the trapping function's own return address (backtraces)"),
    Field("hc_state", "u64", "native engine: host request state word (futex, low 32 bits)"),
    Field("hc_op", "u64", "native engine: host request operation"),
    Field("hc_args", "u64", "native engine: host request arguments", 4),
    Field("run_entry", "fn", "native engine: entry rt_thread_main calls", invariant=True),
    Field("run_status", "u64", "native engine: the entry's return value"),
    Field("run_id", "u64", "baseline code: the entry id (ftab slot) a run starts at", invariant=True),
    Field("tier_id", "u64", "baseline code: the entry id whose tier-up counter ran out (read by TIERUP)"),
    Field("user", "ptr", "embedder's opaque pointer; generated code never touches it"),
)
"""The context structure, in order."""


def _offsets() -> dict[str, int]:
    out: dict[str, int] = {}
    off = 0
    for f in FIELDS:
        out[f.name] = off
        off += f.size
    return out


OFFSETS: dict[str, int] = _offsets()
"""Field name -> byte offset."""
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
CTX_SIZE = sum(f.size for f in FIELDS)
"""Size of the structure in bytes."""

LAYOUT_DIGEST = sha256(
    ";".join(f"{f.name}:{f.kind}:{f.count}" for f in FIELDS).encode()
).hexdigest()[:16]
"""Changes whenever the layout changes (part of every code cache key)."""

STATUS_OK = 0
"""Entry return value: the run ended normally (registers in ``regs``)."""
STATUS_TRAPPED = 1
"""Entry return value: the run trapped (``trap_*`` and ``regs`` filled in)."""
TRAP_STACK = 255
"""Internal trap kind: the native stack guard fired (never a guest-visible trap)."""
TRAP_SITE = 253
"""Internal trap kind (baseline code): ``trap_pc`` is the return address of a trap
stub, which the engine decodes into the kind, pc, address and length of the site."""
TRAP_OUTPUT_LIMIT = 254
"""Trap kind of an OUT past the output budget ``out_room`` (the engines report it as
HOST with :class:`~zjit.machine.OutputLimitError`; AOT hosts see it as it is)."""

HOST_OPS: dict[str, int] = {"in": 1, "out": 2, "log": 3, "ctl": 4}
"""``host_call`` operation codes, by primitive. Arguments ``(a, b, c, d)``: IN
``(dst, cap)``, OUT ``(src, len)`` (flush the buffer first, then write), LOG
``(topic, topic_len, msg, msg_len)``, CTL ``(req, req_len, resp, resp_cap)``;
IN and CTL leave their HL result in ``host_result``. Codes from 64 up are
engine-internal."""

RT_THREAD_MAIN = "rt_thread_main"
"""Local symbol of every object's guest-thread start routine (``void *(void *ctx)``)."""
RT_HOST_REQUEST = "rt_host_request"
"""Local symbol of every object's futex-based ``host_call`` (native engine)."""

HOST_TIERUP = 64
"""``host_call`` operation (engine-internal): entry id ``a`` of baseline code is hot."""

HC_IDLE = 0
"""``hc_state``: the guest thread waits for a run (a zeroed context is idle)."""
HC_RUNNING = 1
"""``hc_state``: the guest thread runs ``run_entry`` (the engine thread waits);
setting it (and waking the thread) starts a run, with ``run_entry`` 0 it ends the thread."""
HC_REQUEST = 2
"""``hc_state``: a host request is posted in ``hc_op``/``hc_args`` (the guest thread waits)."""
HC_SERVED = 3
"""``hc_state``: the request was served; ``host_call`` returns 0."""
HC_FAILED = 4
"""``hc_state``: the request failed (the host keeps the exception); ``host_call`` returns 1."""
HC_FINISHED = 5
"""``hc_state``: the run ended (``run_status`` stored); the guest thread waits for the next."""


def reg_offset(index: int) -> int:
    """Byte offset of register ``index`` inside ``regs``."""
    return OFFSETS["regs"] + 8 * index


_CTYPES = {"u64": ctypes.c_uint64, "i64": ctypes.c_int64, "ptr": ctypes.c_void_p, "fn": ctypes.c_void_p}


class Ctx(ctypes.Structure):
    """The context as a ctypes Structure (built from :data:`FIELDS`)."""

    _fields_ = [  # noqa: RUF012
        (f.name, _CTYPES[f.kind] * f.count if f.count > 1 else _CTYPES[f.kind])  # type: ignore[misc]
        for f in FIELDS
    ]


assert ctypes.sizeof(Ctx) == CTX_SIZE
assert all(getattr(Ctx, f.name).offset == OFFSETS[f.name] for f in FIELDS)

_C_TYPES = {"u64": "uint64_t", "i64": "int64_t", "ptr": "void *", "fn": "void *"}
_C_SPECIAL = {
    "host_call": "{p}host_call_fn host_call",
    "run_entry": "int32_t (*run_entry)(struct {p}ctx *)",
    "ftab": "const uint64_t *ftab",
    "fn_memmove": "void *(*fn_memmove)(void *, const void *, size_t)",
    "fn_memset": "void *(*fn_memset)(void *, int, size_t)",
    "mem_base": "uint8_t *mem_base",
    "in_ptr": "const uint8_t *in_ptr",
    "out_ptr": "uint8_t *out_ptr",
    "ro_ranges": "const uint64_t *ro_ranges",
}


def c_header(entries: dict[str, str] | None = None, prefix: str = "zjit_") -> str:
    """C declarations of the context, trap codes, status values and entry points.

    ``entries`` maps an entry symbol to a comment (e.g. the export it runs). Every
    name the header declares starts with ``prefix`` (types, e.g. ``zjit_ctx``) or
    its upper-case form (macros, e.g. ``ZJIT_TRAP_OOB``), so the headers of modules
    built with different prefixes can be included in one translation unit.
    """
    p, P = prefix, prefix.upper()
    lines = [
        f"/* zjit run context (layout {LAYOUT_DIGEST}); generated from backends/context.py. */",
        f"#ifndef {p}ZJIT_H",
        f"#define {p}ZJIT_H",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        f"struct {p}ctx;",
        f"/* The host primitives (op: {P}HOST_*): return 0 on success (the HL result of IN",
        "   and CTL in ctx->host_result), non-zero to stop the run with a HOST trap at the",
        "   primitive (which then has had no effect). The generated code has checked the",
        "   spans. Addresses among a, b, c, d are GUEST addresses: offsets into guest",
        "   memory, not host pointers; the host pointer is ctx->mem_base + address.",
        f"     {P}HOST_IN  (a dst, b cap): read at most cap bytes to guest dst;",
        "                       ctx->host_result = bytes read (0 at end of input)",
        f"     {P}HOST_OUT (a src, b len): first write the out_len bytes pending in",
        "                       out_ptr (then out_len = 0), then len bytes at guest src",
        f"     {P}HOST_LOG (a topic, b topic_len, c msg, d msg_len)",
        f"     {P}HOST_CTL (a req, b req_len, c resp, d resp_cap): write at most",
        "                       resp_cap bytes to guest resp; ctx->host_result = the",
        "                       response length or a negative error (-7: no handler)",
        "   Output the code appends to out_ptr (out_cap > 0) reaches host_call only",
        "   when the buffer is full: the host must write the out_len bytes still",
        "   pending after every run, trapped or not, or they are lost. */",
        f"typedef int64_t (*{p}host_call_fn)(struct {p}ctx *ctx, uint64_t op, uint64_t a,",
        f"{' ' * (len(p) + 32)}uint64_t b, uint64_t c, uint64_t d);",
        "",
        f"typedef struct {p}ctx {{",
    ]
    for f in FIELDS:
        special = _C_SPECIAL.get(f.name)
        decl = special.replace("{p}", p) if special else \
            f"{_C_TYPES[f.kind]}{'' if f.kind in ('fn', 'ptr') else ' '}{f.name}"
        if f.count > 1:
            decl += f"[{f.count}]"
        lines.append(f"    {decl + ';':<58} /* +{OFFSETS[f.name]:3d} {f.doc} */")
    lines += [
        f"}} {p}ctx;",
        "",
        f"_Static_assert(sizeof({p}ctx) == {CTX_SIZE}, \"{p}ctx layout\");",
        "",
        "/* Registers in regs[] */",
        f"#define {P}NUM_REGS {NUM_REGS}",
    ]
    lines += [f"#define {P}REG_{name} {i}" for i, name in enumerate(REG_NAMES)]
    lines += ["", "/* Entry return values */",
              f"#define {P}OK {STATUS_OK}", f"#define {P}TRAPPED {STATUS_TRAPPED}", "",
              "/* Trap kinds (trap_kind) */"]
    lines += [f"#define {P}TRAP_{k.name} {int(k)}" for k in TrapKind]
    lines += [f"#define {P}TRAP_NATIVE_STACK {TRAP_STACK} /* native stack guard (engine error) */",
              f"#define {P}TRAP_OUTPUT_LIMIT {TRAP_OUTPUT_LIMIT} /* output budget (reported as HOST) */", "",
              "/* host_call operations */"]
    lines += [f"#define {P}HOST_{name.upper()} {code}" for name, code in HOST_OPS.items()]
    lines += [f"#define {P}CTL_NO_HANDLER ({CTL_NO_HANDLER}) /* CTL's result when the host has no handler */", ""]
    if entries:
        lines.append("/* Entry points: run from the given pc with regs[] as the initial registers. */")
        for sym, comment in entries.items():
            lines.append(f"int32_t {sym}({p}ctx *ctx); /* {comment} */")
        lines.append("")
    lines += [f"#endif /* {p}ZJIT_H */", ""]
    return "\n".join(lines)
