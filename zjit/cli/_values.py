"""Option value converters shared by the commands (no heavy imports: ``zjit run``
uses them on its start-up path without argparse)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")


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


def register_value(text: str) -> tuple[str, int]:
    """``NAME=VALUE``: a register name (any case) and a value in -2**63 .. 2**64-1
    (decimal or 0x hex); the name comes back in upper case."""
    from zjit.isa import MASK64, REG_NAMES

    name, eq, value = text.partition("=")
    name = name.strip().upper()
    if not eq or name not in REG_NAMES:
        raise ValueError(f"expected REG=VALUE with REG one of {', '.join(REG_NAMES)}, not {text!r}")
    try:
        number = int(value, 0)
    except ValueError:
        raise ValueError(f"not an integer: {value!r}") from None
    if not -(1 << 63) <= number <= MASK64:
        raise ValueError(f"{name}={value}: the value must be in -2**63 .. 2**64-1")
    return name, number


def argparse_type(check: Callable[[str], T]) -> Callable[[str], T]:
    """``check`` raising :class:`argparse.ArgumentTypeError`, for ``type=``."""

    def convert(text: str) -> T:
        try:
            return check(text)
        except ValueError as exc:
            import argparse

            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


count_arg = argparse_type(count_value)
register_arg = argparse_type(register_value)
size_arg = argparse_type(size_value)
seconds_arg = argparse_type(seconds_value)
