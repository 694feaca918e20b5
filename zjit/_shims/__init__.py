"""Start-up shims: stand-ins for standard-library calls on the cache-hit path of
``zjit run`` (docs/startup.md).

A shim keeps one standard module off that path, because importing it costs
start-up time that a cache hit cannot afford; :data:`REPLACES` names it. The
rule, which ``tests/test_startup.py`` enforces:

* a shim is used on the cache-hit path and its standard module is not imported
  there; when either stops being true the shim no longer pays and is removed;
* it gives exactly what the standard call gives: anything it does not handle is
  passed to the standard module itself, and a property test compares the two;
* at module level it imports nothing but ``os``, C modules (``_json``,
  ``_sha256``...) and other shims.

Nothing else belongs here: records are standard :mod:`dataclasses`, and code
that only the compile path, an error path or another command needs imports what
it needs where it needs it.
"""

REPLACES: dict[str, str] = {
    "hmac_sha256": "hmac",
    "minijson": "json",
    "paths": "pathlib",
    "sha256": "hashlib",
}
"""Shim module -> the standard module it keeps off the cache-hit path."""
