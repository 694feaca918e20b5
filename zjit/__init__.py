"""zjit: a verified, sandboxed, metered JIT for ZASM.

Typical use::

    engine = zjit.Engine(zjit.Policy(fuel=1_000_000), backend="interp")
    module = engine.load("prog.zasm.bin")
    result = module.instantiate(stdin=b"input").run()

Importing :mod:`zjit` is cheap: the names below are imported on first use (the
embedding API, the records and errors), and backends (and llvmlite) load only
when an Engine asks for them.
"""

from __future__ import annotations

import sys

__version__ = "0.1.0"

_EXPORTS = {
    "AsmError": "errors", "ContainerError": "errors", "PolicyError": "errors", "SegmentError": "errors",
    "TrapError": "errors", "VerifyError": "errors", "ZjitError": "errors",
    "ModuleImage": "image", "SegmentDesc": "image",
    "Instance": "instance",
    "TrapKind": "isa",
    "Policy": "policy",
    "Frame": "result", "Result": "result", "Trap": "result",
    "BACKENDS": "runtime", "Engine": "runtime", "Module": "runtime", "available_backends": "runtime",
    "engine_configs": "runtime",
}
"""Public name -> the module of this package that defines it."""

__all__ = [
    "BACKENDS", "AsmError", "ContainerError", "Engine", "Frame", "Instance", "Module", "ModuleImage",
    "Policy", "PolicyError", "Result", "SegmentDesc", "SegmentError", "Trap", "TrapError",
    "TrapKind", "VerifyError", "ZjitError", "__version__", "available_backends", "engine_configs",
]

TYPE_CHECKING = False  # the imports below are for type checkers (docs/startup.md)
if TYPE_CHECKING:
    from .errors import AsmError, ContainerError, PolicyError, SegmentError, TrapError, VerifyError, ZjitError
    from .image import ModuleImage, SegmentDesc
    from .instance import Instance
    from .isa import TrapKind
    from .policy import Policy
    from .result import Frame, Result, Trap
    from .runtime import BACKENDS, Engine, Module, available_backends, engine_configs


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    full = f"{__name__}.{module}"
    __import__(full)  # not importlib: the importlib package stays unimported (start-up)
    value = getattr(sys.modules[full], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
