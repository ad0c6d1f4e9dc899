"""Seeded pair datasets (map-style ``torch.utils.data.Dataset``).

Item ``i`` depends only on ``(seed, i)``: every random choice for it is drawn from
``numpy.random.default_rng([seed, i])``. So a dataset is safe with any number of ``DataLoader`` workers
(each item has its own stream, whichever worker makes it), can resume at any index and can be sharded
across processes, and the same seed always gives the same items.

Videos are read through :class:`hf_stadyn.video.sources.VideoCollection`, so they can be given as:

- a folder (every file below it with an extension in :data:`~hf_stadyn.video.VIDEO_EXTENSIONS`, sorted
  by path),
- a list of file paths,
- a Hugging Face ``datasets.Dataset`` with a video column holding file paths, or dicts with a
  ``"path"`` and/or ``"bytes"`` key. A column of the ``datasets.Video`` feature is read with
  ``decode=False`` (its own decoder needs torchcodec, which hf-stadyn does not use); the files or bytes
  are decoded with PyAV,
- in-memory clips: a list of ``(T, H, W, 3)`` uint8 arrays, or a callable ``f(j) -> array`` for video
  ``j`` together with ``num_videos`` (e.g. a synthetic-video generator).

``VIDEO_EXTENSIONS`` and ``list_videos`` are re-exported here from :mod:`hf_stadyn.video.sources`.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from ..video._common import _check_size
from ..video.decode import read_clip
from ..video.flow import FLOW_METHODS, flow_images
from ..video.info import read_video_info
from ..video.sampling import DEFAULT_WINDOW, fit_window, resize_and_crop, sample_indices
from ..video.sources import VIDEO_EXTENSIONS, VideoCollection, list_videos
from .cache import DecodedVideoCache
from .core import DYNAMIC, STATIC, draw_pair, make_pair, make_two_stream_pair
from .styles import StyleLike, _style_name, resolve_styles

__all__ = ["VIDEO_EXTENSIONS", "PairDataset", "TwoStreamPairDataset", "list_videos"]

logger = logging.getLogger(__name__)

#: The fewest decodable frames a video needs: a static pair shuffles frames (docs/method.md §1.1).
MIN_FRAMES = 2


def _check_common(seed: int, static_fraction: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not 0.0 <= float(static_fraction) <= 1.0:
        raise ValueError(f"static_fraction must be in [0, 1], got {static_fraction!r}")


def _to_tensor(x: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor | list[torch.Tensor]:
    # pairs hold a list per pathway (make_pair builds lists); any other array-like is stacked into one tensor
    if isinstance(x, list):
        return [torch.from_numpy(np.ascontiguousarray(c)) for c in x]
    return torch.from_numpy(np.ascontiguousarray(x))


def _reason(error: Exception, name: str) -> str:
    """An error message as a reason next to the video's name: without the name itself, one line."""
    text = " ".join(str(error).split()).split("; ")[0]  # the advice after ";" is the message's, not the reason's
    return text.replace(f"decoding {name} ", "").replace(f"video {name} ", "")


class PairDataset(torch.utils.data.Dataset):
    """Static/dynamic clip pairs from videos, reproducible from a seed (docs/method.md §1.1).

    Item ``i``: ``rng = np.random.default_rng([seed, i])``; video ``i % num_videos``; factor static with
    probability ``static_fraction`` (else dynamic); a clip of ``num_frames`` evenly spaced frames (both
    ends included) of a window at a random start, resized and centre-cropped to ``size``; then
    :func:`~hf_stadyn.pairs.make_pair`.

    The window fits each video (:func:`~hf_stadyn.video.fit_window`): it is ``min(window, N)`` for a video
    of N frames, so no clip is a frozen or looping artefact. ``window="auto"`` (default) uses
    ``default_window`` (the model's own window where it declares a sampling rate, else 64) fitted
    silently; an explicit window longer than a video is shortened to it with a log message. Only with
    ``loop=True`` do videos shorter than ``num_frames`` keep the full window and loop (with a warning);
    :meth:`window_summary` counts them.

    Args:
        videos: a folder, a list of paths, a ``datasets.Dataset`` (see ``video_column``), a list of
            ``(T, H, W, 3)`` uint8 arrays, or a callable ``f(j) -> array`` (with ``num_videos``).
        num_frames: T of each clip (>= 2: static pairs shuffle frames).
        size: output side (short side resized, centre crop); None keeps the source size (then clips of
            different videos may differ in size and cannot be batched).
        window: source frames each clip spans: ``"auto"``/None (``default_window`` fitted to each video)
            or an int (shortened to a video shorter than it, logged).
        seed: non-negative int; the whole dataset is a function of it.
        styles: style names or stylizers (None = :data:`~hf_stadyn.pairs.DEFAULT_STYLES`).
        num_pairs: dataset length; None = one pair per video.
        static_fraction: probability that a pair is static.
        video_column: the video column of a ``datasets.Dataset``.
        num_videos: how many videos a callable source has.
        pathways: frame counts of a multi-pathway model, e.g. ``(4, 16)`` for SlowFast; the clip is read
            with ``max(pathways)`` frames, each pathway subsamples it uniformly, and static pairs shuffle
            each pathway independently. Items then hold lists of clips.
        loop: loop the window over videos shorter than ``num_frames`` (the research code's behaviour;
            warned) instead of repeating their frames in order.
        default_window: the window of ``window="auto"`` (default 64, docs/method.md §1.1).
        skip_bad_videos: at construction every video is checked cheaply
            (:func:`~hf_stadyn.video.check_videos`: it opens and has at least 2 decodable frames; images,
            one-frame videos and corrupt files fail). By default every bad video is refused at once in one
            ``ValueError`` (:class:`~hf_stadyn.video.BadVideosError`); ``True`` skips them (one warning) and
            lists them in :attr:`skipped_videos`. Clips of a callable source are checked when made.
        decode_cache_mb: MiB of whole decoded videos each process (or DataLoader worker) keeps for the pairs
            that share a video (:class:`~hf_stadyn.pairs.cache.DecodedVideoCache`; video files only, not
            with ``loop=True``; 0 = off). The frames are the same as reading each window from the file, so
            the pairs, and every number made from them, do not change.
        render_on: ``"cpu"`` (default): items hold the rendered pair. ``"device"``: items hold the sampled
            clip (``clip``) and the drawn style parameters (``params_a``, ``params_b``) instead of
            ``clip_a``/``clip_b``, and :meth:`render_batch` renders a collated batch on the model's device
            with batched torch ops (:mod:`hf_stadyn.pairs.torch_ops`: equal to the CPU path within 1 grey
            level, most styles exactly). Single-pathway clips only.

    Attributes:
        skipped_videos: ``[{"path": name, "reason": reason}]`` of the videos left out by
            ``skip_bad_videos`` (empty otherwise); ``videos`` holds the rest.
        decode_cache: the process's :class:`~hf_stadyn.pairs.cache.DecodedVideoCache` (``stats`` counts
            whole decodes, cache hits and window reads; in the process that reads the items).

    Items are dicts: ``clip_a``, ``clip_b`` (``torch.uint8`` ``(T, H, W, 3)``, or lists for pathways),
    ``factor`` (0 = dynamic, 1 = static), ``index``, ``video`` (str), ``video_index`` (int: the source
    video's index ``i % num_videos``, the jackknife's resampling unit, docs/method.md §5), ``style_a``, ``style_b``,
    ``start`` (first source frame of the window), ``permutation`` (``torch.long`` ``(T,)``: frame order
    of ``clip_b``; the identity for dynamic pairs).
    """

    def __init__(
        self,
        videos: Any,
        num_frames: int = 16,
        size: int | None = 224,
        window: int | str | None = "auto",
        seed: int = 0,
        styles: Sequence[StyleLike] | None = None,
        num_pairs: int | None = None,
        static_fraction: float = 0.5,
        *,
        video_column: str = "video",
        num_videos: int | None = None,
        pathways: Sequence[int] | None = None,
        loop: bool = False,
        default_window: int | None = None,
        skip_bad_videos: bool = False,
        decode_cache_mb: float = 256.0,
        render_on: str = "cpu",
    ) -> None:
        _check_common(seed, static_fraction)
        if render_on not in ("cpu", "device"):
            raise ValueError(f"render_on must be 'cpu' or 'device', got {render_on!r}")
        if render_on == "device" and pathways is not None:
            raise ValueError("render_on='device' renders single-pathway clips; use render_on='cpu' with pathways")
        self.render_on = render_on
        self.decode_cache = DecodedVideoCache(decode_cache_mb)
        if pathways is not None:
            pathways = tuple(int(p) for p in pathways)
            if not pathways or min(pathways) < 2:
                raise ValueError(f"pathways must be frame counts >= 2, e.g. (4, 16), got {pathways!r}")
            num_frames = max(pathways)
        if isinstance(num_frames, bool) or int(num_frames) < 2:
            raise ValueError(f"num_frames must be >= 2 (static pairs shuffle frames), got {num_frames!r}")
        default_window = DEFAULT_WINDOW if default_window is None else default_window
        if isinstance(default_window, bool) or not isinstance(default_window, (int, np.integer)) or default_window < 1:
            raise ValueError(f"default_window must be a positive int (source frames), got {default_window!r}")
        auto = window is None or (isinstance(window, str) and window == "auto")
        if not auto and (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1):
            raise ValueError(f"window must be 'auto', None or a positive int (source frames), got {window!r}")
        if num_pairs is not None and (isinstance(num_pairs, bool) or int(num_pairs) < 1):
            raise ValueError(f"num_pairs must be a positive int or None, got {num_pairs!r}")
        self.videos = VideoCollection(videos, video_column, num_videos)
        self.num_frames, self.size = int(num_frames), _check_size(size)
        # Before any decoding: every video opens and has 2 decodable frames, or all bad ones are named at once.
        self.skipped_videos: list[dict[str, str]] = self.videos.check(MIN_FRAMES, skip_bad=bool(skip_bad_videos))
        #: the requested window (``window_policy`` says whether it was "auto" or given explicitly)
        self.window = int(default_window) if auto else int(window)  # type: ignore[arg-type]
        self.window_policy = "auto" if auto else "explicit"
        self.loop = bool(loop)
        self._warned: set[str] = set()
        self.seed, self.static_fraction = int(seed), float(static_fraction)
        self.pathways = pathways
        # Resolve now: the stylizer objects travel with the dataset to DataLoader workers.
        self.styles = resolve_styles(styles)
        if self.static_fraction < 1.0 and len(self.styles) < 2:
            raise ValueError("dynamic pairs need at least two styles; give more styles or static_fraction=1")
        self.num_pairs = int(num_pairs) if num_pairs is not None else self.videos.count

    def __len__(self) -> int:
        return self.num_pairs

    def _note_window(self, name: str, n: int) -> None:
        """Log how the window fits a video of ``n`` frames (once per kind of message and process)."""
        w, looped = fit_window(n, self.num_frames, self.window, loop=self.loop)
        if looped:
            kind, level = "looped", logging.WARNING
            msg = (
                f"video {name} has {n} frames, fewer than the model's {self.num_frames}: its {w}-frame window "
                "loops (loop=True)"
            )
        elif n < self.num_frames:
            kind, level = "short", logging.WARNING
            msg = (
                f"video {name} has {n} frames, fewer than the model's {self.num_frames}: its frames repeat in "
                "order (pass loop=True to loop a window instead)"
            )
        elif w < self.window:
            kind = "shortened"
            level = logging.INFO if self.window_policy == "explicit" else logging.DEBUG
            msg = f"video {name} has {n} frames: window {self.window} shortened to {w}"
        else:
            return
        if kind in self._warned:
            logger.debug(msg)
            return
        self._warned.add(kind)
        logger.log(level, "%s (further videos like it are logged at debug level)", msg)

    def _clip(self, j: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
        source, name = self.videos.get(j)
        t = self.num_frames
        if not isinstance(source, np.ndarray) and self.loop:
            n = read_video_info(source, name=name).num_frames
            if fit_window(n, t, self.window, loop=True)[1]:  # a looping clip of a short file: decode it whole
                source = read_clip(source, None, size=self.size, name=name).frames
        if isinstance(source, np.ndarray):
            if source.shape[0] < MIN_FRAMES:  # a callable's clip (lists of arrays are checked at construction)
                raise ValueError(
                    f"video {name} has {source.shape[0]} frame(s), need {MIN_FRAMES} (static pairs shuffle "
                    "frames); make clips of at least 2 frames"
                )
            self._note_window(name, source.shape[0])
            idx = sample_indices(source.shape[0], t, self.window, rng, loop=self.loop)
            clip = source[idx]
            if self.size is not None:
                clip = resize_and_crop(clip, self.size)
            return clip, int(idx[0]), name
        cached = self._cached_clip(j, source, name, rng) if not self.loop else None
        if cached is not None:
            frames, start, n = cached
            self._note_window(name, n)
            return frames, start, name
        self.decode_cache.stats["window_reads"] += 1
        got = read_clip(source, t, window=self.window, rng=rng, size=self.size, name=name)
        self._note_window(name, got.num_source_frames)
        return got.frames, got.start, name

    def _uses_here(self, j: int) -> float:
        """Pairs expected to read video ``j`` in this process (a DataLoader worker gets 1/workers of them)."""
        uses = len(range(j, self.num_pairs, self.videos.count))
        info = torch.utils.data.get_worker_info()
        return uses / (info.num_workers if info is not None else 1)

    def _cached_clip(
        self, j: int, source: Any, name: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, int, int] | None:
        """The clip of video ``j`` sampled from its whole decode (decoded and kept on first use when that
        pays, :class:`DecodedVideoCache`), its window start and the frame count it was sampled from; None to
        read the file.

        The same frames as :func:`read_clip`: indices are drawn from the announced frame count and, when
        the video turns out shorter than announced, drawn again from the same generator state with the
        true count, as :func:`read_clip` does."""
        cache = self.decode_cache
        if not cache.enabled or cache.declined(j):
            return None
        kept = cache.get(j)
        if kept is None:
            info = read_video_info(source, name=name)
            side = self.size
            frame_bytes = 3 * (side * side if side is not None else info.width * info.height)
            if not cache.worth_keeping(j, info.num_frames, frame_bytes, self._uses_here(j), self.window):
                return None
            try:
                whole = read_clip(source, None, size=self.size, name=name).frames
            except ValueError:  # e.g. corrupt after the first frames: windows may still read; let read_clip say
                cache.decline(j)
                return None
            cache.put(j, whole, info.num_frames)
            kept = (whole, info.num_frames)
        frames, announced = kept
        state = copy.deepcopy(rng.bit_generator.state)
        n = announced
        idx = sample_indices(n, self.num_frames, self.window, rng)
        if int(idx.max()) >= frames.shape[0]:  # shorter than announced: read_clip resamples from the true count
            rng.bit_generator.state = state
            n = frames.shape[0]
            idx = sample_indices(n, self.num_frames, self.window, rng)
        return frames[idx], int(idx[0]), n

    def _deferred_item(
        self, clip: np.ndarray, factor: int, rng: np.random.Generator, i: int, name: str, j: int, start: int
    ) -> dict[str, Any]:
        """Item of ``render_on="device"``: the clip and every draw of :func:`make_pair`, not rendered."""
        style_a, style_b, params_a, params_b, perm = draw_pair(clip.shape[0], factor, rng, self.styles)
        return {
            "clip": torch.from_numpy(np.ascontiguousarray(clip)),
            "factor": factor,
            "index": i,
            "video": name,
            "video_index": j,
            "style_a": _style_name(style_a),
            "style_b": _style_name(style_b),
            "start": start,
            "permutation": torch.from_numpy(perm) if perm is not None else torch.arange(clip.shape[0]),
            "params_a": params_a,
            "params_b": params_b,
        }

    def render_batch(self, batch: dict[str, Any], device: Any = None) -> dict[str, Any]:
        """Render a collated batch of ``render_on="device"`` items on ``device`` (batched torch ops,
        :func:`hf_stadyn.pairs.torch_ops.render_pairs`): ``clip_a``/``clip_b`` ``(B, T, H, W, 3)`` uint8 on
        ``device`` replace ``clip`` and the style parameters. A batch that already holds ``clip_a`` (the
        default ``render_on="cpu"``) is returned unchanged."""
        if "clip_a" in batch or "clip" not in batch:
            return batch
        from .torch_ops import render_pairs

        return render_pairs(batch, self.styles, device)

    def fitted_window(self, num_source_frames: int) -> tuple[int, bool]:
        """``(window, looped)`` this dataset reads a video of ``num_source_frames`` frames with."""
        return fit_window(num_source_frames, self.num_frames, self.window, loop=self.loop)

    def window_summary(self, num_pairs: int | None = None) -> dict[str, Any]:
        """How the window fits the videos the first ``num_pairs`` pairs use (for reports; reads frame counts).

        Returns ``{"window_policy", "window", "loop", "num_videos", "fitted_window": {"min", "median",
        "max"}, "shortened_videos", "short_videos", "looped_videos"}``: ``shortened_videos`` read a
        window shorter than requested, ``short_videos`` have fewer frames than ``num_frames``,
        ``looped_videos`` loop (``loop=True`` only). Logs a warning when any video loops.
        """
        used = min(self.videos.count, self.num_pairs if num_pairs is None else int(num_pairs))
        counts = []
        for j in range(used):
            source, name = self.videos.get(j)
            if isinstance(source, np.ndarray):
                counts.append(int(source.shape[0]))
            else:
                counts.append(int(read_video_info(source, name=name).num_frames))
        fits = [self.fitted_window(n) for n in counts]
        windows = np.array([w for w, _ in fits], dtype=np.int64)
        looped = sum(1 for _, lp in fits if lp)
        if looped:
            logger.warning(
                "%d of %d videos are shorter than the model's %d frames and loop their %d-frame window (loop=True)",
                looped, used, self.num_frames, self.window,
            )  # fmt: skip
        return {
            "window_policy": self.window_policy,
            "window": self.window,
            "loop": self.loop,
            "num_videos": used,
            "fitted_window": {
                "min": int(windows.min()),
                "median": float(np.median(windows)),
                "max": int(windows.max()),
            },
            "shortened_videos": int(sum(1 for (w, lp) in fits if w < self.window and not lp)),
            "short_videos": int(sum(1 for n in counts if n < self.num_frames)),
            "looped_videos": int(looped),
        }

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} pairs")
        rng = np.random.default_rng([self.seed, i])
        factor = STATIC if rng.random() < self.static_fraction else DYNAMIC
        j = i % self.videos.count
        one_clip, start, name = self._clip(j, rng)
        clip: np.ndarray | list[np.ndarray] = one_clip
        if self.pathways is not None:
            t = one_clip.shape[0]
            clip = [one_clip[(np.arange(p) * t) // p] for p in self.pathways]
        if self.render_on == "device":
            return self._deferred_item(one_clip, factor, rng, i, name, j, start)
        pair = make_pair(clip, factor, rng, self.styles)
        if pair.permutation is None:
            perm: Any = (
                [torch.arange(c.shape[0]) for c in clip] if isinstance(clip, list) else torch.arange(clip.shape[0])
            )
        else:
            perm = _to_tensor(pair.permutation)
        return {
            "clip_a": _to_tensor(pair.clip_a),
            "clip_b": _to_tensor(pair.clip_b),
            "factor": pair.factor,
            "index": i,
            "video": name,
            "video_index": j,
            "style_a": pair.style_a,
            "style_b": pair.style_b,
            "start": start,
            "permutation": perm,
        }


class TwoStreamPairDataset(torch.utils.data.Dataset):
    """Per-frame two-stream pairs (RGB frame + colour-coded flow image) from video sequences (docs/method.md §1.2).

    Every frame of every video is one item, in order (video 0's frames, then video 1's, ...). Flow is
    computed on the original frames (after resizing) with OpenCV; the last frame reuses the previous
    flow. Item ``i`` draws its factor, styles and flow jitter from ``np.random.default_rng([seed, i])``.
    Each worker keeps the last ``cache_videos`` decoded sequences with their flow images, so reading
    items in order decodes each video once per worker; sequences are decoded whole (meant for
    segmentation sequences of tens to hundreds of frames: use ``size`` to bound memory).

    Args:
        videos: as for :class:`PairDataset`; a callable needs ``num_videos`` and ``frames_per_video``.
        size: output side (short side resized, centre crop); None keeps the source size.
        seed, styles, static_fraction, video_column, num_videos: as for :class:`PairDataset`.
        flow_method: :func:`~hf_stadyn.video.compute_flow` method.
        max_magnitude: flow colour scale (None: each flow field normalised by its own maximum).
        hue_range, sat_range: the flow jitter of static pairs.
        frames_per_video: frame count of each video of a callable source.
        cache_videos: decoded sequences (with flow images) each worker keeps.
        progress: show a progress bar while counting the frames of the videos at construction.
        skip_bad_videos: as for :class:`PairDataset`. Files that pass the cheap check but fail while their
            frames are counted (each is decoded whole at construction: corrupt further in) are then refused
            together in a second message, or skipped with the others.

    Attributes:
        skipped_videos: ``[{"path": name, "reason": reason}]`` of the videos left out by
            ``skip_bad_videos`` (empty otherwise).

    Items are dicts: ``rgb_a``, ``flow_a``, ``rgb_b``, ``flow_b`` (``torch.uint8`` ``(H, W, 3)``),
    ``factor``, ``index``, ``video``, ``video_index`` (the sequence's index: all its frames form one
    resampling unit, docs/method.md §5), ``frame``, ``style_a``, ``style_b``, ``hue_shift`` and
    ``saturation_scale`` (0.0 and 1.0, i.e. no jitter, for dynamic pairs).
    """

    def __init__(
        self,
        videos: Any,
        size: int | None = None,
        seed: int = 0,
        styles: Sequence[StyleLike] | None = None,
        static_fraction: float = 0.5,
        *,
        flow_method: str = "dis",
        max_magnitude: float | None = None,
        hue_range: tuple[float, float] = (0.1, 0.5),
        sat_range: tuple[float, float] = (0.1, 1.0),
        video_column: str = "video",
        num_videos: int | None = None,
        frames_per_video: int | None = None,
        cache_videos: int = 2,
        progress: bool = False,
        skip_bad_videos: bool = False,
    ) -> None:
        _check_common(seed, static_fraction)
        if flow_method not in FLOW_METHODS:
            raise ValueError(f"unknown flow_method {flow_method!r}; choose one of {', '.join(FLOW_METHODS)}")
        self.videos = VideoCollection(videos, video_column, num_videos)
        self.size, self.seed, self.static_fraction = _check_size(size), int(seed), float(static_fraction)
        self.flow_method, self.max_magnitude = flow_method, max_magnitude
        # tuple() copies a list given at run time; the annotation already says two floats
        self.hue_range = cast("tuple[float, float]", tuple(hue_range))
        self.sat_range = cast("tuple[float, float]", tuple(sat_range))
        self.styles = resolve_styles(styles)
        if self.static_fraction < 1.0 and len(self.styles) < 2:
            raise ValueError("dynamic pairs need at least two styles; give more styles or static_fraction=1")
        self.cache_videos = max(1, int(cache_videos))
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray, str]] = OrderedDict()
        self.skipped_videos: list[dict[str, str]] = []
        self.frame_counts = self._count_frames(frames_per_video, progress, bool(skip_bad_videos))
        self._offsets = np.concatenate([[0], np.cumsum(self.frame_counts)]).astype(np.int64)

    def _count_frames(self, frames_per_video: int | None, progress: bool, skip_bad: bool) -> np.ndarray:
        v = self.videos
        if v.kind == "callable":
            if frames_per_video is None or int(frames_per_video) < MIN_FRAMES:
                raise ValueError(
                    f"a callable video source needs frames_per_video >= {MIN_FRAMES} for TwoStreamPairDataset"
                )
            return np.full(v.count, int(frames_per_video), np.int64)
        # Cheap check first (header + 2 frames of each): what fails there is named before the long count.
        self.skipped_videos = v.check(MIN_FRAMES, skip_bad=skip_bad, progress=progress)
        if v.kind == "arrays":
            return np.array([a.shape[0] for a in v.source], np.int64)
        counts: list[int] = []
        failed: list[tuple[int, tuple[str, str]]] = []
        for j in tqdm(range(v.count), desc="counting frames", unit="video", disable=not progress):
            source, name = v.get(j)
            try:
                counts.append(read_video_info(source, name=name, exact=True).num_frames)  # item index depends on it
            except ValueError as e:  # decodes at first, fails further in: corrupt or truncated inside
                counts.append(0)
                failed.append((j, (name, f"cannot be decoded to its end: {_reason(e, name)}")))
        if failed:
            self.skipped_videos += v.refuse_or_skip(failed, skip_bad=skip_bad)
            drop = {j for j, _ in failed}
            counts = [n for j, n in enumerate(counts) if j not in drop]
        return np.array(counts, np.int64)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(video, frame) of item ``i``."""
        j = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return j, int(i - self._offsets[j])

    def sequence(self, j: int) -> tuple[np.ndarray, np.ndarray, str]:
        """``(frames, flow_images, name)`` of video ``j``: both ``(T, H, W, 3)`` uint8 (cached)."""
        if j in self._cache:
            self._cache.move_to_end(j)
            return self._cache[j]
        source, name = self.videos.get(j)
        if isinstance(source, np.ndarray):
            frames = resize_and_crop(source, self.size) if self.size is not None else source
        else:
            frames = read_clip(source, None, size=self.size, name=name).frames
        if frames.shape[0] != self.frame_counts[j]:
            raise ValueError(
                f"video {name} gave {frames.shape[0]} frames but {self.frame_counts[j]} were expected; "
                "the file changed or its frame count is wrong"
            )
        flows = flow_images(frames, self.flow_method, self.max_magnitude)
        self._cache[j] = (frames, flows, name)
        while len(self._cache) > self.cache_videos:
            self._cache.popitem(last=False)
        return self._cache[j]

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} frames")
        rng = np.random.default_rng([self.seed, i])
        factor = STATIC if rng.random() < self.static_fraction else DYNAMIC
        j, t = self.locate(i)
        frames, flows, name = self.sequence(j)
        pair = make_two_stream_pair(
            frames, flows, t, factor, rng, self.styles, hue_range=self.hue_range, sat_range=self.sat_range
        )
        return {
            "rgb_a": torch.from_numpy(np.ascontiguousarray(pair.rgb_a)),
            "flow_a": torch.from_numpy(np.ascontiguousarray(pair.flow_a)),
            "rgb_b": torch.from_numpy(np.ascontiguousarray(pair.rgb_b)),
            "flow_b": torch.from_numpy(np.ascontiguousarray(pair.flow_b)),
            "factor": pair.factor,
            "index": i,
            "video": name,
            "video_index": j,
            "frame": t,
            "style_a": pair.style_a,
            "style_b": pair.style_b,
            "hue_shift": pair.hue_shift if pair.hue_shift is not None else 0.0,
            "saturation_scale": pair.saturation_scale if pair.saturation_scale is not None else 1.0,
        }

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()  # workers start with an empty cache
        return state
