"""``zjit compile``: ahead-of-time builds (docs/aot.md).

:mod:`.build` writes the outputs (object, ``zjit.h``, segment files, manifest);
:mod:`.c_helper` generates the C helper a host compiles next to the object.
"""

from .build import DEFAULT_PREFIX, MANIFEST_FORMAT, AotOptions, build_aot, check_prefix, safe_file_name

__all__ = ["DEFAULT_PREFIX", "MANIFEST_FORMAT", "AotOptions", "build_aot", "check_prefix", "safe_file_name"]
