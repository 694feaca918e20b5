"""Execution engines beyond the reference interpreter (lifter, LLVM lowering, loader)."""
