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

from zjit.isa import NUM_REGS, REG_NAMES, TrapKind


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
    Field("interrupt", "u64", "non-zero: trap TIMEOUT at the next check (set by other threads)"),
    Field("fuel", "u64", "in: fuel at the start; out: fuel left (metered builds; also carries fuel back from calls)"),
    Field("regs", "u64", "in: registers at the start; out: at the end or at the trap", NUM_REGS),
    Field("trap_kind", "u64", "out: trap kind code when the entry returns ZJIT_TRAPPED"),
    Field("trap_pc", "u64", "out: pc of the trapping instruction (or block leader)"),
    Field("trap_addr", "u64", "out: address of the failing access or span (OOB, WRITE_PROTECT)"),
    Field("trap_len", "u64", "out: length of the failing access or span"),
    Field("heap_top", "u64", "bump allocator top (ALLOC), in and out"),
    Field("in_mode", "u64", "0: input is in memory (in_ptr/in_len/in_pos); 1: call host_in", invariant=True),
    Field("in_ptr", "ptr", "in-memory input bytes", invariant=True),
    Field("in_len", "u64", "in-memory input length", invariant=True),
    Field("in_pos", "u64", "bytes of in-memory input consumed, in and out"),
    Field("out_ptr", "ptr", "output buffer (out_cap bytes)", invariant=True),
    Field("out_len", "u64", "bytes pending in the output buffer"),
    Field("out_cap", "u64", "output buffer capacity (0: every OUT calls host_out)", invariant=True),
    Field("host_result", "i64", "value a host function returns for HL (IN, CTL)"),
    Field("host_in", "fn", "IN from a stream: (ctx, dst, cap, 0, 0)", invariant=True),
    Field("host_out", "fn", "flush the buffer, then output (ctx, src, len, 0, 0)", invariant=True),
    Field("host_log", "fn", "LOG: (ctx, topic, topic_len, msg, msg_len)", invariant=True),
    Field("host_ctl", "fn", "CTL: (ctx, req, req_len, resp, resp_cap)", invariant=True),
    Field("fn_memmove", "fn", "memmove(dst, src, n) (C library)", invariant=True),
    Field("fn_memset", "fn", "memset(dst, byte, n) (C library)", invariant=True),
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


def reg_offset(index: int) -> int:
    """Byte offset of register ``index`` inside ``regs``."""
    return OFFSETS["regs"] + 8 * index


HOST_FN = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64
)
"""ctypes type of the host function pointers (returns 0 on success)."""

_CTYPES = {"u64": ctypes.c_uint64, "i64": ctypes.c_int64, "ptr": ctypes.c_void_p, "fn": ctypes.c_void_p}


class Ctx(ctypes.Structure):
    """The context as a ctypes Structure (built from :data:`FIELDS`)."""

    _fields_ = [  # noqa: RUF012
        (f.name, _CTYPES[f.kind] * f.count if f.count > 1 else _CTYPES[f.kind])  # type: ignore[misc]
        for f in FIELDS
    ]


assert ctypes.sizeof(Ctx) == CTX_SIZE
assert all(getattr(Ctx, f.name).offset == OFFSETS[f.name] for f in FIELDS)

_C_TYPES = {"u64": "uint64_t", "i64": "int64_t", "ptr": "void *", "fn": "zjit_host_fn "}
_C_SPECIAL = {
    "fn_memmove": "void *(*fn_memmove)(void *, const void *, size_t)",
    "fn_memset": "void *(*fn_memset)(void *, int, size_t)",
    "mem_base": "uint8_t *mem_base",
    "in_ptr": "const uint8_t *in_ptr",
    "out_ptr": "uint8_t *out_ptr",
    "ro_ranges": "const uint64_t *ro_ranges",
}


def c_header(entries: dict[str, str] | None = None, guard: str = "ZJIT_H") -> str:
    """C declarations of the context, trap codes, status values and entry points.

    ``entries`` maps an entry symbol to a comment (e.g. the export it runs).
    """
    lines = [
        f"/* zjit run context (layout {LAYOUT_DIGEST}); generated from backends/context.py. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "struct zjit_ctx;",
        "/* Host function: returns 0 on success, non-zero to stop the run with a HOST trap. */",
        "typedef int32_t (*zjit_host_fn)(struct zjit_ctx *ctx, uint64_t a, uint64_t b,",
        "                                uint64_t c, uint64_t d);",
        "",
        "typedef struct zjit_ctx {",
    ]
    for f in FIELDS:
        decl = _C_SPECIAL.get(f.name) or f"{_C_TYPES[f.kind]}{'' if f.kind == 'fn' else ' '}{f.name}"
        if f.count > 1:
            decl += f"[{f.count}]"
        lines.append(f"    {decl + ';':<58} /* +{OFFSETS[f.name]:3d} {f.doc} */")
    lines += [
        "} zjit_ctx;",
        "",
        f"_Static_assert(sizeof(zjit_ctx) == {CTX_SIZE}, \"zjit_ctx layout\");",
        "",
        "/* Registers in regs[] */",
    ]
    lines += [f"#define ZJIT_REG_{name} {i}" for i, name in enumerate(REG_NAMES)]
    lines += ["", "/* Entry return values */",
              f"#define ZJIT_OK {STATUS_OK}", f"#define ZJIT_TRAPPED {STATUS_TRAPPED}", "",
              "/* Trap kinds (trap_kind) */"]
    lines += [f"#define ZJIT_TRAP_{k.name} {int(k)}" for k in TrapKind]
    lines += [f"#define ZJIT_TRAP_NATIVE_STACK {TRAP_STACK} /* native stack guard (engine error) */", ""]
    if entries:
        lines.append("/* Entry points: run from the given pc with regs[] as the initial registers. */")
        for sym, comment in entries.items():
            lines.append(f"int32_t {sym}(zjit_ctx *ctx); /* {comment} */")
        lines.append("")
    lines += [f"#endif /* {guard} */", ""]
    return "\n".join(lines)
