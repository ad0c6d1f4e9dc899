"""Clip datasets and the data collator of video classification training (docs/method.md §9 for the data).

* :class:`ClipTensorDataset` (clips in memory), :func:`synth_datasets` (StaDyn-Synth),
  :class:`VideoFolderDataset` / :func:`video_folder_datasets` (one subfolder per class) and
  :func:`hf_video_datasets` (a ``datasets`` dataset with a video column and a label column): items
  ``{"frames": (T, H, W, 3) uint8, "label": int, "index": int}``.
* :class:`ShuffledFramesDataset`: the same clips with their frames shuffled (seeded, never the
  identity): the shuffle-sensitivity eval set of docs/method.md §8.
* :class:`VideoClassificationCollator`: items -> ``{"pixel_values": (B, T, 3, H, W) float32,
  "labels": (B,) int64}``, the model's inputs, normalised with the model's mean / std; what
  :class:`~hf_stadyn.training.trainer.StadynTrainer` feeds ``transformers.Trainer``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "ClipTensorDataset",
    "ShuffledFramesDataset",
    "VideoClassificationCollator",
    "VideoFolderDataset",
    "hf_video_datasets",
    "set_dataset_epoch",
    "synth_datasets",
    "video_folder_datasets",
]


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


# ====================================================================== shuffled view and collator
def shuffle_clip_frames(frames: torch.Tensor, index: int, seed: int) -> torch.Tensor:
    """``frames (T, H, W, 3)`` in a seeded non-identity order drawn from ``(seed, index)``."""
    from hf_stadyn.pairs import shuffle_frames

    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))
    shuffled, _ = shuffle_frames(torch.as_tensor(frames).numpy(), rng)
    return torch.from_numpy(np.ascontiguousarray(shuffled))


class ShuffledFramesDataset(torch.utils.data.Dataset):
    """``dataset`` with each clip's frames shuffled (seeded per clip, never the identity).

    A model that reads motion loses accuracy here; one that reads appearance does not
    (docs/method.md §8, shuffle sensitivity).
    """

    def __init__(self, dataset: Any, seed: int = 0) -> None:
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        item["frames"] = shuffle_clip_frames(item["frames"], int(item.get("index", index)), self.seed)
        return item


class VideoClassificationCollator:
    """Collate clip items into model inputs: ``{"pixel_values": (B, T, 3, H, W) float32, "labels": (B,)}``.

    Args:
        mean, std: per-channel normalisation of the model (``model.probe_input_spec()``).
        num_frames, image_size: the model's input; clips of another shape are an error.

    Build it from a model with :meth:`from_model`. It holds numbers only (no model), so DataLoader
    workers can pickle it.
    """

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], num_frames: int, image_size: int | tuple[int, int]
    ) -> None:
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        self.num_frames, self.image_size = int(num_frames), image_size

    @classmethod
    def from_model(cls, model: Any) -> VideoClassificationCollator:
        spec_fn = getattr(model, "probe_input_spec", None)
        if not callable(spec_fn):
            raise ValueError(
                f"{type(model).__name__} has no probe_input_spec (the hf_stadyn probing mixin); build the collator "
                "with VideoClassificationCollator(mean, std, num_frames, image_size)."
            )
        spec = spec_fn()
        return cls(spec["mean"], spec["std"], spec["num_frames"], spec["image_size"])

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        from hf_stadyn.probing.mixin import clips_to_pixel_values

        frames = torch.stack([torch.as_tensor(it["frames"]) for it in items])
        pv = clips_to_pixel_values(
            frames, self.mean, self.std, num_frames=self.num_frames, image_size=self.image_size
        )  # (B, T, 3, H, W)
        labels = torch.tensor([int(it["label"]) for it in items], dtype=torch.long)
        return {"pixel_values": pv, "labels": labels}


def set_dataset_epoch(dataset: Any, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on ``dataset`` and on the datasets it wraps (``.dataset`` chain)."""
    seen: set[int] = set()
    while dataset is not None and id(dataset) not in seen:
        seen.add(id(dataset))
        fn = getattr(dataset, "set_epoch", None)
        if callable(fn):
            fn(int(epoch))
        dataset = getattr(dataset, "dataset", None)
