"""Train video classifiers with accelerate: StaticDropout, its controls, bias tracking, resumable.

(Over 500 lines on purpose, for now: this hand-written loop is replaced by ``transformers.Trainer``
with our callbacks in the next release, and is left whole until then rather than split twice.)

:func:`train_classification` fine-tunes (or trains from scratch) an hf_stadyn VideoMAE / TimeSformer
classifier on clip datasets (items ``{"frames": (T, H, W, 3) uint8, "label": int}``) with one
accelerate loop that runs on a CPU, one GPU or several (``accelerate launch``):

* regularisers: ordinary dropout at the classifier input (``dropout``), StaticDropout
  (``static_dropout``, docs/method.md §6) and stylization augmentation (``augment="stylize"``);
* bias tracking: the estimator on fixed probe pairs on a schedule, logged to ``logging``, JSON lines,
  the accelerate trackers and a bias-versus-step figure; the same measurement refreshes StaticDropout;
* evaluation on every eval set after each epoch (accuracy, loss);
* checkpoints: ``accelerate.save_state`` folders (model, optimizer, scheduler, RNG states, bias
  history) written to a temporary name and renamed when complete, so an interrupted run never leaves
  a half-written checkpoint; ``resume=True`` continues from the last one with identical results;
* the final model saved with ``save_pretrained`` (safetensors) into ``<output_dir>/model``: an
  upstream-compatible checkpoint that plain ``transformers`` loads, with the StaticDropout settings
  and static set in its config.json.

Data helpers build the datasets the CLI offers: :func:`synth_datasets` (StaDyn-Synth),
:class:`VideoFolderDataset` (a folder with one subfolder per class) and :func:`hf_video_datasets`
(a ``datasets`` dataset with a video-path column and a label column).
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hf_stadyn._io import atomic_write_json, atomic_write_text
from hf_stadyn.debias import (
    BiasTracker,
    ProbePairs,
    StaticDropoutConfig,
    StaticDropoutHook,
    apply_static_dropout,
    get_static_dropout,
    set_static_channels,
)

from .augment import AugmentedDataset, StylizeAugment

__all__ = [
    "ClassificationTrainResult",
    "ClassificationTrainingConfig",
    "ClipTensorDataset",
    "VideoFolderDataset",
    "build_classifier",
    "evaluate_classifier",
    "hf_video_datasets",
    "synth_datasets",
    "train_classification",
    "video_folder_datasets",
]

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
MODEL_DIR = "model"
STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
ARCHITECTURES = ("videomae", "timesformer")
AUGMENTS = ("stylize",)


# ====================================================================== datasets
class ClipTensorDataset(torch.utils.data.Dataset):
    """Clips held in memory: ``frames (N, T, H, W, 3)`` uint8 and ``labels (N,)``; items
    ``{"frames", "label", "index"}`` plus any extra per-clip tensors given in ``extra``."""

    def __init__(self, frames: torch.Tensor, labels: torch.Tensor | Sequence[int], **extra: torch.Tensor) -> None:
        frames = torch.as_tensor(frames)
        labels = torch.as_tensor(labels, dtype=torch.long)
        if frames.dtype != torch.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (N, T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}.")
        if labels.shape != (frames.shape[0],):
            raise ValueError(f"labels must be (N,) = ({frames.shape[0]},), got {tuple(labels.shape)}.")
        for k, v in extra.items():
            if len(v) != frames.shape[0]:
                raise ValueError(f"extra field {k!r} has {len(v)} entries for {frames.shape[0]} clips.")
        self.frames, self.labels, self.extra = frames, labels, extra

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {"frames": self.frames[index], "label": int(self.labels[index]), "index": int(index)}
        for k, v in self.extra.items():
            item[k] = v[index]
        return item


def synth_datasets(
    split: str = "trap",
    *,
    num_train: int = 3000,
    num_eval: int = 500,
    seed: int = 0,
    trap_share: float = 0.99,
    trap_cue: str = "invariant",
    config: Any = None,
    in_memory: bool = True,
    progress: bool = False,
) -> tuple[torch.utils.data.Dataset, dict[str, torch.utils.data.Dataset], list[str]]:
    """StaDyn-Synth training set, eval sets and label names.

    Eval sets: for ``split="trap"`` the ``aligned`` and ``conflicting`` test variants (the static cue
    agrees with / contradicts the label); else one ``test`` set. With ``in_memory`` the clips are
    rendered once into tensors (fast epochs).
    """
    from hf_stadyn.synth import SynthDataset

    def make(train: bool, n: int, variant: str = "aligned") -> Any:
        ds = SynthDataset(
            split=split, num_clips=n, config=config, seed=seed, trap_share=trap_share, trap_cue=trap_cue,
            test_variant=variant, train=train,
        )  # fmt: skip
        if not in_memory:
            return ds
        t = ds.to_tensors(progress=progress)
        return ClipTensorDataset(t["frames"], t["label"], motion=t["motion"], appearance=t["appearance"])

    train = make(True, num_train)
    variants = ("aligned", "conflicting") if split == "trap" else ("test",)
    evals = {v: make(False, num_eval, v if split == "trap" else "aligned") for v in variants}
    names = SynthDataset(split=split, num_clips=1, config=config, seed=seed, trap_cue=trap_cue).label_names
    return train, evals, list(names)


class VideoFolderDataset(torch.utils.data.Dataset):
    """Labelled videos: ``(source, label)`` pairs decoded to ``num_frames`` frames of ``size`` x ``size``.

    A source is a file path or the file's bytes (videos embedded in a ``datasets`` dataset).

    Training items sample a window of ``window`` source frames at a random start drawn from
    ``(seed, epoch, index)`` (call :meth:`set_epoch`); eval items (``train=False``) use the centre
    window. A window longer than a video is clipped to the video's length.
    """

    def __init__(
        self,
        videos: Sequence[tuple[str | os.PathLike | bytes, int]],
        num_frames: int,
        size: int,
        *,
        window: int = 64,
        train: bool = True,
        seed: int = 0,
    ) -> None:
        from hf_stadyn.video import read_video_info

        if not videos:
            raise ValueError("the video list is empty; give at least one (path, label).")
        self.videos = [(p if isinstance(p, (bytes, bytearray)) else str(p), int(lbl)) for p, lbl in videos]
        for p, _ in self.videos:
            if isinstance(p, str) and not os.path.isfile(p):
                raise FileNotFoundError(f"video {p} does not exist; check the dataset's video paths.")
        self.num_frames, self.size, self.window = int(num_frames), int(size), int(window)
        self.train, self.seed, self.epoch = bool(train), int(seed), 0
        self._lengths = [int(read_video_info(p, name=self._name(i)).num_frames) for i, (p, _) in enumerate(self.videos)]

    def _name(self, index: int) -> str:
        src = self.videos[index][0]
        return src if isinstance(src, str) else f"video #{index} (embedded bytes)"

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from hf_stadyn.video import read_clip

        path, label = self.videos[index]
        window = max(1, min(self.window, self._lengths[index]))
        rng = (
            np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch, index)))
            if self.train
            else None
        )
        clip = read_clip(path, self.num_frames, window=window, rng=rng, size=self.size, name=self._name(index))
        return {"frames": torch.from_numpy(np.ascontiguousarray(clip.frames)), "label": label, "index": index}


def _split_indices(n: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction!r}.")
    perm = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(eval_fraction * n)))
    if k >= n:
        raise ValueError(f"{n} videos are too few to hold out {eval_fraction:.0%} for evaluation; add videos.")
    return sorted(perm[k:].tolist()), sorted(perm[:k].tolist())


def video_folder_datasets(
    root: str | os.PathLike,
    *,
    num_frames: int,
    size: int,
    eval_root: str | os.PathLike | None = None,
    eval_fraction: float = 0.2,
    window: int = 64,
    seed: int = 0,
) -> tuple[VideoFolderDataset, dict[str, VideoFolderDataset], list[str]]:
    """Datasets from a folder with one subfolder per class (``root/<class>/*.mp4``).

    The classes are the sorted subfolder names; each class folder's video files (extensions in
    :data:`hf_stadyn.video.VIDEO_EXTENSIONS`, listed by :func:`hf_stadyn.video.list_videos`, not
    recursively) in sorted order. Evaluation uses ``eval_root`` (same layout, same class names) or a
    seeded ``eval_fraction`` of the videos.
    """
    from hf_stadyn.video.sources import VIDEO_EXTENSIONS, list_videos

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist.")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise ValueError(f"{root} needs one subfolder per class (at least 2), found {classes}.")

    def labelled_videos(base: Path) -> list[tuple[str, int]]:
        out = []
        for k, c in enumerate(classes):
            d = base / c
            if not d.is_dir():
                raise ValueError(f"{base} has no subfolder {c!r}; eval folders must have the training classes.")
            out += [(str(p), k) for p in list_videos(d, recursive=False, allow_empty=True)]
        return out

    videos = labelled_videos(root)
    empty = [c for k, c in enumerate(classes) if not any(lbl == k for _, lbl in videos)]
    if empty:
        raise ValueError(f"class folder(s) {empty} under {root} hold no videos ({', '.join(VIDEO_EXTENSIONS)}).")
    if eval_root is not None:
        train_v, eval_v = videos, labelled_videos(Path(eval_root))
    else:
        tr, ev = _split_indices(len(videos), eval_fraction, seed)
        train_v, eval_v = [videos[i] for i in tr], [videos[i] for i in ev]
    kw = dict(num_frames=num_frames, size=size, window=window, seed=seed)
    return (
        VideoFolderDataset(train_v, train=True, **kw),
        {"eval": VideoFolderDataset(eval_v, train=False, **kw)},
        classes,
    )


def hf_video_datasets(
    path: str | os.PathLike,
    *,
    num_frames: int,
    size: int,
    video_column: str = "video",
    label_column: str = "label",
    train_split: str = "train",
    eval_split: str | None = None,
    eval_fraction: float = 0.2,
    window: int = 64,
    seed: int = 0,
) -> tuple[VideoFolderDataset, dict[str, VideoFolderDataset], list[str]]:
    """Datasets from a ``datasets`` dataset with a video-path column and a label column.

    ``path`` is a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, a
    StaDyn-Synth export folder, or a CSV / JSON (lines) / Parquet file (read by
    :func:`hf_stadyn.video.sources.load_local_dataset`). Relative video paths are resolved against the
    dataset's folder; a video cell with both a path and embedded bytes reads the file when it exists.
    Labels are ``ClassLabel`` ints (their names are used) or strings (sorted to ids) or ints.
    Evaluation uses ``eval_split`` of a ``DatasetDict`` (default ``"test"`` or ``"validation"`` when
    present) or a seeded ``eval_fraction`` of the training split.
    """
    import datasets

    from hf_stadyn.video.sources import column_videos, load_local_dataset, undecoded_video_column

    path = Path(path)
    ds = load_local_dataset(path)
    base = path if path.is_dir() else path.parent
    if isinstance(ds, datasets.DatasetDict):
        if train_split not in ds:
            raise ValueError(f"{path} has splits {list(ds)}, no {train_split!r}; pass --train-split.")
        if eval_split is None:
            eval_split = next((s for s in ("test", "validation", "eval") if s in ds and s != train_split), None)
        elif eval_split not in ds:
            raise ValueError(f"{path} has splits {list(ds)}, no {eval_split!r}; pass --eval-split.")
        train_ds, eval_ds = ds[train_split], (ds[eval_split] if eval_split else None)
    else:
        train_ds, eval_ds = ds, None
    for col in (video_column, label_column):
        if col not in train_ds.column_names:
            raise ValueError(
                f"{path} has columns {train_ds.column_names}, no {col!r}; pass --video-column/--label-column."
            )
    # a Video column: read the file paths or bytes, not decoded frames (we decode with PyAV ourselves)
    train_ds = undecoded_video_column(train_ds, video_column)
    if eval_ds is not None:
        eval_ds = undecoded_video_column(eval_ds, video_column)
    feat = train_ds.features[label_column]
    if isinstance(feat, datasets.ClassLabel):
        names = list(feat.names)
        to_id: Callable[[Any], int] = int
    else:
        values = sorted(set(train_ds[label_column]) | (set(eval_ds[label_column]) if eval_ds is not None else set()))
        names = [str(v) for v in values]
        lookup = {v: i for i, v in enumerate(values)}
        to_id = lookup.__getitem__

    def rows(d: Any) -> list[tuple[Any, int]]:
        # relative paths against the dataset's folder; a file on disk is read before embedded bytes
        sources = column_videos(d, video_column, base=base, prefer="file")
        return [(src, to_id(lbl)) for src, lbl in zip(sources, d[label_column])]

    train_rows = rows(train_ds)
    if eval_ds is not None:
        eval_rows = rows(eval_ds)
    else:
        tr, ev = _split_indices(len(train_rows), eval_fraction, seed)
        train_rows, eval_rows = [train_rows[i] for i in tr], [train_rows[i] for i in ev]
    kw = dict(num_frames=num_frames, size=size, window=window, seed=seed)
    return (
        VideoFolderDataset(train_rows, train=True, **kw),
        {"eval": VideoFolderDataset(eval_rows, train=False, **kw)},
        names,
    )


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
        augment: ``"stylize"`` restyles training clips (the stylization control); ``augment_p`` and
            ``augment_styles`` tune it.
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
def _collate(items: list[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "frames": torch.stack([torch.as_tensor(it["frames"]) for it in items]),
        "label": torch.tensor([int(it["label"]) for it in items], dtype=torch.long),
        "index": torch.tensor([int(it.get("index", i)) for i, it in enumerate(items)], dtype=torch.long),
    }


def _shuffle_clips(frames: torch.Tensor, index: torch.Tensor, seed: int) -> torch.Tensor:
    """Shuffle the frames of each clip with a seeded non-identity permutation (per clip index)."""
    from hf_stadyn.pairs import shuffle_frames

    out = torch.empty_like(frames)
    for j in range(frames.shape[0]):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(index[j]),)))
        shuffled, _ = shuffle_frames(frames[j].numpy(), rng)
        out[j] = torch.from_numpy(np.ascontiguousarray(shuffled))
    return out


def _loader_generator(seed: int, epoch: int = 0) -> torch.Generator:
    """A private generator for a DataLoader: creating its iterator (worker seeds) must not draw from
    torch's global generator, or a resumed run would diverge from an uninterrupted one."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(seed, spawn_key=(epoch, 7)).generate_state(1)[0]))


def _shard(loader: torch.utils.data.DataLoader, accelerator: Any) -> Any:
    """Split a loader's batches over the processes (accelerate), without registering it for checkpoints."""
    from accelerate.data_loader import prepare_data_loader

    return prepare_data_loader(
        loader, device=accelerator.device, num_processes=accelerator.num_processes,
        process_index=accelerator.process_index, put_on_device=False,
    )  # fmt: skip


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
    """Accuracy and mean loss of ``model`` on ``dataset`` (items ``frames``, ``label``).

    Args:
        shuffle_frames: shuffle each clip's frames (seeded, never the identity) before classifying:
            the shuffle-sensitivity check of docs/method.md §8.
        accelerator: shard the data over processes and gather (default: this process only).
        return_predictions: also return ``predictions`` and ``labels`` (in dataset order).

    Returns:
        ``{"accuracy", "loss", "num_clips"}`` (+ ``predictions``, ``labels``).
    """
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate, generator=_loader_generator(seed)
    )
    if accelerator is not None:
        loader = _shard(loader, accelerator)
    inner = accelerator.unwrap_model(model) if accelerator is not None else model
    device = next(inner.parameters()).device
    was_training = model.training
    model.eval()
    preds, labels, losses = [], [], []
    try:
        for batch in loader:
            frames = batch["frames"]
            if shuffle_frames:
                frames = _shuffle_clips(frames, batch["index"], seed)
            pv = inner.prepare_pixel_values(frames, device=device)
            y = batch["label"].to(device)
            logits = model(pixel_values=pv).logits.float()
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


# ====================================================================== checkpoints
def _checkpoint_dirs(output_dir: Path) -> list[Path]:
    root = output_dir / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [d for d in root.iterdir() if d.is_dir() and d.name.startswith("step_") and (d / STATE_FILE).is_file()]
    return sorted(found, key=lambda d: int(d.name.split("_")[1]))


def _save_checkpoint(accelerator: Any, output_dir: Path, state: dict[str, Any], limit: int | None) -> Path:
    root = output_dir / CHECKPOINTS_DIR
    final = root / f"step_{state['step']:08d}"
    tmp = root / f".tmp_step_{state['step']:08d}"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            atomic_write_json(tmp / STATE_FILE, state)  # the completion marker, written last
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
    except BaseException:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written checkpoint behind
        raise
    if accelerator.is_main_process and limit is not None:
        for old in _checkpoint_dirs(output_dir)[:-limit]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


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


def _save_model(model: nn.Module, path: Path, accelerator: Any, progress: bool = True) -> Path:
    """``save_pretrained`` (safetensors) into ``path`` via a temporary folder renamed when complete."""
    tmp = path.parent / f".tmp_{path.name}"
    if accelerator.is_main_process:
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
    accelerator.wait_for_everyone()
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


# ====================================================================== training
def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(seed, spawn_key=(epoch,)).generate_state(1)[0]))
    return torch.randperm(n, generator=g).tolist()


class _SetEpoch:
    """Call ``set_epoch`` on a dataset and the datasets it wraps."""

    @staticmethod
    def apply(ds: Any, epoch: int) -> None:
        seen = set()
        while ds is not None and id(ds) not in seen:
            seen.add(id(ds))
            fn = getattr(ds, "set_epoch", None)
            if callable(fn):
                fn(epoch)
            ds = getattr(ds, "dataset", None)


def _prepare_output_dir(cfg: ClassificationTrainingConfig, output_dir: Path, is_main: bool) -> Path | None:
    """Return the checkpoint to resume from (or None); refuse to overwrite a run by accident."""
    ckpts = _checkpoint_dirs(output_dir)
    has_run = bool(ckpts) or (output_dir / MODEL_DIR).exists() or (output_dir / METRICS_FILE).exists()
    if cfg.resume:
        if ckpts:
            return ckpts[-1]
        logger.warning("resume: no checkpoint in %s; starting from scratch", output_dir / CHECKPOINTS_DIR)
        return None
    if has_run and not cfg.overwrite:
        raise ValueError(
            f"output_dir {output_dir} already holds a training run; pass resume=True (--resume) to continue it or "
            "overwrite=True (--overwrite) to start again."
        )
    if has_run and is_main:
        for sub in (CHECKPOINTS_DIR, MODEL_DIR):
            shutil.rmtree(output_dir / sub, ignore_errors=True)
        for f in (METRICS_FILE, RESULTS_FILE, "bias_history.jsonl", "bias_history.png"):
            with contextlib.suppress(FileNotFoundError):
                (output_dir / f).unlink()
    return None


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
    """Train a video classifier (see the module docstring for what a run does and writes).

    Args:
        config: the settings.
        train_dataset: items ``{"frames": (T, H, W, 3) uint8, "label": int}`` at the model's input size.
        eval_datasets: ``{name: dataset}`` evaluated after every epoch (accuracy, loss).
        label_names: class names (recorded as ``id2label``); their count gives ``num_labels``.
        num_labels: number of classes when ``label_names`` is not given.
        model: a ready model (hf_stadyn classifier) instead of building one from ``config.model``.
        accelerator: an ``accelerate.Accelerator``; default one from ``mixed_precision`` / ``cpu`` /
            ``report_to``.

    Returns:
        :class:`ClassificationTrainResult`.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    t_start = time.perf_counter()
    eval_datasets = dict(eval_datasets or {})
    if label_names is not None:
        num_labels = len(label_names)
    if num_labels is None or num_labels < 2:
        raise ValueError(
            f"a classifier needs >= 2 classes; got label_names={label_names!r}, num_labels={num_labels!r}."
        )
    if len(train_dataset) == 0:
        raise ValueError("the training set is empty.")
    output_dir = Path(config.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output_dir {output_dir} exists and is not a folder.")

    if accelerator is None:
        accelerator = Accelerator(
            mixed_precision=config.mixed_precision, cpu=config.cpu, log_with=config.report_to,
            project_dir=str(output_dir),
        )  # fmt: skip
    is_main = accelerator.is_main_process
    resume_from = _prepare_output_dir(config, output_dir, is_main)
    accelerator.wait_for_everyone()
    if is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)

    if model is None:
        model = build_classifier(config, num_labels, label_names)
    if not hasattr(model, "prepare_pixel_values"):
        raise ValueError(f"{type(model).__name__} is not an hf_stadyn classifier (no prepare_pixel_values).")
    _check_model_input(model, train_dataset, "training")
    for name, ds in eval_datasets.items():
        _check_model_input(model, ds, f"eval set {name!r}")

    steps_per_epoch = math.ceil(len(train_dataset) / (config.batch_size * accelerator.num_processes))
    total_steps = steps_per_epoch * config.epochs

    # ---- regularisers
    sd_cfg: StaticDropoutConfig | None = None
    if config.dropout > 0:
        if not hasattr(model, "feature_dropout"):
            raise ValueError(f"{type(model).__name__} has no feature_dropout slot for ordinary dropout.")
        model.feature_dropout = nn.Dropout(config.dropout)
    if config.static_dropout is not None:
        sd_cfg = dataclasses.replace(
            config.static_dropout,
            refresh_every=config.sd_refresh_every if config.sd_refresh_every is not None else steps_per_epoch,
            refresh_until=config.sd_refresh_until if config.sd_refresh_until is not None else max(1, total_steps // 2),
        )
        apply_static_dropout(model, sd_cfg)
    train_ds: Any = train_dataset
    if config.augment == "stylize":
        train_ds = AugmentedDataset(
            train_dataset, StylizeAugment(config.augment_styles, p=config.augment_p, seed=config.seed)
        )

    # ---- bias tracking on fixed probe pairs (also refreshes StaticDropout)
    hook: StaticDropoutHook | None = None
    if config.track_bias or sd_cfg is not None:
        n_clips = min(len(train_dataset), config.probe_pairs)
        clips = [train_dataset[i]["frames"] for i in range(n_clips)]
        pairs = ProbePairs(clips, num_pairs=sd_cfg.num_probe_pairs if sd_cfg else config.probe_pairs, seed=config.seed)
        every = config.track_every if config.track_every is not None else steps_per_epoch
        tracker = BiasTracker(pairs, static_dropout=sd_cfg, every=every, output_dir=output_dir)
        hook = StaticDropoutHook(tracker, accelerator)

    # ---- optimisation
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in n.lower() or n.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    scheduler = get_scheduler(
        "cosine", optimizer, num_warmup_steps=int(config.warmup_ratio * total_steps), num_training_steps=total_steps
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    if hook is not None:
        accelerator.register_for_checkpointing(hook)
    if config.report_to:
        accelerator.init_trackers("stadyn-train", config=_flat_config(config))

    # ---- resume
    start_epoch, step, skip_batches = 0, 0, 0
    history: list[dict[str, Any]] = []
    resumed_losses: list[float] = []
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        state = json.loads((resume_from / STATE_FILE).read_text(encoding="utf-8"))
        start_epoch, step, skip_batches = int(state["epoch"]), int(state["step"]), int(state["batches_in_epoch"])
        history = list(state.get("history", []))
        resumed_losses = [float(v) for v in state.get("epoch_losses", [])]
        if state.get("total_steps") not in (None, total_steps):
            raise ValueError(
                f"checkpoint {resume_from} belongs to a run of {state['total_steps']} steps, this one has {total_steps}; "
                "resume with the same data, epochs and batch size (or start a new output_dir)."
            )
        unwrapped = accelerator.unwrap_model(model)
        sd = get_static_dropout(unwrapped)
        if sd is not None:
            set_static_channels(unwrapped, sd.static_channels)  # sync config.json with the restored buffer
        logger.info("resumed from %s (epoch %d, step %d)", resume_from, start_epoch, step)

    if hook is not None:
        hook.on_train_begin(model, step=step, epoch=float(start_epoch))

    # ---- loop
    train_seconds = 0.0
    stopped = False
    unwrapped = accelerator.unwrap_model(model)
    for epoch in range(start_epoch, config.epochs):
        _SetEpoch.apply(train_ds, epoch)
        order = _epoch_order(len(train_ds), config.seed, epoch)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(train_ds, order), batch_size=config.batch_size, shuffle=False,
            collate_fn=_collate, num_workers=config.num_workers, generator=_loader_generator(config.seed, epoch),
        )  # fmt: skip
        loader = _shard(loader, accelerator)
        if skip_batches:
            loader = accelerator.skip_first_batches(loader, skip_batches)
        model.train()
        losses: list[float] = resumed_losses if skip_batches else []
        resumed_losses = []
        bar = tqdm(total=steps_per_epoch, initial=skip_batches, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not (config.progress and is_main), leave=False)  # fmt: skip
        batches_in_epoch = skip_batches
        skip_batches = 0
        for batch in loader:
            t0 = time.perf_counter()
            pv = unwrapped.prepare_pixel_values(batch["frames"], device=accelerator.device)
            out = model(pixel_values=pv, labels=batch["label"].to(accelerator.device))
            accelerator.backward(out.loss)
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            train_seconds += time.perf_counter() - t0
            step += 1
            batches_in_epoch += 1
            losses.append(float(out.loss.detach()))
            bar.update(1)
            if hook is not None:
                hook.on_step_end(model, step, epoch=epoch + batches_in_epoch / steps_per_epoch)
            if (
                config.stop_after_steps is not None
                and step >= config.stop_after_steps
                and batches_in_epoch < steps_per_epoch
            ):
                _save_checkpoint(accelerator, output_dir,
                                 _state(epoch, step, batches_in_epoch, total_steps, history, losses),
                                 config.save_total_limit)  # fmt: skip
                stopped = True
                break
        bar.close()
        if stopped:
            break
        # ---- evaluate
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step,
                               "train_loss": float(np.mean(losses)) if losses else float("nan"),
                               "learning_rate": float(scheduler.get_last_lr()[0])}  # fmt: skip
        for name, ds in eval_datasets.items():
            res = evaluate_classifier(model, ds, batch_size=config.eval_batch_size, accelerator=accelerator)
            row[f"eval/{name}/accuracy"] = res["accuracy"]
            row[f"eval/{name}/loss"] = res["loss"]
        history.append(row)
        accelerator.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=step)
        logger.info("epoch %d/%d: %s", epoch + 1, config.epochs,
                    ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "step")))  # fmt: skip
        if is_main:
            atomic_write_text(output_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))
        last = epoch + 1 == config.epochs
        stop_here = config.stop_after_steps is not None and step >= config.stop_after_steps and not last
        if last or stop_here or (epoch + 1) % config.save_every_epochs == 0:
            _save_checkpoint(
                accelerator, output_dir, _state(epoch + 1, step, 0, total_steps, history), config.save_total_limit
            )
        if stop_here:
            stopped = True
            break

    model_dir: Path | None = None
    figure = None
    if not stopped:
        model_dir = _save_model(unwrapped, output_dir / MODEL_DIR, accelerator, progress=config.progress)
        if hook is not None:
            figure = hook.on_train_end(title=f"bias during training ({unwrapped.config.model_type})")
    if config.report_to:
        accelerator.end_training()
    sd = get_static_dropout(unwrapped)
    result = ClassificationTrainResult(
        output_dir=output_dir,
        model_dir=model_dir,
        epochs_done=len(history),
        steps_done=step,
        history=history,
        final=history[-1] if history else {},
        bias_history=hook.tracker.history_path if hook is not None else None,
        figure=figure,
        seconds=time.perf_counter() - t_start,
        train_seconds=train_seconds,
        static_channels=[int(i) for i in sd.static_channels.tolist()] if sd is not None else None,
    )
    if is_main:
        atomic_write_json(output_dir / RESULTS_FILE, {"config": config.to_dict(), **result.to_dict()})
    return result


def _state(
    epoch: int, step: int, batches_in_epoch: int, total_steps: int, history: list[dict[str, Any]],
    epoch_losses: list[float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "epoch": epoch, "step": step, "batches_in_epoch": batches_in_epoch, "total_steps": total_steps,
        "history": history, "epoch_losses": list(epoch_losses or []),
    }  # fmt: skip


def _flat_config(config: ClassificationTrainingConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.to_dict().items():
        if isinstance(v, Mapping):
            for kk, vv in v.items():
                if isinstance(vv, (int, float, str, bool)):
                    out[f"{k}.{kk}"] = vv
        elif isinstance(v, (int, float, str, bool)):
            out[k] = v
    return out
