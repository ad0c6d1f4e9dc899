"""The ``stadyn`` command line: thin argument parsing over the public API.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``, which
adds its parser and sets ``func`` (a callable taking the parsed namespace and returning an exit code).
Errors a user can fix (``ValueError``, ``FileNotFoundError``, ...) are printed as one clear line and
give exit status 2; nothing half-written is left behind because the library writes atomically.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

# Subcommand modules, in help order. A module that cannot be imported is reported, not hidden.
_COMMANDS = ("probe", "compare", "synth", "train", "card", "publish", "register_metric")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``stadyn probe: error: <what>; see stadyn probe --help`` (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    from hf_stadyn import __version__

    parser = _Parser(
        prog="stadyn",
        description="Measure and reduce static vs dynamic bias in video models (Kowal et al., TPAMI).",
    )
    parser.add_argument("--version", action="version", version=f"hf-stadyn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            mod = importlib.import_module(f"hf_stadyn.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"hf_stadyn.cli.{name}":
                continue  # subcommand not shipped in this build
            raise
        mod.register(sub)
    return parser


#: what to do after Ctrl-C / SIGTERM, per subcommand (each keeps its resume state).
_INTERRUPTED = {
    "probe": "stadyn probe: interrupted; the resume state is kept: rerun the same command with "
    "--resume_from_checkpoint to continue.",
    "train": "stadyn train: interrupted; rerun the same command with --resume_from_checkpoint last to continue "
    "from the last checkpoint.",
}


class UsageError(ValueError):
    """A bad option or input given on the command line."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        argv = ["probe"]  # the main job on its embedded default
    argv = _rewrite_old_names(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors (already printed in one line)
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:  # huggingface_hub's retry warnings: the one-line error below says what failed
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # read when huggingface_hub is first imported
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(_INTERRUPTED.get(args.command, "stadyn: interrupted."), file=sys.stderr)
        return 130
    except _user_errors() as e:
        print(f"stadyn {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in _WRITE_ERRNOS:
            raise
        print(f"stadyn {args.command}: error: {_write_error(e)}", file=sys.stderr)
        return 2


#: errno values that mean "the output cannot be written there" (a user's fix, not a bug).
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR}


def _write_error(e: OSError) -> str:
    """One line for a failed write: the folder (not a temporary file's name), the reason and what to do."""
    name = Path(str(e.filename)) if e.filename else None
    if name is not None and name.name.startswith("."):  # an atomic write's temporary file: name its folder
        name = name.parent
    where = f" in {name}" if name is not None else ""
    fix = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "choose a folder you can write to"
    return f"cannot write{where} ({e.strerror or type(e).__name__}); {fix}"


def _one_line(e: BaseException) -> str:
    """The first line of an error (a library's multi-line message never reaches the user whole)."""
    if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS and not str(e).startswith("--"):
        return _write_error(e)
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _rewrite_old_names(argv: list[str]) -> list[str]:
    """Let the chosen subcommand rewrite the option names of the previous release (``rewrite_argv(argv)``)."""
    for i, tok in enumerate(argv):
        if tok in _COMMANDS:
            try:
                mod = importlib.import_module(f"hf_stadyn.cli.{tok}")
            except ModuleNotFoundError:
                return argv
            rewrite = getattr(mod, "rewrite_argv", None)
            return argv if rewrite is None else [*argv[: i + 1], *rewrite(argv[i + 1 :])]
        if not tok.startswith("-"):
            return argv
    return argv


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a bad input or option (one clear line, exit code 2), not a bug."""
    errors: list[type[BaseException]] = [
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        ConnectionError,
    ]
    try:  # invalid config fields (transformers configs are strict dataclasses) and Hub lookups
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, StrictDataclassError

        errors += [StrictDataclassError, HfHubHTTPError, OfflineModeIsEnabled]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
