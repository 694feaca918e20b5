"""The verifier as it was written before issue 11 (one Instr object per instruction,
sets and dicts of pcs): slow, plain, and the oracle tests/test_verifier.py compares
the table-driven verifier with (errors, instructions, leaders, blocks, functions).
Field rules come from zjit.verifier.fields.check_fields, as before."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zjit.verifier.fields import check_fields

from zjit.encoding import Instr, bytes_to_words, fields, ld_ext_count
from zjit.errors import VerifyError
from zjit.image import ModuleImage
from zjit.isa import BY_OPCODE, COND_NAMES, MASK64, Family, Fmt, sext
from zjit.policy import Policy

Blocks = dict[int, tuple[int, int, tuple[Instr, ...], int, tuple[int, ...]]]


def decode_code(code: bytes, code_offset: int = 0) -> tuple[list[Instr], list[VerifyError]]:
    """Decode every instruction of ``code``.

    Returns the instructions that decoded and the errors found (in pc order).
    A word with an invalid opcode or fields is reported and skipped; decoding
    continues with the next word so every error is listed.
    """
    words = bytes_to_words(code)
    instrs: list[Instr] = []
    errors: list[VerifyError] = []
    i = 0
    n = len(words)
    while i < n:
        pc = 4 * i
        opcode, rd, rs1, rs2, imm = fields(words[i])
        op = BY_OPCODE[opcode]
        if op is None:
            errors.append(VerifyError(
                "BAD_OPCODE", f"invalid opcode {opcode:#04x} in word {words[i]:#010x}",
                pc=pc, offset=code_offset + pc, opcode=opcode))
            i += 1
            continue
        problem = check_fields(op, rd, rs1, rs2, imm)
        if problem is not None:
            errors.append(VerifyError(problem[0], problem[1], pc=pc, offset=code_offset + pc,
                                      opcode=opcode))
            i += 1
            continue
        nwords = 1
        if op.fmt is Fmt.LDI:
            ext = ld_ext_count(imm)
            if i + ext >= n and ext:
                errors.append(VerifyError(
                    "TRUNCATED_EXT", f"LD needs {ext} extension word(s) but CODE ends",
                    pc=pc, offset=code_offset + pc, opcode=opcode))
                break
            if ext == 1:
                imm = sext(words[i + 1], 32)
            elif ext == 2:
                imm = sext(words[i + 1] | (words[i + 2] << 32), 64)
            nwords = 1 + ext
            imm &= MASK64
            imm = sext(imm, 64)
        instrs.append(Instr(pc, op, rd, rs1, rs2, imm, nwords))
        i += nwords
    return instrs, errors


def leaders_of(instrs: Sequence[Instr], roots: Iterable[int]) -> tuple[int, ...]:
    """Block leaders: ``roots`` (entry, exports), every CALL/JR target, and every
    instruction following a CALL, JR or RET."""
    code_end = instrs[-1].next_pc if instrs else 0
    leaders = set(roots)
    for ins in instrs:
        fam = ins.op.family
        if fam is Family.CALL or fam is Family.JR:
            leaders.add(ins.target)
        if ins.op.ends_block and ins.next_pc < code_end:
            leaders.add(ins.next_pc)
    return tuple(sorted(leaders))


def build_blocks(instrs: Sequence[Instr], leaders: Sequence[int]) -> Blocks:
    """Partition into blocks: from each leader up to (not including) the next leader,
    or through the first CALL, JR or RET."""
    index = {ins.pc: k for k, ins in enumerate(instrs)}
    leader_set = set(leaders)
    blocks: Blocks = {}
    for start in leaders:
        k = index[start]
        body: list[Instr] = []
        while k < len(instrs):
            ins = instrs[k]
            body.append(ins)
            k += 1
            if ins.op.ends_block or ins.next_pc in leader_set:
                break
        last = body[-1]
        fam = last.op.family
        succ: tuple[int, ...]
        if fam is Family.RET:
            succ = ()
        elif fam is Family.CALL:
            succ = (last.target, last.next_pc)
        elif fam is Family.JR:
            succ = (last.target,) if last.rs1 == 0 else (last.target, last.next_pc)
        else:
            succ = (last.next_pc,)
        blocks[start] = (start, last.next_pc, tuple(body), len(body), succ)
    return blocks


def functions_of(instrs: Sequence[Instr], roots: Iterable[int]) -> tuple[int, ...]:
    """Guest function entries: the roots (entry and exports) plus every CALL target."""
    funcs = set(roots)
    funcs.update(ins.target for ins in instrs if ins.op.family is Family.CALL)
    return tuple(sorted(funcs))


def check(image: ModuleImage, policy: Policy | None = None) -> tuple[list[VerifyError], list[Instr], int]:
    """Run every check; return all errors found (in rule order) and the facts
    gathered (``instrs``, ``prims``). Rules 2.. are skipped when CODE has the wrong
    shape (rule 1) since nothing else can be decoded."""
    policy = policy or Policy()
    code, base = image.code, image.code_offset
    errors: list[VerifyError] = []
    # 1. shape and caps
    if not code:
        return [VerifyError("EMPTY_CODE", "CODE is empty", offset=base)], [], 0
    if len(code) % 4:
        return [VerifyError("CODE_ALIGN", f"CODE length {len(code)} is not a multiple of 4",
                            offset=base + len(code) - len(code) % 4)], [], 0
    if len(code) > policy.max_code_bytes:
        return [VerifyError("CODE_TOO_LARGE",
                            f"CODE is {len(code)} bytes, policy cap is {policy.max_code_bytes}",
                            offset=base)], [], 0
    data_bytes = sum(len(s.init or b"") for s in image.segments)
    if data_bytes > policy.max_data_bytes:
        errors.append(VerifyError("DATA_TOO_LARGE",
                                  f"initial data is {data_bytes} bytes, policy cap is {policy.max_data_bytes}"))
    # 2. decoding and field rules
    instrs, decode_errors = decode_code(code, base)
    errors.extend(decode_errors)
    starts = {ins.pc for ins in instrs}
    if decode_errors:
        # Words that failed to decode still count as instruction starts so the
        # remaining checks do not report follow-on noise.
        starts.update(e.pc for e in decode_errors if e.pc is not None)
    # 3. control-flow targets
    for ins in instrs:
        fam = ins.op.family
        if fam is Family.CALL or fam is Family.JR:
            t = ins.target
            if not (0 <= t < len(code)) or t not in starts:
                where = "outside CODE" if not 0 <= t < len(code) else "not an instruction start"
                errors.append(VerifyError("BAD_TARGET",
                                          f"{ins.op.mnemonic} target {t:#x} is {where}",
                                          pc=ins.pc, offset=base + ins.pc, opcode=ins.op.opcode))
    # 4. no path runs off the end
    if instrs and not decode_errors:
        last = instrs[-1]
        if not (last.op.family is Family.RET or (last.op.family is Family.JR and last.rs1 == 0)):
            what = last.op.mnemonic + (f" {COND_NAMES[last.rs1]}" if last.op.family is Family.JR else "")
            errors.append(VerifyError("FALLS_OFF_END",
                                      f"last instruction is {what}, not RET or unconditional JR",
                                      pc=last.pc, offset=base + last.pc, opcode=last.op.opcode))
    # 5. entry and exports
    if image.entry_pc not in starts:
        errors.append(VerifyError("BAD_ENTRY", f"entry pc {image.entry_pc:#x} is not an instruction start",
                                  pc=image.entry_pc))
    for name, pc in image.exports.items():
        if pc not in starts:
            errors.append(VerifyError("BAD_EXPORT", f"export {name!r} pc {pc:#x} is not an instruction start",
                                      pc=pc, path=f"export {name}"))
    # 6. imports and policy
    prims = 0
    for ins in instrs:
        if ins.op.is_primitive:
            prims |= 1 << ins.op.prim_bit
    if image.imports is not None and image.imports != prims:
        errors.append(VerifyError("IMPORT_MISMATCH",
                                  f"declared imports {image.imports:#x} but CODE uses {prims:#x}"))
    banned = prims & ~policy.allowed_prims
    if banned:
        first = next(i for i in instrs if i.op.is_primitive and banned >> i.op.prim_bit & 1)
        errors.append(VerifyError("PRIM_DISALLOWED", f"{first.op.mnemonic} is not allowed by the policy",
                                  pc=first.pc, offset=base + first.pc, opcode=first.op.opcode))
    return errors, instrs, prims


def reference_verify(image: ModuleImage, policy: Policy | None = None) -> tuple[
        list[VerifyError], tuple[Instr, ...], tuple[int, ...], Blocks, tuple[int, ...], int]:
    """(errors, instructions, leaders, blocks, functions, primitives used); the
    structure is empty when there are errors."""
    errors, instrs, prims = check(image, policy)
    if errors:
        return errors, (), (), {}, (), prims
    roots = [image.entry_pc, *image.exports.values()]
    leaders = leaders_of(instrs, roots)
    return errors, tuple(instrs), leaders, build_blocks(instrs, leaders), functions_of(instrs, roots), prims
