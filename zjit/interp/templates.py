"""The interpreter's semantics: one code template per ISA family (``isa.md`` 2).

Each template emits the Python statements for one decoded instruction into a
:class:`BlockEmitter`. Register values are always kept as unsigned 64-bit ints
(0 <= v < 2**64); 32-bit operations mask their inputs/results with ``M32`` so
their results are zero-extended. Signed comparisons flip the sign bit and
compare unsigned. Every check that can trap is emitted before the instruction's
assignment, so a trapping instruction has no effect.

This file and :mod:`zjit.interp.helpers` are the whole of the reference
semantics; :mod:`zjit.interp.codegen` only strings blocks together.
"""

from __future__ import annotations

from collections.abc import Callable

from zjit.encoding import Instr
from zjit.isa import HL, MASK32, MASK64, Family, TrapKind

from .emitter import M32, M64, BlockEmitter
from .helpers import PRIM_WRITES_HL

Template = Callable[[BlockEmitter, Instr], None]


def block_name(pc: int) -> str:
    """Name of the generated function for the block at ``pc``."""
    return f"B_{pc:04x}"


def _mask(width: int) -> str:
    return M32 if width == 32 else M64


def _sign(width: int) -> str:
    return "0x80000000" if width == 32 else "0x8000000000000000"


# --- data processing ---------------------------------------------------------------

_ALU = {"add": "({x} + {y})", "sub": "({x} - {y})", "mul": "({x} * {y})",
        "and": "({x} & {y})", "or": "({x} | {y})", "xor": "({x} ^ {y})"}


def t_alu(e: BlockEmitter, ins: Instr) -> None:
    """ADD SUB MUL AND OR XOR (32 and 64 bit): wrap to the width."""
    x, y = e.reg(ins.rs1), e.reg(ins.rs2)
    expr = _ALU[ins.op.operation].format(x=x, y=y)
    if ins.op.width == 64 and ins.op.operation in ("and", "or", "xor"):
        e.assign(ins.rd, expr[1:-1])  # already within 64 bits
    else:
        e.assign(ins.rd, f"{expr} & {_mask(ins.op.width)}")


def t_div(e: BlockEmitter, ins: Instr) -> None:
    """DIVS DIVU REMS REMU: DIV0 on a zero divisor (low 32 bits for 32-bit ops)."""
    w, op = ins.op.width, ins.op.operation
    x, y = e.reg(ins.rs1), e.reg(ins.rs2)
    if w == 32:
        e.line(f"x = {x} & {M32}; y = {y} & {M32}")
    else:
        e.line(f"x = {x}; y = {y}")
    e.trap_if("y == 0", TrapKind.DIV0, ins.pc)
    expr = {"divu": "x // y", "remu": "x % y",
            "divs": f"DIVS(x, y, {w})", "rems": f"REMS(x, y, {w})"}[op]
    e.assign(ins.rd, expr)


def t_incdec(e: BlockEmitter, ins: Instr) -> None:
    """INC, DEC: 32-bit, result zero-extended."""
    r = e.reg(ins.rd)
    sign = "+" if ins.op.operation == "inc" else "-"
    e.assign(ins.rd, f"({r} {sign} 1) & {M32}")


def t_mov(e: BlockEmitter, ins: Instr) -> None:
    """MOV: copy all 64 bits."""
    e.assign(ins.rd, e.reg(ins.rs1))


def t_ldi(e: BlockEmitter, ins: Instr) -> None:
    """LD immediate: the decoded value as unsigned 64 bits."""
    e.assign(ins.rd, f"{ins.imm & MASK64:#x}")


def t_nop(e: BlockEmitter, ins: Instr) -> None:
    """DROP: no effect (it still costs fuel as an instruction)."""
    e.line("pass")


def t_shift(e: BlockEmitter, ins: Instr) -> None:
    """SLA SRA SRL ROL ROR by the constant IMM12 (0..width-1)."""
    w, c, op = ins.op.width, ins.imm, ins.op.operation
    m, s = _mask(w), _sign(w)
    r = e.reg(ins.rs1)
    v = f"({r} & {M32})" if w == 32 else r
    if c == 0 and op != "sla":
        expr = v
    elif op == "sla":
        expr = f"({r} << {c}) & {m}"
    elif op == "srl":
        expr = f"{v} >> {c}"
    elif op == "sra":
        expr = f"((({v} ^ {s}) - {s}) >> {c}) & {m}"
    elif op == "rol":
        expr = f"(({r} << {c}) | ({v} >> {w - c})) & {m}"
    else:  # ror
        expr = f"(({v} >> {c}) | ({r} << {w - c})) & {m}"
    e.assign(ins.rd, expr)


def t_bitcount(e: BlockEmitter, ins: Instr) -> None:
    """CLZ CTZ POPC on R[rd] (low 32 bits for 32-bit forms); CLZ(0) = CTZ(0) = width."""
    w, op = ins.op.width, ins.op.operation
    r = e.reg(ins.rd)
    v = f"({r} & {M32})" if w == 32 else r
    if op == "clz":
        e.assign(ins.rd, f"{w} - {v}.bit_length()")
    elif op == "popc":
        e.assign(ins.rd, f"{v}.bit_count()")
    else:
        e.line(f"x = {v}")
        e.assign(ins.rd, f"(x & -x).bit_length() - 1 if x else {w}")


_CMPSET = {"eq": "==", "ne": "!=", "lts": "<", "les": "<=", "gts": ">", "ges": ">=",
           "ltu": "<", "leu": "<=", "gtu": ">", "geu": ">="}


def t_cmpset(e: BlockEmitter, ins: Instr) -> None:
    """EQ..GEU (32 and 64): R[rd] := 1 if the comparison holds else 0."""
    w, op = ins.op.width, ins.op.operation
    x, y = e.reg(ins.rs1), e.reg(ins.rs2)
    if w == 32:
        x, y = f"({x} & {M32})", f"({y} & {M32})"
    if op in ("lts", "les", "gts", "ges"):
        s = _sign(w)
        x, y = f"({x} ^ {s})", f"({y} ^ {s})"
    e.assign(ins.rd, f"1 if {x} {_CMPSET[op]} {y} else 0")


# --- compare and control flow -----------------------------------------------------

def t_cp(e: BlockEmitter, ins: Instr) -> None:
    """CP / CPI: CMP := (lo32 lhs, lo32 rhs); CPI's rhs is lo32(sx(imm12))."""
    lhs = f"{e.reg(ins.rs1)} & {M32}"
    if ins.op.operation == "cpi":
        rhs = f"{ins.imm & MASK32:#x}"
    else:
        rhs = f"{e.reg(ins.rs2)} & {M32}"
    e.set_cmp(lhs, rhs)


_COND = {
    "eq": "{l} == {r}", "ne": "{l} != {r}",
    "lt": "({l} ^ 0x80000000) < ({r} ^ 0x80000000)",
    "le": "({l} ^ 0x80000000) <= ({r} ^ 0x80000000)",
    "gt": "({l} ^ 0x80000000) > ({r} ^ 0x80000000)",
    "ge": "({l} ^ 0x80000000) >= ({r} ^ 0x80000000)",
    "ltu": "{l} < {r}", "leu": "{l} <= {r}", "gtu": "{l} > {r}", "geu": "{l} >= {r}",
}
COND_EXPR: tuple[str, ...] = (
    "True", _COND["eq"], _COND["ne"], _COND["lt"], _COND["le"], _COND["gt"],
    _COND["ge"], _COND["ltu"], _COND["leu"], _COND["gtu"], _COND["geu"],
)
"""Python condition for each JR condition code (index = code), on CMP locals."""


def t_jr(e: BlockEmitter, ins: Instr) -> None:
    """JR: jump to pc + 4*imm12 when the condition holds on CMP (true 32-bit compare)."""
    if ins.rs1 == 0:
        e.flush()
        e.line(f"return {block_name(ins.target)}")
        return
    cl, cr = e.cmp()
    cond = COND_EXPR[ins.rs1].format(l=cl, r=cr)
    e.flush()
    e.line(f"return {block_name(ins.target)} if {cond} else {block_name(ins.next_pc)}")


def t_call(e: BlockEmitter, ins: Instr) -> None:
    """CALL: push the return point (the next instruction) and jump; CALL_DEPTH
    when the stack already holds max_call_depth entries."""
    e.flush()
    e.trap_if(f"len(K) >= {e.spec.max_call_depth}", TrapKind.CALL_DEPTH, ins.pc)
    e.line(f"K.append({block_name(ins.next_pc)})")
    e.line(f"return {block_name(ins.target)}")


def t_ret(e: BlockEmitter, ins: Instr) -> None:
    """RET: pop and jump; on an empty stack the run ends normally."""
    e.flush()
    e.line("return K.pop() if K else None")


# --- memory ----------------------------------------------------------------------

def _address(e: BlockEmitter, ins: Instr) -> None:
    base = e.reg(ins.rs1)
    if ins.imm == 0:
        e.line(f"ad = {base}")
    else:
        e.line(f"ad = ({base} + {ins.imm}) & {M64}")


def _bounds(e: BlockEmitter, ins: Instr, n: int) -> None:
    e.trap_if(f"ad > {e.spec.mem_size - n}", TrapKind.OOB, ins.pc, "ad", str(n))


_LOADERS = {  # (size, signed) -> expression reading at ad
    (1, False): "M[ad]", (1, True): "((M[ad] ^ 0x80) - 0x80)",
    (2, False): "U16(M, ad)[0]", (2, True): "S16(M, ad)[0]",
    (4, False): "U32(M, ad)[0]", (4, True): "S32(M, ad)[0]",
    (8, False): "U64(M, ad)[0]",
}


def t_load(e: BlockEmitter, ins: Instr) -> None:
    """LDn[U|S][64]: little-endian; S sign-extends to 32 (then zero-extends) or to 64."""
    n, signed = ins.op.width, ins.op.signed
    _address(e, ins)
    _bounds(e, ins, n)
    expr = _LOADERS[(n, signed)]
    if signed:
        expr += f" & {M64 if ins.op.ext64 else M32}"
    e.assign(ins.rd, expr)


_STORERS = {1: "M[ad] = {v} & 0xFF", 2: "P16(M, ad, {v} & 0xFFFF)",
            4: "P32(M, ad, {v} & " + M32 + ")", 8: "P64(M, ad, {v})"}


def t_store(e: BlockEmitter, ins: Instr) -> None:
    """STn: store the low n bytes of R[rs2]; OOB, then WRITE_PROTECT if any byte
    falls in a read-only range."""
    n = ins.op.width
    value = e.reg(ins.rs2)
    _address(e, ins)
    _bounds(e, ins, n)
    if e.spec.readonly:
        hits = " or ".join(f"(ad < {hi:#x} and ad + {n} > {lo:#x})" for lo, hi in e.spec.readonly)
        e.trap_if(hits, TrapKind.WRITE_PROTECT, ins.pc, "ad", str(n))
    e.line(_STORERS[n].format(v=value))


# --- helpers for bulk memory and the host -----------------------------------------

def t_bulk(e: BlockEmitter, ins: Instr) -> None:
    """LDIR, FILL: see :func:`zjit.interp.helpers.op_ldir` / ``op_fill``."""
    e.call_helper(f"BULK_{ins.op.operation.upper()}", ins.pc)


def t_prim(e: BlockEmitter, ins: Instr) -> None:
    """IN OUT LOG ALLOC FREE CTL: see :mod:`zjit.interp.helpers`."""
    e.call_helper(f"PRIM_{ins.op.operation.upper()}", ins.pc)
    if ins.op.operation in PRIM_WRITES_HL:
        e.forget(HL)


TEMPLATES: dict[Family, Template] = {
    Family.CALL: t_call, Family.RET: t_ret, Family.JR: t_jr, Family.CP: t_cp,
    Family.NOP: t_nop, Family.INCDEC: t_incdec, Family.MOV: t_mov, Family.ALU: t_alu,
    Family.DIV: t_div, Family.SHIFT: t_shift, Family.BITCOUNT: t_bitcount,
    Family.CMPSET: t_cmpset, Family.LDI: t_ldi, Family.LOAD: t_load,
    Family.STORE: t_store, Family.BULK: t_bulk, Family.PRIM: t_prim,
}
"""Family -> template; every family of :data:`zjit.isa.OPS` must be present."""
