"""``stadyn card``: a Hub model-card folder from a bias report, optionally pushed to a model repo.

Example::

    stadyn card runs/probe --output_dir cards/my-model --base_model org/base --license apache-2.0
    stadyn card runs/probe/report.json --push_to_hub --hub_model_id me/my-model

``--push_to_hub`` never replaces the repo's README.md: our card is merged into it (the user's text
survives, our block between hf-stadyn markers is updated) and only changed files are uploaded
(:func:`hf_stadyn.hub.publish_folder`, the engine of ``stadyn publish``).

Options follow the ``stadyn`` convention (``--snake_case``, ``--output_dir``, Trainer's ``--push_to_hub``,
``--hub_model_id``, ``--hub_token``, ``--hub_private_repo``); the previous release's names (``--out``,
``--base-model``, ``--model-name``, ``--scatter-layer``, ``--push REPO_ID``, ``--token``, ``--private``)
still work for one release with a deprecation message.

Thin wrapper over :meth:`hf_stadyn.BiasReport.load`, :func:`hf_stadyn.hub.write_model_card_folder`
and :func:`hf_stadyn.hub.push_report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_stadyn.cli._types import DeprecatedFlag, DeprecatedSwitch


class _DeprecatedAppend(DeprecatedFlag):
    """An old name of a repeatable option (``--scatter-layer``): appends to the new option's list and warns."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, [*(getattr(namespace, self.dest, None) or []), values], option_string)


class _DeprecatedPush(DeprecatedFlag):
    """``--push REPO_ID`` of the previous release: ``--push_to_hub --hub_model_id REPO_ID``, with a warning."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        namespace.push_to_hub = True


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "card",
        help="write (and optionally push) a Hub model card from a bias report",
        description=(
            "Write a model-card folder (README.md with the bias tables and model-index results, "
            "bias_report.json and the PNG figures) from a bias report written by `stadyn probe` or "
            "BiasReport.save, and optionally upload it to a Hub model repo (an existing README.md there is merged, "
            "not replaced: its text survives, our block is updated). Give --output_dir, "
            "--push_to_hub --hub_model_id, or both. The report is checked (layers present, no NaN) and the "
            "folder checked writable before anything is written; the card is written in full or not at all. "
            "Old option names (--out, --base-model, --model-name, --scatter-layer, --push, --token, "
            "--private) work for one more release, with a deprecation message."
        ),
    )
    p.add_argument("report", metavar="REPORT", help="report.json / bias_report.json, or a folder holding one")
    p.add_argument(
        "--output_dir",
        metavar="DIR",
        default=None,
        help="folder to write the card into (created; an existing folder gets the card's files replaced)",
    )
    p.add_argument("--base_model", metavar="ID", default=None, help="Hub id of the model this one was fine-tuned from")
    p.add_argument("--dataset", metavar="ID", default=None, help="Hub id of the dataset the pairs were made from")
    p.add_argument(
        "--model_name", metavar="NAME", default=None, help="name in the card title and model-index (default: the "
        "report's model id)"
    )  # fmt: skip
    p.add_argument(
        "--layer", metavar="LAYER", default=None, help="layer whose values go to the model-index (default: the last)"
    )
    p.add_argument(
        "--scatter_layer",
        dest="scatter_layers",
        action="append",
        metavar="LAYER",
        default=None,
        help="draw the rho_S vs rho_D scatter for this layer (repeatable; default: the last layer)",
    )
    p.add_argument(
        "--license", metavar="ID", default=None, help="license of the model (default: apache-2.0, the license of "
        "hf-stadyn's own checkpoints; give your model's)"
    )  # fmt: skip
    p.add_argument("--push_to_hub", action="store_true", help="upload the card folder to the model repo --hub_model_id")
    p.add_argument(
        "--hub_model_id", metavar="REPO_ID", default=None, help="model repo to upload to, 'namespace/name' "
        "(with --push_to_hub)"
    )  # fmt: skip
    p.add_argument(
        "--hub_token",
        metavar="TOKEN",
        default=None,
        help="Hub token for --push_to_hub (default: HF_TOKEN or the logged-in token; prefer those, a token on "
        "the command line is visible to other users of the machine)",
    )
    p.add_argument(
        "--hub_private_repo",
        action="store_true",
        help="create the repo as private if it does not exist (an existing repo keeps its visibility)",
    )
    # the previous release's names, for one more release
    for old, dest, new in (
        ("--out", "output_dir", "--output_dir"),
        ("--base-model", "base_model", "--base_model"),
        ("--model-name", "model_name", "--model_name"),
        ("--token", "hub_token", "--hub_token"),
    ):
        p.add_argument(old, dest=dest, action=DeprecatedFlag, new=new, help=argparse.SUPPRESS)
    p.add_argument(
        "--scatter-layer",
        dest="scatter_layers",
        action=_DeprecatedAppend,
        new="--scatter_layer",
        help=argparse.SUPPRESS,
    )
    p.add_argument(
        "--push",
        dest="hub_model_id",
        action=_DeprecatedPush,
        new="--push_to_hub --hub_model_id",
        help=argparse.SUPPRESS,
    )
    p.add_argument(
        "--private", dest="hub_private_repo", action=DeprecatedSwitch, new="--hub_private_repo", help=argparse.SUPPRESS
    )
    p.set_defaults(func=_run)


def _check_args(args: argparse.Namespace) -> None:
    """The cheap checks of the options, before the report is read (one line each, exit 2)."""
    from hf_stadyn.hub.card import check_card_folder

    if args.output_dir is None and not args.push_to_hub:
        raise ValueError(
            "nothing to do: give --output_dir DIR to write the card folder, --push_to_hub --hub_model_id REPO_ID "
            "to upload it, or both."
        )
    if args.push_to_hub and args.hub_model_id is None:
        raise ValueError("--push_to_hub needs --hub_model_id REPO_ID, the model repo to upload to ('namespace/name').")
    if args.hub_model_id is not None and not args.push_to_hub:
        raise ValueError(
            f"--hub_model_id {args.hub_model_id} is given without --push_to_hub; add --push_to_hub to upload."
        )
    if args.push_to_hub and (args.hub_model_id.count("/") != 1 or not all(args.hub_model_id.split("/"))):
        raise ValueError(f"--hub_model_id must be a model repo id like 'namespace/name', got {args.hub_model_id!r}.")
    if args.output_dir is not None:
        check_card_folder(args.output_dir, flag="--output_dir")


def _run(args: argparse.Namespace) -> int:
    from hf_stadyn.hub import write_model_card_folder
    from hf_stadyn.report import BiasReport

    _check_args(args)
    report = BiasReport.load(args.report)  # validated: layers present, no NaN (the file named otherwise)
    card_kwargs = {
        "base_model": args.base_model,
        "dataset": args.dataset,
        "model_name": args.model_name,
        "layer": args.layer,
        "license": args.license,
        "repo_id": args.hub_model_id if args.push_to_hub else None,
    }
    if args.output_dir is not None:
        try:
            out = write_model_card_folder(report, args.output_dir, scatter_layers=args.scatter_layers, **card_kwargs)
        except (PermissionError, FileNotFoundError, ValueError):
            raise
        except OSError as e:  # disk full, read-only file system: already one line naming the folder
            raise ValueError(str(e)) from None
        files = sorted(p.name for p in Path(out).iterdir() if p.is_file() and not p.name.startswith("."))
        print(f"wrote the model card of {report.model_id} to {out}: {', '.join(files)}")
    if args.push_to_hub:
        info = _push(report, args, card_kwargs)
        print(f"pushed the model card of {report.model_id} to {args.hub_model_id}: {getattr(info, 'commit_url', info)}")
    return 0


def _push(report, args: argparse.Namespace, card_kwargs: dict):
    from hf_stadyn.hub import push_report
    from hf_stadyn.hub.publish import hub_errors

    with hub_errors(args.hub_model_id):
        return push_report(
            args.hub_model_id,
            report,
            token=args.hub_token,
            private=True if args.hub_private_repo else None,
            scatter_layers=args.scatter_layers,
            card_repo_id=card_kwargs.get("repo_id"),
            **{k: v for k, v in card_kwargs.items() if k != "repo_id"},
        )
