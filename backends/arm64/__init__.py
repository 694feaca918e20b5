"""The arm64 engine (backend ``"arm64"``): AArch64 code run in unicorn.

:mod:`.engine` is the backend, :mod:`.emulator` the pool of unicorn CPUs, and
:mod:`.runtime` the machine code mapped next to the generated code (host call
trampolines, ``memmove``/``memset``, frame measurement).
"""
