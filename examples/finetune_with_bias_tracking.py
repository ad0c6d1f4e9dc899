"""Fine-tune a tiny video classifier on StaDyn-Synth and track its static/dynamic bias while it trains.

What it does (docs/method.md §6 for the measurement schedule, §8 for training dynamics, §9 for the data):

1. renders the StaDyn-Synth "trap" split: the label is the motion class, and in training a static cue
   (the object's appearance) agrees with the label in ``--trap-share`` of the clips, so a model can
   cheat by reading appearance; the "aligned" / "conflicting" test sets tell the two apart;
2. fine-tunes a classifier (default: the small VideoMAE embedded in hf-stadyn; ``--model videomae``
   trains a new tiny one from scratch) with ``hf_stadyn.training.run_classification``
   (``transformers.TrainingArguments`` + ``StadynArguments(track_bias=True)`` on ``transformers.Trainer``):
   the probing engine runs on fixed probe pairs every ``--track-every`` optimizer steps (and before the first step) and appends a record to ``bias_history.jsonl``;
3. prints the bias-history records and the final accuracies.

The embedded model already reads motion, so it scores on both test sets; to see whether a model takes
the static shortcut, train a new one from scratch (``--model videomae --num-train 2000 --epochs 4``)
and compare its "aligned" and "conflicting" accuracies and its static share over the steps.

Run (well under a minute on a laptop CPU)::

    python examples/finetune_with_bias_tracking.py --out runs/finetune_example
    python examples/finetune_with_bias_tracking.py --num-train 2000 --epochs 4 --track-every 20

Every random choice (clips, model init of a new head, data order, probe pairs) comes from ``--seed``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import hf_stadyn  # the front door: its names load on first use, so --help stays instant


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--model", default=None, help="checkpoint folder to fine-tune, or videomae / timesformer (default: embedded)"
    )
    p.add_argument("--out", default="runs/finetune_example", help="run folder (model, metrics, bias history)")
    p.add_argument("--num-train", type=int, default=48, help="training clips")
    p.add_argument("--num-eval", type=int, default=16, help="clips per test set (aligned, conflicting)")
    p.add_argument("--trap-share", type=float, default=0.99, help="share of training clips whose static cue agrees")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--track-every", type=int, default=3, help="optimizer steps between bias measurements")
    p.add_argument("--probe-pairs", type=int, default=16, help="fixed probe pairs per measurement (>= 4)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    # imported here, after the arguments are parsed, so --help does not wait for torch / transformers
    from transformers import TrainingArguments

    from hf_stadyn.models.auto import DEFAULT_MODEL_DIR
    from hf_stadyn.training import StadynArguments, build_classifier, run_classification, synth_datasets
    from hf_stadyn.training.classification import ClassificationTrainingConfig

    model_name = args.model or str(DEFAULT_MODEL_DIR)  # the embedded tiny VideoMAE, trained on StaDyn-Synth motion

    # 1. the data: 8 frames of 32 x 32, the embedded model's input. The embedded model was trained on
    #    four motions and four appearances (its training.json); keep those classes so its head fits.
    extra = {}
    info = DEFAULT_MODEL_DIR / "training.json"
    if args.model is None and info.is_file():
        extra = json.loads(info.read_text(encoding="utf-8")).get("synth_config", {})
        extra = {k: tuple(v) if isinstance(v, list) else v for k, v in extra.items()}
    synth = hf_stadyn.SynthConfig(num_frames=8, size=32, **extra)
    train, evals, label_names = synth_datasets(
        "trap", num_train=args.num_train, num_eval=args.num_eval, seed=args.seed, trap_share=args.trap_share,
        config=synth,
    )  # fmt: skip

    # 2. the model: a checkpoint folder is fine-tuned (a new head if its label count differs);
    #    "videomae" / "timesformer" builds a new tiny one sized by num_frames / image_size
    sizes = ClassificationTrainingConfig(output_dir=str(out), model=model_name, num_frames=8, image_size=32,
                                         seed=args.seed)  # fmt: skip
    model = build_classifier(sizes, len(label_names), label_names)

    # 3. the run: transformers.TrainingArguments (every Trainer option under its own name) plus our
    #    options (StadynArguments: bias tracking, StaticDropout, augmentation) on transformers.Trainer
    training_args = TrainingArguments(
        output_dir=str(out), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=32, learning_rate=args.learning_rate, lr_scheduler_type="cosine",
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, logging_steps=1, seed=args.seed,
        use_cpu=True, report_to="none", disable_tqdm=True, dataloader_pin_memory=False,
    )  # fmt: skip
    options = StadynArguments(
        track_bias=True,  # the bias history: hf_stadyn.probe on fixed pairs, on a schedule
        track_every=args.track_every,
        probe_pairs=args.probe_pairs,
        overwrite=True,  # this example replaces an earlier run in --out
    )
    result = run_classification(training_args, train, evals, model=model, options=options, label_names=label_names)

    # 4. what was written: one JSON record per measurement (step 0 = before training)
    records = [json.loads(line) for line in result.bias_history.read_text(encoding="utf-8").splitlines() if line]
    last_layer = next(reversed(records[0]["layers"]))
    print(f"bias history ({len(records)} records, {result.bias_history}); layer {last_layer!r}:")
    print(f"{'step':>5} {'epoch':>6} {'dynamic %':>9} {'static %':>9} {'s_D':>7} {'s_S':>7}")
    for r in records:
        lb = r["layers"][last_layer]
        epoch = "" if r["epoch"] is None else f"{r['epoch']:.2f}"
        print(
            f"{r['step']:>5} {epoch:>6} {lb['percent']['dynamic']:>9.1f} {lb['percent']['static']:>9.1f} "
            f"{lb['s_dynamic']:>7.3f} {lb['s_static']:>7.3f}"
        )
    print("final accuracies:")
    for name in evals:
        print(f"  {name:<12} {result.final[f'eval/{name}/accuracy']:.3f}")
    print(f"model saved to {result.model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
