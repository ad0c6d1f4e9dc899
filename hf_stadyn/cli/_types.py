"""argparse value types and conventions shared by the subcommands (a bad value gives a clear usage error, exit 2).

Convention of ``stadyn`` options (train, card, synth): ``--snake_case`` names like Trainer's, ``--output_dir``
for the output folder, progress bars on by default and ``--disable_tqdm`` to hide them, ``--seed``,
``--use_cpu`` for the device, ``--bf16`` / ``--fp16`` for mixed precision, ``--overwrite`` to replace
an output. The dashed names of the previous release keep working for one release (:func:`rewrite_deprecated`,
:class:`DeprecatedFlag`) with a deprecation message.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "DeprecatedFlag",
    "DeprecatedSwitch",
    "check_output_dir",
    "check_trackers",
    "fraction",
    "int_list",
    "nonneg_int",
    "one_line_errors",
    "positive_int",
    "rate",
    "rewrite_deprecated",
]


def _number(text: str, cast: Callable[[str], float], ok: Callable[[float], bool], what: str):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def check_output_dir(out: str | Path, flag: str = "--output_dir") -> None:
    """Before any work: ``out`` is a folder or can be created, and files can be written there.

    Writes (and removes) a temporary file in ``out`` or its nearest existing parent, so read-only file
    systems, ``/sys`` / ``/proc`` and missing permissions are found now, not after the job.

    Raises:
        ValueError: ``out`` (or a parent) is a file.
        PermissionError: nothing can be written there (one line naming the folder).
    """
    import tempfile

    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} exists and is not a folder; choose another path")
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {out}: {parent} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise PermissionError(
            f"{flag} {out}: cannot write in {parent} ({e.strerror or type(e).__name__}); choose a folder you can "
            "write to"
        ) from None


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser`` report a usage error in one line (what, and where the help is) with exit status 2."""

    def error(message: str):
        parser.exit(2, f"{parser.prog}: error: {message}; see {parser.prog} --help\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


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


class DeprecatedSwitch(argparse.Action):
    """An old on/off option name kept for one release: stores ``const`` into the new option's dest and warns."""

    def __init__(self, option_strings, dest, new: str, const: Any = True, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, nargs=0, const=const, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        _deprecation(str(option_string), self.new)
        setattr(namespace, self.dest, self.const)


def _deprecation(old: str, new: str) -> None:
    import warnings

    warnings.warn(f"{old} is deprecated and will be removed in 0.3; use {new}.", DeprecationWarning, stacklevel=3)
    logging.getLogger("hf_stadyn.cli").warning("%s is deprecated; use %s", old, new)


def rewrite_deprecated(
    argv: list[str],
    renamed: dict[str, list[str] | None],
    extra: Callable[[str, str | None], list[str] | None] | None = None,
) -> list[str]:
    """Rewrite the previous release's option names to the current ones, with a deprecation message each.

    ``renamed`` maps an old option to its replacement words (the value, if any, follows) or None (dropped);
    ``extra(old, value)`` may map an option that takes a value to replacement words (it consumes the value).
    Any other ``--dashed-name`` becomes ``--dashed_name`` (the snake_case convention).
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if not tok.startswith("--") or tok == "--":
            out.append(tok)
            continue
        name, eq, value = tok.partition("=")
        if extra is not None:
            if eq:
                repl = extra(name, value)
            else:
                nxt = argv[i] if i < len(argv) else None
                repl = extra(name, nxt)
                if repl is not None:
                    i += 1
            if repl is not None:
                _deprecation(f"{name} VALUE", " ".join(repl) or "nothing (the default)")
                out += repl
                continue
        if name in renamed:
            repl = renamed[name]
            _deprecation(name, " ".join(repl) if repl else "nothing (now the default)")
            if repl:
                out += repl[:-1] + [repl[-1] + (eq + value if eq else "")]
            continue
        if "-" in name[2:]:
            new = "--" + name[2:].replace("-", "_")
            _deprecation(name, new)
            out.append(new + (eq + value if eq else ""))
            continue
        out.append(tok)
    return out


#: ``--report_to`` name -> the modules that provide it (any one is enough).
TRACKER_MODULES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
    "comet_ml": ("comet_ml",),
    "clearml": ("clearml",),
    "dvclive": ("dvclive",),
    "neptune": ("neptune",),
    "codecarbon": ("codecarbon",),
    "azure_ml": ("azureml",),
    "flyte": ("flytekit",),
    "swanlab": ("swanlab",),
    "trackio": ("trackio",),
}


def check_trackers(report_to: list[str] | str | None) -> None:
    """Raise ``ValueError`` (one line) when a requested ``--report_to`` tracker is not installed."""
    import importlib.util

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    for name in names:
        if name in ("none", "all"):
            continue
        mods = TRACKER_MODULES.get(name)
        if mods is None:
            continue  # Trainer's own check names the valid choices
        if not any(importlib.util.find_spec(m) is not None for m in mods):
            raise ValueError(
                f"--report_to {name}: the {mods[0]} package is not installed; pip install {mods[0]}, or leave "
                f"{name} out of --report_to."
            )
