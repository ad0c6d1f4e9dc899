"""Build the released checkpoint folders in ``model_cards/`` (issue 17): weights, configs, bias report, card.

Each release is one finished run of ``scripts/debias_study.py`` setting (a) (the style-invariant trap; seed 0 of
plain fine-tuning, StaticDropout, StillMix, the best method on the study's validation set, and static-pair
decorrelation, the method built on our own estimator) plus the embedded default of ``stadyn probe``. For each:

1. ``config.json``, ``model.safetensors`` and ``preprocessor_config.json`` are copied from the run;
2. ``stadyn probe --model model_cards/<name> --num_pairs 1500 --reference`` (as ``stadyn probe`` reads its
   embedded default: StaDyn-Synth motion clips of the model's classes, the reference in the same pass) writes the bias report;
3. ``training.json`` records the command that rebuilds the weights, the seed, epochs, data, method and its
   settings, and the task accuracies the study measured on the held-out trap clips;
4. the card (README.md, Hub-complete) and the figures are written from the report and ``training.json`` for
   the Hub id ``hf-stadyn/<name>``, as ``stadyn publish`` would rebuild them;

and ``model_cards/README.md`` compares the releases side by side. Run it after the study's setting (a) is done::

    PYTHONPATH=. python scripts/build_releases.py                  # all releases (minutes per release)
    PYTHONPATH=. python scripts/build_releases.py --only stadyn-tiny-videomae-trap-stillmix
    PYTHONPATH=. python scripts/build_releases.py --cards-only     # cards only, from the folders' reports
    PYTHONPATH=. python scripts/build_releases.py --readme-only    # the comparison README from the folders
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "model_cards"
STUDY = ROOT / "outputs" / "debias_study"
ORG = "hf-stadyn"
#: the embedded default's reading settings (`stadyn probe` with no arguments), so all releases read alike
PROBE_ARGS = ["--num_pairs", "1500", "--reference"]
WEIGHTS = ("config.json", "model.safetensors", "preprocessor_config.json")
STUDY_CMD = "PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/debias_study.py --settings a --only {run}"
TRAP_DATA = (
    "StaDyn-Synth trap split, style-invariant (shape / layout) cue, 99 % of training clips aligned: 3000 training "
    "clips (seed {seed}); tested on 500 aligned and 500 conflicting held-out clips"
)


#: the held-out trap test set of scripts/debias_study.py setting (a) (its ``pretrain`` data): ``SynthDataset("trap",
#: clips, SynthConfig(motions, num_appearances), seed=seed, trap_share, trap_cue, test_variant=v, train=False)``
EVAL_SET = {"split": "trap", "clips": 500, "seed": 999, "trap_share": 0.99, "trap_cue": "invariant",
            "variants": ["aligned", "conflicting"]}  # fmt: skip


@dataclass(frozen=True)
class Release:
    name: str
    run: str | None  # debias_study run (setting a); None: the embedded default
    method: str
    summary: str  # one line: what it is for


RELEASES = (
    Release("stadyn-tiny-videomae-synth-motion", None, "plain training on the motion split",
            "the embedded default of `stadyn probe`: a motion-trained model whose reading the README quotes"),
    Release("stadyn-tiny-videomae-trap-plain", "plain_s0", "plain fine-tuning",
            "the baseline: plain fine-tuning on the trap (this seed is one of the better ones; 51.3 % conflicting over 8 seeds)"),
    Release("stadyn-tiny-videomae-trap-staticdropout", "static_dropout_s0", "StaticDropout",
            "StaticDropout (the paper's method) on the same trap: shows it does not remove a style-invariant cue"),
    Release("stadyn-tiny-videomae-trap-stillmix", "stillmix_s0", "StillMix (still-frame mixing)",
            "the debiaser chosen in advance on the study's validation set: far fewer conflicting clips follow the cue"),
    Release("stadyn-tiny-videomae-trap-decorrelation", "decor_cross_cov_s0",
            "static-pair decorrelation (cross_cov)",
            "decorrelation built on the estimator's own static pairs: the fewest frozen clips follow the cue"),
)  # fmt: skip


def _fail(msg: str) -> None:
    print(f"build_releases.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def _source(rel: Release) -> tuple[Path, dict]:
    """The weights folder and the study's run record (the embedded default: its own training.json)."""
    if rel.run is None:
        from hf_stadyn.models.auto import DEFAULT_MODEL_DIR

        return DEFAULT_MODEL_DIR, json.loads((DEFAULT_MODEL_DIR / "training.json").read_text())
    run = STUDY / "a" / "runs" / rel.run
    if not (run / "run.json").is_file():
        _fail(f"run {run} is not finished; run `{STUDY_CMD.format(run=rel.run)}` first")
    return run / "model", json.loads((run / "run.json").read_text())


def _training(rel: Release, record: dict) -> dict:
    """training.json: what rebuilds the weights, what the study measured on the held-out clips, and the card's
    description (kept when ``stadyn publish`` rebuilds the card for another repo id)."""
    out = _record(rel, record)
    out["description"] = f"{rel.summary[0].upper()}{rel.summary[1:]}. Trained with hf-stadyn: {rel.method}."
    return out


def _record(rel: Release, record: dict) -> dict:
    if rel.run is None:
        return {
            "command": "PYTHONPATH=. python scripts/train_default_model.py",
            "method": rel.method,
            "seed": record["seed"],
            "seeds": [record["seed"]],
            "epochs": record["epochs"],
            "learning_rate": record["learning_rate"],
            "data": f"StaDyn-Synth motion split ({record['train_clips']} training clips, 4 motions x 4 appearances, "
            f"seed {record['seed']})",
            "dataset_config": "motion",
            "base_model": None,
            "synth_config": record["synth_config"],
            "accuracy": {"test": round(float(record["final"]["eval/test/accuracy"]), 4)},
        }
    sys.path.insert(0, str(ROOT / "scripts"))
    import staticdropout_study as sds

    scale = sds.Scale()
    seed = int(record["seed"])
    cfg = json.loads((STUDY / "a" / "runs" / rel.run / "model" / "config.json").read_text())
    debias = dict((cfg.get("stadyn") or {}).get("debias") or (cfg.get("stadyn") or {}).get("static_dropout") or {})
    if "static_channels" in debias:  # the set itself stays in config.json
        debias["static_channels"] = f"{len(debias['static_channels'])} channels (config.json stadyn.static_dropout)"
    return {  # "debias": the settings the run wrote into config.json
        "command": STUDY_CMD.format(run=rel.run),
        "method": rel.method,
        "debias": debias,
        "params": record["params"],
        "seed": seed,
        "seeds": [seed],
        "epochs": scale.ft_epochs,
        "learning_rate": scale.ft_lr,
        "steps": record["steps"],
        "data": TRAP_DATA.format(seed=seed),
        "dataset_config": "trap",
        "base_model": None,
        "pretrained_from": "the study's joint pre-training on StaDyn-Synth (motion + appearance labels; "
        "outputs/debias_study/a/pretrained/joint, built by the same command)",
        "synth_config": {"motions": list(sds.MOTIONS), "num_appearances": sds.A},
        "accuracy": {
            "test_aligned": round(float(record["aligned_accuracy"]), 4),
            "test_conflicting": round(float(record["conflicting_accuracy"]), 4),
        },
        "evaluation": dict(EVAL_SET, seed_note="held-out clips (train=False), never seen in training"),
        "behaviour": {
            k: round(float(record[k]), 4)
            for k in ("conflicting_follows_cue", "frozen_follows_cue", "shuffle_sensitivity")
        },
        "seconds_per_step": round(float(record["seconds_per_step"]), 4),
    }


def card_kwargs(rel: Release, training: dict) -> dict:
    """What the card of ``rel`` is built with (tests/test_releases.py rebuilds it to check it is current)."""
    return {"repo_id": f"{ORG}/{rel.name}", "training": training}  # the description is in training.json


def build(rel: Release, cards_only: bool = False) -> Path:
    from hf_stadyn.hub import write_model_card_folder
    from hf_stadyn.report import BiasReport

    src, record = _source(rel)
    training = _training(rel, record)
    folder = OUT / rel.name
    if cards_only:  # training.json and the card from the folder's bias_report.json (no probing)
        (folder / "training.json").write_text(json.dumps(training, indent=2, sort_keys=True) + "\n")
        write_model_card_folder(BiasReport.load(folder / "bias_report.json"), folder, **card_kwargs(rel, training))
        print(f"wrote the card of {folder}", flush=True)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for f in WEIGHTS:
        shutil.copyfile(src / f, folder / f)
    # training.json first: `stadyn probe` renders StaDyn-Synth clips of the model's own classes from its synth_config
    (folder / "training.json").write_text(json.dumps(training, indent=2, sort_keys=True) + "\n")
    with tempfile.TemporaryDirectory(prefix="stadyn-release-") as tmp:
        cmd = [
            "stadyn",
            "probe",
            "--model",
            f"model_cards/{rel.name}",
            "--output_dir",
            tmp,
            "--disable_tqdm",
        ] + PROBE_ARGS
        subprocess.run(cmd, cwd=ROOT, check=True)
        report = BiasReport.load(next(Path(tmp).rglob("report.json")))
    write_model_card_folder(report, folder, **card_kwargs(rel, training))
    print(f"wrote {folder}", flush=True)
    return folder


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def readme() -> str:
    """model_cards/README.md: the releases side by side, from their folders (measured figures only)."""
    from hf_stadyn.report import BiasReport
    from hf_stadyn.report.headline import share_text

    rows = []
    for rel in RELEASES:
        folder = OUT / rel.name
        if not (folder / "bias_report.json").is_file():
            continue
        tr = json.loads((folder / "training.json").read_text())
        rep = BiasReport.load(folder / "bias_report.json")
        acc, beh = tr["accuracy"], tr.get("behaviour", {})
        pre, blk = rep.layers["pre_classifier"], rep.layers[rep.layer_names[-2]]
        rows.append(
            f"| [`{rel.name}`]({rel.name}/) | {rel.method} | "
            + (f"{_pct(acc['test_aligned'])} / {_pct(acc['test_conflicting'])}" if "test_aligned" in acc
               else f"{_pct(acc['test'])} (motion test)")
            + f" | {_pct(beh['conflicting_follows_cue']) if beh else '-'}"
            f" | {_pct(beh['frozen_follows_cue']) if beh else '-'}"
            f" | {share_text(pre, 'dynamic')} / {share_text(pre, 'static')}"
            f" | {share_text(blk, 'dynamic')} / {share_text(blk, 'static')} | {rel.summary} |"
        )  # fmt: skip
    lines = [
        "# Released checkpoints",
        "",
        "Each folder is a complete Hub model repo, ready for `stadyn publish model_cards/<name> --repo_id "
        f"{ORG}/<name>`: weights (safetensors), `config.json`, `preprocessor_config.json`, the card (`README.md`),",
        "`bias_report.json` (the reading in the card) and `training.json` (the command and seed that rebuild the "
        "weights, the task accuracies). Every folder loads in plain transformers, without hf-stadyn:",
        "",
        "```python",
        "from transformers import AutoModelForVideoClassification, AutoVideoProcessor",
        "",
        'model = AutoModelForVideoClassification.from_pretrained("model_cards/stadyn-tiny-videomae-trap-stillmix")',
        "```",
        "",
        "All are tiny VideoMAEs (4 blocks, hidden 64, 8 frames of 32 x 32, 4 motion classes: left, right, up, "
        "down) trained on StaDyn-Synth; they are reference models for the method, not models for real footage.",
        "The four trap models are seed 0 of `scripts/debias_study.py` setting (a) (docs/debias_study.md has all 8 "
        "seeds with paired intervals); accuracy is on the trap's 500 aligned / 500 conflicting held-out clips "
        "(conflicting: the static cue points to another class), *follows cue* is the share of conflicting clips "
        "classified as the cue's class, *frozen follows cue* the same on frozen clips (the first frame repeated: "
        "only the static cue). The readings are `stadyn probe --model model_cards/<name> --num_pairs 1500 --reference` (StaDyn-Synth "
        "pairs, 95 % intervals by source video).",
        "",
        "| checkpoint | method | accuracy aligned / conflicting (%) | follows cue (%) | frozen follows cue (%) | "
        "pre_classifier dynamic / static share (%) | last block dynamic / static share (%) | for |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Rebuild: `PYTHONPATH=. python scripts/build_releases.py` (after `scripts/debias_study.py`); each "
        "folder's `training.json` gives the command for its weights.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="comma-separated release names")
    ap.add_argument("--readme-only", action="store_true", help="only model_cards/README.md from the folders")
    ap.add_argument("--cards-only", action="store_true", help="training.json, cards and README from the folders' "
                    "bias_report.json (no probing; after a change to the card code)")  # fmt: skip
    args = ap.parse_args(argv)
    names = {r.name for r in RELEASES}
    only = [n.strip() for n in args.only.split(",")] if args.only else sorted(names)
    unknown = sorted(set(only) - names)
    if unknown:
        _fail(f"--only: unknown release {', '.join(unknown)}; choose from {', '.join(sorted(names))}")
    if not args.readme_only:
        for rel in RELEASES:
            if rel.name in only:
                _source(rel)  # every input checked before any work
        for rel in RELEASES:
            if rel.name in only:
                build(rel, cards_only=args.cards_only)
    (OUT / "README.md").write_text(readme())
    print(f"wrote {OUT / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
