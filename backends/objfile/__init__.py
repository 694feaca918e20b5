"""Object files: LLVM IR text -> relocatable ELF -> a linked image.

:mod:`.compiler` runs LLVM in a recycled worker process (:mod:`.compile_worker`),
:mod:`.elf` reads the objects and :mod:`.linker` lays them out and relocates them
for a base address (x86-64 and AArch64). Nothing here maps or runs code.
"""
