"""``stadyn publish``: push a folder (checkpoint + card, card folder, Space, metric Space) to a Hub repo.

Example::

    stadyn publish model_cards/my-model --repo_id me/my-model --revision v1.0
    stadyn publish spaces_app --repo_id me/stadyn-demo --dry_run
    stadyn publish "$(python -c 'import hf_stadyn.metric as m; print(m.metric_path())')" --repo_id me/static_dynamic_bias

Thin wrapper over :func:`hf_stadyn.hub.publish_folder` (docs/hub.md): creates the repo if needed, merges
our card into an existing README.md (the user's text survives), uploads only changed files, tags the
commit with ``--revision`` and prints the commit URL; ``--dry_run`` lists what would change.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

_EPILOG = """what is published:
  a model folder (config.json, model.safetensors, ...) with bias_report.json: the card README.md is
    (re)built for --repo_id from bias_report.json and training.json when the folder has none or ours;
  a Space folder (README front matter with sdk:): the hf-stadyn wheel is built into wheels/ and
    requirements.txt points at it (the Spaces builder installs it from the Space repo itself);
  any other folder: its files as they are.
an existing README.md on the Hub keeps its text; ours goes between hf-stadyn markers. Errors: one line,
exit 2 (bad token, no write access, Hub unreachable, an existing tag at another commit)."""


def register(sub: argparse._SubParsersAction) -> None:
    from hf_stadyn.hub.publish import REPO_TYPES

    p = sub.add_parser(
        "publish",
        help="push a checkpoint/card folder, a Space or the metric Space to a Hub repo (merging the card)",
        description="Publish FOLDER to the Hub repo --repo_id: create it if needed, merge our card into an existing "
        "README.md, upload only the changed files, tag the commit (--revision) and print the commit URL.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", metavar="FOLDER", help="the folder to publish")
    p.add_argument("--repo_id", required=True, metavar="ID", help="Hub repo 'namespace/name'")
    p.add_argument(
        "--repo_type", choices=REPO_TYPES, default=None, help="repo type (default: space for a folder whose README "
        "names an sdk, dataset for a StaDyn-Synth export, else model)"
    )  # fmt: skip
    p.add_argument("--private", action="store_true", help="create the repo as private (an existing one keeps its "
                   "visibility)")  # fmt: skip
    p.add_argument("--revision", metavar="TAG", default=None, help="tag the published commit, e.g. v1.0 (an "
                   "existing tag must point at that commit)")  # fmt: skip
    p.add_argument("--branch", metavar="BRANCH", default=None, help="branch to commit to (default: main)")
    p.add_argument("--dry_run", action="store_true", help="list the files that would be uploaded; change nothing")
    p.add_argument(
        "--hub_token",
        metavar="TOKEN",
        default=None,
        help="Hub token (default: HF_TOKEN or the logged-in token; prefer those, a token on the command line is "
        "visible to other users of the machine)",
    )
    p.add_argument("--commit_message", metavar="TEXT", default=None, help="default: 'Publish with hf-stadyn'")
    p.add_argument("--wheel", metavar="PATH", default=None, help="Space: this hf-stadyn wheel instead of building one "
                   "from the source checkout")  # fmt: skip
    p.set_defaults(func=_run)


def _rebuild_card(stage: Path, repo_id: str) -> bool:
    """A model folder with bias_report.json: write our card for ``repo_id`` into ``stage`` (README absent or ours)."""
    from hf_stadyn.hub import CARD_REPORT_JSON, bias_model_card
    from hf_stadyn.hub.merge import has_markers, split_front_matter
    from hf_stadyn.report import BiasReport

    if not (stage / CARD_REPORT_JSON).is_file():
        return False
    readme = stage / "README.md"
    if readme.is_file() and not has_markers(split_front_matter(readme.read_text(encoding="utf-8"))[1]):
        return False  # a hand-written card: published as it is
    report = BiasReport.load(stage / CARD_REPORT_JSON)
    training = None
    if (stage / "training.json").is_file():
        try:
            training = json.loads((stage / "training.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{stage.name}/training.json is not valid JSON ({e}); fix or remove it.") from None
    figures = {k: v for k, v in report.figure_files().items() if (stage / v).is_file()}
    card = bias_model_card(report, repo_id=repo_id, training=training, figures=figures)
    readme.write_text(str(card), encoding="utf-8")
    return True


def _run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from hf_stadyn.hub.publish import _check_repo_id, detect_repo_type, hub_errors, publish_folder

    _check_repo_id(args.repo_id, "--repo_id")
    folder = Path(args.folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"FOLDER {args.folder} does not exist or is not a folder; give the folder to publish.")
    repo_type = args.repo_type or detect_repo_type(folder)
    scripts = [f.stem for f in folder.glob("*.py") if f.stem != "app" and (folder / "README.md").is_file()]
    name = args.repo_id.split("/")[1]
    if repo_type == "space" and "static_dynamic_bias" in scripts and name != "static_dynamic_bias":
        print(
            f"note: evaluate.load('{args.repo_id}') looks for {name}.py in the Space; name the Space "
            "static_dynamic_bias so that evaluate.load('<owner>/static_dynamic_bias') finds the metric script."
        )
    with tempfile.TemporaryDirectory(prefix="stadyn-publish-cli-") as tmp:
        src = folder
        if repo_type == "model" and (folder / "bias_report.json").is_file():
            src = Path(tmp) / folder.resolve().name
            shutil.copytree(folder, src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
            _rebuild_card(src, args.repo_id)
        with hub_errors(args.repo_id, "publishing to" if not args.dry_run else "checking"):
            result = publish_folder(
                src,
                args.repo_id,
                repo_type=repo_type,
                private=True if args.private else None,
                revision=args.revision,
                branch=args.branch,
                dry_run=args.dry_run,
                token=args.hub_token,
                commit_message=args.commit_message,
                wheel=args.wheel,
            )
    print(result.summary())
    if args.dry_run and result.unchanged:
        print(f"unchanged: {', '.join(result.unchanged)}")
    return 0
