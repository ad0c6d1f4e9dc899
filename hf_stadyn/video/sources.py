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
StaDyn-Synth export folder (``metadata.jsonl``, :func:`hf_stadyn.synth.load_synth`) or a Hub dataset id;
a string that looks local is never taken for a Hub id. :func:`check_video_source` checks a collection
cheaply (:mod:`.check`) before any expensive work.

(About 530 lines in one file on purpose: where videos come from, the collection and the dataset
loaders, is one contract that every reader shares; its parts read best side by side.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._common import _check_frames
from .check import NAMED_INLINE, BadVideosError, bad_videos_message, check_videos

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoCollection",
    "check_video_source",
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

logger = logging.getLogger(__name__)


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
    files = [p for p in candidates if p.is_file()]
    found = sorted(p for p in files if p.suffix.lower() in exts)
    if not found and not allow_empty:
        others = sorted(p for p in files if p.suffix.lower() not in exts)
        seen = f" (it holds {len(others)} other file(s), e.g. {others[0].name})" if others else ""
        where = "in it or its subfolders" if recursive else "in it"
        raise ValueError(
            f"no video files found in {folder}{seen}: looked for {', '.join(sorted(exts))} {where}; "
            "put videos there or give a list of video paths"
        )
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
        #: positions, in the collection as given, of the videos it holds (all of them until some are skipped)
        self.indices: list[int] = list(range(self.count))

    def _init_sequence(self, items: list[Any]) -> None:
        if not items:
            raise ValueError("videos is empty; give at least one video")
        if all(isinstance(v, np.ndarray) for v in items):
            for j, v in enumerate(items):
                _check_frames(v, f"videos[{j}]")
            self.kind, self.source = "arrays", items
        elif all(isinstance(v, (str, os.PathLike)) for v in items):
            missing = [str(p) for p in items if not Path(p).exists()]
            if missing:
                named = ", ".join(missing[:NAMED_INLINE])
                more = f" and {len(missing) - NAMED_INLINE} more" if len(missing) > NAMED_INLINE else ""
                raise FileNotFoundError(
                    f"{len(missing)} of {len(items)} video files not found: {named}{more}; check the paths"
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

    def check(
        self, min_frames: int = 2, *, skip_bad: bool = False, what: str = "videos", progress: bool = False
    ) -> list[dict[str, str]]:
        """Check every video cheaply before any work (:func:`hf_stadyn.video.check.check_videos`: the
        header and the first ``min_frames`` frames of each file; an array's frame count).

        By default every bad video is refused at once, in one message (:class:`BadVideosError`, a
        ``ValueError``); with ``skip_bad`` they are dropped from the collection (one warning with the
        count) and returned. A callable source is not checked here (its clips are made on demand).

        Returns:
            the skipped videos as ``[{"path": name, "reason": reason}]`` (empty when all are good).
        """
        if self.kind == "callable":
            return []
        sources: list[Any] = []
        names: list[str] = []
        unreadable: dict[int, tuple[str, str]] = {}
        for j in range(self.count):
            try:
                source, name = self.get(j)
            except ValueError:
                source, name = None, f"{self.column}[{j}]"
                unreadable[j] = (name, "holds neither a video path nor bytes")
            sources.append(source)
            names.append(name)
        keep = [j for j in range(self.count) if j not in unreadable]
        found = check_videos([sources[j] for j in keep], min_frames, names=[names[j] for j in keep], progress=progress)
        bad = {keep[k]: entry for k, entry in zip(found.bad_indices, found.bad, strict=True)}
        bad.update(unreadable)
        return self.refuse_or_skip(sorted(bad.items()), skip_bad=skip_bad, what=what)

    def refuse_or_skip(
        self, bad: Sequence[tuple[int, tuple[str, str]]], *, skip_bad: bool, what: str = "videos"
    ) -> list[dict[str, str]]:
        """Refuse ``bad`` (``[(index, (name, reason))]``) in one :class:`BadVideosError`, or drop them from
        the collection when ``skip_bad`` (warning once with the count); returns the dropped videos as
        ``[{"path": name, "reason": reason}]``. Dropping every video is refused either way."""
        if not bad:
            return []
        entries = [entry for _, entry in bad]
        skipped = [{"path": name, "reason": reason} for name, reason in entries]
        message = bad_videos_message(entries, self.count, what=what)
        if not skip_bad:
            raise BadVideosError(message, skipped, self.count)
        if len(bad) >= self.count:
            raise BadVideosError(
                message.split("; fix or remove them")[0] + "; none is left to probe: fix or replace them",
                skipped,
                self.count,
            )
        logger.warning(
            "skipping %d of %d %s that cannot be probed (skip_bad_videos=True): %s",
            len(bad), self.count, what, message.split(" cannot be probed: ")[1].split("; fix or remove")[0],
        )  # fmt: skip
        drop = {j for j, _ in bad}
        good = [j for j in range(self.count) if j not in drop]
        if self.kind == "hf":
            self.source = self.source.select(good)
        else:
            self.source = [self.source[j] for j in good]
        self.count = len(good)
        self.indices = [self.indices[j] for j in good]
        return skipped

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


def check_video_source(
    videos: Any,
    *,
    video_column: str = "video",
    num_videos: int | None = None,
    min_frames: int = 2,
    skip_bad: bool = False,
    progress: bool = False,
) -> tuple[Any, list[dict[str, str]]]:
    """Check a video source cheaply before any expensive work (loading a model, probing): what
    ``stadyn probe`` runs first. Every bad video is refused at once (:class:`BadVideosError`, a
    ``ValueError``), or with ``skip_bad`` left out.

    Args:
        videos: anything :class:`VideoCollection` takes (folder, paths, ``datasets.Dataset``, arrays;
            a callable is returned unchecked).
        video_column, num_videos: as for :class:`VideoCollection`.
        min_frames: the fewest decodable frames a video needs (2: static pairs shuffle frames).
        skip_bad: leave bad videos out (one warning with the count) instead of refusing them.
        progress: show a progress bar.

    Returns:
        ``(videos, skipped)``: ``videos`` unchanged when nothing was skipped, else the rest (a list of
        paths for a folder or a list, ``dataset.select(kept rows)`` for a dataset, a list of arrays);
        ``skipped`` as ``[{"path": name, "reason": reason}]`` (what a report records).

    Raises:
        FileNotFoundError: a folder or listed file that does not exist.
        ValueError: a folder without videos; bad videos (:class:`BadVideosError`, unless ``skip_bad``),
            or every video bad.
    """
    collection = VideoCollection(videos, video_column, num_videos)
    skipped = collection.check(min_frames, skip_bad=skip_bad, progress=progress)
    if not skipped:
        return videos, []
    if collection.kind == "hf":
        return videos.select(collection.indices), skipped
    return list(collection.source), skipped


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
            f"dataset {folder} is neither a datasets folder (save_to_disk) nor a StaDyn-Synth export "
            f"(metadata.jsonl) ({' '.join(str(e).split())}); give one of those or a Hub dataset id like 'user/name'"
        ) from None


# File extensions that mark a path, never a Hub dataset id (ids may hold dots, e.g. "user/data-v1.5").
_PATH_SUFFIXES = frozenset(
    {*VIDEO_EXTENSIONS, *_DATA_FILE_BUILDERS, ".arrow", ".txt", ".zip", ".tar", ".gz", ".tgz", ".png", ".jpg",
     ".jpeg", ".gif", ".npy", ".npz", ".pt", ".h5", ".hdf5", ".yaml", ".yml"}
)  # fmt: skip


def _looks_local(path_or_id: str) -> bool:
    """A string that can only be a local path: absolute, ``./``, ``../`` or ``~`` first, more than one
    ``/`` or a backslash (a Hub id is ``name`` or ``owner/name``), or a file extension."""
    s = str(path_or_id)
    return (
        os.path.isabs(s)
        or s.startswith((".", "~"))
        or s.count("/") > 1
        or "\\" in s
        or Path(s).suffix.lower() in _PATH_SUFFIXES
    )


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except ImportError:  # pragma: no cover - huggingface_hub comes with datasets
        pass
    return os.environ.get("HF_DATASETS_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _load_hub_dataset(hub_id: str, split: str, name: str, **kwargs: Any) -> Any:
    """``datasets.load_dataset(hub_id, split=split, **kwargs)`` with one-line errors for offline mode, network
    failures and unknown ids."""
    import datasets

    what = f"{name} {hub_id}"
    try:
        return datasets.load_dataset(hub_id, split=split, **kwargs)
    except ConnectionError as e:  # datasets: "Couldn't reach '<id>' on the Hub (...)", offline or not
        if _offline():
            raise ConnectionError(
                f"{what}: not in the local cache and HF_HUB_OFFLINE=1 (offline mode); run once online to cache "
                "it, unset HF_HUB_OFFLINE, or give a local datasets folder (save_to_disk)"
            ) from None
        raise ConnectionError(
            f"{what}: cannot reach the Hub ({' '.join(str(e).split())}); check the network (and HF_ENDPOINT), "
            "or give a local datasets folder (save_to_disk)"
        ) from None
    except FileNotFoundError as e:  # DatasetNotFoundError is a FileNotFoundError
        raise FileNotFoundError(
            f"{what}: no such dataset on the Hub and no such local folder ({' '.join(str(e).split())[:200]}); "
            "check the id (a private or gated dataset needs `hf auth login`)"
        ) from None
    except OSError as e:  # requests / httpx network errors are OSErrors; others (disk, permissions) stay as they are
        if not type(e).__module__.startswith(("requests", "httpx", "urllib3", "huggingface_hub")):
            raise
        raise ConnectionError(
            f"{what}: cannot reach the Hub ({type(e).__name__}: {' '.join(str(e).split())[:200]}); check the "
            "network (and HF_ENDPOINT), or give a local datasets folder (save_to_disk)"
        ) from None


def load_video_dataset(
    path_or_id: str | os.PathLike, *, split: str = "train", video_column: str = "video", name: str = "dataset"
) -> Any:
    """A ``datasets.Dataset`` of videos from a local folder or the Hub (what ``stadyn probe --dataset`` reads).

    A string that looks local (``./x``, ``../x``, ``/abs``, ``~/x``, ``a/b/c``, a file extension) must be
    an existing folder: it is never taken for a Hub id.

    Args:
        path_or_id: a StaDyn-Synth export folder (``metadata.jsonl``; returned as
            :func:`hf_stadyn.synth.load_synth` loads it), a ``save_to_disk`` folder, or a Hub dataset id
            (``datasets.load_dataset(path_or_id, split=split)``).
        split: the split of a ``DatasetDict`` folder or of a Hub dataset (unused for a synth export).
        video_column: the column that must hold the videos (not checked for a synth export, whose video
            column is ``video``).
        name: how error messages call the input (the CLI passes ``"--dataset"``).

    Returns:
        ``datasets.Dataset``; feed it to :class:`~hf_stadyn.pairs.PairDataset` with ``video_column``.

    Raises:
        FileNotFoundError: a local-looking path that does not exist, a folder that is no dataset, or a
            Hub id that does not exist.
        ConnectionError: a Hub id that is not cached while offline (``HF_HUB_OFFLINE=1``), or the Hub
            cannot be reached.
        ValueError: the split or the video column is missing.
    """
    import datasets

    path = Path(path_or_id).expanduser()
    if path.is_dir():
        if is_synth_export(path):
            return load_dataset_folder(path)
        ds = load_dataset_folder(path)
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ValueError(f"{name} {path} has splits {list(ds)}, no {split!r}; choose one with split= (--split)")
            ds = ds[split]
    elif path.exists():
        raise FileNotFoundError(
            f"{name} {path_or_id}: a file, not a folder; give a datasets folder (save_to_disk), a StaDyn-Synth "
            "export folder or a Hub dataset id like 'user/name'"
        )
    elif isinstance(path_or_id, os.PathLike) or _looks_local(str(path_or_id)):
        raise FileNotFoundError(
            f"{name} {path_or_id}: no such folder; give an existing datasets folder (save_to_disk) or a Hub "
            "dataset id like 'user/name'"
        )
    else:
        ds = _load_hub_dataset(str(path_or_id), split, name)
    if video_column not in ds.column_names:
        raise ValueError(
            f"{name} {path_or_id} has no column {video_column!r} (columns: {ds.column_names}); "
            "name the video column with video_column= (--video_column)"
        )
    return ds


def open_video_stream(
    path_or_id: str | os.PathLike, *, split: str = "train", video_column: str = "video", name: str = "dataset"
) -> Any:
    """A ``datasets.IterableDataset`` of videos (``streaming=True``), read row by row, never materialised
    (what ``stadyn probe --dataset X --streaming`` reads; pairs from it: :class:`~hf_stadyn.pairs.StreamingPairDataset`).

    Args:
        path_or_id: a Hub dataset id, a local ``.parquet`` file, or a local folder of Parquet files (all
            ``*.parquet`` under it, in sorted order: the row order, hence the pairs, is fixed).
        split: the split of a Hub dataset. video_column: the column that must hold the videos.
        name: how error messages call the input.

    Raises:
        FileNotFoundError: a local path that does not exist or holds no Parquet file; an unknown Hub id.
        ConnectionError: offline or unreachable Hub. ValueError: no ``video_column``.

    The stream's ``stadyn_num_rows`` is its row count where it is known without reading it (Parquet footers,
    the Hub dataset's metadata), else None.
    """
    import datasets

    path = Path(path_or_id).expanduser()
    if path.exists() or isinstance(path_or_id, os.PathLike) or _looks_local(str(path_or_id)):
        files = sorted(str(f) for f in path.rglob("*.parquet")) if path.is_dir() else [str(path)]
        if not path.exists():
            raise FileNotFoundError(f"{name} {path_or_id}: no such file or folder; give a Parquet file or folder, or "
                                    "a Hub dataset id like 'user/name'")  # fmt: skip
        if not files or (path.is_file() and path.suffix.lower() != ".parquet"):
            raise FileNotFoundError(
                f"{name} {path_or_id}: no Parquet file to stream; give a folder of .parquet files or a Hub id, or "
                "drop --streaming to read a save_to_disk folder"
            )
        stream = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        rows: int | None = sum(pq.ParquetFile(f).metadata.num_rows for f in files)  # footers only
    else:
        stream = _load_hub_dataset(str(path_or_id), split, name, streaming=True)
        splits = getattr(stream.info, "splits", None) or {}
        rows = splits[split].num_examples if split in splits and splits[split].num_examples else None
    stream.stadyn_num_rows = rows  # rows known without reading the stream (Parquet footers, Hub metadata), or None
    columns = list(stream.features) if stream.features is not None else None
    if columns is None:  # features unknown until read: the first row tells (one row, not the stream)
        columns = list(next(iter(stream.take(1)), {}))
    if video_column not in columns:
        raise ValueError(
            f"{name} {path_or_id} has no column {video_column!r} (columns: {columns}); "
            "name the video column with video_column= (--video_column)"
        )
    return stream


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
