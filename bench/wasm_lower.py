"""ZASM instructions -> WebAssembly instructions: the straight-line part of the
Wasmtime twin (:mod:`wasm_twin` places the results in functions and control flow).

:class:`Lowering` appends WAT instructions (one a line) for one guest instruction
at a time: registers are the locals :data:`REGS` (i64) and the compare state
``$cl $cr`` (i32); ``$t`` (i64) is scratch. Every check ZASM requires is explicit:
memory accesses against the guest size and stores against the read-only ranges
(so the twin traps where the guest traps whatever Wasmtime's own bounds strategy
is), DIV0, the call depth against ``max_call_depth``; a guest trap calls the
import ``$trap`` (kind, pc, registers), which does not return. Primitives are
calls of the imports ``$prim_<name>`` (pc, registers) -> HL.
"""

from __future__ import annotations

from zjit.encoding import Instr
from zjit.isa import MASK32, MASK64, REG_NAMES, Family, TrapKind, sext

REGS = tuple(f"${name.lower()}" for name in REG_NAMES)
"""Locals of the five guest registers, in register-index order."""
STATE = (*REGS, "$cl", "$cr")
"""The guest state every twin function takes and returns, in this order."""
STATE_TYPES = "i64 i64 i64 i64 i64 i32 i32"

_ALU = {"add": "add", "sub": "sub", "mul": "mul", "and": "and", "or": "or", "xor": "xor"}
_SHIFT = {"sla": "shl", "sra": "shr_s", "srl": "shr_u", "rol": "rotl", "ror": "rotr"}
_CMPSET = {"eq": "eq", "ne": "ne", "lts": "lt_s", "les": "le_s", "gts": "gt_s", "ges": "ge_s",
           "ltu": "lt_u", "leu": "le_u", "gtu": "gt_u", "geu": "ge_u"}
_COND = ("", "i32.eq", "i32.ne", "i32.lt_s", "i32.le_s", "i32.gt_s", "i32.ge_s",
         "i32.lt_u", "i32.le_u", "i32.gt_u", "i32.ge_u")
"""JR condition code -> i32 comparison of ($cl, $cr)."""
_LOAD = {  # (bytes, signed, to 64 bits) -> instructions producing the i64 value
    (1, False, False): ["i64.load8_u"], (1, True, False): ["i32.load8_s", "i64.extend_i32_u"],
    (2, False, False): ["i64.load16_u"], (2, True, False): ["i32.load16_s", "i64.extend_i32_u"],
    (4, False, False): ["i64.load32_u"], (8, False, True): ["i64.load"],
    (1, False, True): ["i64.load8_u"], (1, True, True): ["i64.load8_s"],
    (2, False, True): ["i64.load16_u"], (2, True, True): ["i64.load16_s"],
    (4, False, True): ["i64.load32_u"], (4, True, True): ["i64.load32_s"],
}
_STORE = {1: "i64.store8", 2: "i64.store16", 4: "i64.store32", 8: "i64.store"}


def i64(value: int) -> str:
    """``i64.const`` of a value taken modulo 2^64."""
    return f"i64.const {sext(value & MASK64, 64)}"


def i32(value: int) -> str:
    """``i32.const`` of a value taken modulo 2^32."""
    return f"i32.const {sext(value & MASK32, 32)}"


def get_state() -> list[str]:
    """Push the whole guest state (the arguments of a twin function call)."""
    return [f"local.get {r}" for r in STATE]


def condition(ins: Instr) -> list[str]:
    """Push the i32 truth of a conditional JR's condition."""
    return ["local.get $cl", "local.get $cr", _COND[ins.rs1]]


class Lowering:
    """Appends the code of straight-line instructions (and a CALL's call sequence)
    to ``out``; see the module docstring."""

    def __init__(self, mem_size: int, readonly: tuple[tuple[int, int], ...], max_depth: int) -> None:
        self.mem_size = mem_size
        self.readonly = readonly
        self.max_depth = max_depth
        self.out: list[str] = []

    def emit(self, *lines: str) -> None:
        """Append WAT instructions."""
        self.out.extend(lines)

    def trap(self, kind: TrapKind, pc: int) -> None:
        self.emit(i32(kind.value), i32(pc), *(f"local.get {r}" for r in REGS), "call $trap", "unreachable")

    def trap_if(self, kind: TrapKind, pc: int) -> None:
        """Trap when the i32 on the stack is non-zero."""
        self.emit("if")
        self.trap(kind, pc)
        self.emit("end")

    def span_check(self, addr: str, length: str | int, write: bool, pc: int) -> None:
        """Trap OOB unless ``addr + length <= mem_size`` (no overflow), then, for a
        write, WRITE_PROTECT if the span touches a read-only range. ``addr`` and a
        non-constant ``length`` are locals; a constant length is known non-zero."""
        size = self.mem_size
        if isinstance(length, int):
            if length > size:
                self.emit("i32.const 1")
            else:
                self.emit(f"local.get {addr}", i64(size - length), "i64.gt_u")
        else:
            self.emit(f"local.get {length}", i64(size), "i64.gt_u",
                      f"local.get {addr}", i64(size), f"local.get {length}", "i64.sub", "i64.gt_u",
                      "i32.or")
        self.trap_if(TrapKind.OOB, pc)
        if not write:
            return
        for lo, hi in self.readonly:
            # overlap: addr < hi and addr + length > lo (addr + length <= mem_size here)
            self.emit(f"local.get {addr}", i64(hi), "i64.lt_u")
            if isinstance(length, int):
                self.emit(f"local.get {addr}", i64(lo - length), "i64.gt_s" if lo < length else "i64.gt_u")
            else:
                self.emit(f"local.get {addr}", f"local.get {length}", "i64.add", i64(lo), "i64.gt_u")
            self.emit("i32.and")
            self.trap_if(TrapKind.WRITE_PROTECT, pc)

    def address(self, ins: Instr) -> None:
        """``$t`` = the access address ``rs1 + imm``."""
        self.emit(f"local.get {REGS[ins.rs1]}")
        if ins.imm:
            self.emit(i64(ins.imm), "i64.add")
        self.emit("local.set $t")

    def instr(self, ins: Instr) -> None:
        """One instruction that does not end a block."""
        op, fam = ins.op, ins.op.family
        d, a, b = (REGS[r] if r < len(REGS) else "" for r in (ins.rd, ins.rs1, ins.rs2))
        w = "i64" if op.width == 64 else "i32"
        wrap = () if w == "i64" else ("i32.wrap_i64",)
        widen = () if w == "i64" else ("i64.extend_i32_u",)
        if fam is Family.ALU:
            self.emit(f"local.get {a}", f"local.get {b}", f"i64.{_ALU[op.operation]}")
            if op.width == 32:
                self.emit(i64(MASK32), "i64.and")
            self.emit(f"local.set {d}")
        elif fam is Family.DIV:
            self.emit(f"local.get {b}", *wrap, f"{w}.eqz")
            self.trap_if(TrapKind.DIV0, pc=ins.pc)
            signed = op.operation in ("divs", "rems")
            kind = op.operation[:3] + ("_s" if signed else "_u")
            if op.operation == "divs":  # INT_MIN / -1 wraps (wasm would trap): negate instead
                self.emit(f"local.get {b}", *wrap, f"{w}.const -1", f"{w}.eq", f"if (result {w})",
                          f"{w}.const 0", f"local.get {a}", *wrap, f"{w}.sub", "else",
                          f"local.get {a}", *wrap, f"local.get {b}", *wrap, f"{w}.div_s", "end")
            else:  # rem_s of INT_MIN by -1 is 0 in wasm, as in ZASM
                self.emit(f"local.get {a}", *wrap, f"local.get {b}", *wrap, f"{w}.{kind}")
            self.emit(*widen, f"local.set {d}")
        elif fam is Family.SHIFT:
            self.emit(f"local.get {a}", *wrap, f"{w}.const {ins.imm}", f"{w}.{_SHIFT[op.operation]}",
                      *widen, f"local.set {d}")
        elif fam is Family.BITCOUNT:
            name = "popcnt" if op.operation == "popc" else op.operation
            self.emit(f"local.get {d}", *wrap, f"{w}.{name}", *widen, f"local.set {d}")
        elif fam is Family.CMPSET:
            self.emit(f"local.get {a}", *wrap, f"local.get {b}", *wrap, f"{w}.{_CMPSET[op.operation]}",
                      "i64.extend_i32_u", f"local.set {d}")
        elif fam is Family.INCDEC:
            self.emit(f"local.get {d}", "i64.const 1", "i64.add" if op.operation == "inc" else "i64.sub",
                      i64(MASK32), "i64.and", f"local.set {d}")
        elif fam is Family.MOV:
            self.emit(f"local.get {a}", f"local.set {d}")
        elif fam is Family.LDI:
            self.emit(i64(ins.imm), f"local.set {d}")
        elif fam is Family.NOP:
            pass
        elif fam is Family.CP:
            rhs = (f"local.get {b}", "i32.wrap_i64") if op.operation == "cp" else (i32(ins.imm),)
            self.emit(f"local.get {a}", "i32.wrap_i64", "local.set $cl", *rhs, "local.set $cr")
        elif fam is Family.LOAD:
            self.address(ins)
            self.span_check("$t", op.width, False, ins.pc)
            self.emit("local.get $t", "i32.wrap_i64", *_LOAD[(op.width, op.signed, op.ext64)],
                      f"local.set {d}")
        elif fam is Family.STORE:
            self.address(ins)
            self.span_check("$t", op.width, True, ins.pc)
            self.emit("local.get $t", "i32.wrap_i64", f"local.get {b}", _STORE[op.width])
        elif fam is Family.BULK:
            self.bulk(ins)
        elif fam is Family.PRIM:
            self.emit(i32(ins.pc), *(f"local.get {r}" for r in REGS), f"call $prim_{op.operation}",
                      "local.set $hl")
        else:  # pragma: no cover - block-ending families are the caller's
            raise AssertionError(op)

    def bulk(self, ins: Instr) -> None:
        """LDIR or FILL: nothing when BC is 0, else check the spans, then copy or fill."""
        self.emit("local.get $bc", "i64.eqz", "i32.eqz", "if")
        if ins.op.operation == "ldir":
            self.span_check("$hl", "$bc", False, ins.pc)
            self.span_check("$de", "$bc", True, ins.pc)
            self.emit("local.get $de", "i32.wrap_i64", "local.get $hl", "i32.wrap_i64",
                      "local.get $bc", "i32.wrap_i64", "memory.copy")
        else:
            self.span_check("$hl", "$bc", True, ins.pc)
            self.emit("local.get $hl", "i32.wrap_i64", "local.get $a", "i32.wrap_i64",
                      "local.get $bc", "i32.wrap_i64", "memory.fill")
        self.emit("end")

    def call(self, ins: Instr, callee: str) -> None:
        """A CALL's depth check and counting around a direct call of ``callee``;
        the state comes back in the locals."""
        self.emit("global.get $depth", i32(self.max_depth), "i32.ge_u")
        self.trap_if(TrapKind.CALL_DEPTH, ins.pc)
        self.emit("global.get $depth", "i32.const 1", "i32.add", "global.set $depth",
                  *get_state(), f"call {callee}", *(f"local.set {r}" for r in reversed(STATE)),
                  "global.get $depth", "i32.const 1", "i32.sub", "global.set $depth")
