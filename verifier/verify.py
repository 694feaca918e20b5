"""The verifier (``isa.md`` 3): the only way to obtain a VerifiedProgram."""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import sha256
from json import dumps

from zjit.encoding import Instr
from zjit.errors import VerifyError
from zjit.image import ModuleImage
from zjit.isa import COND_NAMES, Family
from zjit.policy import Policy

from . import program as _program
from .cfg import build_blocks, functions_of, leaders_of
from .decode import decode_code
from .program import VerifiedProgram


@dataclass
class Facts:
    """What :func:`check` learned: decoded instructions and primitives used."""

    instrs: list[Instr] = field(default_factory=list)
    prims: int = 0


def check(image: ModuleImage, policy: Policy | None = None) -> tuple[list[VerifyError], Facts]:
    """Run every check; return all errors found (in rule order) and the facts
    gathered (``instrs``, ``prims``). Rules 2.. are skipped when CODE has the wrong
    shape (rule 1) since nothing else can be decoded."""
    policy = policy or Policy()
    code, base = image.code, image.code_offset
    errors: list[VerifyError] = []
    facts = Facts()
    # 1. shape and caps
    if not code:
        return [VerifyError("EMPTY_CODE", "CODE is empty", offset=base)], facts
    if len(code) % 4:
        return [VerifyError("CODE_ALIGN", f"CODE length {len(code)} is not a multiple of 4",
                            offset=base + len(code) - len(code) % 4)], facts
    if len(code) > policy.max_code_bytes:
        return [VerifyError("CODE_TOO_LARGE",
                            f"CODE is {len(code)} bytes, policy cap is {policy.max_code_bytes}",
                            offset=base)], facts
    data_bytes = sum(len(s.init or b"") for s in image.segments)
    if data_bytes > policy.max_data_bytes:
        errors.append(VerifyError("DATA_TOO_LARGE",
                                  f"initial data is {data_bytes} bytes, policy cap is {policy.max_data_bytes}"))
    # 2. decoding and field rules
    instrs, decode_errors = decode_code(code, base)
    errors.extend(decode_errors)
    facts.instrs = instrs
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
    facts.prims = prims
    if image.imports is not None and image.imports != prims:
        errors.append(VerifyError("IMPORT_MISMATCH",
                                  f"declared imports {image.imports:#x} but CODE uses {prims:#x}"))
    banned = prims & ~policy.allowed_prims
    if banned:
        first = next(i for i in instrs if i.op.is_primitive and banned >> i.op.prim_bit & 1)
        errors.append(VerifyError("PRIM_DISALLOWED", f"{first.op.mnemonic} is not allowed by the policy",
                                  pc=first.pc, offset=base + first.pc, opcode=first.op.opcode))
    return errors, facts


def digest_of(image: ModuleImage) -> str:
    """Content hash of everything that determines a module's behaviour."""
    h = sha256()
    meta = {
        "entry": image.entry_pc,
        "exports": sorted(image.exports.items()),
        "imports": image.imports,
        "mem": [image.mem_min, image.mem_max],
        "segments": [[s.name, s.base, s.size, s.perms, None if s.init is None else len(s.init)]
                     for s in image.segments],
    }
    h.update(dumps(meta, sort_keys=True).encode())
    h.update(b"\0code\0")
    h.update(image.code)
    for s in image.segments:
        h.update(b"\0seg\0")
        h.update(s.init or b"")
    return h.hexdigest()


def verify_all(image: ModuleImage, policy: Policy | None = None) -> list[VerifyError]:
    """Every verification error of ``image`` (empty when it verifies)."""
    return check(image, policy)[0]


def verify(image: ModuleImage, policy: Policy | None = None) -> VerifiedProgram:
    """Verify ``image`` under ``policy``; raise the first :class:`VerifyError`.

    The raised error carries every error found in ``.all_errors``.
    """
    errors, facts = check(image, policy)
    if errors:
        first = errors[0]
        first.all_errors = errors  # type: ignore[attr-defined]
        raise first
    instrs = tuple(facts.instrs)
    roots = [image.entry_pc, *image.exports.values()]
    leaders = leaders_of(instrs, roots)
    blocks = build_blocks(instrs, leaders)
    return VerifiedProgram(
        _program._TOKEN,
        image=image,
        instrs=instrs,
        leaders=leaders,
        blocks=blocks,
        functions=functions_of(instrs, roots),
        prims_used=facts.prims,
        digest=digest_of(image),
    )
