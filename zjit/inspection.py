"""What a loaded module turns into, as text: :meth:`zjit.runtime.Module.inspect_ir`,
``inspect_llvm`` and ``inspect_asm`` (numba's names) are implemented here.

This is the one module below the command line that reaches into ``backends/``,
and only inside its functions, when a listing is asked for (docs/architecture.md):
``import zjit`` and running a module never import it. The texts are those of
``zjit disasm --ir`` (the lifter's SSA IR, :func:`zjit.backends.middle.lift.ir_listing`)
and ``zjit disasm --native`` (:mod:`zjit.backends.listing`), plus the LLVM IR the
lowering produces (:func:`zjit.backends.llvm.lower`).

Which code: for the target the module's engine compiles for (``jit``: x86_64,
``arm64``: aarch64) it is the code that engine runs for the module's policy (its
optimisation level, metering, memory size and read-only ranges compiled in;
the whole-module code of ``tier="optimized"``: baseline code has no listing yet);
for another target, or a module of the ``interp`` engine, it is the code
``zjit disasm --native TARGET`` lists (x86_64: the JIT's code, aarch64: the
``zjit compile`` object, which reads the memory size from its context).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from zjit.backends.llvm.options import CodegenOptions
    from zjit.verifier.program import VerifiedProgram

    from .runtime import Module

ENGINE_TARGETS = {"jit": "x86_64", "arm64": "aarch64"}
"""Engine -> the target whose code it runs."""
TARGETS = ("x86_64", "aarch64")
DEFAULT_TARGET = "x86_64"
"""The target of a module whose engine runs no native code (``interp``)."""


def ir_text(program: VerifiedProgram) -> str:
    """The lifter's SSA IR of ``program`` (docs/jit.md)."""
    from zjit.backends.middle.lift import ir_listing

    return str(ir_listing(program))


def resolve_target(module: Module, target: str | None) -> str:
    """``target``, or the target of the module's engine; ValueError for an unknown one."""
    chosen = target if target is not None else ENGINE_TARGETS.get(module.engine.backend_name, DEFAULT_TARGET)
    if chosen not in TARGETS:
        raise ValueError(f"unknown target {chosen!r} (known: {', '.join(TARGETS)})")
    return chosen


def _engine_options(module: Module, target: str) -> CodegenOptions | None:
    """The options of the code the module's engine runs, when it compiles for ``target``."""
    if ENGINE_TARGETS.get(module.engine.backend_name) != target:
        return None
    backend = module.engine.backend
    spec = backend.default_specialisation(module.program, module.policy)  # type: ignore[attr-defined]
    if spec is None:  # instances could not be made: the engine compiles nothing
        return None
    opts: CodegenOptions = backend.options(module.policy, spec)  # type: ignore[attr-defined]
    return opts


def llvm_text(module: Module, target: str | None = None) -> str:
    """The LLVM IR of ``module`` for ``target`` (module docstring: which code)."""
    from zjit.backends.llvm import lower
    from zjit.backends.middle.lift import lift

    chosen = resolve_target(module, target)
    opts = _engine_options(module, chosen)
    if opts is None:
        from zjit.backends.listing import compile_native

        opts = compile_native(module.program, chosen, module.policy).options
    return str(lower(lift(module.program, opts.versioning), opts).text)


def asm_text(module: Module, target: str | None = None) -> str:
    """The annotated machine code of ``module`` for ``target`` (``zjit disasm
    --native``'s listing; module docstring: which code)."""
    from zjit.backends.listing import NativeObject, format_listing, native_listing

    chosen = resolve_target(module, target)
    opts = _engine_options(module, chosen)
    if opts is None:
        return str(native_listing(module.program, chosen, module.policy))
    obj, info = module.engine.backend.compile(module.program, opts)  # type: ignore[attr-defined]
    return str(format_listing(module.program, NativeObject(chosen, obj, dict(info.entries), opts)))
