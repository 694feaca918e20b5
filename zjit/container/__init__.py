"""Container parsers and writers (.zasm.bin v2, ROM, module.json)."""
