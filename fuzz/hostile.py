"""Module shapes that made an O2-only JIT superlinear (issue 9), as assembly text.

Used by the tests that load and run them on every tier
(``tests/test_tiering.py``) and by the bench of baseline loads
(``bench/load_shapes.py``): long straight-line code, a module exporting every
instruction, and deeply nested loops.
"""

from __future__ import annotations


def straight(n: int) -> str:
    """``n`` instructions of straight-line code in one function."""
    body = "\n".join(("ADD64 HL, HL, DE", "INC DE", "XOR A, A, HL", "SLA64 BC, A, 1")[i % 4] for i in range(n))
    return f"PUBLIC main\nmain:\n{body}\nRET\n"


def exports(n: int) -> str:
    """``n`` instructions, each one exported (``n`` function entries)."""
    lines = ["PUBLIC main", "main:"]
    for i in range(n):
        lines += [f"PUBLIC e{i}", f"e{i}: ADD64 HL, HL, DE" if i % 2 else f"e{i}: INC DE"]
    return "\n".join([*lines, "RET", ""])


def nest(depth: int) -> str:
    """``depth`` nested loops: the innermost runs three times, the others once
    (they test the CMP the innermost left: equal)."""
    head = ["PUBLIC main", "main: LD BC, 3", *(f"l{d}: INC HL" for d in range(depth)), "DEC BC", "CPI BC, 0"]
    return "\n".join([*head, *(f"JR ne, l{d}" for d in reversed(range(depth))), "RET", ""])
