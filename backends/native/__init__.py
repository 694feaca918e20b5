"""The native engine (backend ``"jit"``): host machine code run in this process.

:mod:`.engine` is the backend; :mod:`.loader` maps linked code (memfd, never
writable and executable), :mod:`.thread` runs it on native guest threads,
:mod:`.stack` maps their stacks, sized for the guest's call depth, and
:mod:`.hostcalls` serves the host requests guest threads post in the context.
"""
