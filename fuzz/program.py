"""A generated test program: assembly text plus everything needed to run it the
same way on every engine (policy, input, control handler, read-only segments)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from zjit.image import ModuleImage, SegmentDesc
from zjit.policy import Policy

CTL_MODES: tuple[str, ...] = ("none", "echo", "error", "raise")
"""Deterministic control handlers: no handler (-7), echo the request reversed,
always answer -5, or raise (HOST trap)."""


class CtlHandlerFailure(RuntimeError):
    """Raised by the ``raise`` control handler (the engine turns it into a HOST trap)."""


def _ctl_echo(request: bytes) -> bytes:
    return request[::-1]


def _ctl_error(request: bytes) -> int:
    return -5


def _ctl_raise(request: bytes) -> bytes:
    raise CtlHandlerFailure(f"ctl handler refused a {len(request)}-byte request")


def ctl_handler(mode: str) -> Callable[[bytes], bytes | int] | None:
    """The control handler named by ``mode`` (one of :data:`CTL_MODES`)."""
    handlers: dict[str, Callable[[bytes], bytes | int] | None] = {
        "none": None, "echo": _ctl_echo, "error": _ctl_error, "raise": _ctl_raise,
    }
    if mode not in handlers:
        raise ValueError(f"unknown ctl mode {mode!r}")
    return handlers[mode]


@dataclass(frozen=True)
class GenProgram:
    """A runnable test case.

    ``asm`` is pinned-syntax assembly; ``ro_segments`` are read-only segments added
    to the assembled image (the assembly syntax only makes writable data).
    ``fuel``/``max_call_depth``/``mem_size`` (and ``max_output_bytes`` when not
    None: a small output limit) form the policy; ``stdin`` is the
    guest input and ``ctl`` names the control handler (:data:`CTL_MODES`).
    ``intent`` says what the generator aimed at (``"random"``, ``"trap:OOB"``...),
    ``min_cost``/``max_cost`` bound the instructions a trap-free run executes and
    ``call_depth_need`` is the deepest call stack it builds.
    """

    asm: str
    fuel: int | None = None
    max_call_depth: int = 1024
    mem_size: int = 0x10000
    stdin: bytes = b""
    ctl: str = "none"
    ro_segments: tuple[SegmentDesc, ...] = ()
    intent: str = "random"
    min_cost: int = 0
    max_cost: int = 0
    call_depth_need: int = 0
    name: str = "fuzz"
    max_output_bytes: int | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    def image(self) -> ModuleImage:
        """Assemble the text and add the read-only segments."""
        from zjit.asm import assemble

        image = assemble(self.asm, self.name)
        if not self.ro_segments:
            return image
        return dataclasses.replace(image, segments=tuple(image.segments) + self.ro_segments)

    def policy(self, **overrides: object) -> Policy:
        """The policy this program runs under. The on-disk code cache is off:
        generated programs are throw-away and would only fill it."""
        kwargs: dict[str, object] = {
            "fuel": self.fuel, "max_call_depth": self.max_call_depth, "mem_size": self.mem_size,
            "use_cache": False,
        }
        if self.max_output_bytes is not None:
            kwargs["max_output_bytes"] = self.max_output_bytes
        kwargs.update(overrides)
        return Policy(**kwargs)  # type: ignore[arg-type]

    def ctl_handler(self) -> Callable[[bytes], bytes | int] | None:
        """The control handler to instantiate with."""
        return ctl_handler(self.ctl)

    def digest(self) -> str:
        """Short content hash (names reproducer files, checks determinism)."""
        h = hashlib.sha256()
        h.update(self.asm.encode())
        h.update(repr((self.fuel, self.max_call_depth, self.mem_size, self.stdin, self.ctl)).encode())
        if self.max_output_bytes is not None:
            h.update(b"max_output_bytes=%d" % self.max_output_bytes)
        for seg in self.ro_segments:
            h.update(repr((seg.name, seg.base, seg.size, seg.perms, seg.init)).encode())
        return h.hexdigest()[:16]

    def instruction_count(self) -> int:
        """Number of instruction lines in the text (a static size measure)."""
        count = 0
        in_code = True
        for raw in self.asm.splitlines():
            line = raw.split(";", 1)[0].strip()
            if ":" in line:
                line = line.split(":", 1)[1].strip()
            if not line:
                continue
            word = line.split()[0].upper()
            if word in ("DB", "DW", "DD", "DQ", "RESB", "ALIGN", "ORG"):
                in_code = False
                continue
            if word in ("PUBLIC", "ENTRY") or (len(line.split()) > 1 and line.split()[1].upper() == "EQU"):
                continue
            if in_code:
                count += 1
        return count
