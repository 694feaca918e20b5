"""The native engine (backend ``"jit"``): host machine code run in this process.

:mod:`.engine` is the backend; :mod:`.loader` maps linked code (memfd, never
writable and executable), :mod:`.hostcalls` are the ctypes callbacks generated
code calls for I/O, and :mod:`.stack` sizes the native stack for the guest's
call depth.
"""
