"""Train the embedded default model shipped in hf_stadyn/assets/default_model.

A tiny VideoMAE (hidden 64, 4 blocks, patch 8, tubelet 2; 8 frames of 32x32) trained on StaDyn-Synth
motion classes (label = one of four directions left/right/up/down, appearance random among four
classes), so it reads clearly "dynamic" next to the same architecture at initialisation.
Deterministic from --seed; a few minutes on one CPU core.

    python scripts/train_default_model.py            # writes hf_stadyn/assets/default_model (manual)
    python scripts/train_default_model.py --output_dir /tmp/m --train_clips 32 --eval_clips 8 --num_train_epochs 1
    python scripts/train_default_model.py --smoke --output_dir /tmp/m   # seconds (CI), numbers meaningless

``--smoke`` (alias ``--quick``): 32 training clips, 8 held-out clips, one epoch; it never writes the
shipped model: without ``--output_dir`` it writes into a new temporary folder and prints it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import TrainingArguments

from hf_stadyn.models.auto import DEFAULT_MODEL_DIR
from hf_stadyn.synth import SynthConfig
from hf_stadyn.training import StadynArguments, build_classifier, run_classification, synth_datasets
from hf_stadyn.training.classification import ClassificationTrainingConfig

#: The default model's classes (four directions: what a tiny transformer learns reliably on CPU).
DEFAULT_MOTIONS = ("left", "right", "up", "down")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--output_dir",
        "--out",
        default=None,
        help=f"where the model goes (replaced; default {DEFAULT_MODEL_DIR}, with --smoke a temporary folder)",
    )
    ap.add_argument("--smoke", "--quick", action="store_true",
                    help="32 clips, 1 epoch: seconds, numbers meaningless; never writes the shipped model")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="seed of the clips, the init and the data order")
    ap.add_argument("--train_clips", "--train-clips", type=int, default=6000, help="StaDyn-Synth motion clips")
    ap.add_argument("--eval_clips", type=int, default=1000, help="held-out clips for the recorded accuracy")
    ap.add_argument("--num_train_epochs", "--epochs", type=int, default=8, help="passes over the clips")
    ap.add_argument("--learning_rate", "--learning-rate", type=float, default=1e-3, help="AdamW peak rate (cosine)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    if args.smoke:
        args.train_clips, args.eval_clips, args.num_train_epochs = 32, 8, 1
        if args.output_dir is None:
            args.output_dir = tempfile.mkdtemp(prefix="stadyn-default-model-smoke-")
        elif Path(args.output_dir).resolve() == Path(DEFAULT_MODEL_DIR).resolve():
            raise SystemExit(
                f"--smoke never replaces the shipped model {DEFAULT_MODEL_DIR}; pass another --output_dir."
            )
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the script runs)")
    elif args.output_dir is None:
        args.output_dir = str(DEFAULT_MODEL_DIR)
    torch.set_num_threads(args.threads)
    synth = SynthConfig(motions=DEFAULT_MOTIONS, num_appearances=4)
    train, evals, names = synth_datasets(
        "motion", num_train=args.train_clips, num_eval=args.eval_clips, seed=args.seed, config=synth
    )
    with tempfile.TemporaryDirectory() as tmp:
        # transformers.Trainer (StadynTrainer) with TrainingArguments; a new tiny VideoMAE
        model = build_classifier(ClassificationTrainingConfig(output_dir=tmp, model="videomae", seed=args.seed),
                                 len(names), names)  # fmt: skip
        targs = TrainingArguments(
            output_dir=tmp, num_train_epochs=args.num_train_epochs, per_device_train_batch_size=32,
            per_device_eval_batch_size=64, learning_rate=args.learning_rate, weight_decay=0.05, warmup_steps=0.1,
            lr_scheduler_type="cosine", eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
            logging_strategy="epoch", seed=args.seed, use_cpu=True, report_to="none", disable_tqdm=True,
            dataloader_pin_memory=False,
        )  # fmt: skip
        res = run_classification(targs, train, evals, model=model, options=StadynArguments(track_bias=False),
                                 label_names=names)  # fmt: skip
        out = Path(args.output_dir)
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
                "epochs": args.num_train_epochs,
                "learning_rate": args.learning_rate,
                "split": "motion",
                "synth_config": {"motions": list(DEFAULT_MOTIONS), "num_appearances": 4},
                "final": acc,
                **({"smoke": True} if args.smoke else {}),
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    print(json.dumps(acc, indent=2, sort_keys=True))
    print(f"model in {out}")


if __name__ == "__main__":
    main()
