"""Tier-up: tiered code of the compiling engines (baseline code promoted to O2).

:mod:`.code` holds :class:`~.code.TieredCode` (baseline code, the function table
and its counters, the promoted O2 code); :mod:`.jobs` runs compiles in the
background on a worker pool of its own; :mod:`.job` is what those workers run
(lifting, lowering and LLVM, for one function or the whole module).
"""
