"""LLVM IR text lowering of the zjit IR: one emitter module per instruction family.

:func:`lower` (in :mod:`.module`) is the entry point; :class:`CodegenOptions`
holds the options that change the generated code. Attributes are imported on
first use, so importing :mod:`.options` alone (a code cache hit) stays cheap.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing stays unimported on a cache hit (docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

_EXPORTS = {
    "CodegenOptions": ".options",
    "LoweredModule": ".module",
    "check_coverage": ".module",
    "entry_symbol": ".module",
    "lower": ".module",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    full = __name__ + module  # __import__: the importlib package is not loaded on a cache hit
    __import__(full)
    return getattr(sys.modules[full], name)
