"""``stadyn register-metric``: make ``evaluate.load("static_dynamic_bias")`` work offline."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "register-metric",
        help="register the static_dynamic_bias evaluate module in evaluate's modules cache",
        description=(
            "Copy the static_dynamic_bias evaluate module shipped with hf_stadyn into "
            "$HF_MODULES_CACHE (default $HF_HOME/modules) so that evaluate.load('static_dynamic_bias') "
            "works offline from any directory. Run it again after changing HF_HOME."
        ),
    )
    p.add_argument("--cache-dir", default=None, help="modules cache to write to (default: evaluate's)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from hf_stadyn.metric import register_metric

    dest = register_metric(args.cache_dir)
    print(f"registered static_dynamic_bias at {dest}")
    return 0
