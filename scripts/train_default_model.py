"""Train the embedded default model shipped in hf_stadyn/assets/default_model.

A tiny VideoMAE (hidden 64, 4 blocks, patch 8, tubelet 2; 8 frames of 32x32) trained on StaDyn-Synth
motion classes (label = one of four directions left/right/up/down, appearance random among four
classes), so it reads clearly "dynamic" next to the same architecture at initialisation.
Deterministic from --seed; a few minutes on one CPU core.

    python scripts/train_default_model.py            # writes hf_stadyn/assets/default_model
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch

from hf_stadyn.models.auto import DEFAULT_MODEL_DIR
from hf_stadyn.synth import SynthConfig
from hf_stadyn.training.classification import ClassificationTrainingConfig, synth_datasets, train_classification

#: The default model's classes (four directions: what a tiny transformer learns reliably on CPU).
DEFAULT_MOTIONS = ("left", "right", "up", "down")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-clips", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    synth = SynthConfig(motions=DEFAULT_MOTIONS, num_appearances=4)
    train, evals, names = synth_datasets(
        "motion", num_train=args.train_clips, num_eval=1000, seed=args.seed, config=synth
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ClassificationTrainingConfig(
            output_dir=tmp, model="videomae", epochs=args.epochs, seed=args.seed, cpu=True,
            learning_rate=args.learning_rate,
            track_bias=False, progress=False, save_total_limit=1,
        )  # fmt: skip
        res = train_classification(cfg, train, evals, label_names=names)
        out = Path(args.out)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(res.model_dir, out)
    acc = res.final
    (out / "training.json").write_text(
        json.dumps(
            {
                "script": "scripts/train_default_model.py",
                "seed": args.seed,
                "train_clips": args.train_clips,
                "epochs": args.epochs,
                "learning_rate": args.learning_rate,
                "split": "motion",
                "synth_config": {"motions": list(DEFAULT_MOTIONS), "num_appearances": 4},
                "final": acc,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    print(json.dumps(acc, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
