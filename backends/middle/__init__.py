"""Middle end: :class:`~zjit.verifier.VerifiedProgram` -> SSA IR, target-independent.

:mod:`.lift` builds the IR (:mod:`.ir`), folding constants (:mod:`.fold`) and
using the plan (:mod:`.plan`: extra function entries, cold functions) and the
interprocedural effects (:mod:`.effects`: what each call returns); :mod:`.graphs`
holds the graph algorithms they share.
"""
