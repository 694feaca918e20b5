"""The compiling engines: SSA IR, LLVM lowering, object files and the engines that
run the code (docs/architecture.md has the floor plan).

Stages: :mod:`.middle` (VerifiedProgram -> SSA IR), :mod:`.llvm` (IR -> LLVM IR
text), :mod:`.objfile` (IR text -> ELF -> linked image). Engines: :mod:`.native`
(backend ``jit``) and :mod:`.arm64` (backend ``arm64``), both on the shared
:mod:`.engine` and :mod:`.run`. Also shared: the run-context ABI
(:mod:`.context`), the code cache (:mod:`.cache`, :mod:`.fingerprint`) and the
targets (:mod:`.targets`); outputs: :mod:`.aot` and :mod:`.listing`.
"""
