"""One exception hierarchy with stable code names.

Every failure caused by input (a container, a manifest, code, segments, policy)
raises a subclass of :class:`ZjitError` carrying a stable ``code`` string and the
location at fault: a byte ``offset`` into the input, a CODE ``pc``, a JSON ``path``
or the ``segments`` involved. Guest traps are *results*, not exceptions
(see :class:`zjit.result.Trap`), unless a caller asks for raising (:class:`TrapError`).

Codes are listed in :data:`CODES` (code -> category, one-line meaning); the test
suite checks each one has a negative test and ``docs/errors.md`` lists them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

# code -> (category, meaning). Categories: container, verify, segment, policy, usage.
CODES: dict[str, tuple[str, str]] = {
    # --- generic container --------------------------------------------------
    "UNKNOWN_FORMAT": ("container", "input is not a .zasm.bin, ROM, module.json or raw code"),
    "TRUNCATED": ("container", "input ends before a structure it declares"),
    "BAD_MAGIC": ("container", "magic bytes do not match"),
    "BAD_VERSION": ("container", "unsupported container version"),
    "BAD_FLAGS": ("container", "header flags must be 0 (or defined bits only)"),
    "BAD_RESERVED": ("container", "a reserved field is not 0"),
    "BAD_LENGTH": ("container", "declared file length differs from the input length"),
    "BAD_DIRECTORY": ("container", "directory/section table lies outside the file or overlaps the header"),
    "BAD_RANGE": ("container", "a payload range lies outside the file"),
    "OVERLAP_PAYLOAD": ("container", "two payloads (or a payload and the header/directory) overlap"),
    "DUPLICATE_TAG": ("container", "a section tag appears twice"),
    "MISSING_CODE": ("container", "no CODE section"),
    "BAD_SECTION": ("container", "a section's payload does not parse exactly"),
    "BAD_NAME": ("container", "a name is not valid UTF-8, is empty, or is duplicated"),
    "BAD_IMPORTS": ("container", "IMPT payload invalid (size, reserved, unknown bits)"),
    "BAD_MEM": ("container", "MEM payload invalid (size, min < 65536, max < min)"),
    "BAD_DATA": ("container", "DATA payload invalid or its segments overlap"),
    "ENTRY_MISMATCH": ("container", "header entry disagrees with the exported main"),
    # --- ROM specific ---------------------------------------------------------
    "ROM_TOO_NEW": ("container", "ROM minor version newer than supported"),
    "BAD_CHECKSUM": ("container", "ROM CRC-32 does not match"),
    "BAD_ALIGN": ("container", "ROM section not 16-byte aligned"),
    "BAD_SECTION_TYPE": ("container", "unknown ROM section type, or one not allowed in this version"),
    "BAD_COUNT": ("container", "ROM code header instruction count differs from the decoded count"),
    # --- module.json ----------------------------------------------------------
    "BAD_JSON": ("container", "module.json is not valid JSON or has the wrong shape"),
    "UNKNOWN_KEY": ("container", "module.json has a key that is not defined"),
    "BAD_PATH": ("container", "a path escapes the manifest directory, is not a regular file, or a file cannot be read or written"),
    "FILE_TOO_LARGE": ("container", "a module file is larger than the policy's caps allow"),
    # --- verifier (isa.md 3) --------------------------------------------------
    "EMPTY_CODE": ("verify", "CODE is empty"),
    "CODE_ALIGN": ("verify", "CODE length is not a multiple of 4"),
    "CODE_TOO_LARGE": ("verify", "CODE exceeds the policy's size cap"),
    "BAD_OPCODE": ("verify", "invalid opcode"),
    "BAD_REGISTER": ("verify", "register field outside 0..4"),
    "BAD_FIELD": ("verify", "a field violates the opcode's field rule"),
    "BAD_IMM": ("verify", "an immediate is out of range (shift count, JR condition)"),
    "TRUNCATED_EXT": ("verify", "CODE ends inside LD's extension words"),
    "BAD_TARGET": ("verify", "CALL/JR target outside CODE or not an instruction start"),
    "FALLS_OFF_END": ("verify", "last instruction is not RET or unconditional JR"),
    "BAD_ENTRY": ("verify", "entry pc is not an instruction start"),
    "BAD_EXPORT": ("verify", "an export pc is not an instruction start"),
    "IMPORT_MISMATCH": ("verify", "declared imports differ from the primitives CODE uses"),
    "PRIM_DISALLOWED": ("verify", "CODE uses a primitive the policy disallows"),
    "DATA_TOO_LARGE": ("verify", "initial data exceeds the policy's cap"),
    # --- segments / memory image (formats.md 3) -------------------------------
    "BAD_DESCRIPTOR": ("segment", "a segment descriptor field is invalid"),
    "BAD_SIZE": ("segment", "init_size differs from the bytes given or exceeds size"),
    "OUT_OF_BOUNDS": ("segment", "a segment does not fit in guest memory"),
    "OVERLAP": ("segment", "two segments overlap"),
    "MISSING_INIT": ("segment", "no initial bytes given for a segment that needs them"),
    # --- policy (formats.md 4 and engine limits) ------------------------------
    "MEM_TOO_SMALL": ("policy", "memory size below the module's declared minimum"),
    "MEM_TOO_LARGE": ("policy", "memory size above the declared maximum or the policy cap"),
    "BAD_POLICY": ("policy", "a policy value is invalid"),
    "NO_EXPORT": ("policy", "no export of that name"),
    "BAD_BACKEND": ("policy", "unknown or unavailable backend"),
    # --- assembler --------------------------------------------------------------
    "ASM_SYNTAX": ("usage", "assembly text does not parse"),
    "ASM_RANGE": ("usage", "an operand or branch displacement is out of range"),
    "ASM_LABEL": ("usage", "undefined or duplicate label"),
    # --- command line -------------------------------------------------------------
    "USAGE": ("usage", "the command line is invalid (bad option value, options that cannot be "
                       "combined, a listing this build cannot produce)"),
    "INTERRUPTED": ("usage", "the command was stopped by Ctrl-C (SIGINT) before it finished"),
    # --- engine internals surfaced to the user --------------------------------
    "COMPILE_FAILED": ("policy", "the JIT compiler failed for this module"),
}

WARNING_CODES: dict[str, str] = {
    "ASM_LABEL_BINDING": "a label alone on a line after data binds to the next instruction "
                         "but is used as a value (it could be read as the data address)",
}
"""Stable codes of the warnings the assembler issues (:class:`AsmWarning`); a warning
never fails a build."""


class ZjitError(Exception):
    """Base of every error zjit raises for bad input.

    ``code`` is stable (see :data:`CODES`); ``offset`` is a byte offset into the
    input, ``pc`` a CODE byte offset, ``path`` a JSON path or file name,
    ``segments`` the segment names involved and ``opcode`` the opcode at fault.
    """

    category = "error"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        offset: int | None = None,
        pc: int | None = None,
        path: str | None = None,
        segments: tuple[str, ...] = (),
        opcode: int | None = None,
        line: int | None = None,
    ) -> None:
        if code not in CODES:
            raise ValueError(f"unregistered error code {code!r}")
        self.code = code
        self.message = message
        self.offset = offset
        self.pc = pc
        self.path = path
        self.segments = segments
        self.opcode = opcode
        self.line = line
        super().__init__(self.__str__())

    def where(self) -> str:
        """Human-readable location (``offset 0x1c``, ``pc 0x8``, ``$.segments[1]``...)."""
        parts: list[str] = []
        if self.path is not None:
            parts.append(self.path)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.offset is not None:
            parts.append(f"offset {self.offset:#x}")
        if self.pc is not None:
            parts.append(f"pc {self.pc:#x}")
        if self.opcode is not None:
            parts.append(f"opcode {self.opcode:#04x}")
        if self.segments:
            parts.append("segment " + ", ".join(repr(s) for s in self.segments))
        return " ".join(parts) if parts else "input"

    def __str__(self) -> str:
        return f"{self.code} at {self.where()}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by ``--json`` outputs."""
        return {
            "code": self.code,
            "category": CODES[self.code][0],
            "message": self.message,
            "offset": self.offset,
            "pc": self.pc,
            "path": self.path,
            "segments": list(self.segments),
            "opcode": self.opcode,
            "line": self.line,
        }


class ContainerError(ZjitError):
    """A container (.zasm.bin, ROM, module.json) is malformed."""

    category = "container"


class VerifyError(ZjitError):
    """CODE failed verification (``isa.md`` 3)."""

    category = "verify"


class SegmentError(ZjitError):
    """Segment descriptors or initial images are invalid (``formats.md`` 3)."""

    category = "segment"


class PolicyError(ZjitError):
    """The module cannot run under the requested policy (memory size, backend...)."""

    category = "policy"


class AsmError(ZjitError):
    """Assembly text is invalid; ``line`` names the source line.

    The assembler reports every error of a file: the exception raised is the first
    one (lowest line), ``errors`` holds all of them in line order (itself first; at
    most 1000) and ``omitted`` counts those left out beyond that.
    """

    category = "usage"

    def __init__(self, code: str, message: str, **where: Any) -> None:
        super().__init__(code, message, **where)
        self.errors: tuple[AsmError, ...] = (self,)
        self.omitted = 0


class AsmWarning(UserWarning):
    """Something in assembly text that assembles but may not mean what it says.

    ``code`` is one of :data:`WARNING_CODES`; ``path`` and ``line`` name the source line.
    The assembler issues these through :mod:`warnings` unless its caller takes them.
    """

    def __init__(self, code: str, message: str, *, path: str | None, line: int) -> None:
        if code not in WARNING_CODES:
            raise ValueError(f"unregistered warning code {code!r}")
        self.code = code
        self.message = message
        self.path = path
        self.line = line
        super().__init__(f"{code}: {message}")

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class CacheWarning(UserWarning):
    """The on-disk code cache is not used for a directory that fails its trust
    checks (not ours, writable by others, a symbolic link; docs/cache.md). Issued
    once per cache object; the code is then compiled (or kept in memory) instead."""


class TrapError(Exception):
    """Raised by ``Instance.run(raise_on_trap=True)``; wraps the trapping Result."""

    def __init__(self, result: Any) -> None:
        self.result = result
        super().__init__(str(result.trap))
