"""Exit codes of the ``zjit`` command (``interfaces.md``); a leaf module that the
package and every command import."""

EXIT_OK = 0
"""Success."""
EXIT_TRAP = 1
"""The guest trapped (``run``), or a fuzz campaign found a disagreement."""
EXIT_USAGE = 2
"""Usage error (bad command line)."""
EXIT_REJECTED = 3
"""Rejected input: container, verify, segment or policy error."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT)."""
