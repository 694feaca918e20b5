"""LLVM side of the compiler: IR text -> relocatable ELF object.

This module is what runs inside the compile worker process
(``python -c ... compile_worker.main()``, started by :mod:`zjit.backends.objfile.compiler`).
It is importable without llvmlite: llvmlite is imported only by
:func:`compile_object`, so the parent can share the wire-protocol helpers below.

Wire protocol (binary, little-endian, over the worker's stdin/stdout):

* request:  ``REQ_MAGIC, u8 opt_level, u8 flags, u16 len(triple), u16 len(cpu),
  u32 len(ir)`` then the triple, cpu and IR text as UTF-8; ``flags`` bit 0
  (:data:`FLAG_STENCILS`) compiles a stencil object (static relocations; the
  large code model on AArch64, so every hole is a ``movz``/``movk`` group);
  bit 1 (:data:`FLAG_JOB`) asks for a *job* instead: the triple field names a
  module of ``zjit.backends`` whose ``run_job(payload: bytes) -> bytes`` the
  worker calls on the (binary) payload in place of the IR (the tier-up
  compiles: lifting and lowering run in the worker too);
* response: ``RESP_MAGIC, u8 status (0 = object, 1 = compile error), u32 len``
  then the object bytes or the UTF-8 error text.

End of input makes the worker exit normally. Anything the LLVM libraries print
goes to the worker's stderr, which the parent keeps for its error messages.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import threading
from typing import Any, BinaryIO

REQ_MAGIC = b"ZJC1"
RESP_MAGIC = b"ZJR1"
REQ_HEADER = struct.Struct("<4sBBHHI")
RESP_HEADER = struct.Struct("<4sBI")
STATUS_OK = 0
STATUS_ERROR = 1

MAX_MESSAGE = 4000
"""LLVM diagnostics are cut to this many characters."""
CODEGEN_OPT = {0: 0, 1: 1, 2: 2}
"""opt_level -> LLVM codegen optimisation level (see docs/loader.md)."""
FLAG_STENCILS = 1
"""Request flag: compile stencils (``backends/objfile/stencils.py``), not loadable code."""
FLAG_JOB = 2
"""Request flag: run a job module on a binary payload (see the module docstring)."""
JOB_PREFIX = "zjit.backends."
"""Job modules must live under this package."""


class CompileFailure(Exception):
    """LLVM rejected the IR (parse or verify error); the text says why."""


def encode_request(ir_text: str, triple: str, opt_level: int, cpu: str, flags: int = 0) -> bytes:
    """Frame one compile request."""
    t, c, ir = triple.encode(), cpu.encode(), ir_text.encode()
    return REQ_HEADER.pack(REQ_MAGIC, opt_level, flags, len(t), len(c), len(ir)) + t + c + ir


def encode_job(module: str, payload: bytes) -> bytes:
    """Frame one job request (:data:`FLAG_JOB`)."""
    m = module.encode()
    return REQ_HEADER.pack(REQ_MAGIC, 0, FLAG_JOB, len(m), 0, len(payload)) + m + payload


def run_job(module: str, payload: bytes) -> bytes:
    """Run job ``module`` on ``payload`` (in the worker); CompileFailure for a
    module outside :data:`JOB_PREFIX` or a job that fails."""
    if not module.startswith(JOB_PREFIX) or not module.replace(".", "").replace("_", "").isalnum():
        raise CompileFailure(f"not a job module: {module!r}")
    try:
        __import__(module)  # by name: objfile does not depend on the stages jobs use
        result: bytes = sys.modules[module].run_job(payload)
    except CompileFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a failed job
        raise CompileFailure(f"job {module} failed: {type(exc).__name__}: {exc}") from None
    return result


def read_exact(stream: BinaryIO, n: int) -> bytes | None:
    """Read exactly ``n`` bytes, or return None at a clean end of input."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            if got == 0:
                return None
            raise EOFError("stream ended inside a message")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- LLVM

_init_lock = threading.Lock()
_initialised = False
_compile_lock = threading.Lock()
_machines: dict[tuple[str, str, int, bool], Any] = {}


LLVM_OPTIONS = ("-x86-experimental-pref-innermost-loop-alignment=5",)
"""Process-wide LLVM settings: innermost loops start on a 32-byte boundary (x86-64;
the default 16 left fib_iter's 27-byte loop across a 64-byte line in some
layouts, 1.5x slower)."""


def _llvm() -> Any:
    global _initialised
    import llvmlite.binding as llvm

    with _init_lock:
        if not _initialised:
            # llvm.initialize() raises in llvmlite 0.50; initialise targets explicitly.
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            for option in LLVM_OPTIONS:
                llvm.set_option("zjit", option)
            _initialised = True
    return llvm


def _target_machine(llvm: Any, triple: str, cpu: str, codegen_opt: int, stencils: bool = False) -> Any:
    key = (triple, cpu, codegen_opt, stencils)
    tm = _machines.get(key)
    if tm is None:
        try:
            target = llvm.Target.from_triple(triple)
        except RuntimeError as exc:
            raise CompileFailure(f"unsupported target triple {triple!r}: {exc}") from None
        if stencils:
            model = "large" if triple.startswith(("aarch64", "arm64")) else "small"
            tm = target.create_target_machine(cpu=cpu, opt=codegen_opt, reloc="static", codemodel=model)
        else:
            tm = target.create_target_machine(cpu=cpu, opt=codegen_opt, reloc="pic", codemodel="small")
        _machines[key] = tm
    return tm


O1_PASSES = ("sroa", "instruction_combine", "simplify_cfg")
"""IR passes at opt level 1 (codegen at O1)."""
O2_PASSES = (
    "ipsccp",
    "instruction_combine", "simplify_cfg", "sccp", "new_gvn", "instruction_combine",
    "loop_rotate", "loop_unroll", "aggressive_dce", "simplify_cfg", "post_order_function_attributes",
)
"""IR passes at opt level 2 (codegen at O2), in this order.

Not ``default<O2>``: the lowering already emits SSA (no allocas), keeps loops
from unrolling and decides inlining itself, so most of LLVM's default pipeline
(inliner, vectorisers, loop unrolling, the repeated cleanups) costs compile time
for no speed on this code. What pays, measured on the benchmark kernels:
interprocedural constant propagation, GVN (fib_rec), loop rotation (mulhash).
``default<O2>`` made no kernel faster (fib_iter 1.5x slower) and its IR passes
took about 4x as long (docs/jit.md). No dead-argument elimination: guest
functions pass the state tuple S through in the same registers in and out, and
DAE, which shortens parameter and result lists separately, made values change
registers around every call (fib_rec 9% slower metered)."""


LOOPS_MARK = "!zjit.loops = !{!0}"
"""Named metadata of modules with versioned loops' fast copies (the lowering
writes it): their O2 pipeline is LLVM's ``default<O2>`` with the loop vectoriser
(:func:`optimise`)."""


def optimise(llvm: Any, mod: Any, tm: Any, opt_level: int, loops: bool = False) -> None:
    """Run the IR passes of ``opt_level`` on ``mod`` (nothing at 0). At O2 a
    module with fast copies of versioned loops (``loops``) gets LLVM's
    ``default<O2>`` with the loop vectoriser: LICM, IndVars, the vectoriser and
    unrolling (only where loop metadata asks for it) on loops without checks;
    others get :data:`O2_PASSES`."""
    if opt_level == 0:
        return
    # A fresh PassBuilder and pass manager per module: reusing either aborts or
    # leaks (see the LLVM stack notes); the worker recycling bounds the leak.
    pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    if loops and opt_level == 2:
        pto.loop_vectorization = True
        pto.slp_vectorization = False
        pto.loop_unrolling = False  # only loops whose metadata asks for it
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        return
    pb = llvm.create_pass_builder(tm, pto)
    mpm = llvm.create_new_module_pass_manager()
    for name in O1_PASSES if opt_level == 1 else O2_PASSES:
        getattr(mpm, f"add_{name}_pass")()
    mpm.run(mod, pb)


def compile_object(ir_text: str, triple: str, opt_level: int, cpu: str, flags: int = 0) -> bytes:
    """Parse, verify, optimise and emit ``ir_text`` as a PIC relocatable object
    (with :data:`FLAG_STENCILS`: a stencil object).

    Raises :class:`CompileFailure` for IR that LLVM rejects. Runs in whatever
    process calls it (the worker, or the caller for ``compile_ir_inprocess``).
    """
    if opt_level not in CODEGEN_OPT:
        raise CompileFailure(f"opt_level must be 0, 1 or 2, not {opt_level!r}")
    llvm = _llvm()
    with _compile_lock:
        tm = _target_machine(llvm, triple, cpu, CODEGEN_OPT[opt_level], bool(flags & FLAG_STENCILS))
        try:
            mod = llvm.parse_assembly(ir_text)
            mod.verify()
        except RuntimeError as exc:
            text = str(exc)
            if len(text) > MAX_MESSAGE:
                text = text[:MAX_MESSAGE] + f"... ({len(text) - MAX_MESSAGE} more characters)"
            raise CompileFailure(f"invalid LLVM IR: {text}") from None
        mod.triple = triple
        mod.data_layout = str(tm.target_data)
        optimise(llvm, mod, tm, opt_level, LOOPS_MARK in ir_text)
        obj: bytes = tm.emit_object(mod)
        return obj


# --------------------------------------------------------------------------- worker


def serve(inp: BinaryIO, out: BinaryIO) -> int:
    """Answer requests from ``inp`` on ``out`` until end of input; returns an exit code."""
    while True:
        header = read_exact(inp, REQ_HEADER.size)
        if header is None:
            return 0
        magic, opt_level, flags, tlen, clen, irlen = REQ_HEADER.unpack(header)
        if magic != REQ_MAGIC:
            sys.stderr.write("zjit compile worker: bad request magic\n")
            return 2
        body = read_exact(inp, tlen + clen + irlen)
        if body is None:
            return 2
        triple = body[:tlen].decode()
        cpu = body[tlen : tlen + clen].decode()
        try:
            if flags & FLAG_JOB:
                payload = run_job(triple, body[tlen + clen:])
            else:
                payload = compile_object(body[tlen + clen:].decode(), triple, opt_level, cpu, flags)
            status = STATUS_OK
        except CompileFailure as exc:
            payload, status = str(exc).encode(), STATUS_ERROR
        view = memoryview(RESP_HEADER.pack(RESP_MAGIC, status, len(payload)) + payload)
        while view:  # unbuffered pipe: a write may be partial
            n = out.write(view)
            view = view[n or 0 :]
        out.flush()


def main() -> None:
    """Worker entry point: serve stdin/stdout, keep stray output off the pipe."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed by LLVM or Python lands on stderr, not the pipe
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    if os.environ.get("ZJIT_WORKER_PRELOAD", "1") == "1":
        _llvm()  # pay the import while the parent is still busy
    sys.exit(serve(inp, out))


if __name__ == "__main__":
    main()
