"""zjit: a verified, sandboxed, metered JIT for ZASM.

Typical use::

    engine = zjit.Engine(zjit.Policy(fuel=1_000_000), backend="interp")
    module = engine.load("prog.zasm.bin")
    result = module.instantiate(stdin=b"input").run()

Importing :mod:`zjit` is cheap: backends (and llvmlite) load only when an
Engine asks for them.
"""

from .errors import (
    AsmError,
    ContainerError,
    PolicyError,
    SegmentError,
    TrapError,
    VerifyError,
    ZjitError,
)
from .image import ModuleImage, SegmentDesc
from .instance import Instance
from .isa import TrapKind
from .policy import Policy
from .result import Result, Trap
from .runtime import BACKENDS, Engine, Module, available_backends, engine_configs

__version__ = "0.1.0"

__all__ = [
    "BACKENDS", "AsmError", "ContainerError", "Engine", "Instance", "Module", "ModuleImage",
    "Policy", "PolicyError", "Result", "SegmentDesc", "SegmentError", "Trap", "TrapError",
    "TrapKind", "VerifyError", "ZjitError", "__version__", "available_backends", "engine_configs",
]
