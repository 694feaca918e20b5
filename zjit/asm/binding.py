"""Where a label that stands alone on its line binds, and the warning when that is
ambiguous.

The rule (docs/assembly.md, "Labels"): a label on a line that places nothing (a line
of its own, or one holding ``ORG``, ``PUBLIC``, ``SEGMENT``... ) binds to the next
line that places something: an instruction or ``WORD`` (the label is then the CODE
offset) or a data directive (the data address). At the end of the file it is the end
of CODE. Code and data live in different address spaces, so a lone label after data
and before code could have been meant either way (``stacktop:`` after a ``RESB``);
when such a label is used as a value, :func:`binding_warnings` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from zjit.errors import AsmWarning


@dataclass(frozen=True, slots=True)
class Held:
    """A label waiting for the next line that places something."""

    name: str
    line: int
    after_data: bool
    """The last line before it that placed something placed data (or moved the
    data location counter)."""
    data_address: int
    """The data location counter at the label's line."""


@dataclass(frozen=True, slots=True)
class Binding:
    """A held label, bound: ``kind`` ``"code"`` or ``"data"`` at ``value``, to the
    line ``at_line`` (None: the end of the file)."""

    held: Held
    kind: str
    value: int
    at_line: int | None


def where_bound(binding: Binding) -> str:
    """``the instruction on line 9`` / ``the data on line 9`` / ``the end of CODE``."""
    if binding.at_line is None:
        return "the end of CODE"
    what = "instruction" if binding.kind == "code" else "data"
    return f"the {what} on line {binding.at_line}"


def binding_note(binding: Binding | None) -> str:
    """An explanation to append to an error about a label's kind ('' if it had its
    own line's statement)."""
    if binding is None:
        return ""
    return (f" (the label stands alone on line {binding.held.line}, so it binds to the next line "
            f"that places something: {where_bound(binding)})")


def binding_warnings(bindings: list[Binding], value_uses: dict[str, int],
                     path: str) -> list[AsmWarning]:
    """``ASM_LABEL_BINDING`` for every held label after data that bound to code and
    is used as a value."""
    out: list[AsmWarning] = []
    for b in bindings:
        held = b.held
        use = value_uses.get(held.name)
        if b.kind != "code" or not held.after_data or use is None:
            continue
        out.append(AsmWarning(
            "ASM_LABEL_BINDING",
            f"label {held.name!r} stands alone after data, so it binds to {where_bound(b)} "
            f"(CODE offset {b.value:#x}), not to the data address {held.data_address:#x}, and "
            f"line {use} uses it as a value; write '{held.name}: RESB 0' for the data address, "
            "or put the label on the instruction's line",
            path=path, line=held.line))
    return out
