"""Command-line numbers for the benches, checked where argparse reads them: a bad one exits 2 naming its flag."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", int, float)


def number(kind: Callable[[str], T], minimum: T, maximum: T | None = None) -> Callable[[str], T]:
    """An argparse `type` that reads `kind` (int or float) between `minimum` and `maximum` (inclusive)."""

    def parse(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be between {minimum:g} and {maximum:g}, got {value:g}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {value:g}")
        return value

    return parse
