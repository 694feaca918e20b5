"""The argument parser class of every ``zjit`` command (kept out of
:mod:`zjit.cli` so that a plain ``zjit run`` does not import :mod:`argparse`)."""

from __future__ import annotations

import argparse
import sys

from zjit.cli.exits import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    """Usage errors print the usage and ``zjit: error: ...`` and exit with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"zjit: error: USAGE: {message}\n")
        raise SystemExit(EXIT_USAGE)
