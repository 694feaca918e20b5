"""Directives of an assembler pass: data (``DB``... ``RESB``, ``ALIGN``) and module
directives (``ORG``, ``PUBLIC``, ``ENTRY``, ``MEMORY``, ``IMPORTS``, ``DEBUG``,
``SEGMENT``/``ENDS``)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from zjit.image import DebugLine

from .datalayout import MAX_ADDRESS, MAX_DATA_BYTES, DataLayout
from .evaluator import Evaluator, Symbol
from .parser import ExprOperand, Operand, Statement, StrOperand

_DATA_WIDTH = {"DB": 1, "DW": 2, "DD": 4, "DQ": 8}
_DATA_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


@dataclass(slots=True)
class Export:
    """A ``PUBLIC`` entry: export ``name`` for the code label ``label``."""

    name: str
    label: ExprOperand
    line: int


class Directives(Evaluator):
    """What the directives of a file declare: data (``data``), exports, entry,
    memory requirements, imports and an explicit debug table."""

    def __init__(self, prev: dict[str, Symbol], defined: frozenset[str], strict: bool,
                 path: str) -> None:
        super().__init__(prev, defined, strict, path)
        self.data = DataLayout(path, strict)
        self.exports: list[Export] = []
        self.entry: tuple[ExprOperand, int] | None = None
        self.memory: tuple[int, int | None] | None = None
        self.imports: tuple[int | None, int] | None = None
        self.explicit_debug: dict[int, DebugLine] | None = None

    # -- data ---------------------------------------------------------------------
    def data_directive(self, st: Statement) -> None:
        name, line, place = st.name, st.line, self.data.place
        if name in _DATA_WIDTH:
            if not st.operands:
                raise self.err("ASM_SYNTAX", f"{name} needs at least one value", line)
            width = _DATA_WIDTH[name]
            lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width)) - 1
            for operand in st.operands:
                if isinstance(operand, StrOperand):
                    if name != "DB":
                        raise self.err("ASM_SYNTAX", f"strings are only allowed in DB, not {name}", line)
                    place(operand.data if self.strict else len(operand.data), line)
                    continue
                expr = self.expr_operand(operand, f"{name} value", line)
                value = self.check_range(self.eval(expr, line), lo, hi, f"{name} value {expr.text!r} =",
                                         line)
                place(struct.pack(_DATA_FMT[width], value & hi) if self.strict else width, line)
            return
        count = self.single_value(st)
        if name == "RESB":
            count = self.check_range(count, 0, MAX_DATA_BYTES, "RESB count", line)
        else:  # ALIGN
            if self.strict and (count < 1 or count > 1 << 16 or count & (count - 1)):
                raise self.err("ASM_RANGE", f"ALIGN {count} must be a power of two 1..65536", line)
            count = (-self.data.loc) % count if count > 0 else 0
        place(max(count, 0), line)

    # -- other directives ---------------------------------------------------------
    def other_directive(self, st: Statement) -> None:
        handlers: dict[str, Callable[[Statement], None]] = {
            "ORG": self.org, "PUBLIC": self.public, "ENTRY": self.entry_directive,
            "MEMORY": self.memory_directive, "IMPORTS": self.imports_directive,
            "DEBUG": self.debug_directive, "SEGMENT": self.segment, "ENDS": self.ends,
        }
        handlers[st.name](st)

    def org(self, st: Statement) -> None:
        if self.data.explicit is not None:
            raise self.err("ASM_SYNTAX", "ORG inside SEGMENT ... ENDS", st.line)
        self.data.loc = self.check_range(self.single_value(st), 0, MAX_ADDRESS - 1, "ORG address",
                                         st.line)

    def entry_directive(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if len(ops) != 1 or not isinstance(ops[0], ExprOperand):
            raise self.err("ASM_SYNTAX", "ENTRY takes one code label", line)
        if self.entry is not None:
            raise self.err("ASM_SYNTAX", f"ENTRY given twice (first on line {self.entry[1]})", line)
        self.entry = (ops[0], line)

    def memory_directive(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if not 1 <= len(ops) <= 2:
            raise self.err("ASM_SYNTAX", "MEMORY takes min_bytes [, max_bytes]", line)
        if self.memory is not None:
            raise self.err("ASM_SYNTAX", "MEMORY given twice", line)
        vals = [self.check_range(self.eval(self.expr_operand(o, "MEMORY value", line), line),
                                 0, 0xFFFF_FFFF, "MEMORY value", line) for o in ops]
        self.memory = (vals[0], vals[1] if len(vals) == 2 else None)

    def imports_directive(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if self.imports is not None:
            raise self.err("ASM_SYNTAX", "IMPORTS given twice", line)
        if len(ops) != 1:
            raise self.err("ASM_SYNTAX", "IMPORTS takes NONE or one mask value", line)
        op0 = self.expr_operand(ops[0], "IMPORTS value", line)
        if op0.expr.symbol is not None and op0.expr.symbol.upper() == "NONE":
            self.imports = (None, line)
        else:
            mask = self.check_range(self.eval(op0, line), 0, 0xFFFF_FFFF, "IMPORTS mask", line)
            self.imports = (mask, line)

    def ends(self, st: Statement) -> None:
        if st.operands and self.data.explicit is not None:
            raise self.err("ASM_SYNTAX", "ENDS takes no operands", st.line)
        self.data.close_segment(st.line)

    def debug_directive(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if self.explicit_debug is None:
            self.explicit_debug = {}
        if len(ops) == 1 and isinstance(ops[0], ExprOperand) and ops[0].expr.symbol is not None \
                and ops[0].expr.symbol.upper() == "NONE":
            return
        if not 2 <= len(ops) <= 3:
            raise self.err("ASM_SYNTAX", 'DEBUG takes NONE or pc, line [, "source"]', line)
        pc = self.check_range(self.eval(self.expr_operand(ops[0], "DEBUG pc", line), line),
                              0, 0xFFFF_FFFF, "DEBUG pc", line)
        src_line = self.check_range(self.eval(self.expr_operand(ops[1], "DEBUG line", line), line),
                                    0, 0xFFFF_FFFF, "DEBUG line", line)
        source = self.path
        if len(ops) == 3:
            if not isinstance(ops[2], StrOperand):
                raise self.err("ASM_SYNTAX", f"DEBUG source must be a string, got {ops[2].text!r}", line)
            source = word_or_string(ops[2]) or ""
        if self.strict:
            if pc in self.explicit_debug:
                raise self.err("ASM_SYNTAX", f"DEBUG entry for pc {pc:#x} given twice", line)
            self.explicit_debug[pc] = DebugLine(source, src_line)

    def public(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if not ops:
            raise self.err("ASM_SYNTAX", "PUBLIC needs a label", line)
        if isinstance(ops[0], StrOperand):
            if len(ops) != 2 or not isinstance(ops[1], ExprOperand):
                raise self.err("ASM_SYNTAX", 'PUBLIC "name", label takes exactly a string and a label',
                               line)
            try:
                export = ops[0].data.decode("utf-8")
            except UnicodeDecodeError:
                raise self.err("ASM_SYNTAX", f"export name {ops[0].text} is not UTF-8", line) from None
            if not export:
                raise self.err("ASM_SYNTAX", "export name is empty", line)
            self.exports.append(Export(export, ops[1], line))
            return
        for operand in ops:
            expr = self.expr_operand(operand, "PUBLIC operand", line)
            if expr.expr.symbol is None:
                raise self.err("ASM_SYNTAX", f"PUBLIC expects label names, got {operand.text!r}", line)
            self.exports.append(Export(expr.expr.symbol, expr, line))

    def segment(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if self.data.explicit is not None:
            raise self.err("ASM_SYNTAX", f"SEGMENT inside SEGMENT {self.data.explicit.name!r} "
                           f"(line {self.data.explicit.line}); close it with ENDS", line)
        if not 1 <= len(ops) <= 3:
            raise self.err("ASM_SYNTAX", "SEGMENT takes name [, perms [, size]]", line)
        seg_name = word_or_string(ops[0])
        if not seg_name:
            raise self.err("ASM_SYNTAX", f"bad segment name {ops[0].text!r}", line)
        perms = "rw"
        if len(ops) >= 2:
            perms = word_or_string(ops[1]) or ""
            if not perms or any(c not in "rwx" for c in perms) or "r" not in perms \
                    or len(set(perms)) != len(perms):
                raise self.err("ASM_SYNTAX", f"segment permissions {ops[1].text!r} must be letters from "
                               "rwx including r", line)
        size: int | None = None
        if len(ops) == 3:
            size = self.check_range(self.eval(self.expr_operand(ops[2], "segment size", line), line),
                                    0, MAX_ADDRESS, "segment size", line)
        self.data.open_segment(seg_name, perms, size, line)


def word_or_string(operand: Operand) -> str | None:
    """The text of a string operand or a bare word (segment names, permissions)."""
    if isinstance(operand, StrOperand):
        try:
            return operand.data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(operand, ExprOperand):
        return operand.expr.symbol
    return None
