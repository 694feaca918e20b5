"""The example programs, shipped with zjit as package data (``zjit.examples``).

``zjit examples`` lists them, ``zjit examples NAME`` prints one and ``zjit examples
--copy DIR`` copies them all (with the ``segments/`` module.json example) into a
directory; from Python, ``importlib.resources.files("zjit.examples") / "hello.s"``.
In a source checkout they are the files of ``examples/``.
"""
