"""zjit: a verified, sandboxed, metered JIT for ZASM."""
__version__ = "0.1.0"
