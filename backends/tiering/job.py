"""O2 compiles as worker jobs: lifting, lowering and LLVM all run in the worker.

Two kinds: one guest function for tier-up (``entry`` is its pc), or the whole
module for ``tier="optimized"`` (``entry`` None: the usual lowering with entry
points; the result carries the entry symbols and the static call depth).

The engine sends a job (:func:`encode`) to a compile worker
(:meth:`~zjit.backends.objfile.compiler.CompilerPool.run_job`); the worker runs
:func:`run_job`: it verifies the program again (a worker keeps the last few
verified programs by digest, so the code travels once per worker: a job without
code for a program the worker does not know answers :data:`NEED_CODE` and is
sent again with it), lifts the function entered at the job's pc (a function
entry, or a loop header for on-stack replacement) up to the other function
entries, and lowers it as a tier-up object (:func:`zjit.backends.llvm.lower`
with the program's entry ids): the function is exported as ``f_<pc>``, and its
calls and tail calls go through ``ctx.ftab``. A function larger than the job's
instruction budget is not lowered (:data:`OVER_BUDGET`); the time budget is the
worker's timeout.

Result bytes: one status byte, then (:data:`OK`) ``u32 len(meta)``, the
metadata JSON and the object, or a message.
"""

from __future__ import annotations

import json
import struct
from collections import OrderedDict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from zjit.verifier import VerifiedProgram

    from ..llvm.options import CodegenOptions

MODULE = __name__
"""The job module name the worker imports."""
OK, OVER_BUDGET, NEED_CODE = 0, 1, 2
_HEAD = struct.Struct("<I")
_KEEP = 4
_programs: OrderedDict[str, VerifiedProgram] = OrderedDict()


def encode(program: VerifiedProgram, entry: int | None, opts: CodegenOptions, budget: int, with_code: bool) -> bytes:
    """A job compiling the function of ``program`` entered at ``entry`` (None:
    the whole module)."""
    img = program.image
    head = {
        "digest": program.digest, "entry": entry, "budget": budget, "opts": opts.as_key(),
        "image": {"entry_pc": img.entry_pc, "exports": img.exports, "name": img.name,
                  "segments": [[s.name, s.base, s.size, s.perms] for s in img.segments]},
        "code": len(img.code) if with_code else None,
    }
    raw = json.dumps(head, separators=(",", ":")).encode()
    return _HEAD.pack(len(raw)) + raw + (img.code if with_code else b"")


def decode_result(result: bytes) -> tuple[int, dict[str, object], bytes]:
    """(status, metadata, object or message) of a job's result."""
    if not result or result[0] not in (OK, OVER_BUDGET, NEED_CODE):
        raise ValueError("malformed compile job result")
    if result[0] != OK:
        return result[0], {}, result[1:]
    (n,) = _HEAD.unpack_from(result, 1)
    start = 1 + _HEAD.size
    meta = json.loads(result[start:start + n])
    if not isinstance(meta, dict):
        raise ValueError("malformed compile job result")
    return OK, meta, result[start + n:]


def _ok(meta: dict[str, object], obj: bytes) -> bytes:
    raw = json.dumps(meta).encode()
    return bytes([OK]) + _HEAD.pack(len(raw)) + raw + obj


def _program(head: dict[str, object], payload: bytes, start: int) -> VerifiedProgram | None:
    from zjit.verifier import verify

    from zjit.image import ModuleImage, SegmentDesc
    from zjit.policy import Policy

    digest = str(head["digest"])
    known = _programs.get(digest)
    if known is not None:
        _programs.move_to_end(digest)
        return known
    if head["code"] is None:
        return None
    info = head["image"]
    assert isinstance(info, dict)
    code = payload[start:start + int(head["code"])]  # type: ignore[call-overload]
    image = ModuleImage(code, int(info["entry_pc"]), {str(k): int(v) for k, v in info["exports"].items()},
                        segments=tuple(SegmentDesc(str(n), int(b), int(s), str(p)) for n, b, s, p in info["segments"]),
                        name=str(info["name"]))
    program = verify(image, Policy(max_code_bytes=max(len(code), 4), use_cache=False))
    _programs[digest] = program
    while len(_programs) > _KEEP:
        _programs.popitem(last=False)
    return program


def run_job(payload: bytes) -> bytes:
    """The worker side: the compiled object, or why not (see the module docstring)."""
    from ..llvm import lower
    from ..llvm.options import CodegenOptions
    from ..middle.entries import entry_ids
    from ..middle.ir import IRModule
    from ..middle.lift import lift_function
    from ..objfile.compile_worker import compile_object

    (n,) = _HEAD.unpack_from(payload)
    head = json.loads(payload[_HEAD.size:_HEAD.size + n])
    program = _program(head, payload, _HEAD.size + n)
    if program is None:
        return bytes([NEED_CODE])
    o = dict(head["opts"])
    if o["readonly"] is not None:
        o["readonly"] = tuple((int(a), int(b)) for a, b in o["readonly"])
    opts = CodegenOptions(**o)
    if head["entry"] is None:
        return _module(program, opts)
    entry = int(head["entry"])
    fn = lift_function(program, entry, program.functions, versioning=opts.versioning)
    size = sum(b.cost for b in fn.blocks.values())
    if size > int(head["budget"]):
        return bytes([OVER_BUDGET]) + f"{size} instructions, budget {head['budget']}".encode()
    fn.cmp_returned = True  # callers may be any tier (and an OSR entry returns to its function's callers)
    fn.cmp_read = True
    module = IRModule({entry: fn}, entry, {}, program.has_readonly, program.prims_used, program.digest,
                      program.image.name)
    low = lower(module, opts, ftab_ids=entry_ids(program))
    return _ok({}, compile_object(low.text, opts.triple, opts.opt_level, opts.cpu))


def _module(program: VerifiedProgram, opts: CodegenOptions) -> bytes:
    """The whole module at ``opts`` (the usual lowering, with entry points)."""
    from ..llvm import lower
    from ..middle.effects import call_depth_bound
    from ..middle.lift import lift
    from ..objfile.compile_worker import compile_object

    module = lift(program, opts.versioning)
    low = lower(module, opts)
    obj = compile_object(low.text, opts.triple, opts.opt_level, opts.cpu)
    return _ok({"entries": {str(pc): sym for pc, sym in low.entries.items()},
                "call_depth_bound": call_depth_bound(module)}, obj)
