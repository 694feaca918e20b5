"""Line-tables-only debug info that makes an object its own frame table.

With ``CodegenOptions.call_sites`` every guest function gets a
``DISubprogram`` and the native call of every guest CALL a ``DILocation``
whose line is the CALL's pc + 1 (line 0 means "no location" in DWARF, and pc 0
is a valid CALL). LLVM then writes ``.debug_line`` (return address - 1 ->
the CALL's pc) and the CFI of every function (the canonical frame address at
each instruction), which trap-path backtraces read
(:mod:`zjit.backends.objfile.frames`). Debug locations do not change the x86-64
machine code (``tests/test_backtrace_tiers.py``; docs/jit.md, "Call sites", for
what was measured, and why guest functions are then ``noinline``).

Guaranteed tail calls between guest functions get line 0: the verifier wants
a location on every call between two functions with debug info, and a tail
call leaves no return address behind.
"""

from __future__ import annotations

CU = "!5"
"""The compile unit."""
FILE = "!6"
SUBROUTINE = "!7"
_FLAGS = ("!8", "!9")
FIRST_SUBPROGRAM = 1 << 20
"""Subprogram nodes are numbered from here (loop metadata counts up from 100)."""


def line_of(pc: int) -> int:
    """The ``.debug_line`` line of the CALL at ``pc``."""
    return pc + 1


def location(scope: str, pc: int | None) -> str:
    """The ``, !dbg`` suffix of a call in the function whose subprogram is
    ``scope``: the CALL at ``pc``, or line 0 (None: a tail call)."""
    line = 0 if pc is None else line_of(pc)
    return f", !dbg !DILocation(line: {line}, scope: {scope})"


def subprogram(node: str, name: str) -> str:
    """The definition of one guest function's subprogram ``node``."""
    return (f'{node} = distinct !DISubprogram(name: "{name}", scope: {FILE}, file: {FILE}, line: 1, '
            f"type: {SUBROUTINE}, spFlags: DISPFlagDefinition | DISPFlagOptimized, unit: {CU})")


def module_lines(name: str) -> list[str]:
    """The compile unit, file and module flags (``name``: the module's)."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "module"
    return [
        f"!llvm.dbg.cu = !{{{CU}}}",
        f"!llvm.module.flags = !{{{', '.join(_FLAGS)}}}",
        f'{CU} = distinct !DICompileUnit(language: DW_LANG_C99, file: {FILE}, producer: "zjit", '
        "isOptimized: true, runtimeVersion: 0, emissionKind: LineTablesOnly, nameTableKind: None)",
        f'{FILE} = !DIFile(filename: "{safe}.guest-calls", directory: "")',
        f"{SUBROUTINE} = !DISubroutineType(types: !{{}})",
        f'{_FLAGS[0]} = !{{i32 2, !"Debug Info Version", i32 3}}',
        f'{_FLAGS[1]} = !{{i32 7, !"Dwarf Version", i32 4}}',
    ]
