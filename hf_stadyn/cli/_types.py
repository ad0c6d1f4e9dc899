"""argparse value types shared by the subcommands (a bad value gives a clear usage error, exit 2)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

__all__ = ["DeprecatedFlag", "fraction", "int_list", "nonneg_int", "positive_int", "rate"]


def _number(text: str, cast: Callable[[str], float], ok: Callable[[float], bool], what: str):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def nonneg_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a non-negative integer")


def fraction(text: str) -> float:
    return _number(text, float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


def rate(text: str) -> float:
    return _number(text, float, lambda v: 0.0 <= v < 1.0, "a rate in [0, 1)")


def int_list(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return vals


class DeprecatedFlag(argparse.Action):
    """An old option name kept for one release: stores into the new option's dest and warns once.

    Example: ``p.add_argument("--sd-tau", dest="sd_threshold", type=float, action=DeprecatedFlag,
    new="--sd-threshold", help=argparse.SUPPRESS)``.
    """

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        import warnings

        warnings.warn(
            f"{option_string} is deprecated and will be removed in 0.3; use {self.new}.",
            DeprecationWarning,
            stacklevel=2,
        )
        logging.getLogger("hf_stadyn.cli").warning("%s is deprecated; use %s", option_string, self.new)
        setattr(namespace, self.dest, values)
