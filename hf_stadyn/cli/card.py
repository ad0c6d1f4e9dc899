"""``stadyn card``: a Hub model-card folder from a bias report, optionally pushed to a model repo.

Thin wrapper over :meth:`hf_stadyn.BiasReport.load`, :func:`hf_stadyn.hub.write_model_card_folder`
and :func:`hf_stadyn.hub.push_report`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "card",
        help="write (and optionally push) a Hub model card from a bias report",
        description=(
            "Write a model-card folder (README.md with the bias tables and model-index results, "
            "bias_report.json and the PNG figures) from a bias report written by `stadyn probe` or "
            "BiasReport.save, and optionally upload it to a Hub model repo. Give --out, --push or both."
        ),
    )
    p.add_argument("report", metavar="REPORT", help="report.json / bias_report.json, or a folder holding one")
    p.add_argument("--out", metavar="DIR", default=None, help="folder to write the card into (created)")
    p.add_argument("--base-model", metavar="ID", default=None, help="Hub id of the model this one was fine-tuned from")
    p.add_argument("--dataset", metavar="ID", default=None, help="Hub id of the dataset the pairs were made from")
    p.add_argument("--model-name", metavar="NAME", default=None, help="name in the card title and model-index")
    p.add_argument("--layer", default=None, help="layer whose values go to the model-index (default: the last)")
    p.add_argument(
        "--scatter-layer",
        dest="scatter_layers",
        action="append",
        metavar="LAYER",
        default=None,
        help="draw the rho_S vs rho_D scatter for this layer (repeatable; default: the last layer)",
    )
    p.add_argument("--license", default=None, help="license of the model, e.g. apache-2.0")
    p.add_argument("--push", metavar="REPO_ID", default=None, help="upload the card folder to this model repo")
    p.add_argument(
        "--token",
        default=None,
        help="Hub token for --push (default: HF_TOKEN or the logged-in token; prefer those, a token on the "
        "command line is visible to other users of the machine)",
    )
    p.add_argument("--private", action="store_true", help="create the repo as private if it does not exist")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from hf_stadyn.hub import write_model_card_folder
    from hf_stadyn.report import BiasReport

    if args.out is None and args.push is None:
        raise ValueError(
            "nothing to do: give --out DIR to write the card folder, --push REPO_ID to upload it, or both."
        )
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out!r} exists and is not a folder; give a folder path.")
    if args.push is not None and (args.push.count("/") != 1 or not all(args.push.split("/"))):
        raise ValueError(f"--push must be a model repo id like 'namespace/name', got {args.push!r}.")
    report = BiasReport.load(args.report)
    card_kwargs = {
        "base_model": args.base_model,
        "dataset": args.dataset,
        "model_name": args.model_name,
        "layer": args.layer,
        "license": args.license,
    }
    if args.out is not None:
        out = write_model_card_folder(report, args.out, scatter_layers=args.scatter_layers, **card_kwargs)
        files = sorted(p.name for p in Path(out).iterdir() if p.is_file() and not p.name.startswith("."))
        print(f"wrote the model card of {report.model_id} to {out}: {', '.join(files)}")
    if args.push is not None:
        info = _push(report, args, card_kwargs)
        print(f"pushed the model card of {report.model_id} to {args.push}: {getattr(info, 'commit_url', info)}")
    return 0


def _push(report, args: argparse.Namespace, card_kwargs: dict):
    from hf_stadyn.hub import push_report

    try:
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    except ImportError:  # pragma: no cover - older huggingface_hub
        from huggingface_hub.utils import HfHubHTTPError, OfflineModeIsEnabled  # type: ignore[no-redef]

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    network_errors: tuple[type[BaseException], ...] = (OSError,)
    for mod in ("httpx2", "httpx"):  # huggingface_hub 2.x talks httpx2; 1.x httpx
        with contextlib.suppress(ImportError, AttributeError):
            network_errors += (importlib.import_module(mod).TransportError,)
    try:
        return push_report(
            args.push,
            report,
            token=args.token,
            private=True if args.private else None,
            scatter_layers=args.scatter_layers,
            **card_kwargs,
        )
    except OfflineModeIsEnabled:
        raise ValueError("cannot push: HF_HUB_OFFLINE is set; unset it (and check HF_ENDPOINT) to upload.") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        hint = {
            401: "the token is missing or invalid: pass --token or set HF_TOKEN (a write token)",
            403: "the token may not write to this repo: use a write token of an account that owns it",
            404: "the repo or namespace was not found: check the repo id",
        }.get(int(status or 0), "check the repo id, the token and HF_ENDPOINT")
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"pushing to {args.push} at {endpoint} failed ({first}); {hint}.") from None
    except network_errors as e:  # connection refused, DNS failure, timeouts
        raise ValueError(
            f"cannot reach the Hub at {endpoint} to push {args.push} ({e}); check the network and HF_ENDPOINT."
        ) from None
