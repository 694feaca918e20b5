"""The verifier (``isa.md`` 3): the only way to obtain a VerifiedProgram."""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import sha256
from json import dumps

from zjit.errors import VerifyError
from zjit.image import ModuleImage
from zjit.isa import BY_OPCODE, COND_NAMES, OPS, Family
from zjit.policy import Policy

from . import program as _program
from .cfg import FUNCTION, LEADER, check_branches
from .decode import EXTENSION, Scan, scan_code
from .program import VerifiedProgram

_PRIMITIVES = tuple(op for op in OPS if op.is_primitive)
MAX_ERRORS_KEPT = 100
"""Errors :func:`verify` collects before it stops looking (the first one is raised)."""


@dataclass(slots=True)
class Facts:
    """What :func:`check` learned: the scan of CODE (None when its shape is wrong),
    the control-flow marks and the primitives used."""

    scan: Scan | None = None
    marks: bytearray = field(default_factory=bytearray)
    prims: int = 0


def _is_start(kinds: bytearray, pc: int) -> bool:
    return 0 <= pc < 4 * len(kinds) and pc % 4 == 0 and kinds[pc >> 2] != EXTENSION


def check(image: ModuleImage, policy: Policy | None = None,
          max_errors: int | None = None) -> tuple[list[VerifyError], Facts]:
    """Run every check; return all errors found (in rule order; the first
    ``max_errors`` when given) and the facts gathered. Rules 2.. are skipped when
    CODE has the wrong shape (rule 1) since nothing else can be decoded."""
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
    # 2. decoding and field rules (a word that fails to decode still starts an
    # instruction, so the remaining checks do not report follow-on noise)
    room = None if max_errors is None else max_errors - len(errors)
    scan = facts.scan = scan_code(code if isinstance(code, bytes) else bytes(code), base, room)
    errors.extend(scan.errors)
    kinds = scan.kinds
    # 3. control-flow targets
    room = None if max_errors is None else max_errors - len(errors)
    if room is not None and room <= 0:
        return errors, facts
    facts.marks, target_errors = check_branches(scan, base, room)
    errors.extend(target_errors)
    # 4. no path runs off the end
    if not scan.errors:
        i = len(kinds) - 1
        while kinds[i] == EXTENSION:
            i -= 1
        last = BY_OPCODE[kinds[i]]
        assert last is not None
        cond = scan.words[i] >> 16 & 0xF
        if not (last.family is Family.RET or (last.family is Family.JR and cond == 0)):
            what = last.mnemonic + (f" {COND_NAMES[cond]}" if last.family is Family.JR else "")
            errors.append(VerifyError("FALLS_OFF_END",
                                      f"last instruction is {what}, not RET or unconditional JR",
                                      pc=4 * i, offset=base + 4 * i, opcode=last.opcode))
    # 5. entry and exports
    if not _is_start(kinds, image.entry_pc):
        errors.append(VerifyError("BAD_ENTRY", f"entry pc {image.entry_pc:#x} is not an instruction start",
                                  pc=image.entry_pc))
    for name, pc in image.exports.items():
        if not _is_start(kinds, pc):
            errors.append(VerifyError("BAD_EXPORT", f"export {name!r} pc {pc:#x} is not an instruction start",
                                      pc=pc, path=f"export {name}"))
    # 6. imports and policy (the scan holds an opcode only where a valid instruction starts)
    first_use = {op: kinds.find(op.opcode) for op in _PRIMITIVES}
    prims = 0
    for op, at in first_use.items():
        if at >= 0:
            prims |= 1 << op.prim_bit
    facts.prims = prims
    if image.imports is not None and image.imports != prims:
        errors.append(VerifyError("IMPORT_MISMATCH",
                                  f"declared imports {image.imports:#x} but CODE uses {prims:#x}"))
    banned = [(at, op) for op, at in first_use.items() if at >= 0 and not policy.allowed_prims >> op.prim_bit & 1]
    if banned:
        at, op = min(banned, key=lambda b: b[0])
        errors.append(VerifyError("PRIM_DISALLOWED", f"{op.mnemonic} is not allowed by the policy",
                                  pc=4 * at, offset=base + 4 * at, opcode=op.opcode))
    return errors if max_errors is None else errors[:max_errors], facts


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


def verify_all(image: ModuleImage, policy: Policy | None = None, limit: int | None = None) -> list[VerifyError]:
    """Every verification error of ``image`` (empty when it verifies), or the first
    ``limit`` of them (each error is an object: bound them for untrusted input)."""
    return check(image, policy, limit)[0]


def verify(image: ModuleImage, policy: Policy | None = None) -> VerifiedProgram:
    """Verify ``image`` under ``policy``; raise the first :class:`VerifyError`.

    The raised error carries the errors found in ``.all_errors``: all of them in
    rule order, up to :data:`MAX_ERRORS_KEPT` (so a hostile module cannot make
    verification hold millions of error objects).
    """
    errors, facts = check(image, policy, MAX_ERRORS_KEPT)
    if errors:
        first = errors[0]
        first.all_errors = errors  # type: ignore[attr-defined]
        raise first
    assert facts.scan is not None
    for pc in (image.entry_pc, *image.exports.values()):
        facts.marks[pc >> 2] |= LEADER | FUNCTION
    return VerifiedProgram(
        _program._TOKEN,
        image=image,
        scan=facts.scan,
        marks=facts.marks,
        prims_used=facts.prims,
        digest=digest_of(image),
    )
