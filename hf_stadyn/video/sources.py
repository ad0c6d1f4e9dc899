"""Where videos come from: the one reader of video collections that every dataset in hf-stadyn uses.

The pair datasets (:class:`~hf_stadyn.pairs.PairDataset`, :class:`~hf_stadyn.pairs.TwoStreamPairDataset`),
the classification data readers (:func:`~hf_stadyn.training.classification.video_folder_datasets`,
:func:`~hf_stadyn.training.classification.hf_video_datasets`) and ``stadyn probe --dataset`` read videos
through this module, so they agree on what a video file is and in which order a folder is read.

A collection of videos can be:

- a folder: every file below it whose extension is in :data:`VIDEO_EXTENSIONS`, sorted by path
  (:func:`list_videos`);
- a list of file paths;
- a Hugging Face ``datasets.Dataset`` with a video column holding file paths, dicts with a ``"path"``
  and/or ``"bytes"`` key, or bytes. A ``datasets.Video`` column is read with ``decode=False`` (its own
  decoder needs torchcodec, which hf-stadyn does not use): the files or bytes are decoded with PyAV;
- in-memory clips: a list of ``(T, H, W, 3)`` uint8 arrays, or a callable ``f(j) -> array`` with
  ``num_videos``.

A ``datasets`` dataset is loaded by :func:`load_video_dataset` from a ``save_to_disk`` folder, a
StaDyn-Synth export folder (``metadata.jsonl``, :func:`hf_stadyn.synth.load_synth`) or a Hub dataset id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._common import _check_frames

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoCollection",
    "column_videos",
    "is_synth_export",
    "list_videos",
    "load_dataset_folder",
    "load_local_dataset",
    "load_video_dataset",
    "resolve_video",
    "undecoded_video_column",
]

#: File extensions (lower case) that count as video files when a folder is listed. One list for every
#: reader: before it existed the training readers missed ``.ts`` (MPEG transport stream) files.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts")

# Data files a dataset can be loaded from directly, with the ``datasets`` builder that reads them.
_DATA_FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def list_videos(
    folder: str | os.PathLike,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    *,
    recursive: bool = True,
    allow_empty: bool = False,
) -> list[Path]:
    """Video files in ``folder`` (below it when ``recursive``), sorted by path: deterministic across runs.

    Args:
        folder: the folder to list.
        extensions: file extensions that count as videos (compared case-insensitively).
        recursive: also list the subfolders (``Path.rglob``); ``False`` lists ``folder`` itself only.
        allow_empty: return ``[]`` instead of raising when no video file is found.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: ``folder`` is not a folder, or holds no video file (unless ``allow_empty``).
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"video folder not found: {folder}")
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; give a folder of videos or a list of paths")
    exts = {e.lower() for e in extensions}
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in exts)
    if not found and not allow_empty:
        raise ValueError(f"no video files ({', '.join(sorted(exts))}) found in {folder}")
    return found


def resolve_video(
    value: Any,
    label: str,
    *,
    base: str | os.PathLike | None = None,
    prefer: str = "bytes",
) -> tuple[str | bytes, str]:
    """One cell of a dataset's video column as ``(source, name)``: a path string or the file's bytes.

    Args:
        value: a path, bytes, or a dict with ``"path"`` and/or ``"bytes"`` (a ``datasets.Video`` cell read
            with ``decode=False``).
        label: how to call the cell in names and errors, e.g. ``"video[3]"``.
        base: folder that relative paths are resolved against (None: left as given, i.e. the working
            directory).
        prefer: for a dict holding both: ``"bytes"`` decodes the embedded bytes; ``"file"`` reads the path
            when that file exists and the bytes otherwise.

    Returns:
        ``(source, name)``; ``name`` is the path, or ``label`` (with the cell's path) for bytes.

    Raises:
        ValueError: the cell holds neither a path nor bytes.
    """
    if prefer not in ("bytes", "file"):
        raise ValueError(f"prefer must be 'bytes' or 'file', got {prefer!r}")

    def where(p: str | os.PathLike) -> str:
        if base is None:
            return str(p)  # as given: the name stays the string the dataset holds
        return str(Path(p) if Path(p).is_absolute() else Path(base) / p)

    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), label
    path, data = value, None
    if isinstance(value, Mapping):
        path, data = value.get("path"), value.get("bytes")
    if data and prefer == "bytes":
        return bytes(data), f"{label} ({path or 'bytes'})"
    if isinstance(path, (str, os.PathLike)) and str(path):
        resolved = where(path)
        if prefer == "bytes" or not data or os.path.isfile(resolved):
            return resolved, resolved
    if data:
        return bytes(data), f"{label} ({path or 'bytes'})"
    raise ValueError(
        f"{label}: expected a video file path, the file's bytes or a dict with 'path'/'bytes' "
        f"(a datasets.Video cell), got {type(value).__name__}; check the video column"
    )


def undecoded_video_column(ds: Any, column: str) -> Any:
    """``ds`` with a ``datasets.Video`` column cast to ``Video(decode=False)``: cells become ``{"path",
    "bytes"}`` dicts that hf-stadyn decodes with PyAV (``datasets``' own decoder needs torchcodec). Other
    columns and datasets without a Video column are returned unchanged."""
    feature = ds.features[column]
    if type(feature).__name__ == "Video" and getattr(feature, "decode", False):
        import datasets

        return ds.cast_column(column, datasets.Video(decode=False))
    return ds


class VideoCollection:
    """Uniform access to a collection of videos: ``count`` and ``get(j) -> (source, name)``.

    ``kind`` is ``"paths"`` (a folder or a list of paths), ``"hf"`` (a ``datasets.Dataset``), ``"arrays"``
    or ``"callable"``; ``source`` holds the paths, the dataset (its video column only), the arrays or the
    callable. See the module docstring for what ``videos`` can be.

    Args:
        videos: the collection.
        video_column: the video column of a ``datasets.Dataset``.
        num_videos: how many videos a callable makes.
    """

    def __init__(self, videos: Any, video_column: str = "video", num_videos: int | None = None) -> None:
        self.kind: str
        self.column = video_column
        if callable(videos) and not hasattr(videos, "column_names"):
            if num_videos is None or int(num_videos) < 1:
                raise ValueError("a callable video source needs num_videos (how many distinct videos it makes)")
            self.kind, self.source, self.count = "callable", videos, int(num_videos)
        elif isinstance(videos, (str, os.PathLike)):
            self.kind, self.source = "paths", [str(p) for p in list_videos(videos)]
            self.count = len(self.source)
        elif hasattr(videos, "column_names") and hasattr(videos, "features"):
            self._init_hf(videos, video_column)
        elif isinstance(videos, np.ndarray) and videos.ndim == 4:
            raise ValueError("videos is a single clip array; wrap it in a list: videos=[clip]")
        elif isinstance(videos, Sequence) and not isinstance(videos, (bytes, bytearray)):
            self._init_sequence(list(videos))
        else:
            raise ValueError(
                f"cannot use {type(videos).__name__} as videos: give a folder, a list of paths, a list of arrays, "
                "a callable with num_videos, or a datasets.Dataset with a video column"
            )
        if self.count < 1:
            raise ValueError("videos is empty; give at least one video")

    def _init_sequence(self, items: list[Any]) -> None:
        if not items:
            raise ValueError("videos is empty; give at least one video")
        if all(isinstance(v, np.ndarray) for v in items):
            for j, v in enumerate(items):
                _check_frames(v, f"videos[{j}]")
            self.kind, self.source = "arrays", items
        elif all(isinstance(v, (str, os.PathLike)) for v in items):
            missing = [str(p) for p in items if not Path(p).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} of {len(items)} video files not found, e.g. {missing[0]}; check the paths"
                )
            self.kind, self.source = "paths", [str(p) for p in items]
        else:
            raise ValueError("videos must be all file paths or all (T, H, W, 3) uint8 arrays, not a mix")
        self.count = len(items)

    def _init_hf(self, ds: Any, column: str) -> None:
        if column not in ds.column_names:
            raise ValueError(
                f"the dataset has no column {column!r} (columns: {', '.join(ds.column_names)}); pass video_column="
            )
        ds = undecoded_video_column(ds, column)
        ds = ds.select_columns([column])  # rows then carry only the video, not the other columns
        self.kind, self.source, self.count = "hf", ds, len(ds)

    def __len__(self) -> int:
        return self.count

    def get(self, j: int) -> tuple[Any, str]:
        """(source, name) of video ``j``: source is a path str, bytes, or a ``(T, H, W, 3)`` uint8 array."""
        if self.kind == "paths":
            return self.source[j], self.source[j]
        if self.kind == "arrays":
            return self.source[j], f"<clip {j}>"
        if self.kind == "callable":
            clip = _check_frames(np.asarray(self.source(j)), f"videos({j})")
            return clip, f"<clip {j}>"
        return resolve_video(self.source[j][self.column], f"{self.column}[{j}]")


# ---------------------------------------------------------------------------------------- datasets


def is_synth_export(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a StaDyn-Synth export (it holds ``metadata.jsonl`` or ``metadata.csv``)."""
    folder = Path(folder)
    return (folder / "metadata.jsonl").is_file() or (folder / "metadata.csv").is_file()


def load_dataset_folder(folder: str | os.PathLike) -> Any:
    """A local dataset folder: a StaDyn-Synth export (``datasets.Dataset`` via
    :func:`hf_stadyn.synth.load_synth`, absolute video paths) or a ``save_to_disk`` folder
    (``datasets.Dataset`` or ``datasets.DatasetDict``).

    Raises:
        FileNotFoundError: the folder is neither.
    """
    folder = Path(folder)
    if is_synth_export(folder):
        from hf_stadyn.synth import load_synth

        return load_synth(folder)
    import datasets

    try:
        return datasets.load_from_disk(str(folder))
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"dataset {folder} is neither a datasets folder (save_to_disk) nor a StaDyn-Synth export: {e}"
        ) from None


def _looks_local(path_or_id: str) -> bool:
    """A string that can only be a local path (a Hub id is ``name`` or ``owner/name``)."""
    return os.path.isabs(path_or_id) or path_or_id.startswith((".", "~"))


def load_video_dataset(path_or_id: str | os.PathLike, *, split: str = "train", video_column: str = "video") -> Any:
    """A ``datasets.Dataset`` of videos from a local folder or the Hub (what ``stadyn probe --dataset`` reads).

    Args:
        path_or_id: a StaDyn-Synth export folder (``metadata.jsonl``; returned as
            :func:`hf_stadyn.synth.load_synth` loads it), a ``save_to_disk`` folder, or a Hub dataset id
            (``datasets.load_dataset(path_or_id, split=split)``).
        split: the split of a ``DatasetDict`` folder or of a Hub dataset (unused for a synth export).
        video_column: the column that must hold the videos (not checked for a synth export, whose video
            column is ``video``).

    Returns:
        ``datasets.Dataset``; feed it to :class:`~hf_stadyn.pairs.PairDataset` with ``video_column``.

    Raises:
        FileNotFoundError: a local path that does not exist, or a folder that is no dataset.
        ValueError: the split or the video column is missing.
    """
    import datasets

    path = Path(path_or_id)
    if path.is_dir():
        if is_synth_export(path):
            return load_dataset_folder(path)
        ds = load_dataset_folder(path)
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ValueError(
                    f"dataset {path} has splits {list(ds)}, no {split!r}; choose one with split= (--split)"
                )
            ds = ds[split]
    elif _looks_local(str(path_or_id)):
        raise FileNotFoundError(
            f"dataset {path_or_id} not found: give a save_to_disk folder, a StaDyn-Synth export folder "
            "or a Hub dataset id (owner/name)"
        )
    else:
        ds = datasets.load_dataset(str(path_or_id), split=split)
    if video_column not in ds.column_names:
        raise ValueError(
            f"dataset {path_or_id} has no column {video_column!r} (columns: {ds.column_names}); "
            "name the video column with video_column= (--video-column)"
        )
    return ds


def load_local_dataset(path: str | os.PathLike) -> Any:
    """A ``datasets.Dataset``/``DatasetDict`` from a local folder (see :func:`load_dataset_folder`) or a
    ``.csv`` / ``.json`` / ``.jsonl`` / ``.parquet`` file (a ``DatasetDict`` with a ``train`` split).

    Raises:
        FileNotFoundError: ``path`` does not exist, or is a folder that is no dataset.
        ValueError: a file of another type.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset {path} does not exist.")
    if path.is_dir():
        return load_dataset_folder(path)
    builder = _DATA_FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"{path}: give a save_to_disk folder or a .csv/.json/.jsonl/.parquet file.")
    import datasets

    return datasets.load_dataset(builder, data_files=str(path))


def column_videos(
    ds: Any, column: str, *, base: str | os.PathLike | None = None, prefer: str = "bytes"
) -> list[str | bytes]:
    """Every cell of ``ds[column]`` resolved by :func:`resolve_video`: ``(N,)`` list of path strings or bytes."""
    ds = undecoded_video_column(ds, column)
    return [resolve_video(v, f"{column}[{j}]", base=base, prefer=prefer)[0] for j, v in enumerate(ds[column])]
