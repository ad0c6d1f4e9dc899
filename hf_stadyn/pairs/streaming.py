"""Pairs from a streamed video dataset (``datasets.IterableDataset``, ``streaming=True``), never materialised.

A corpus too large to download (a Hub video dataset read with ``load_dataset(..., streaming=True)``, or local
Parquet / JSON shards read the same way) is read row by row, in the stream's order. Pair ``i`` uses row
``i // pairs_per_video`` (its source video, the jackknife's unit, docs/method.md §5) and draws everything
else from ``numpy.random.default_rng([seed, i])``, as :class:`~hf_stadyn.pairs.PairDataset` does, so the
pairs are a function of the seed and the stream's order: the same in every run, on any number of
DataLoader workers or processes, and after a resume.

The dataset is map-style (what :func:`hf_stadyn.probing.probe` takes) over a forward cursor: items read
in index order cost one pass over the stream, holding one row (and its decoded video) at a time. An
index behind the cursor (a resume checks a few finished pairs) restarts the stream, with
``IterableDataset.skip`` where it has one; rows passed over are read but not decoded. Each DataLoader
worker (and each process) keeps its own cursor, so each reads the stream's rows once but decodes only
the rows of its own pairs.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..video.decode import read_clip
from ..video.info import read_video_info
from ..video.sampling import DEFAULT_WINDOW, sample_indices
from ..video.sources import resolve_video
from .core import DYNAMIC, STATIC, make_pair
from .styles import StyleLike, resolve_styles

__all__ = ["StreamingPairDataset"]

logger = logging.getLogger(__name__)


def _undecoded(stream: Any, column: str) -> Any:
    """``stream`` with a ``datasets.Video`` column read as ``{"path", "bytes"}`` (decoded by PyAV, not
    torchcodec) and only that column kept, where the stream supports it."""
    features = getattr(stream, "features", None)
    feature = features.get(column) if features is not None else None
    if type(feature).__name__ == "Video" and getattr(feature, "decode", False):
        import datasets

        stream = stream.cast_column(column, datasets.Video(decode=False))
    select = getattr(stream, "select_columns", None)
    if callable(select) and features is not None and column in features:
        stream = select([column])
    return stream


def _rows(stream: Any) -> Iterator[Any]:
    """The stream's rows, all of them, also inside a DataLoader worker.

    ``iter(datasets.IterableDataset)`` in a worker yields only that worker's shards (with one shard, worker
    0 gets every row and the others none); ``IterableDataset.iter(batch_size=1)`` does not shard, so every
    worker's cursor sees the same rows in the same order (each takes the pairs it is given)."""
    batches = getattr(stream, "iter", None)
    if callable(batches) and hasattr(stream, "_ex_iterable"):
        for batch in batches(batch_size=1):
            yield {k: v[0] for k, v in batch.items()}
    else:
        yield from stream


class StreamingPairDataset(torch.utils.data.Dataset):
    """Static/dynamic clip pairs from a stream of video rows (docs/method.md §1.1), reproducible from a seed.

    Args:
        stream: a ``datasets.IterableDataset`` (e.g. ``load_dataset("parquet", data_files=..., streaming=True,
            split="train")``) or any re-iterable of rows (dicts); each row's ``video_column`` holds a path,
            the file's bytes or a ``{"path", "bytes"}`` dict (a ``datasets.Video`` cell).
        num_pairs: how many pairs (a stream has no length): pairs ``0 .. num_pairs - 1`` use rows
            ``0 .. ceil(num_pairs / pairs_per_video) - 1``; a stream that ends earlier raises IndexError.
        pairs_per_video: consecutive pairs that share a row (a video); its decode is reused by them.
        num_frames, size, window, seed, styles, static_fraction, video_column: as for
            :class:`~hf_stadyn.pairs.PairDataset` (``window`` an int, fitted to each video; default 64).
        decode_cache_mb: with ``pairs_per_video > 1``, a video of at most this many MiB at ``size`` is decoded
            once, whole, and its pairs' windows are sampled from memory (the same frames); larger ones, and
            every video with ``pairs_per_video == 1``, are read window by window.

    Attributes:
        stats: ``rows_read`` (rows taken from the stream, skipped ones included), ``restarts`` (the stream
            was started again for an index behind the cursor), ``whole_decodes``, ``window_reads``.

    Items are :class:`~hf_stadyn.pairs.PairDataset` items (``clip_a``, ``clip_b``, ``factor``, ``index``,
    ``video`` (the row's name), ``video_index`` (the row), ``style_a``, ``style_b``, ``start``,
    ``permutation``).
    """

    def __init__(
        self,
        stream: Any,
        num_pairs: int,
        *,
        pairs_per_video: int = 1,
        num_frames: int = 16,
        size: int | None = 224,
        window: int = DEFAULT_WINDOW,
        seed: int = 0,
        styles: Sequence[StyleLike] | None = None,
        static_fraction: float = 0.5,
        video_column: str = "video",
        decode_cache_mb: float = 256.0,
    ) -> None:
        for name, value, low in (("num_pairs", num_pairs, 1), ("pairs_per_video", pairs_per_video, 1),
                                 ("num_frames", num_frames, 2), ("window", window, 1), ("seed", seed, 0)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not 0.0 <= float(static_fraction) <= 1.0:
            raise ValueError(f"static_fraction must be in [0, 1], got {static_fraction!r}")
        if isinstance(stream, (str, bytes)) or not hasattr(stream, "__iter__"):
            raise ValueError(
                f"stream must be a datasets.IterableDataset (load_dataset(..., streaming=True)) or an iterable of "
                f"rows, got {type(stream).__name__}"
            )
        self.stream = _undecoded(stream, video_column)
        self.num_pairs, self.pairs_per_video = int(num_pairs), int(pairs_per_video)
        self.num_frames, self.size, self.window = int(num_frames), size, int(window)
        self.seed, self.static_fraction, self.column = int(seed), float(static_fraction), video_column
        self.styles = resolve_styles(styles)
        if self.static_fraction < 1.0 and len(self.styles) < 2:
            raise ValueError("dynamic pairs need at least two styles; give more styles or static_fraction=1")
        self.decode_budget = int(float(decode_cache_mb) * 2**20)
        self.stats: Counter[str] = Counter()
        self._reset_cursor()

    def _reset_cursor(self) -> None:
        self._iter: Iterator[Any] | None = None
        self._next_row = 0  # the row the iterator yields next
        self._row: tuple[int, Any, str, np.ndarray | None, int] | None = None  # (row, source, name, frames, count)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # workers start their own cursor
        state.update(_iter=None, _next_row=0, _row=None, stats=Counter())
        return state

    def __len__(self) -> int:
        return self.num_pairs

    @property
    def num_videos(self) -> int:
        """Rows (videos) the pairs use."""
        return -(-self.num_pairs // self.pairs_per_video)

    def _take(self, r: int) -> Any:
        """Row ``r`` of the stream, moving the cursor (restarting it for a row behind it)."""
        if self._iter is None or r < self._next_row:
            if self._iter is not None:
                self.stats["restarts"] += 1
            skip = getattr(self.stream, "skip", None)
            if callable(skip) and r > 0:
                self._iter, self._next_row = _rows(skip(r)), r
            else:
                self._iter, self._next_row = _rows(self.stream), 0
        while True:
            try:
                row = next(self._iter)
            except StopIteration:
                self._iter = None
                raise IndexError(
                    f"the stream ended at row {self._next_row}, before row {r} (pairs need {self.num_videos} rows); "
                    "lower num_pairs or raise pairs_per_video"
                ) from None
            self.stats["rows_read"] += 1
            self._next_row += 1
            if self._next_row - 1 == r:
                return row

    def _video(self, r: int) -> tuple[Any, str, np.ndarray | None, int]:
        """``(source, name, whole frames or None, announced frame count)`` of row ``r`` (kept while current)."""
        if self._row is not None and self._row[0] == r:
            return self._row[1:]
        row = self._take(r)
        cell = row[self.column] if isinstance(row, dict) else row
        source, name = resolve_video(cell, f"{self.column}[{r}]")
        info = read_video_info(source, name=name)
        frames = None
        side = self.size
        nbytes = info.num_frames * 3 * (side * side if side is not None else info.width * info.height)
        if self.pairs_per_video > 1 and nbytes <= self.decode_budget:
            try:
                frames = read_clip(source, None, size=self.size, name=name).frames
                self.stats["whole_decodes"] += 1
            except ValueError:  # corrupt further in: windows may still read; read_clip then says what is wrong
                frames = None
        self._row = (r, source, name, frames, info.num_frames)
        return source, name, frames, info.num_frames

    def _clip(self, r: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
        source, name, whole, announced = self._video(r)
        if whole is None:
            self.stats["window_reads"] += 1
            got = read_clip(source, self.num_frames, window=self.window, rng=rng, size=self.size, name=name)
            return got.frames, got.start, name
        state = copy.deepcopy(rng.bit_generator.state)  # as read_clip: resample if shorter than announced
        idx = sample_indices(announced, self.num_frames, self.window, rng)
        if int(idx.max()) >= whole.shape[0]:
            rng.bit_generator.state = state
            idx = sample_indices(whole.shape[0], self.num_frames, self.window, rng)
        return whole[idx], int(idx[0]), name

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if not 0 <= i < self.num_pairs:
            raise IndexError(f"index {i} out of range for {self.num_pairs} pairs")
        rng = np.random.default_rng([self.seed, i])
        factor = STATIC if rng.random() < self.static_fraction else DYNAMIC
        r = i // self.pairs_per_video
        clip, start, name = self._clip(r, rng)
        pair = make_pair(clip, factor, rng, self.styles)
        perm = pair.permutation if pair.permutation is not None else np.arange(clip.shape[0])
        return {
            "clip_a": torch.from_numpy(np.ascontiguousarray(pair.clip_a)),
            "clip_b": torch.from_numpy(np.ascontiguousarray(pair.clip_b)),
            "factor": pair.factor,
            "index": i,
            "video": name,
            "video_index": r,
            "style_a": pair.style_a,
            "style_b": pair.style_b,
            "start": start,
            "permutation": torch.as_tensor(perm, dtype=torch.int64),
        }
