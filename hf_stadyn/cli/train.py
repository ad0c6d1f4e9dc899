"""``stadyn train``: train a model on StaDyn-Synth (``--task avos``: a two-stream segmenter).

Example::

    stadyn train --task avos --fusion gated --cross-connection gated_bidirectional -o runs/avos_gbx

writes ``runs/avos_gbx/`` with the checkpoint (``config.json``, ``model.safetensors`` and the remote-code
files) and ``metrics.json`` (training losses; J, F, mIoU, success AUC on normal and camouflage test
clips). The folder appears only when everything succeeded (written to a temporary sibling, then
renamed).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

__all__ = ["register"]

logger = logging.getLogger(__name__)

TASKS = ("classification", "avos")


from hf_stadyn.cli._types import DeprecatedFlag, fraction, int_list, nonneg_int, positive_int, rate  # noqa: E402

# Literal copies of hf_stadyn.models.configuration_avos.FUSION_TYPES / CROSS_CONNECTION_TYPES, so that
# building the parser does not import transformers (every `stadyn` call would pay for it);
# tests/test_avos_cli.py checks that they match.
FUSION_TYPES = ("concat", "gated", "convex")
CROSS_CONNECTION_TYPES = ("none", "motion_to_appearance", "bidirectional", "gated_bidirectional")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model on StaDyn-Synth (--task avos: two-stream video object segmentation)",
        description=(
            "Train a model on StaDyn-Synth and evaluate it. --task avos trains a two-stream (RGB + optical "
            "flow) segmenter on normal and camouflage clips and reports J, F, mIoU and the success-curve AUC."
        ),
    )
    p.add_argument("--task", required=True, choices=TASKS, help="what to train")
    p.add_argument("-o", "--output-dir", required=True, help="folder for the checkpoint and metrics.json")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the init and the shuffling (default 0)")
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--progress", action="store_true", help="show progress bars")
    g = p.add_argument_group("avos")
    g.add_argument("--fusion", choices=FUSION_TYPES, default="concat", help="fusion after each level")
    g.add_argument(
        "--cross-connection", choices=CROSS_CONNECTION_TYPES, default="none", help="cross-connections at levels 3-5"
    )
    g.add_argument("--train-clips", type=positive_int, default=200, help="training clips (default 200)")
    g.add_argument(
        "--camouflage-fraction", type=fraction, default=0.5,
        help="share of training clips in camouflage mode (default 0.5)",
    )  # fmt: skip
    g.add_argument("--test-clips", type=positive_int, default=40, help="test clips per mode (default 40)")
    g.add_argument("--size", type=positive_int, default=64, help="frame size in pixels (default 64)")
    g.add_argument("--num-frames", type=positive_int, default=8, help="frames per clip (default 8)")
    g.add_argument(
        "--hidden-sizes", type=int_list, default=[8, 16, 24, 32],
        help="ResNet stage widths of each stream, comma-separated (default 8,16,24,32)",
    )  # fmt: skip
    g.add_argument("--flow-method", default="dis", help="optical flow method (hf_stadyn.video.compute_flow)")
    _add_classification_arguments(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.task == "avos":
        return _train_avos(args)
    return _train_classification(args)


def _prepare_output(path: str, overwrite: bool) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output-dir {out} exists and is not a folder; choose another path.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--output-dir {out} is not empty; pass --overwrite to replace it or choose another folder.")
    return out


def _train_avos(args: argparse.Namespace) -> int:
    from hf_stadyn.training.avos import AVOSSynthRecipe, train_avos_on_synth

    if not (args.learning_rate > 0):
        raise ValueError(f"--learning-rate must be positive, got {args.learning_rate}.")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}.")
    out = _prepare_output(args.output_dir, args.overwrite)
    recipe = AVOSSynthRecipe(
        fusion=args.fusion, cross_connection=args.cross_connection, hidden_sizes=tuple(args.hidden_sizes),
        size=args.size, num_frames=args.num_frames, train_clips=args.train_clips, test_clips=args.test_clips,
        camouflage_fraction=args.camouflage_fraction, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, seed=args.seed, flow_method=args.flow_method,
    )  # fmt: skip
    metrics = train_avos_on_synth(recipe, out, progress=args.progress)
    n, c = metrics["eval"]["normal"], metrics["eval"]["camouflage"]
    tr = metrics["train"]
    print(
        f"trained AVOS {args.fusion}/{args.cross_connection} in {tr['seconds']:.0f} s "
        f"(loss {tr['epoch_losses'][0]:.3f} -> {tr['epoch_losses'][-1]:.3f}); "
        f"normal J {n['J']:.3f} F {n['F']:.3f} AUC {n['auc']:.3f}; "
        f"camouflage J {c['J']:.3f} F {c['F']:.3f} AUC {c['auc']:.3f}; saved to {out}"
    )
    return 0


# ---------------------------------------------------------------------------- classification
def _add_classification_arguments(p: argparse.ArgumentParser) -> None:
    """Options of --task classification. It also reads the shared options (--output-dir, --seed,
    --epochs, --batch-size, --learning-rate, --overwrite, --progress) and, for StaDyn-Synth data,
    --train-clips, --test-clips, --size and --num-frames."""
    g = p.add_argument_group(
        "classification",
        "Video classification (VideoMAE / TimeSformer) with StaticDropout, its controls and bias tracking. "
        "Uses --size/--num-frames as the model input (with a tiny model, --size 32 is the fast choice) and, "
        "for --data synth, --train-clips/--test-clips. The checkpoint goes to OUTPUT_DIR/model.",
    )
    g.add_argument(
        "--data", default="synth",
        help="'synth' (StaDyn-Synth, default), a folder with one subfolder of videos per class, a datasets "
             "save_to_disk folder or a .csv/.json/.jsonl/.parquet file with a video-path and a label column",
    )  # fmt: skip
    g.add_argument("--synth-split", choices=("motion", "appearance", "trap"), default="trap",
                   help="StaDyn-Synth split (default trap: evaluated on aligned and conflicting clips)")  # fmt: skip
    g.add_argument("--trap-cue", choices=("invariant", "sensitive", "both"), default="invariant",
                   help="which appearance attributes carry the trap's static cue (default invariant)")  # fmt: skip
    g.add_argument("--trap-share", type=fraction, default=0.99,
                   help="share of training clips whose static cue agrees with the label (default 0.99)")  # fmt: skip
    g.add_argument("--eval-data", default=None, help="evaluation folder (same classes) for folder data")
    g.add_argument("--eval-fraction", type=float, default=0.2,
                   help="share of the videos held out for evaluation when no eval set is given (default 0.2)")  # fmt: skip
    g.add_argument("--video-column", default="video", help="video-path column of a datasets dataset")
    g.add_argument("--label-column", default="label", help="label column of a datasets dataset")
    g.add_argument("--train-split", default="train", help="training split of a DatasetDict")
    g.add_argument("--eval-split", default=None, help="evaluation split of a DatasetDict (default test/validation)")
    g.add_argument("--window", type=positive_int, default=64,
                   help="source frames a training clip spans, subsampled to --num-frames (default 64)")  # fmt: skip
    g.add_argument("--model", default="videomae",
                   help="'videomae' or 'timesformer' (a new tiny model) or a checkpoint folder to fine-tune")  # fmt: skip
    g.add_argument("--hidden-size", type=positive_int, default=64, help="tiny model width (default 64)")
    g.add_argument("--num-layers", type=positive_int, default=4, help="tiny model depth (default 4)")
    g.add_argument("--num-heads", type=positive_int, default=4, help="tiny model attention heads (default 4)")
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--warmup-ratio", type=float, default=0.1)
    g.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (0 disables)")
    g.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no")
    g.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    g.add_argument("--num-workers", type=nonneg_int, default=0, help="DataLoader workers (default 0)")
    g.add_argument("--dropout", type=rate, default=0.0,
                   help="ordinary dropout at the classifier input (the same-rate control; default off)")  # fmt: skip
    g.add_argument("--static-dropout", type=rate, default=None, metavar="P",
                   help="enable StaticDropout with drop probability P per static channel and sample")  # fmt: skip
    g.add_argument("--sd-layer", default="pre_classifier",
                   help="StaticDropout layer: pre_classifier (default) or a block, e.g. block_3")  # fmt: skip
    g.add_argument("--sd-selection", choices=("top_k", "category", "random", "none"), default="top_k",
                   help="static set: top-k by rho_S - rho_D (default), the 'static' category, random channels "
                        "(the control) or none (with --sd-p-other: ordinary dropout at --sd-layer)")  # fmt: skip
    g.add_argument("--sd-fraction", type=float, default=0.25, help="static set size as a share of C (default 0.25)")
    g.add_argument("--sd-num-static", type=positive_int, default=None, help="static set size in channels")
    g.add_argument("--sd-threshold", type=float, default=0.5,
                   help="threshold of the channel categories for --sd-selection category (default 0.5)")  # fmt: skip
    g.add_argument("--sd-tau", dest="sd_threshold", type=float, action=DeprecatedFlag, new="--sd-threshold",
                   help=argparse.SUPPRESS)  # fmt: skip
    g.add_argument("--sd-p-other", type=rate, default=0.0, help="ordinary dropout on the other channels")
    g.add_argument("--sd-refresh-every", type=nonneg_int, default=None,
                   help="optimizer steps between static-set refreshes (default: each epoch; 0: never)")  # fmt: skip
    g.add_argument("--sd-refresh-until", type=positive_int, default=None,
                   help="last step of a refresh (default: half of training)")  # fmt: skip
    g.add_argument("--sd-probe-pairs", type=positive_int, default=256, help="probe pairs per measurement")
    g.add_argument("--augment", choices=("stylize",), default=None,
                   help="stylize: restyle training clips with the pair styles (the stylization control)")  # fmt: skip
    g.add_argument("--augment-p", type=fraction, default=1.0, help="share of clips restyled (default 1)")
    g.add_argument("--augment-styles", default=None, help="comma-separated style names (default: the pair styles)")
    g.add_argument("--no-track-bias", action="store_true", help="do not measure the bias during training")
    g.add_argument("--track-every", type=nonneg_int, default=None,
                   help="optimizer steps between bias measurements (default: each epoch)")  # fmt: skip
    g.add_argument("--probe-pairs", type=positive_int, default=256, help="probe pairs for bias tracking")
    g.add_argument("--save-every-epochs", type=positive_int, default=1)
    g.add_argument("--save-total-limit", type=positive_int, default=2, help="checkpoints kept (default 2)")
    g.add_argument("--stop-after-steps", type=positive_int, default=None,
                   help="end this session after N optimizer steps (checkpointed); continue with --resume")  # fmt: skip
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    g.add_argument("--report-to", default=None, help="accelerate trackers, comma-separated (e.g. tensorboard)")


def _train_classification(args: argparse.Namespace) -> int:
    import time

    from hf_stadyn.debias import StaticDropoutConfig
    from hf_stadyn.training.classification import (
        ClassificationTrainingConfig,
        hf_video_datasets,
        synth_datasets,
        train_classification,
        video_folder_datasets,
    )

    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}.")
    sd = None
    if args.static_dropout is not None:
        sd = StaticDropoutConfig(
            p=args.static_dropout, layer=args.sd_layer, selection=args.sd_selection, top_k_fraction=args.sd_fraction,
            num_static=args.sd_num_static, threshold=args.sd_threshold, p_other=args.sd_p_other,
            num_probe_pairs=args.sd_probe_pairs, seed=args.seed,
        )  # fmt: skip
    elif any(
        getattr(args, k) != v
        for k, v in (("sd_layer", "pre_classifier"), ("sd_selection", "top_k"), ("sd_num_static", None), ("sd_threshold", 0.5),
                     ("sd_refresh_every", None), ("sd_refresh_until", None), ("sd_p_other", 0.0))
    ):  # fmt: skip
        raise ValueError("--sd-* options need --static-dropout P to enable StaticDropout.")
    config = ClassificationTrainingConfig(
        output_dir=args.output_dir, model=args.model, num_frames=args.num_frames, image_size=args.size,
        hidden_size=args.hidden_size, num_layers=args.num_layers, num_heads=args.num_heads, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, max_grad_norm=args.max_grad_norm, seed=args.seed,
        mixed_precision=args.mixed_precision, cpu=args.cpu, num_workers=args.num_workers, dropout=args.dropout,
        static_dropout=sd, sd_refresh_every=args.sd_refresh_every, sd_refresh_until=args.sd_refresh_until,
        augment=args.augment, augment_p=args.augment_p,
        augment_styles=[s.strip() for s in args.augment_styles.split(",") if s.strip()] if args.augment_styles else None,
        track_bias=not args.no_track_bias, track_every=args.track_every, probe_pairs=args.probe_pairs,
        save_every_epochs=args.save_every_epochs, save_total_limit=args.save_total_limit,
        stop_after_steps=args.stop_after_steps, resume=args.resume, overwrite=args.overwrite,
        report_to=[s.strip() for s in args.report_to.split(",") if s.strip()] if args.report_to else None,
        progress=args.progress,
    )  # fmt: skip
    data = str(args.data)
    if data == "synth":
        from hf_stadyn.synth import SynthConfig

        synth = SynthConfig(num_frames=args.num_frames, size=args.size, speed=max(1.0, 2.0 * args.size / 32))
        train, evals, names = synth_datasets(
            args.synth_split, num_train=args.train_clips, num_eval=args.test_clips, seed=args.seed,
            trap_share=args.trap_share, trap_cue=args.trap_cue, config=synth, progress=args.progress,
        )  # fmt: skip
    else:
        path = Path(data)
        if not path.exists():
            raise FileNotFoundError(f"--data {data} does not exist; give 'synth', a class-folder tree or a dataset.")
        is_hf = path.is_file() or any(
            (path / f).is_file() for f in ("dataset_info.json", "dataset_dict.json", "state.json")
        )
        common = dict(num_frames=args.num_frames, size=args.size, eval_fraction=args.eval_fraction,
                      window=args.window, seed=args.seed)  # fmt: skip
        if is_hf:
            train, evals, names = hf_video_datasets(
                path, video_column=args.video_column, label_column=args.label_column, train_split=args.train_split,
                eval_split=args.eval_split, **common,
            )  # fmt: skip
        else:
            train, evals, names = video_folder_datasets(path, eval_root=args.eval_data, **common)
    t0 = time.perf_counter()
    result = train_classification(config, train, evals, label_names=names)
    accs = ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in result.final.items() if k.endswith("/accuracy"))
    where = (
        f"checkpoint in {result.model_dir}"
        if result.model_dir
        else f"stopped at step {result.steps_done}; rerun with --resume"
    )
    print(
        f"trained {args.model} on {data} ({len(train)} clips, {result.epochs_done} epochs) in {time.perf_counter() - t0:.0f} s; "
        f"accuracy: {accs or 'n/a'}; {where}"
        + (f"; static set {len(result.static_channels)} channels" if result.static_channels is not None else "")
    )
    return 0
