"""Option value converters shared by the commands (no heavy imports: ``zjit run``
uses them on its start-up path without argparse)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def count_value(text: str) -> int:
    """A whole number >= 0 (decimal or 0x hex)."""
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f"not an integer: {text!r}") from None
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def size_value(text: str) -> int:
    """A whole number > 0."""
    value = count_value(text)
    if value == 0:
        raise ValueError("must be > 0")
    return value


def seconds_value(text: str) -> float:
    """A number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not value > 0:
        raise ValueError("must be > 0")
    return value


def argparse_type(check: Callable[[str], int | float]) -> Callable[[str], int | float]:
    """``check`` raising :class:`argparse.ArgumentTypeError`, for ``type=``."""

    def convert(text: str) -> int | float:
        try:
            return check(text)
        except ValueError as exc:
            import argparse

            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


count_arg = argparse_type(count_value)
size_arg = argparse_type(size_value)
seconds_arg = argparse_type(seconds_value)
