"""Iterated-layout assembler: ZASM text -> :class:`~zjit.image.ModuleImage`.

Layout passes repeat until every symbol value is stable (an ``LD`` of a forward
label may change size once its value is known); a final strict pass then encodes
words, data segments, exports, entry, imports and debug lines (:mod:`.walk`).
Every error of the file is reported: :func:`assemble` raises the first, carrying
all of them (:attr:`zjit.errors.AsmError.errors`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from zjit.container.names import SOURCE_SUFFIXES
from zjit.encoding import ld_ext_count, words_to_bytes
from zjit.errors import AsmError, AsmWarning
from zjit.image import ModuleImage
from zjit.isa import BY_OPCODE, LD_IMM32

from .binding import binding_warnings
from .datalayout import DATA_START
from .evaluator import Symbol
from .parser import ExprOperand, Statement, parse
from .walk import Pass

MAX_PASSES = 32
MAX_ERRORS = 1000
"""Errors kept per assembly (the rest are only counted, in ``AsmError.omitted``)."""

WarningSink = Callable[[AsmWarning], None]


def primitives_used(words: list[int]) -> int:
    """Mask of primitives in a linear decode of ``words`` (bit i = opcode 0xF0+i)."""
    mask = 0
    i = 0
    while i < len(words):
        opcode = words[i] >> 24
        info = BY_OPCODE[opcode]
        if info is not None and info.is_primitive:
            mask |= 1 << info.prim_bit
        i += 1
        if opcode == 0x70:
            i += ld_ext_count(_imm12(words[i - 1]))
    return mask


def _imm12(word: int) -> int:
    imm = word & 0xFFF
    return imm - 0x1000 if imm & 0x800 else imm


def _equ_cycles(stmts: list[Statement], path: str) -> list[AsmError]:
    deps: dict[str, tuple[list[str], int]] = {}
    for st in stmts:
        if st.kind == "equ":
            operand = st.operands[0]
            assert isinstance(operand, ExprOperand)
            names = [t for _, t in operand.expr.terms if isinstance(t, str)]
            deps.setdefault(st.name, (names, st.line))
    state: dict[str, int] = {}
    errors: list[AsmError] = []

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2 or name not in deps:
            return
        if state.get(name) == 1:
            cycle = chain[chain.index(name):] + [name]
            errors.append(AsmError("ASM_LABEL", f"EQU cycle {' -> '.join(cycle)}", line=deps[name][1],
                                   path=path))
            return
        state[name] = 1
        for dep in deps[name][0]:
            visit(dep, chain + [name])
        state[name] = 2

    for name in deps:
        visit(name, [])
    return errors


def _image_name(name: str) -> str:
    base = os.path.basename(name) or name
    for ext in SOURCE_SUFFIXES:
        if base.lower().endswith(ext) and len(base) > len(ext):
            return base[: -len(ext)]
    return base


def _defined_names(stmts: list[Statement]) -> frozenset[str]:
    names: set[str] = set()
    for st in stmts:
        names.update(st.labels)
        if st.kind == "equ":
            names.add(st.name)
    return frozenset(names)


def _image(walk: Pass, name: str) -> ModuleImage | None:
    """The module the strict pass built (None, with ``walk.errors`` extended, if a
    directive's label or a segment is wrong)."""
    exports: dict[str, int] = {}
    export_lines: dict[str, int] = {}
    try:
        for ex in walk.exports:
            try:
                if ex.name in exports:
                    raise walk.err("ASM_LABEL", f"{ex.name!r} exported twice (first on line "
                                   f"{export_lines[ex.name]})", ex.line)
                exports[ex.name] = walk.code_label(ex.label, "PUBLIC", ex.line)
                export_lines[ex.name] = ex.line
            except AsmError as err:
                walk.fail(err)
        entry = exports.get("main", 0)
        if walk.entry is not None:
            entry = walk.code_label(walk.entry[0], "ENTRY", walk.entry[1])
        segments = walk.data.descriptors()
    except AsmError as err:
        walk.fail(err)
    if walk.errors:
        return None
    imports = primitives_used(walk.words) if walk.imports is None else walk.imports[0]
    mem_min, mem_max = walk.memory if walk.memory is not None else (None, None)
    return ModuleImage(
        code=words_to_bytes(walk.words), entry_pc=entry, exports=exports, imports=imports,
        mem_min=mem_min, mem_max=mem_max, segments=segments,
        debug=dict(walk.debug) if walk.explicit_debug is None else walk.explicit_debug,
        source_format="asm", code_offset=0, name=name,
    )


def _raise_all(errors: list[AsmError]) -> AsmError:
    """The first error (by line), carrying every error."""
    kept = sorted((e.with_traceback(None) for e in errors[:MAX_ERRORS]), key=lambda e: e.line or 0)
    first = kept[0]
    first.errors = tuple(kept)
    first.omitted = max(0, len(errors) - MAX_ERRORS)
    return first


def _deliver(found: list[AsmWarning], warn: WarningSink | None) -> None:
    if not found:
        return
    if warn is None:
        import warnings

        for w in found:
            warnings.warn_explicit(w, AsmWarning, w.path or "<assembly>", w.line)
        return
    for w in found:
        warn(w)


def assemble(text: str, name: str = "module", *, warn: WarningSink | None = None) -> ModuleImage:
    """Assemble ZASM text into a :class:`ModuleImage`.

    ``name`` is the source name used in debug lines and error locations; the
    image is named after it without directories or a ``.s``/``.asm``/``.zasm`` suffix.
    Raises :class:`~zjit.errors.AsmError` (``ASM_SYNTAX``, ``ASM_RANGE``,
    ``ASM_LABEL``) for the first line at fault; its ``errors`` lists every error of
    the file. Warnings (:class:`~zjit.errors.AsmWarning`, issued only when the file
    assembles) go to ``warn``, or through :mod:`warnings` when it is None.
    """
    stmts, errors = parse(text, name)
    defined = _defined_names(stmts)
    cycles = _equ_cycles(stmts, name)
    if cycles:  # the layout would never settle
        raise _raise_all(errors + cycles)
    prev: dict[str, Symbol] = {}
    sizes: dict[int, int] = {}
    for _ in range(MAX_PASSES):
        layout = Pass(stmts, prev, sizes, defined, strict=False, path=name)
        layout.run_all()
        values = {k: (s.kind, s.value) for k, s in layout.symbols.items()}
        settled = values == {k: (s.kind, s.value) for k, s in prev.items()}
        prev, sizes = layout.symbols, layout.sizes
        if settled:
            break
    else:
        errors.append(AsmError("ASM_RANGE", "symbol values do not settle (LD sizes keep changing)",
                               line=1, path=name))
    final = Pass(stmts, prev, sizes, defined, strict=True, path=name)
    final.run_all()
    image = _image(final, _image_name(name))
    errors += final.errors
    if errors or image is None:
        raise _raise_all(errors)
    _deliver(binding_warnings(final.bindings, final.value_uses, name), warn)
    return image


__all__ = ["DATA_START", "LD_IMM32", "Symbol", "assemble", "primitives_used"]
