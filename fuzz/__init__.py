"""Differential fuzzing: program generators (hypothesis strategies) and engine oracles."""
