"""LLVM IR text lowering of the zjit IR: one emitter module per instruction family.

:func:`lower` (in :mod:`.module`) is the entry point; :class:`CodegenOptions`
holds the options that change the generated code.
"""

from .module import LoweredModule, check_coverage, entry_symbol, lower
from .options import CodegenOptions

__all__ = ["CodegenOptions", "LoweredModule", "check_coverage", "entry_symbol", "lower"]
