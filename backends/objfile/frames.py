"""Frame tables of O2 objects, built on the trap path from their debug info.

An object compiled with ``CodegenOptions.call_sites``
(:mod:`zjit.backends.llvm.call_sites`) describes its own frames: the
``.debug_line`` row of a guest CALL's native call has line = the CALL's pc + 1,
and the CFI (``.debug_frame``) gives the canonical frame address (CFA: the
caller's stack pointer at the call) and where the return address is saved, at
every instruction. :func:`frame_table` reads both with pyelftools, once per
object and only when a trap asks for a backtrace (the load path keeps the
object's bytes and nothing else); a run's walk then costs one
:meth:`FrameTable.step` per frame (cached per return address).

Functions are told apart by their symbols: ``f_<pc>`` guest functions (the
only ones whose calls are guest CALLs) and ``body_<pc>`` entry bodies (the
outermost frame of a whole-module object). Anything the table cannot vouch for
(an address outside every function, a row without a line, a CFA not based on
the stack pointer, a return address not saved at a fixed offset) gives None,
and the backtrace is then not recorded rather than guessed.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass, field

from ..targets import EM_AARCH64, EM_X86_64

GUEST, ENTRY = 0, 1
"""Kinds of function in a frame table: a guest function, an entry body (or the
run's entry routine)."""
RUN_ENTRY_ROUTINE = "rt_enter"
"""The runtime routine that calls an entry body (``runtime_asm.RT_ENTER``; a
test keeps the two alike). An entry body may tail-jump into its guest function,
whose return address then lies in this routine: the outermost guest frame."""
_SP = {EM_X86_64: 7, EM_AARCH64: 31}
"""DWARF register number of the stack pointer."""
_RA = {EM_X86_64: 16, EM_AARCH64: 30}
"""DWARF register number (column) of the return address."""


@dataclass(frozen=True, slots=True)
class Step:
    """What the frame table says about one return address into a function."""

    kind: int
    """:data:`GUEST` or :data:`ENTRY`."""
    call: int | None
    """The guest CALL's pc (guest functions), else None."""
    cfa: int
    """CFA = the stack pointer right after the call returns + ``cfa``."""
    ra: int | None
    """The function's own return address is saved at CFA + ``ra``; None: it is
    still in the link register (AArch64 code without a frame, which can only be
    the trapping function: the walk takes it from ``ctx.trap_lr``)."""


@dataclass(slots=True)
class FrameTable:
    """Functions, line rows and CFI rows of one object's code (offsets from the
    start of its one executable section)."""

    machine: int
    func_starts: list[int]
    func_ends: list[int]
    func_kinds: list[int]
    line_addrs: list[int]
    line_values: list[int]
    """Line of the row starting at each address (-1: the end of a sequence)."""
    fde_starts: list[int]
    fde_ends: list[int]
    fde_rows: list[tuple[list[int], list[tuple[int, int, int | None] | None]]]
    """Per FDE: row addresses and (CFA register, CFA offset, return address
    offset) per row (None: a rule the walk cannot follow)."""
    _steps: dict[int, Step | None] = field(default_factory=dict)

    def call_sites(self) -> dict[int, int]:
        """Guest CALL pc -> the number of line rows that carry it (for tests)."""
        out: dict[int, int] = {}
        for line in self.line_values:
            if line > 0:
                out[line - 1] = out.get(line - 1, 0) + 1
        return out

    def step(self, ret: int) -> Step | None:
        """The frame a return address ``ret`` (an offset into the code) lies in:
        its function's kind, the guest CALL (for guest functions) and the frame
        rule at the call; None when the table cannot tell."""
        if ret in self._steps:
            return self._steps[ret]
        out = self._step(ret - 1)  # inside the call instruction
        self._steps[ret] = out
        return out

    def frame_at(self, ret: int) -> Step | None:
        """The frame rule at the call a return address ``ret`` follows, whatever
        its function (the trapping function's call of the trap helper, which
        never returns: ``ret`` may lie past the function); None when unknown."""
        rule = self._rule(ret - 1)
        return None if rule is None else Step(GUEST, None, rule[1], rule[2])

    def _step(self, at: int) -> Step | None:
        k = bisect.bisect_right(self.func_starts, at) - 1
        if k < 0 or at >= self.func_ends[k]:
            return None
        rule = self._rule(at)
        if rule is None:
            return None
        kind = self.func_kinds[k]
        if kind == ENTRY:
            return Step(ENTRY, None, rule[1], rule[2])
        i = bisect.bisect_right(self.line_addrs, at) - 1
        if i < 0 or self.line_values[i] <= 0:
            return None
        return Step(GUEST, self.line_values[i] - 1, rule[1], rule[2])

    def _rule(self, at: int) -> tuple[int, int, int | None] | None:
        f = bisect.bisect_right(self.fde_starts, at) - 1
        if f < 0 or at >= self.fde_ends[f]:
            return None
        addrs, rules = self.fde_rows[f]
        r = bisect.bisect_right(addrs, at) - 1
        rule = rules[r] if r >= 0 else None
        if rule is None or rule[0] != _SP[self.machine]:
            return None
        return rule


def frame_table(obj: bytes) -> FrameTable | None:
    """The frame table of ``obj`` (an ELF relocatable with one executable
    section and ``.debug_frame``), or None when it has none to offer."""
    from elftools.common.exceptions import ELFError
    from elftools.dwarf.callframe import FDE
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(obj))
        machine = {"EM_X86_64": EM_X86_64, "EM_AARCH64": EM_AARCH64}.get(elf["e_machine"])
        code = [i for i, s in enumerate(elf.iter_sections()) if s["sh_flags"] & 4 and s["sh_size"]]
        if machine is None or len(code) != 1:
            return None
        funcs = _functions(elf, code[0])
        dwarf = elf.get_dwarf_info(relocate_dwarf_sections=True)
        if not dwarf.has_CFI():
            return None
        addrs: list[int] = []
        lines: list[int] = []
        for cu in dwarf.iter_CUs():
            program = dwarf.line_program_for_CU(cu)
            if program is None:
                continue
            for entry in program.get_entries():
                st = entry.state
                if st is None:
                    continue
                addrs.append(st.address)
                lines.append(-1 if st.end_sequence else st.line)
        order = sorted(range(len(addrs)), key=lambda n: (addrs[n], lines[n] != -1))
        table = FrameTable(machine, [f[0] for f in funcs], [f[1] for f in funcs], [f[2] for f in funcs],
                           [addrs[n] for n in order], [lines[n] for n in order], [], [], [])
        fdes = sorted((e for e in dwarf.CFI_entries() if isinstance(e, FDE)),
                      key=lambda e: e["initial_location"])
        for fde in fdes:
            start = fde["initial_location"]
            table.fde_starts.append(start)
            table.fde_ends.append(start + fde["address_range"])
            table.fde_rows.append(_rows(fde, _RA[machine]))
    except (ELFError, ValueError, KeyError, AttributeError, TypeError, IndexError):
        return None
    return table


def _functions(elf: object, section: int) -> list[tuple[int, int, int]]:
    """(start, end, kind) of the guest functions and entry bodies, by address."""
    from elftools.elf.sections import SymbolTableSection

    out = []
    for sec in elf.iter_sections():  # type: ignore[attr-defined]
        if not isinstance(sec, SymbolTableSection):
            continue
        for sym in sec.iter_symbols():
            if sym["st_info"]["type"] != "STT_FUNC" or sym["st_shndx"] != section:
                continue
            name = sym.name
            kind = (GUEST if name.startswith("f_") else
                    ENTRY if name.startswith("body_") or name == RUN_ENTRY_ROUTINE else None)
            if kind is not None and sym["st_size"]:
                out.append((sym["st_value"], sym["st_value"] + sym["st_size"], kind))
    return sorted(out)


def _rows(fde: object, ra_reg: int) -> tuple[list[int], list[tuple[int, int, int | None] | None]]:
    """Row addresses and (CFA register, offset, return address offset) rules;
    the offset is None where the return address is still in its register (the
    AArch64 link register: no rule, or "same value")."""
    from elftools.dwarf.callframe import RegisterRule

    in_register = ra_reg == _RA[EM_AARCH64]
    addrs: list[int] = []
    rules: list[tuple[int, int, int | None] | None] = []
    for row in fde.get_decoded().table:  # type: ignore[attr-defined]
        cfa = row["cfa"]
        ra = row.get(ra_reg)
        addrs.append(row["pc"])
        if cfa.expr is not None or cfa.reg is None:
            rules.append(None)
        elif ra is not None and ra.type == RegisterRule.OFFSET:
            rules.append((cfa.reg, cfa.offset, ra.arg))
        elif in_register and (ra is None or ra.type == RegisterRule.SAME_VALUE):
            rules.append((cfa.reg, cfa.offset, None))
        else:
            rules.append(None)
    return addrs, rules
