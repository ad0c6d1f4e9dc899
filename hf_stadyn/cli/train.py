"""``stadyn train``: train a video classifier (``--task classification``) or a two-stream segmenter (``--task avos``).

Examples::

    stadyn train --task classification --output_dir runs/cls --static_dropout 0.5
    stadyn train --task classification --output_dir runs/ft --model path/to/videomae --data videos/ \\
        --per_device_train_batch_size 8 --num_train_epochs 3 --report_to tensorboard
    stadyn train --task avos --output_dir runs/avos --fusion gated --cross_connection gated_bidirectional

``--task classification`` parses ``transformers.TrainingArguments`` (every Trainer option under its
own name) plus our dataclasses (:mod:`hf_stadyn.training.args`) with ``HfArgumentParser`` and runs
:func:`hf_stadyn.training.run_classification`; ``stadyn train --task classification --help`` lists
them all. Convention (train, card, synth): ``--snake_case`` flags, ``--output_dir`` for the output
folder, progress bars on (``--disable_tqdm`` turns them off), ``--seed``, ``--use_cpu``,
``--bf16`` / ``--fp16``. The dashed names of the previous release still work for one release, with a
deprecation message (``--epochs`` -> ``--num_train_epochs``, ``--batch-size`` ->
``--per_device_train_batch_size``, ``--output-dir`` -> ``--output_dir``, ``--cpu`` -> ``--use_cpu``,
``--resume`` -> ``--resume_from_checkpoint last``, ``--static-dropout`` -> ``--static_dropout`` ...).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from hf_stadyn.cli._types import (
    check_output_dir,
    check_trackers,
    fraction,
    int_list,
    one_line_errors,
    positive_int,
    rewrite_deprecated,
)

__all__ = ["register"]

logger = logging.getLogger(__name__)

TASKS = ("classification", "avos")

# Literal copies of hf_stadyn.models.configuration_avos.FUSION_TYPES / CROSS_CONNECTION_TYPES, so that
# building the parser does not import transformers (every `stadyn` call would pay for it);
# tests/test_avos_cli.py checks that they match.
FUSION_TYPES = ("concat", "gated", "convex")
CROSS_CONNECTION_TYPES = ("none", "motion_to_appearance", "bidirectional", "gated_bidirectional")

#: Old option -> new option(s) (value kept); None = dropped (no effect any more).
RENAMED: dict[str, list[str] | None] = {
    "--epochs": ["--num_train_epochs"],
    "--batch-size": ["--per_device_train_batch_size"],
    "--warmup-ratio": ["--warmup_steps"],
    "--cpu": ["--use_cpu"],
    "--num-workers": ["--dataloader_num_workers"],
    "--resume": ["--resume_from_checkpoint", "last"],
    "--sd-tau": ["--sd_threshold"],
    "--progress": None,  # bars are on by default now; --disable_tqdm turns them off
}

_DESCRIPTION = (
    "Train a model and evaluate it. --task classification: a video classifier (a new tiny VideoMAE / "
    "TimeSformer or a checkpoint to fine-tune) on StaDyn-Synth or your videos, with transformers.Trainer, "
    "StaticDropout and bias tracking (stadyn train --task classification --help lists every option, Trainer's "
    "included). --task avos: a two-stream (RGB + optical flow) segmenter on normal and camouflage StaDyn-Synth "
    "clips, reporting J, F, mIoU and the success-curve AUC."
)


def register(subparsers: Any) -> None:
    # The options depend on --task, and --task classification takes all of TrainingArguments (importing
    # transformers): the real parser is built in _run, so `stadyn --help` stays fast. This parser only
    # collects the words ("+" as prefix: every "--x" reaches _run unchanged).
    p = subparsers.add_parser(
        "train", help="train a video classifier (Trainer, StaticDropout, bias tracking) or an AVOS segmenter",
        description=_DESCRIPTION, add_help=False, prefix_chars="+",
    )  # fmt: skip
    p.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(func=_run)


def _task_of(argv: list[str]) -> str | None:
    pre = argparse.ArgumentParser(prog="stadyn train", add_help=False)
    pre.add_argument("--task", choices=TASKS)
    ns, _ = one_line_errors(pre).parse_known_args(argv)  # a bad --task exits 2 with the choices
    return ns.task


_BOOL_WORDS = {"true", "false", "yes", "no", "1", "0", "t", "f", "y", "n"}


def _bare_switches(argv: list[str], names: tuple[str, ...] = ("--disable_tqdm", "--use_cpu")) -> list[str]:
    """A bare ``--disable_tqdm`` means ``--disable_tqdm True`` (TrainingArguments types it Optional[bool])."""
    out: list[str] = []
    for i, tok in enumerate(argv):
        out.append(tok)
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if tok in names and (nxt is None or nxt.lower() not in _BOOL_WORDS):
            out.append("True")
    return out


def _str2bool(text: str) -> bool:
    if text.lower() not in _BOOL_WORDS:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "yes", "1", "t", "y")


def _run(args: argparse.Namespace) -> int:
    argv = _bare_switches(rewrite_deprecated(list(args.argv), RENAMED, extra=_mixed_precision))
    task = _task_of(argv)
    if task is None:
        if any(a in ("-h", "--help") for a in argv):
            print(f"usage: stadyn train --task {{{','.join(TASKS)}}} [options]\n\n{_DESCRIPTION}")
            return 0
        print(
            "stadyn train: error: the following arguments are required: --task {classification,avos}", file=sys.stderr
        )
        return 2
    if task == "avos":
        return _train_avos(_avos_parser().parse_args(argv))
    return _train_classification(argv)


def _mixed_precision(old: str, value: str | None) -> list[str] | None:
    """``--mixed-precision X`` -> ``--bf16`` / ``--fp16`` / nothing."""
    if old != "--mixed-precision":
        return None
    return {"bf16": ["--bf16"], "fp16": ["--fp16"]}.get(str(value), [])


# ---------------------------------------------------------------------------- avos
def _avos_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stadyn train --task avos", description="Train a two-stream AVOS segmenter on StaDyn-Synth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    p.add_argument("--task", choices=TASKS, required=True, help="what to train")
    p.add_argument("--output_dir", "-o", required=True, help="folder for the checkpoint and metrics.json")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the init and the shuffling")
    p.add_argument("--num_train_epochs", type=positive_int, default=5, help="passes over the training frames")
    p.add_argument("--per_device_train_batch_size", type=positive_int, default=32, help="frames per step")
    p.add_argument("--learning_rate", type=float, default=3e-3, help="AdamW peak learning rate (cosine schedule)")
    p.add_argument("--disable_tqdm", type=_str2bool, nargs="?", const=True, default=False,
                   help="hide the progress bars")  # fmt: skip
    p.add_argument(
        "--resume_from_checkpoint", default=None, metavar="last",
        help="continue an interrupted run from its last per-epoch checkpoint ('last')",
    )  # fmt: skip
    p.add_argument("--fusion", choices=FUSION_TYPES, default="concat", help="fusion after each level")
    p.add_argument("--cross_connection", choices=CROSS_CONNECTION_TYPES, default="none",
                   help="cross-connections at levels 3-5")  # fmt: skip
    p.add_argument("--train_clips", type=positive_int, default=200, help="training clips")
    p.add_argument("--camouflage_fraction", type=fraction, default=0.5,
                   help="share of training clips in camouflage mode")  # fmt: skip
    p.add_argument("--test_clips", type=positive_int, default=40, help="test clips per mode")
    p.add_argument("--size", type=positive_int, default=64, help="frame size in pixels")
    p.add_argument("--num_frames", type=positive_int, default=8, help="frames per clip")
    p.add_argument("--hidden_sizes", type=int_list, default=[8, 16, 24, 32],
                   help="ResNet stage widths of each stream, comma-separated")  # fmt: skip
    p.add_argument("--flow_method", default="dis", help="optical flow method (hf_stadyn.video.compute_flow)")
    return one_line_errors(p)


def _prepare_output(path: str, overwrite: bool, resume: bool) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output_dir {out} exists and is not a folder; choose another path.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--output_dir {out} is not empty; pass --overwrite to replace it or choose another folder.")
    return out


def _train_avos(args: argparse.Namespace) -> int:
    from hf_stadyn.training.avos import AVOSSynthRecipe, train_avos_on_synth

    if not (args.learning_rate > 0):
        raise ValueError(f"--learning_rate must be positive, got {args.learning_rate}.")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}.")
    if args.resume_from_checkpoint not in (None, "last"):
        raise ValueError(
            f"--resume_from_checkpoint {args.resume_from_checkpoint!r}: AVOS resumes from its last per-epoch "
            "checkpoint; give 'last'."
        )
    check_output_dir(args.output_dir)
    out = _prepare_output(args.output_dir, args.overwrite, args.resume_from_checkpoint is not None)
    recipe = AVOSSynthRecipe(
        fusion=args.fusion, cross_connection=args.cross_connection, hidden_sizes=tuple(args.hidden_sizes),
        size=args.size, num_frames=args.num_frames, train_clips=args.train_clips, test_clips=args.test_clips,
        camouflage_fraction=args.camouflage_fraction, epochs=args.num_train_epochs,
        batch_size=args.per_device_train_batch_size, learning_rate=args.learning_rate, seed=args.seed,
        flow_method=args.flow_method,
    )  # fmt: skip
    metrics = train_avos_on_synth(
        recipe, out, progress=not args.disable_tqdm, resume=args.resume_from_checkpoint is not None
    )
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
def _given(argv: list[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in argv)


def _classification_parser() -> Any:
    from transformers import HfArgumentParser, TrainingArguments

    from hf_stadyn.training.args import CLASSIFICATION_DEFAULTS, DataArguments, ModelArguments, StadynArguments

    p = HfArgumentParser(
        [DataArguments, ModelArguments, StadynArguments, TrainingArguments], prog="stadyn train --task classification",
        description="Train a video classifier with transformers.Trainer (our options first, then TrainingArguments).",
    )  # fmt: skip
    p.add_argument("--task", choices=TASKS, required=True, help="what to train")
    p.set_defaults(**CLASSIFICATION_DEFAULTS)
    return one_line_errors(p)


def _train_classification(argv: list[str]) -> int:
    parser = _classification_parser()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        data_args, model_args, opts, targs = parser.parse_args_into_dataclasses(argv)[:4]
    if not _given(argv, "--output_dir"):
        parser.error("the following arguments are required: --output_dir")
    check_trackers(targs.report_to)
    _check_data_options(data_args)
    from hf_stadyn.training.args import default_learning_rate

    if not _given(argv, "--learning_rate"):
        targs.learning_rate = default_learning_rate(model_args.model)
    if not _given(argv, "--dataloader_pin_memory"):
        import torch

        targs.dataloader_pin_memory = torch.cuda.is_available()
    if targs.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {targs.seed}.")
    check_output_dir(targs.output_dir)
    if model_args.model and Path(str(model_args.model)).expanduser().is_dir():  # before any data is made
        from hf_stadyn.models.auto import check_model_folder

        check_model_folder(Path(str(model_args.model)).expanduser(), str(model_args.model))
    progress = not targs.disable_tqdm
    train, evals, names = _datasets(data_args, targs.seed, progress)
    from hf_stadyn.training.classification import ClassificationTrainingConfig, build_classifier, run_classification

    cfg = ClassificationTrainingConfig(
        output_dir=targs.output_dir, model=model_args.model, num_frames=data_args.num_frames,
        image_size=data_args.size, hidden_size=model_args.hidden_size, num_layers=model_args.num_layers,
        num_heads=model_args.num_heads, seed=targs.seed, progress=progress,
    )  # fmt: skip
    model = build_classifier(cfg, len(names), names)
    resume = targs.resume_from_checkpoint
    result = run_classification(
        targs, train, evals, model=model, options=opts, label_names=names, resume_from_checkpoint=resume
    )
    accs = ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in result.final.items() if k.endswith("/accuracy"))
    where = (
        f"checkpoint in {result.model_dir}"
        if result.model_dir
        else f"stopped at step {result.steps_done}; rerun with --resume_from_checkpoint last"
    )
    sd = f"; static set {len(result.static_channels)} channels" if result.static_channels is not None else ""
    if targs.process_index != 0:  # several processes (accelerate launch): the main one reports
        return 0
    print(
        f"trained {model_args.model} on {data_args.data} ({len(train)} clips, {result.steps_done} steps) in "
        f"{result.seconds:.0f} s; accuracy: {accs or 'n/a'}; {where}{sd}"
    )
    chance = 1 / len(names)
    if result.near_chance:
        print(
            f"WARNING: the model ended near chance ({len(names)} classes, chance {chance:.3f}): it learned "
            "little; train longer (--num_train_epochs), on more clips (--train_clips) or with another --learning_rate."
        )
    elif result.final.get("eval/conflicting/accuracy", 1.0) < chance:
        print(
            f"NOTE: conflicting accuracy {result.final['eval/conflicting/accuracy']:.3f} is below chance "
            f"({chance:.3f}) while aligned is {result.final.get('eval/aligned/accuracy', float('nan')):.3f}: the model "
            "reads the trap's static cue, not the motion (docs/staticdropout.md)."
        )
    return 0


def _datasets(data_args: Any, seed: int, progress: bool) -> tuple[Any, dict[str, Any], list[str]]:
    from hf_stadyn.training.data import (
        ShuffledFramesDataset,
        hf_video_datasets,
        synth_datasets,
        video_folder_datasets,
    )

    data = str(data_args.data)
    if data == "synth":
        from hf_stadyn.synth import SynthConfig

        motions = tuple(m.strip() for m in data_args.synth_motions.split(",") if m.strip())
        synth = SynthConfig(
            num_frames=data_args.num_frames, size=data_args.size, speed=max(1.0, 2.0 * data_args.size / 32),
            motions=motions, num_appearances=data_args.synth_appearances,
        )  # fmt: skip
        train, evals, names = synth_datasets(
            data_args.synth_split, num_train=data_args.train_clips, num_eval=data_args.test_clips, seed=seed,
            trap_share=data_args.trap_share, trap_cue=data_args.trap_cue, config=synth, progress=progress,
        )  # fmt: skip
    else:
        path = Path(data)
        from hf_stadyn.hub.sections import looks_like_hub_id

        if not path.exists() and looks_like_hub_id(data):  # a Hub dataset id (e.g. StaDyn-Synth, docs/hub.md)
            from hf_stadyn.hub.data import hub_dataset_folder

            path = hub_dataset_folder(data, name="--data")
        if not path.exists():
            raise FileNotFoundError(
                f"--data {data} does not exist; give 'synth', a class-folder tree, a dataset or a Hub dataset id."
            )
        is_hf = _is_table_data(path)
        common = dict(num_frames=data_args.num_frames, size=data_args.size, eval_fraction=data_args.eval_fraction,
                      window=data_args.window, seed=seed)  # fmt: skip
        if is_hf:
            train, evals, names = hf_video_datasets(
                path, video_column=data_args.video_column, label_column=data_args.label_column,
                train_split=data_args.train_split, eval_split=data_args.eval_split, **common,
            )  # fmt: skip
        else:
            train, evals, names = video_folder_datasets(path, eval_root=data_args.eval_data, **common)
    if data_args.shuffled_eval and evals:
        first = next(iter(evals.values()))
        evals["shuffled"] = ShuffledFramesDataset(first, seed=seed)
    return train, evals, names


def _is_table_data(path: Path) -> bool:
    """A datasets folder (save_to_disk) or a .csv/.json/.jsonl/.parquet file, as opposed to a class-folder tree."""
    return path.is_file() or any((path / f).is_file() for f in ("dataset_info.json", "dataset_dict.json", "state.json"))


def _check_data_options(data_args: Any) -> None:
    """Refuse options the chosen ``--data`` would silently ignore (one line: which option, what to give instead)."""
    data = str(data_args.data)
    kind = "synth" if data == "synth" else "table" if _is_table_data(Path(data)) else "folder"
    if data_args.eval_data is not None and kind != "folder":
        what = (
            "StaDyn-Synth makes its own eval sets (--test_clips)"
            if kind == "synth"
            else "a datasets folder or table file is evaluated on --eval_split (or a held-out --eval_fraction)"
        )
        raise ValueError(f"--eval_data applies to class-folder --data only; {what}: drop --eval_data.")
    for name, default in (("video_column", "video"), ("label_column", "label")):
        if getattr(data_args, name) != default and kind != "table":
            raise ValueError(
                f"--{name} applies to a datasets folder or a .csv/.json/.jsonl/.parquet --data; --data {data} has no "
                f"columns: drop --{name}."
            )
