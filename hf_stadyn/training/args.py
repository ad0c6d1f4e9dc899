"""Our options of ``stadyn train --task classification``, as dataclasses for ``HfArgumentParser``.

``transformers.TrainingArguments`` holds every Trainer option under its usual name
(``--per_device_train_batch_size``, ``--learning_rate``, ``--num_train_epochs``, ``--logging_steps``,
``--eval_strategy``, ``--save_total_limit``, ``--report_to``, ``--push_to_hub``, ``--bf16``, ...).
What is ours lives here, one place for help text and defaults (each field's ``metadata["help"]``):

* :class:`DataArguments`: where the clips come from (StaDyn-Synth or videos) and the input size;
* :class:`ModelArguments`: a new tiny model or a checkpoint to fine-tune;
* :class:`StadynArguments`: StaticDropout, ordinary dropout, the static-pair losses (decorrelation,
  shuffle-uniform), augmentation (stylize, StillMix), bias tracking, overwrite.

Flag style: ``--snake_case`` like Trainer's, so one command line reads one way.
:data:`CLASSIFICATION_DEFAULTS` are the TrainingArguments defaults of the task (Trainer's own
defaults are for language-model fine-tuning): the learning rate is 1e-3 for a new model and 1e-4
when fine-tuning a checkpoint (:func:`default_learning_rate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CLASSIFICATION_DEFAULTS",
    "DataArguments",
    "ModelArguments",
    "StadynArguments",
    "default_learning_rate",
]

#: TrainingArguments defaults of ``stadyn train --task classification`` (a command-line flag wins).
CLASSIFICATION_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 8,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "weight_decay": 0.05,
    "warmup_steps": 0.1,  # a float < 1 is a share of the steps
    "lr_scheduler_type": "cosine",
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "logging_strategy": "steps",
    "logging_steps": 10,
    "save_total_limit": 2,
    "report_to": "none",
}

#: Learning rates per case (no rate shared between tasks; AVOS trains at 3e-3).
LR_FROM_SCRATCH = 1e-3
LR_FINE_TUNE = 1e-4


def default_learning_rate(model: str) -> float:
    """1e-3 for a new tiny model (``videomae`` / ``timesformer``), 1e-4 to fine-tune a checkpoint."""
    return LR_FROM_SCRATCH if model in ("videomae", "timesformer") else LR_FINE_TUNE


def _f(default: Any, help: str, **meta: Any) -> Any:
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class DataArguments:
    """Where the training and evaluation clips come from."""

    data: str = _f(
        "synth",
        "'synth' (StaDyn-Synth, rendered in memory), a folder with one subfolder of videos per class, a "
        "datasets save_to_disk folder, or a .csv/.json/.jsonl/.parquet file with a video-path and a label column",
    )
    synth_split: str = _f(
        "trap", "StaDyn-Synth split (trap: evaluated on aligned and conflicting clips)",
        choices=["motion", "appearance", "trap"],
    )  # fmt: skip
    trap_cue: str = _f(
        "invariant",
        "which appearance attributes carry the trap's static cue",
        choices=["invariant", "sensitive", "both"],
    )
    trap_share: float = _f(0.99, "share of training clips whose static cue agrees with the label (trap split)")
    synth_motions: str = _f(
        "left,right,up,down", "comma-separated StaDyn-Synth motion classes (the labels of the motion and trap splits)"
    )
    synth_appearances: int = _f(4, "StaDyn-Synth appearance classes (1-9)")
    train_clips: int = _f(1000, "StaDyn-Synth training clips")
    test_clips: int = _f(200, "StaDyn-Synth clips per eval set")
    num_frames: int = _f(8, "frames per clip (the model's input)")
    size: int = _f(32, "frame height = width in pixels (the model's input)")
    eval_data: str | None = _f(None, "evaluation folder (same classes) for folder data")
    eval_fraction: float = _f(0.2, "share of the videos held out for evaluation when no eval set is given")
    video_column: str = _f("video", "video-path column of a datasets dataset")
    label_column: str = _f("label", "label column of a datasets dataset")
    train_split: str = _f("train", "training split of a DatasetDict")
    eval_split: str | None = _f(None, "evaluation split of a DatasetDict (default: test or validation)")
    window: int = _f(64, "source frames a training clip spans, subsampled to --num_frames (video data)")
    shuffled_eval: bool = _f(
        True, "also evaluate the first eval set with shuffled frames ('shuffled': the shuffle-sensitivity check)"
    )


@dataclass
class ModelArguments:
    """The model: a new tiny one or a checkpoint folder to fine-tune."""

    model: str = _f(
        "videomae",
        "'videomae' or 'timesformer' (a new tiny model, learning rate 1e-3) or a checkpoint folder to fine-tune "
        "(learning rate 1e-4; a new head when the label count differs)",
    )
    hidden_size: int = _f(64, "tiny model width")
    num_layers: int = _f(4, "tiny model depth")
    num_heads: int = _f(4, "tiny model attention heads")


@dataclass
class StadynArguments:
    """StaticDropout, its controls, the other debiasers and bias tracking (docs/method.md §6, §8; docs/debiasing.md)."""

    static_dropout: float | None = _f(
        None, "enable StaticDropout with drop probability P in [0, 1) per static channel and sample", metavar="P"
    )
    sd_layer: str = _f("pre_classifier", "StaticDropout layer: pre_classifier or a block, e.g. block_3")
    sd_selection: str = _f(
        "top_k",
        "static set: top_k by rho_S - rho_D, the 'static' category, random channels (the control) or none "
        "(with --sd_p_other: ordinary dropout at --sd_layer)",
        choices=["top_k", "category", "random", "none"],
    )
    sd_fraction: float = _f(0.25, "static set size as a share of the layer's channels")
    sd_num_static: int | None = _f(None, "static set size in channels (instead of --sd_fraction)")
    sd_threshold: float = _f(0.5, "threshold of the channel categories for --sd_selection category")
    sd_p_other: float = _f(0.0, "ordinary dropout on the other channels")
    sd_refresh_every: int | None = _f(
        None, "optimizer steps between static-set refreshes (default: each epoch; 0: never)"
    )
    sd_refresh_until: int | None = _f(None, "last step of a refresh (default: half of training)")
    sd_probe_pairs: int = _f(256, "probe pairs per StaticDropout measurement")
    dropout: float = _f(0.0, "ordinary dropout at the classifier input (the same-rate control)")
    decorrelate: float | None = _f(
        None,
        "static-pair decorrelation with weight LAMBDA: each training clip is also forwarded with its frames "
        "shuffled and the features of the two copies are pushed apart (docs/debiasing.md)",
        metavar="LAMBDA",
    )
    decorrelate_form: str = _f(
        "cosine",
        "decorrelation penalty: cosine (mean cosine of the two copies, clamped at 0), cosine_squared, or "
        "cross_cov (the estimator's static score s_S of the (clip, shuffled) pairs, clamped at 0)",
        choices=["cosine", "cosine_squared", "cross_cov"],
    )
    decorrelate_layer: str = _f("pre_classifier", "decorrelation layer: pre_classifier or a block, e.g. block_3")
    decorrelate_shuffled_grad: bool = _f(
        True, "whether gradients flow through the shuffled copy (false: its features are constants)"
    )
    shuffle_uniform: float = _f(
        0.0,
        "weight LAMBDA of the shuffle-uniform penalty (cross-entropy of the shuffled clip's prediction to the "
        "uniform distribution); shares the shuffled forward with --decorrelate",
        metavar="LAMBDA",
    )
    augment: str | None = _f(
        None,
        "stylize: restyle training clips with the pair styles (the stylization control); stillmix: blend a still "
        "frame of another training clip into each clip, label kept",
        choices=["stylize", "stillmix"],
    )
    augment_p: float = _f(1.0, "share of training clips changed by --augment")
    augment_styles: str | None = _f(
        None, "comma-separated style names for --augment stylize (default: the pair styles)"
    )
    stillmix_max: float = _f(0.5, "--augment stillmix: the still frame's weight is drawn from U(0, stillmix_max)")
    track_bias: bool = _f(True, "measure the static/dynamic bias on fixed probe pairs during training")
    track_every: int | None = _f(None, "optimizer steps between bias measurements (default: each epoch)")
    probe_pairs: int = _f(256, "probe pairs for bias tracking")
    stop_after_steps: int | None = _f(
        None, "end this session after N optimizer steps (checkpointed); continue with --resume_from_checkpoint last"
    )
    overwrite: bool = _f(False, "replace a run already in --output_dir (its checkpoints and model)")
    static_dropout_settings: Any = field(default=None, init=False, repr=False, metadata={"help": "internal"})
    decorrelation_settings: Any = field(default=None, init=False, repr=False, metadata={"help": "internal"})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad option and what to give instead."""

        def rate(name: str, value: float | None) -> None:
            if value is not None and not 0.0 <= float(value) < 1.0:
                raise ValueError(f"--{name} must be a rate in [0, 1), got {value}.")

        rate("static_dropout", self.static_dropout)
        rate("dropout", self.dropout)
        rate("sd_p_other", self.sd_p_other)
        if not 0.0 <= self.augment_p <= 1.0:
            raise ValueError(f"--augment_p must be in [0, 1], got {self.augment_p}.")
        if self.decorrelate is not None and not (float(self.decorrelate) > 0 and math.isfinite(self.decorrelate)):
            raise ValueError(f"--decorrelate must be a positive weight LAMBDA, got {self.decorrelate}.")
        if self.decorrelate is None and (
            self.decorrelate_form != "cosine" or self.decorrelate_layer != "pre_classifier"
            or not self.decorrelate_shuffled_grad
        ):  # fmt: skip
            raise ValueError("--decorrelate_* options need --decorrelate LAMBDA to enable the decorrelation.")
        if not (float(self.shuffle_uniform) >= 0 and math.isfinite(self.shuffle_uniform)):
            raise ValueError(f"--shuffle_uniform must be a weight >= 0, got {self.shuffle_uniform}.")
        if not 0.0 < float(self.stillmix_max) <= 1.0:
            raise ValueError(f"--stillmix_max must be in (0, 1], got {self.stillmix_max}.")
        if self.stillmix_max != 0.5 and self.augment != "stillmix":
            raise ValueError("--stillmix_max needs --augment stillmix.")
        for name in ("sd_refresh_every", "track_every"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"--{name} must be >= 0, got {v}.")
        for name in ("probe_pairs", "sd_probe_pairs"):
            if getattr(self, name) < 4:
                raise ValueError(f"--{name} must be >= 4 (at least 2 pairs per factor), got {getattr(self, name)}.")
        if self.static_dropout is None and (
            self.sd_layer != "pre_classifier" or self.sd_selection != "top_k" or self.sd_num_static is not None
            or self.sd_threshold != 0.5 or self.sd_refresh_every is not None or self.sd_refresh_until is not None
            or self.sd_p_other != 0.0
        ):  # fmt: skip
            raise ValueError("--sd_* options need --static_dropout P to enable StaticDropout.")
        if self.static_dropout is not None and self.dropout > 0 and self.sd_layer == "pre_classifier":
            raise ValueError(
                "--dropout and StaticDropout both sit at the classifier input; use --sd_p_other for ordinary dropout "
                "on the other channels."
            )

    def static_dropout_config(self, seed: int = 0) -> Any:
        """The :class:`~hf_stadyn.debias.StaticDropoutConfig` these options ask for (None = off)."""
        if self.static_dropout_settings is not None:
            return self.static_dropout_settings
        if self.static_dropout is None:
            return None
        from hf_stadyn.debias import StaticDropoutConfig

        return StaticDropoutConfig(
            p=self.static_dropout, layer=self.sd_layer, selection=self.sd_selection, top_k_fraction=self.sd_fraction,
            num_static=self.sd_num_static, threshold=self.sd_threshold, p_other=self.sd_p_other,
            num_probe_pairs=self.sd_probe_pairs, seed=seed,
        )  # fmt: skip

    def decorrelation_config(self, seed: int = 0) -> Any:
        """The :class:`~hf_stadyn.debias.DecorrelationConfig` these options ask for (None = off)."""
        if self.decorrelation_settings is not None:
            return self.decorrelation_settings
        if self.decorrelate is None:
            return None
        from hf_stadyn.debias import DecorrelationConfig

        return DecorrelationConfig(
            weight=float(self.decorrelate), form=self.decorrelate_form, layer=self.decorrelate_layer,
            shuffled_grad=bool(self.decorrelate_shuffled_grad), seed=seed,
        )  # fmt: skip

    def augment_style_list(self) -> list[str] | None:
        if not self.augment_styles:
            return None
        return [s.strip() for s in self.augment_styles.split(",") if s.strip()]
