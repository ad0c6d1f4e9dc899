"""Video classification training on ``transformers.Trainer``: StaticDropout, its controls, bias tracking.

(Over 500 lines on purpose: the legacy :class:`ClassificationTrainingConfig` and its validation stay
here for one release beside the Trainer-based runner, so that existing callers keep working.)

:func:`run_classification` trains (or fine-tunes) an hf_stadyn VideoMAE / TimeSformer classifier with
:class:`~hf_stadyn.training.trainer.StadynTrainer` (``transformers.Trainer``) and Trainer's own
``TrainingArguments``; :class:`~hf_stadyn.training.args.StadynArguments` holds what is ours:

* regularisers: ordinary dropout at the classifier input, StaticDropout (docs/method.md §6),
  stylization augmentation, and the debiasers of docs/debiasing.md (static-pair decorrelation, the
  shuffle-uniform penalty, StillMix), recorded in the checkpoint config (``stadyn["debias"]``);
* bias tracking: the estimator on fixed probe pairs on a schedule (docs/method.md §8), logged through
  Trainer (``log_history``, every ``report_to`` tracker), ``bias_history.jsonl`` and a figure; the same
  measurement refreshes StaticDropout; the history is saved with every checkpoint;
* evaluation of every eval set (``eval_<name>_accuracy`` / ``_loss``) on Trainer's ``eval_strategy``;
* checkpoints are Trainer's (``checkpoint-<step>``: model, optimizer, scheduler, RNG states, bias
  history); ``resume_from_checkpoint`` continues a run to the same weights;
* the final model with ``save_pretrained`` (safetensors) into ``<output_dir>/model``: a checkpoint
  plain ``transformers`` loads, with the StaticDropout settings and static set in its config.json.

:func:`train_classification` is the same run from one :class:`ClassificationTrainingConfig` (the
settings of the hand-written loop it replaced, mapped onto ``TrainingArguments``).
The datasets live in :mod:`hf_stadyn.training.data` (re-exported here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hf_stadyn._io import atomic_write_json, atomic_write_text
from hf_stadyn.debias import (
    BiasTracker,
    DecorrelationConfig,
    ProbePairs,
    StaticDropoutConfig,
    StillMixAugment,
    apply_static_dropout,
    debias_loss_terms,
    get_static_dropout,
    record_debias_config,
)

from .augment import AugmentedDataset, StylizeAugment
from .data import (
    ClipTensorDataset,
    ShuffledFramesDataset,
    VideoClassificationCollator,
    VideoFolderDataset,
    hf_video_datasets,
    synth_datasets,
    video_folder_datasets,
)

__all__ = [
    "ClassificationTrainResult",
    "ClassificationTrainingConfig",
    "ClipTensorDataset",
    "ShuffledFramesDataset",
    "VideoClassificationCollator",
    "VideoFolderDataset",
    "build_classifier",
    "evaluate_classifier",
    "hf_video_datasets",
    "run_classification",
    "synth_datasets",
    "train_classification",
    "video_folder_datasets",
]

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
ARCHITECTURES = ("videomae", "timesformer")
AUGMENTS = ("stylize", "stillmix")


# ====================================================================== configuration
@dataclass
class ClassificationTrainingConfig:
    """Settings of :func:`train_classification`.

    Attributes:
        output_dir: run folder: ``checkpoints/``, ``model/``, ``metrics.jsonl``, ``results.json``,
            ``bias_history.jsonl`` / ``.png``.
        model: ``"videomae"`` / ``"timesformer"`` (a new tiny model, sized by ``num_frames``,
            ``image_size``, ``hidden_size``, ``num_layers``, ``num_heads``) or a checkpoint folder to
            fine-tune (a new head is made when its label count differs).
        epochs, batch_size, learning_rate, weight_decay, warmup_ratio, max_grad_norm: AdamW with a
            cosine schedule after a linear warm-up; ``max_grad_norm`` 0 disables clipping.
        seed: seeds the model init, data order, augmentation and probe pairs.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"``; ``cpu`` forces the CPU.
        dropout: ordinary dropout rate at the classifier input (the same-rate control).
        static_dropout: StaticDropout settings (None = off). Its ``refresh_every`` / ``refresh_until``
            are optimizer steps; ``None`` here means once per epoch / until half of training.
        sd_refresh_every, sd_refresh_until: see above (None = per epoch / half of the steps).
        augment: ``"stylize"`` restyles training clips (the stylization control; ``augment_styles``
            tunes it); ``"stillmix"`` blends a still frame of another training clip into each clip, with
            weight ``l ~ U(0, stillmix_max)``, label kept (:class:`~hf_stadyn.debias.StillMixAugment`);
            ``augment_p`` is the share of clips changed.
        decorrelation: static-pair decorrelation (:class:`~hf_stadyn.debias.DecorrelationConfig` or
            its dict; None = off): the features of each clip and its frame-shuffled copy pushed apart.
        shuffle_uniform: weight of the shuffle-uniform penalty (0 = off); shares the decorrelation's
            extra forward (docs/debiasing.md).
        track_bias: measure the bias on fixed probe pairs during training (on by default, also
            without StaticDropout); ``track_every`` optimizer steps (None = each epoch) with
            ``probe_pairs`` pairs made from the first training clips.
        save_every_epochs: write a checkpoint every so many epochs (and at the end);
            ``save_total_limit`` keeps the newest ones (None = all).
        stop_after_steps: end this session after so many optimizer steps in total (a checkpoint is
            written); ``resume=True`` continues. For time-limited jobs.
        resume: continue from the newest checkpoint in ``output_dir/checkpoints`` (fresh start if none).
        overwrite: allow an ``output_dir`` that already holds a run (its checkpoints are removed).
        report_to: accelerate trackers (e.g. ``["tensorboard"]``); None = none.
        progress: tqdm bars on the main process.
    """

    output_dir: str
    model: str = "videomae"
    num_frames: int = 8
    image_size: int = 32
    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    epochs: int = 4
    batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 5e-4
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    mixed_precision: str = "no"
    cpu: bool = False
    num_workers: int = 0
    dropout: float = 0.0
    static_dropout: StaticDropoutConfig | None = None
    sd_refresh_every: int | None = None
    sd_refresh_until: int | None = None
    augment: str | None = None
    augment_p: float = 1.0
    augment_styles: list[str] | None = None
    stillmix_max: float = 0.5
    decorrelation: DecorrelationConfig | None = None
    shuffle_uniform: float = 0.0
    track_bias: bool = True
    track_every: int | None = None
    probe_pairs: int = 256
    save_every_epochs: int = 1
    save_total_limit: int | None = 2
    stop_after_steps: int | None = None
    resume: bool = False
    overwrite: bool = False
    report_to: list[str] | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.static_dropout, Mapping):
            self.static_dropout = StaticDropoutConfig.from_dict(self.static_dropout)
        if isinstance(self.decorrelation, Mapping):
            self.decorrelation = DecorrelationConfig.from_dict(self.decorrelation)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad setting and what to use instead."""

        def bad(msg: str) -> None:
            raise ValueError(f"training config: {msg}")

        def pos_int(name: str, allow_zero: bool = False, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            lo = 0 if allow_zero else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                bad(f"{name} must be an integer >= {lo}, got {v!r}")

        if not isinstance(self.output_dir, (str, os.PathLike)) or not str(self.output_dir):
            bad("output_dir must be a folder path")
        if not isinstance(self.model, str) or not self.model:
            bad(f"model must be one of {ARCHITECTURES} or a checkpoint folder, got {self.model!r}")
        if self.model not in ARCHITECTURES and not Path(self.model).exists():
            bad(f"model {self.model!r} is neither {' / '.join(ARCHITECTURES)} nor an existing checkpoint folder")
        for name in (
            "num_frames",
            "image_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "epochs",
            "batch_size",
            "eval_batch_size",
            "save_every_epochs",
        ):
            pos_int(name)
        for name in ("seed", "num_workers"):
            pos_int(name, allow_zero=True)
        for name in ("save_total_limit", "stop_after_steps", "sd_refresh_until"):
            pos_int(name, allow_none=True)
        for name in ("track_every", "sd_refresh_every"):
            pos_int(name, allow_zero=True, allow_none=True)
        if self.num_frames < 2:
            bad(f"num_frames must be >= 2 (motion needs two frames), got {self.num_frames}")
        if self.hidden_size % self.num_heads:
            bad(f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}")
        for name in ("learning_rate",):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
                bad(f"{name} must be a positive number, got {v!r}")
        for name in ("weight_decay", "max_grad_norm"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v)):
                bad(f"{name} must be a number >= 0, got {v!r}")
        if not (0.0 <= self.warmup_ratio < 1.0):
            bad(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not (0.0 <= self.dropout < 1.0):
            bad(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            bad(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        if self.augment is not None and self.augment not in AUGMENTS:
            bad(f"augment must be None or one of {AUGMENTS}, got {self.augment!r}")
        if not (0.0 <= self.augment_p <= 1.0):
            bad(f"augment_p must be in [0, 1], got {self.augment_p!r}")
        sm = self.stillmix_max
        if isinstance(sm, bool) or not isinstance(sm, (int, float)) or not (0.0 < sm <= 1.0):
            bad(f"stillmix_max must be in (0, 1], got {sm!r}")
        if sm != 0.5 and self.augment != "stillmix":
            bad("stillmix_max needs augment='stillmix'")
        if self.decorrelation is not None and not isinstance(self.decorrelation, DecorrelationConfig):
            bad("decorrelation must be a DecorrelationConfig, a dict of its fields or None")
        su = self.shuffle_uniform
        if isinstance(su, bool) or not isinstance(su, (int, float)) or not (su >= 0 and math.isfinite(su)):
            bad(f"shuffle_uniform must be a weight >= 0, got {su!r}")
        if self.probe_pairs < 4:
            bad(f"probe_pairs must be >= 4, got {self.probe_pairs}")
        if self.static_dropout is not None and not isinstance(self.static_dropout, StaticDropoutConfig):
            bad("static_dropout must be a StaticDropoutConfig, a dict of its fields or None")
        if self.static_dropout is not None and self.dropout > 0 and self.static_dropout.layer == "pre_classifier":
            bad(
                "dropout and StaticDropout both sit at the classifier input; use StaticDropoutConfig.p_other "
                "for ordinary dropout on the other channels"
            )
        if self.resume and self.overwrite:
            bad("resume and overwrite exclude each other")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["output_dir"] = str(self.output_dir)
        return d

    def to_training_arguments(self, num_train: int) -> Any:
        """The matching ``transformers.TrainingArguments`` (``num_train``: training clips, for the
        checkpoint interval of ``save_every_epochs``)."""
        from transformers import TrainingArguments

        steps_per_epoch = max(1, math.ceil(num_train / self.batch_size))
        save = {"save_strategy": "epoch"} if self.save_every_epochs == 1 else {
            "save_strategy": "steps", "save_steps": steps_per_epoch * self.save_every_epochs}  # fmt: skip
        return TrainingArguments(
            output_dir=str(self.output_dir), num_train_epochs=self.epochs, per_device_train_batch_size=self.batch_size,
            per_device_eval_batch_size=self.eval_batch_size, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, warmup_steps=self.warmup_ratio, max_grad_norm=self.max_grad_norm,
            lr_scheduler_type="cosine", seed=self.seed, bf16=self.mixed_precision == "bf16",
            fp16=self.mixed_precision == "fp16", use_cpu=self.cpu, dataloader_num_workers=self.num_workers,
            eval_strategy="epoch", logging_strategy="epoch", save_total_limit=self.save_total_limit,
            report_to=list(self.report_to) if self.report_to else "none", disable_tqdm=not self.progress,
            dataloader_pin_memory=torch.cuda.is_available(), **save,
        )  # fmt: skip

    def to_options(self) -> Any:
        """The matching :class:`~hf_stadyn.training.args.StadynArguments`."""
        from .args import StadynArguments

        sd = self.static_dropout
        opts = StadynArguments(
            dropout=self.dropout, static_dropout=sd.p if sd is not None else None,
            sd_layer=sd.layer if sd else "pre_classifier", sd_selection=sd.selection if sd else "top_k",
            sd_fraction=sd.top_k_fraction if sd else 0.25, sd_num_static=sd.num_static if sd else None,
            sd_threshold=sd.threshold if sd else 0.5, sd_p_other=sd.p_other if sd else 0.0,
            sd_probe_pairs=sd.num_probe_pairs if sd else 256, sd_refresh_every=self.sd_refresh_every,
            sd_refresh_until=self.sd_refresh_until, augment=self.augment, augment_p=self.augment_p,
            augment_styles=",".join(self.augment_styles) if self.augment_styles else None,
            track_bias=self.track_bias, track_every=self.track_every, probe_pairs=self.probe_pairs,
            stop_after_steps=self.stop_after_steps, overwrite=self.overwrite, stillmix_max=self.stillmix_max,
            shuffle_uniform=float(self.shuffle_uniform),
        )  # fmt: skip
        opts.static_dropout_settings = sd  # every field of the given StaticDropoutConfig, not only the CLI's
        dc = self.decorrelation
        if dc is not None:  # validated once more as command-line options; the config itself (seed included) wins
            opts.decorrelate, opts.decorrelate_form, opts.decorrelate_layer = dc.weight, dc.form, dc.layer
            opts.decorrelate_shuffled_grad = dc.shuffled_grad
            opts.validate()
        opts.decorrelation_settings = dc
        return opts


@dataclass
class ClassificationTrainResult:
    """What :func:`train_classification` returns.

    Attributes:
        output_dir: the run folder.
        model_dir: the final ``save_pretrained`` folder (None if the session stopped early).
        epochs_done, steps_done: progress at the end of this session.
        history: per-epoch metrics (``epoch``, ``step``, ``train_loss``, ``eval/<set>/accuracy``, ...).
        final: metrics of the last evaluation.
        bias_history: path of the bias JSON lines (None without tracking).
        figure: path of the bias-versus-step PNG.
        seconds: wall time of this session; ``train_seconds`` the time in training steps.
        static_channels: final StaticDropout set (None without it).
        num_labels: classes; ``near_chance``: every eval accuracy below 1.5 / num_labels.
        log_history: Trainer's ``state.log_history`` (loss, grad_norm, learning_rate, eval, bias).
    """

    output_dir: Path
    model_dir: Path | None
    epochs_done: int
    steps_done: int
    history: list[dict[str, Any]]
    final: dict[str, Any]
    bias_history: Path | None
    figure: Path | None
    seconds: float
    train_seconds: float
    static_channels: list[int] | None = None
    num_labels: int = 0
    near_chance: bool = False
    log_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("output_dir", "model_dir", "bias_history", "figure"):
            d[k] = None if d[k] is None else str(d[k])
        return d


# ====================================================================== model
def build_classifier(
    config: ClassificationTrainingConfig, num_labels: int, label_names: Sequence[str] | None = None
) -> nn.Module:
    """A new tiny classifier or a checkpoint with a ``num_labels`` head (random init from ``seed``)."""
    from hf_stadyn import models
    from hf_stadyn.models.auto import load_model

    id2label = {i: str(n) for i, n in enumerate(label_names)} if label_names is not None else None
    extra: dict[str, Any] = {}
    if id2label is not None:
        extra = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.model in ARCHITECTURES:
            factory = models.tiny_videomae_config if config.model == "videomae" else models.tiny_timesformer_config
            cls = (
                models.StadynVideoMAEForVideoClassification
                if config.model == "videomae"
                else models.StadynTimesformerForVideoClassification
            )
            cfg = factory(
                num_labels=num_labels, num_frames=config.num_frames, image_size=config.image_size,
                hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
                num_attention_heads=config.num_heads, intermediate_size=2 * config.hidden_size, **extra,
            )  # fmt: skip
            return cls(cfg)
        path = Path(config.model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model checkpoint {path} has no config.json; give a save_pretrained folder.")
        src = json.loads((path / "config.json").read_text(encoding="utf-8"))
        same_head = int(len(src.get("id2label") or {}) or src.get("num_labels", -1)) == num_labels
        kwargs: dict[str, Any] = {"dtype": torch.float32, "num_labels": num_labels, **extra}
        if not same_head:
            kwargs["ignore_mismatched_sizes"] = True
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "newly initialised head" report is expected here
        try:
            model = load_model(path, **kwargs).train()
        finally:
            hf_logging.set_verbosity(verbosity)
        if not same_head:
            model.classifier.reset_parameters()  # a seeded new head
        return model


def _check_model_input(model: nn.Module, dataset: Any, name: str) -> None:
    spec = model.probe_input_spec()
    frames = torch.as_tensor(dataset[0]["frames"])
    t, (h, w) = spec["num_frames"], _hw(spec["image_size"])
    if tuple(frames.shape) != (t, h, w, 3):
        raise ValueError(
            f"{name} clips are {tuple(frames.shape)} (T, H, W, 3) but the model takes ({t}, {h}, {w}, 3); set "
            "num_frames / image_size (or the data's) to match."
        )


def _hw(size: Any) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


# ====================================================================== evaluation
@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    dataset: Any,
    *,
    batch_size: int = 64,
    shuffle_frames: bool = False,
    seed: int = 0,
    accelerator: Any = None,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Accuracy and mean loss of ``model`` on ``dataset`` (items ``frames``, ``label``), outside a Trainer.

    Args:
        shuffle_frames: shuffle each clip's frames (seeded, never the identity) before classifying:
            the shuffle-sensitivity check of docs/method.md §8 (:class:`ShuffledFramesDataset`).
        accelerator: gather the predictions over processes (each process gives its shard).
        return_predictions: also return ``predictions`` and ``labels`` (in dataset order).

    Returns:
        ``{"accuracy", "loss", "num_clips"}`` (+ ``predictions``, ``labels``).
    """
    inner = accelerator.unwrap_model(model) if accelerator is not None else model
    data = ShuffledFramesDataset(dataset, seed) if shuffle_frames else dataset
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=False, collate_fn=VideoClassificationCollator.from_model(inner)
    )
    device = next(inner.parameters()).device
    was_training = model.training
    model.eval()
    preds, labels, losses = [], [], []
    try:
        for batch in loader:
            y = batch["labels"].to(device)
            logits = model(pixel_values=batch["pixel_values"].to(device)).logits.float()
            loss = torch.nn.functional.cross_entropy(logits, y, reduction="none")
            p = logits.argmax(-1)
            if accelerator is not None:
                p, y, loss = accelerator.gather_for_metrics((p, y, loss))
            preds.append(p.cpu())
            labels.append(y.cpu())
            losses.append(loss.cpu())
    finally:
        model.train(was_training)
    p, y, l_ = torch.cat(preds), torch.cat(labels), torch.cat(losses)
    out: dict[str, Any] = {
        "accuracy": float((p == y).float().mean()) if len(y) else float("nan"),
        "loss": float(l_.mean()) if len(y) else float("nan"),
        "num_clips": len(y),
    }
    if return_predictions:
        out["predictions"], out["labels"] = p.tolist(), y.tolist()
    return out


# ====================================================================== saving
@contextlib.contextmanager
def _hf_progress_bars(enabled: bool):
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not enabled and was:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()


def _save_model(model: nn.Module, path: Path, is_main: bool, progress: bool = True) -> Path:
    """``save_pretrained`` (safetensors) into ``path`` via a temporary folder renamed when complete."""
    tmp = path.parent / f".tmp_{path.name}"
    if is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            with _hf_progress_bars(progress):
                model.save_pretrained(str(tmp), safe_serialization=True)
            with contextlib.suppress(Exception):  # a preprocessor config lets pipeline() use the folder
                _save_processor(model, tmp)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path


def _save_processor(model: nn.Module, folder: Path) -> None:
    from transformers import VideoMAEImageProcessorPil

    spec = model.probe_input_spec()
    h, w = _hw(spec["image_size"])
    proc = VideoMAEImageProcessorPil(
        size={"shortest_edge": min(h, w)}, crop_size={"height": h, "width": w},
        image_mean=list(spec["mean"]), image_std=list(spec["std"]),
    )  # fmt: skip
    proc.save_pretrained(str(folder))


# ====================================================================== the Trainer run
def _checkpoints(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = [d for d in output_dir.glob("checkpoint-*") if d.is_dir() and d.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda d: int(d.name.split("-")[-1]))


def _prepare_output_dir(output_dir: Path, resume: Any, overwrite: bool) -> None:
    """Refuse to mix runs by accident: a folder with a run needs resume or overwrite."""
    has_run = (
        bool(_checkpoints(output_dir)) or (output_dir / MODEL_DIR).exists() or (output_dir / RESULTS_FILE).exists()
    )
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other; give one of --resume_from_checkpoint / --overwrite.")
    if resume or not has_run:
        return
    if not overwrite:
        raise ValueError(
            f"output_dir {output_dir} already holds a training run; pass --resume_from_checkpoint last to continue "
            "it or --overwrite to start again."
        )
    for d in [*_checkpoints(output_dir), output_dir / MODEL_DIR]:
        shutil.rmtree(d, ignore_errors=True)
    for f in (METRICS_FILE, RESULTS_FILE, "bias_history.jsonl", "bias_history.png"):
        with contextlib.suppress(FileNotFoundError):
            (output_dir / f).unlink()


def _eval_rows(log_history: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """Trainer's ``eval_<name>_<metric>`` log entries -> one row per evaluation step:
    ``{"epoch", "step", "eval/<name>/accuracy", "eval/<name>/loss", "train_loss"}``."""
    rows: dict[int, dict[str, Any]] = {}
    last_loss: float | None = None
    for entry in log_history:
        if "loss" in entry:
            last_loss = float(entry["loss"])
        for name in names:
            for metric in ("accuracy", "loss"):
                key = f"eval_{name}_{metric}"
                if key in entry:
                    row = rows.setdefault(int(entry["step"]), {"epoch": entry.get("epoch"), "step": int(entry["step"])})
                    row[f"eval/{name}/{metric}"] = float(entry[key])
                    row["train_loss"] = last_loss
    return [rows[k] for k in sorted(rows)]


def chance_level(num_labels: int) -> float:
    return 1.0 / max(1, int(num_labels))


def near_chance(final: Mapping[str, Any], num_labels: int) -> bool:
    """Whether every (unshuffled) eval accuracy is below 1.5 x chance (clearly better is above it)."""
    accs = [float(v) for k, v in final.items() if k.endswith("/accuracy") and "/shuffled/" not in k]
    return bool(accs) and max(accs) < 1.5 * chance_level(num_labels)


def run_classification(
    training_args: Any,
    train_dataset: Any,
    eval_datasets: Mapping[str, Any] | None = None,
    *,
    model: nn.Module,
    options: Any = None,
    label_names: Sequence[str] | None = None,
    resume_from_checkpoint: str | bool | None = None,
    callbacks: Sequence[Any] | None = None,
    loss_terms: Sequence[Any] | None = None,
) -> ClassificationTrainResult:
    """Train ``model`` with :class:`~hf_stadyn.training.trainer.StadynTrainer` and save it.

    Args:
        training_args: ``transformers.TrainingArguments`` (every Trainer option, under its own name).
        train_dataset: items ``{"frames": (T, H, W, 3) uint8, "label": int}`` at the model's input size.
        eval_datasets: ``{name: dataset}``, each evaluated on ``eval_strategy`` (accuracy, loss).
        model: an hf_stadyn classifier (:func:`build_classifier`).
        options: :class:`~hf_stadyn.training.args.StadynArguments` (StaticDropout, dropout,
            augmentation, bias tracking, overwrite, stop_after_steps); default: its defaults.
        resume_from_checkpoint: a checkpoint folder, or True / "last" for the newest in ``output_dir``.
        callbacks, loss_terms: passed to the trainer.

    Returns:
        :class:`ClassificationTrainResult`; also written to ``output_dir/results.json``.
    """
    from .args import StadynArguments
    from .trainer import StadynTrainer

    t_start = time.perf_counter()
    opts = options if options is not None else StadynArguments()
    eval_datasets = dict(eval_datasets or {})
    if not hasattr(model, "prepare_pixel_values"):
        raise ValueError(f"{type(model).__name__} is not an hf_stadyn classifier (no prepare_pixel_values).")
    if len(train_dataset) == 0:
        raise ValueError("the training set is empty.")
    _check_model_input(model, train_dataset, "training")
    for name, ds in eval_datasets.items():
        _check_model_input(model, ds, f"eval set {name!r}")
    output_dir = Path(training_args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output_dir {output_dir} exists and is not a folder; choose another path.")
    resume = None if resume_from_checkpoint in (None, False, "", "false", "False") else resume_from_checkpoint
    _prepare_output_dir(output_dir, resume, bool(opts.overwrite))
    if resume in (True, "last", "true", "True") and not _checkpoints(output_dir):
        logger.warning("resume: no checkpoint in %s; starting from scratch", output_dir)
        resume = None
    output_dir.mkdir(parents=True, exist_ok=True)

    steps_per_epoch = max(1, math.ceil(len(train_dataset) / (
        training_args.per_device_train_batch_size * max(1, training_args.world_size)
        * training_args.gradient_accumulation_steps)))  # fmt: skip
    total_steps = (
        training_args.max_steps
        if training_args.max_steps > 0
        else int(math.ceil(steps_per_epoch * training_args.num_train_epochs))
    )

    # ---- regularisers
    sd_cfg: StaticDropoutConfig | None = None
    if opts.dropout > 0:
        if not hasattr(model, "feature_dropout"):
            raise ValueError(f"{type(model).__name__} has no feature_dropout slot for ordinary dropout.")
        model.feature_dropout = nn.Dropout(opts.dropout)
    sd_base = opts.static_dropout_config(seed=training_args.seed)
    if sd_base is not None:
        sd_cfg = dataclasses.replace(
            sd_base,
            refresh_every=opts.sd_refresh_every if opts.sd_refresh_every is not None else steps_per_epoch,
            refresh_until=opts.sd_refresh_until if opts.sd_refresh_until is not None else max(1, total_steps // 2),
        )
        apply_static_dropout(model, sd_cfg)
    train_ds: Any = train_dataset
    if opts.augment == "stylize":
        styles = opts.augment_style_list()
        train_ds = AugmentedDataset(train_dataset, StylizeAugment(styles, p=opts.augment_p, seed=training_args.seed))
    elif opts.augment == "stillmix":
        mix = StillMixAugment(max_mix=float(opts.stillmix_max), p=opts.augment_p, seed=training_args.seed)
        train_ds = AugmentedDataset(train_dataset, mix)

    # ---- static-pair losses (one shared extra forward) and the settings in the checkpoint config
    dec_cfg = _decorrelation_of(opts, training_args.seed)
    shuffle_uniform = float(getattr(opts, "shuffle_uniform", 0.0) or 0.0)
    debias_terms = debias_loss_terms(dec_cfg, shuffle_uniform, seed=training_args.seed)
    for term in debias_terms:  # a bad layer name fails here, before any training
        check = getattr(term, "check", None)
        if callable(check):
            check(model)
    record_debias_config(model, debias_settings(opts, dec_cfg, training_args.seed))

    # ---- bias tracking on fixed probe pairs (also refreshes StaticDropout)
    tracker: BiasTracker | None = None
    if opts.track_bias or sd_cfg is not None:
        n_pairs = sd_cfg.num_probe_pairs if sd_cfg is not None else opts.probe_pairs
        clips = [train_dataset[i]["frames"] for i in range(min(len(train_dataset), opts.probe_pairs))]
        pairs = ProbePairs(clips, num_pairs=n_pairs, seed=training_args.seed)
        every = opts.track_every if opts.track_every is not None else steps_per_epoch
        tracker = BiasTracker(pairs, static_dropout=sd_cfg, every=every, output_dir=output_dir)

    trainer = StadynTrainer(
        model=model, args=training_args, train_dataset=train_ds, eval_dataset=eval_datasets or None,
        bias_tracker=tracker, stop_after_steps=opts.stop_after_steps, callbacks=list(callbacks or []) or None,
        loss_terms=[*debias_terms, *(loss_terms or [])],
    )  # fmt: skip
    t_train = time.perf_counter()
    with _hf_progress_bars(not training_args.disable_tqdm):  # the checkpoints' "Writing model shards" bars too
        trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - t_train
    state = trainer.state
    stopped = opts.stop_after_steps is not None and state.global_step < state.max_steps
    is_main = trainer.is_world_process_zero()

    history = _eval_rows(state.log_history, list(eval_datasets))
    if is_main:
        atomic_write_text(output_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    model_dir: Path | None = None
    if not stopped:
        model_dir = _save_model(unwrapped, output_dir / MODEL_DIR, is_main, progress=not training_args.disable_tqdm)
    trainer.accelerator.wait_for_everyone()
    sd = get_static_dropout(unwrapped)
    final = dict(history[-1]) if history else {}
    num_labels = int(getattr(unwrapped.config, "num_labels", len(label_names or []) or 2))
    result = ClassificationTrainResult(
        output_dir=output_dir,
        model_dir=model_dir,
        epochs_done=int(math.floor(float(state.epoch or 0) + 1e-9)),
        steps_done=int(state.global_step),
        history=history,
        final=final,
        bias_history=tracker.history_path if tracker is not None else None,
        figure=tracker.figure_path if tracker is not None and not stopped else None,
        seconds=time.perf_counter() - t_start,
        train_seconds=train_seconds,
        static_channels=[int(i) for i in sd.static_channels.tolist()] if sd is not None else None,
        num_labels=num_labels,
        near_chance=near_chance(final, num_labels) if not stopped else False,
        log_history=list(state.log_history),
    )
    if is_main:
        atomic_write_json(output_dir / RESULTS_FILE, {
            "training_args": training_args.to_dict(), "options": dataclasses.asdict(opts), **result.to_dict(),
        })  # fmt: skip
    return result


def _decorrelation_of(opts: Any, seed: int) -> DecorrelationConfig | None:
    fn = getattr(opts, "decorrelation_config", None)
    return fn(seed=seed) if callable(fn) else None


def debias_settings(opts: Any, decorrelation: DecorrelationConfig | None, seed: int) -> dict[str, Any] | None:
    """The debiasing settings recorded in the checkpoint config (``config.stadyn["debias"]``), or None.

    ``{"decorrelation": {...} | None, "shuffle_uniform": w, "augment": name | None, "augment_p": p,
    "stillmix_max": m (StillMix only), "seed": seed}``; StaticDropout records its own entry.
    """
    su = float(getattr(opts, "shuffle_uniform", 0.0) or 0.0)
    augment = getattr(opts, "augment", None)
    if decorrelation is None and su == 0 and augment is None:
        return None
    out: dict[str, Any] = {
        "decorrelation": decorrelation.to_dict() if decorrelation is not None else None,
        "shuffle_uniform": su, "augment": augment, "augment_p": float(opts.augment_p), "seed": int(seed),
    }  # fmt: skip
    if augment == "stillmix":
        out["stillmix_max"] = float(opts.stillmix_max)
    if augment == "stylize":
        out["augment_styles"] = opts.augment_style_list()
    return out


def train_classification(
    config: ClassificationTrainingConfig,
    train_dataset: Any,
    eval_datasets: Mapping[str, Any] | None = None,
    *,
    label_names: Sequence[str] | None = None,
    num_labels: int | None = None,
    model: nn.Module | None = None,
    accelerator: Any = None,
) -> ClassificationTrainResult:
    """:func:`run_classification` from one :class:`ClassificationTrainingConfig` (checkpoints every
    ``save_every_epochs`` epochs, evaluation and logging each epoch, a cosine schedule).

    ``accelerator`` is not used any more (Trainer makes its own from the arguments); passing one warns.
    """
    if accelerator is not None:
        import warnings

        warnings.warn("train_classification(accelerator=...) is ignored: Trainer builds its own accelerator.",
                      DeprecationWarning, stacklevel=2)  # fmt: skip
    if label_names is not None:
        num_labels = len(label_names)
    if num_labels is None or num_labels < 2:
        raise ValueError(
            f"a classifier needs >= 2 classes; got label_names={label_names!r}, num_labels={num_labels!r}."
        )
    if model is None:
        model = build_classifier(config, num_labels, label_names)
    return run_classification(
        config.to_training_arguments(len(train_dataset)), train_dataset, eval_datasets, model=model,
        options=config.to_options(), label_names=label_names, resume_from_checkpoint=True if config.resume else None,
    )  # fmt: skip
