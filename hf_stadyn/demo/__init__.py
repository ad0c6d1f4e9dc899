"""The demo's logic (the Gradio Space, ``spaces_app/app.py``, is a thin layer over it; docs/space.md).

The Space's three flows live in submodules:

- :mod:`hf_stadyn.demo.compare`: several models read on one StaDyn-Synth pair set, side by side (the first screen);
- :mod:`hf_stadyn.demo.single`: what ONE video can say (feature movement under shuffling vs restyling, the
  prediction under shuffling); one video gives no layer estimate;
- :mod:`hf_stadyn.demo.videoset`: the layer estimate on a set of uploaded videos;
- :mod:`hf_stadyn.demo.models`: the models a visitor may choose.

This module keeps the caps (:class:`DemoLimits`, :func:`check_video`), the model loader (:func:`load_demo_model`),
the cancellation hook and :func:`analyze_video`: the static/dynamic reading on pairs cut from one video. That
reading is rough (windows of one clip share one motion, so it reads close to an untrained network whatever the
model learned); the Space no longer shows it, and it stays as a library call::

    >>> from hf_stadyn.demo import analyze_video                                   # doctest: +SKIP
    >>> markdown, figure_png, report_json = analyze_video("clip.mp4", num_pairs=64, seed=0)

How the pairs are made: every pair comes from the uploaded video itself. Pair ``i`` takes a window of
``window`` source frames at a start drawn from ``numpy.random.default_rng([seed, i])`` (so the pairs
cover several temporal windows of the video), subsamples it to the model's frame count, resizes and
centre-crops it to the model's input size, and makes a dynamic pair (two temporally consistent styles)
or a static pair (one style, frames shuffled) with probability 1/2 each
(:class:`hf_stadyn.pairs.PairDataset`). The model is probed with :func:`hf_stadyn.probing.probe`.

Inputs are checked before anything is decoded (:func:`check_video` reads the container header with
:func:`hf_stadyn.video.read_video_info`): file size, duration, resolution and frame count must stay within
:class:`DemoLimits`, and the number of pairs within its bounds. Violations raise ``ValueError`` with
a message that says what to change.

The model is the embedded default (``hf_stadyn/assets/default_model``) unless ``model`` names
another one, or the environment variable ``STADYN_MODEL`` (a Space variable) gives a Hub id or a local
folder. Loaded models are cached per name, so a Space loads its model once.

:func:`analyze_video` takes a ``cancel`` callback, asked between pairs: the Space stops the work of a
client that disconnected or cancelled (docs/space.md).

(This file is a little over 500 lines: the caps, the model loader, the one-video pairs, the analysis and its
cancellation and the example videos that the submodules share.)
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_NUM_PAIRS",
    "MODEL_ENV",
    "AnalysisCancelled",
    "DemoLimits",
    "analyze_video",
    "check_num_pairs",
    "check_video",
    "load_demo_model",
    "make_example_videos",
    "video_pairs",
]

logger = logging.getLogger(__name__)

#: Environment variable (a Space variable) naming the model the demo probes: a Hub id or a folder.
MODEL_ENV = "STADYN_MODEL"
#: Pairs per analysis when the caller does not say.
DEFAULT_NUM_PAIRS = 32
#: The research default window of source frames per clip (docs/method.md §1.1).
DEFAULT_WINDOW = 64
DEFAULT_MODEL_NAME = "hf-stadyn default model"


@dataclass(frozen=True)
class DemoLimits:
    """Caps on what one analysis accepts (the Space's guard against oversized uploads).

    Attributes:
        max_file_mb: largest file, in MB (10^6 bytes).
        max_duration_s: longest video, in seconds.
        max_width, max_height: largest frame, in pixels; portrait videos are accepted with the sides
            swapped (e.g. 1080x1920 under the default 1920x1080).
        max_frames: most frames (also bounds videos whose frame rate is unknown).
        min_frames: fewest frames (a static pair shuffles frames, so at least 2).
        min_pairs, max_pairs: bounds on the number of pairs. Each pair's factor is drawn 50/50 and the
            estimate needs at least 2 pairs of each factor; from 16 pairs on, a draw short of that is
            rarer than 1 in 1900.
        max_decoded_mb: the video is decoded once into memory at the model's input size when that
            takes at most this many MB; beyond it each pair's clip is read from the file.
    """

    max_file_mb: float = 50.0
    max_duration_s: float = 60.0
    max_width: int = 1920
    max_height: int = 1080
    max_frames: int = 3600
    min_frames: int = 2
    min_pairs: int = 16
    max_pairs: int = 256
    max_decoded_mb: float = 512.0

    def __post_init__(self) -> None:
        for name in ("max_file_mb", "max_duration_s", "max_decoded_mb"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"DemoLimits.{name} must be a positive number, got {v!r}.")
        for name in ("max_width", "max_height", "max_frames", "min_frames", "min_pairs", "max_pairs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DemoLimits.{name} must be a positive int, got {v!r}.")
        if self.min_frames < 2:
            raise ValueError(
                f"DemoLimits.min_frames must be >= 2 (static pairs shuffle frames), got {self.min_frames}."
            )
        if self.min_pairs > self.max_pairs:
            raise ValueError(f"DemoLimits.min_pairs={self.min_pairs} exceeds max_pairs={self.max_pairs}.")
        if self.min_frames > self.max_frames:
            raise ValueError(f"DemoLimits.min_frames={self.min_frames} exceeds max_frames={self.max_frames}.")


DEFAULT_LIMITS = DemoLimits()


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def check_num_pairs(num_pairs: Any, limits: DemoLimits = DEFAULT_LIMITS) -> int:
    """``num_pairs`` as an int, or ValueError when it is not an integer in ``[min_pairs, max_pairs]``."""
    if isinstance(num_pairs, (float, np.floating)) and float(num_pairs).is_integer():
        num_pairs = int(num_pairs)
    if not _is_int(num_pairs) or not limits.min_pairs <= int(num_pairs) <= limits.max_pairs:
        raise ValueError(
            f"number of pairs must be an integer from {limits.min_pairs} to {limits.max_pairs}, got {num_pairs!r}; "
            "pick a value in that range (more pairs give tighter intervals but take longer)."
        )
    return int(num_pairs)


def check_video(path: str | os.PathLike, limits: DemoLimits = DEFAULT_LIMITS):
    """Check a video file against ``limits`` without decoding its frames; returns its ``VideoInfo``.

    Order: the file exists and is not larger than ``max_file_mb`` (from the file system), then the
    container header (:func:`hf_stadyn.video.read_video_info`): resolution, duration, frame count.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a file that is too large, too long, too big in pixels, too short, or not a
            readable video; the message says which limit and what to do.
    """
    from hf_stadyn.video import read_video_info

    if not isinstance(limits, DemoLimits):
        raise ValueError(f"limits must be a hf_stadyn.demo.DemoLimits, got {type(limits).__name__}.")
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"video must be a file path, got {type(path).__name__}.")
    p = Path(path)
    name = p.name
    if not p.exists():
        raise FileNotFoundError(f"video file {name!r} not found; upload the video again.")
    if not p.is_file():
        raise ValueError(f"{name!r} is not a file; upload a video file (mp4, webm, mov, mkv, avi).")
    size_mb = p.stat().st_size / 1e6
    if size_mb > limits.max_file_mb:
        raise ValueError(
            f"video {name!r} is {size_mb:.1f} MB; the demo takes files up to {limits.max_file_mb:g} MB. "
            "Trim or re-encode it at a lower resolution or bit rate."
        )
    info = read_video_info(p, name=name)
    long_side, short_side = max(info.width, info.height), min(info.width, info.height)
    cap_long, cap_short = max(limits.max_width, limits.max_height), min(limits.max_width, limits.max_height)
    if long_side > cap_long or short_side > cap_short:
        raise ValueError(
            f"video {name!r} is {info.width}x{info.height} pixels; the demo takes at most "
            f"{limits.max_width}x{limits.max_height} (either orientation). Downscale it first."
        )
    duration = info.duration
    if duration is not None and duration > limits.max_duration_s:
        raise ValueError(
            f"video {name!r} lasts {duration:.1f} s; the demo takes at most {limits.max_duration_s:g} s. "
            "Cut a shorter part of it."
        )
    if info.num_frames > limits.max_frames:
        raise ValueError(
            f"video {name!r} has {info.num_frames} frames; the demo takes at most {limits.max_frames}. "
            "Cut a shorter part of it or lower its frame rate."
        )
    if info.num_frames < limits.min_frames:
        raise ValueError(
            f"video {name!r} has {info.num_frames} frame(s); static pairs shuffle frames, so it needs at least "
            f"{limits.min_frames}. Upload a video, not a still image."
        )
    return info


# -- the model -------------------------------------------------------------------------------------

_MODEL_CACHE: OrderedDict[str, Any] = OrderedDict()
_MODEL_CACHE_SIZE = 2
_MODEL_LOCK = threading.Lock()


def _check_clip_model(model: Any, what: str) -> None:
    if not (hasattr(model, "probe_input_spec") and hasattr(model, "pooled_features")):
        raise ValueError(
            f"{what} is a {type(model).__name__} without the clip-probing mixin; the demo probes RGB clip models "
            "(VideoMAE / TimeSformer: a Hub id, a local folder or hf_stadyn.models.load_model). Two-stream AVOS "
            "models take flow pairs: probe them with hf_stadyn.pairs.TwoStreamPairDataset instead."
        )


def load_demo_model(model: Any = None) -> tuple[Any, str]:
    """The model to probe and the id the report shows.

    Args:
        model: ``None`` (the ``STADYN_MODEL`` environment variable if set, else the embedded default
            model), a Hub id or local folder (loaded with :func:`hf_stadyn.models.load_model`, safetensors
            only, no remote code; the last two loaded are cached by name), or an already loaded model with
            the probing mixin.

    Returns:
        ``(model, model_id)``; the model is in eval mode.
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        _check_clip_model(model, "model")
        config = getattr(model, "config", None)
        model_id = str(getattr(config, "name_or_path", "") or type(model).__name__)
        return model.eval(), model_id
    if model is None:
        model = os.environ.get(MODEL_ENV) or None
    key = "" if model is None else str(model)
    with _MODEL_LOCK:
        if key in _MODEL_CACHE:
            _MODEL_CACHE.move_to_end(key)
        else:
            from hf_stadyn.models.auto import DEFAULT_MODEL_DIR, load_model

            if model is None and not DEFAULT_MODEL_DIR.is_dir():
                raise FileNotFoundError(
                    f"the embedded default model is missing ({DEFAULT_MODEL_DIR}); reinstall hf-stadyn or set "
                    f"{MODEL_ENV} to a Hub model id or a local model folder."
                )
            logger.info("loading model %s", key or DEFAULT_MODEL_DIR)
            loaded = load_model(model)
            _check_clip_model(loaded, f"model {key or DEFAULT_MODEL_NAME!r}")
            _MODEL_CACHE[key] = loaded
            while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
                _MODEL_CACHE.popitem(last=False)
        loaded = _MODEL_CACHE[key]
    return loaded, key or DEFAULT_MODEL_NAME


def _input_size(model: Any) -> tuple[int, int]:
    spec = model.probe_input_spec()
    size = spec["image_size"]
    if isinstance(size, (tuple, list)):
        if len(size) != 2 or size[0] != size[1]:
            raise ValueError(f"the demo needs a model with square inputs; this one takes {tuple(size)}.")
        size = size[0]
    return int(spec["num_frames"]), int(size)


# -- pairs -----------------------------------------------------------------------------------------


def video_pairs(
    path: str | os.PathLike,
    model: Any,
    num_pairs: int,
    seed: int = 0,
    *,
    window: int | None = None,
    limits: DemoLimits = DEFAULT_LIMITS,
    info: Any = None,
):
    """The :class:`~hf_stadyn.pairs.PairDataset` that :func:`analyze_video` probes.

    Pairs come from the video itself: ``num_pairs`` windows of ``window`` source frames, each at a start
    drawn from ``(seed, pair index)``, subsampled to the model's frame count and cropped to its input size. The video
    is decoded once into memory at that size when it fits ``limits.max_decoded_mb``, else each clip is
    read from the file; both give the same pairs.

    Args:
        path: the video file (checked with :func:`check_video` unless ``info`` is given).
        model: a model with the probing mixin (its frame count and input size are used).
        num_pairs: number of pairs (within ``limits``).
        seed: non-negative int; the same seed gives the same pairs.
        window: source frames per clip (>= 1). Default: 64, or half the video when it has fewer than 128
            frames (at least the model's frame count), so that the windows start at different places.
            A video shorter than the window is looped.
        limits: the caps.
        info: the ``VideoInfo`` from a previous :func:`check_video` call.
    """
    from hf_stadyn.pairs import PairDataset
    from hf_stadyn.video import read_video

    num_pairs = check_num_pairs(num_pairs, limits)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if info is None:
        info = check_video(path, limits)
    num_frames, size = _input_size(model)
    if window is None:
        window = min(DEFAULT_WINDOW, max(num_frames, info.num_frames // 2))
    if not _is_int(window) or window < 1:
        raise ValueError(f"window must be a positive integer (source frames per clip), got {window!r}.")
    decoded_mb = info.num_frames * size * size * 3 / 1e6
    source: Any
    if decoded_mb <= limits.max_decoded_mb:
        source = [read_video(path, size=size, name=info.path)]
    else:
        logger.info("video needs %.0f MB decoded; reading each clip from the file instead", decoded_mb)
        source = [str(path)]
    return PairDataset(
        source, num_frames=num_frames, size=size, window=int(window), seed=int(seed), num_pairs=num_pairs
    )


# -- the analysis ----------------------------------------------------------------------------------


class AnalysisCancelled(RuntimeError):
    """Raised by :func:`analyze_video` when its ``cancel`` callback says stop (the Space: the client left)."""


class _CancellablePairs:
    """A pair dataset that asks ``cancel()`` before each item and counts the items served.

    The engine (:func:`hf_stadyn.probing.probe`) reads items one by one in its own loop (DataLoader,
    ``num_workers=0``), so raising :class:`AnalysisCancelled` here stops it between two items: at most
    one batch of pairs is computed after the cancellation. Other attributes come from the wrapped
    dataset (dunder names excepted, so ``Subset`` does not bypass ``__getitem__`` with ``__getitems__``).
    """

    def __init__(self, pairs: Any, cancel: Callable[[], bool], on_item: Callable[[int, int], None] | None) -> None:
        self._pairs, self._cancel, self._on_item = pairs, cancel, on_item
        self._served = 0

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> Any:
        if self._cancel():
            raise AnalysisCancelled(f"analysis cancelled after {self._served} of {len(self._pairs)} pairs")
        item = self._pairs[index]
        self._served += 1
        if self._on_item is not None:
            self._on_item(self._served, len(self._pairs))
        return item

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._pairs, name)


def analyze_video(
    path: str | os.PathLike,
    num_pairs: int = DEFAULT_NUM_PAIRS,
    seed: int = 0,
    model: Any = None,
    *,
    out_dir: str | os.PathLike | None = None,
    window: int | None = None,
    batch_size: int = 16,
    limits: DemoLimits = DEFAULT_LIMITS,
    progress: bool = False,
    cancel: Callable[[], bool] | None = None,
    on_pair: Callable[[int, int], None] | None = None,
) -> tuple[str, str, str]:
    """Per-layer static/dynamic report of ``model`` on pairs made from one video.

    Args:
        path: the video file (mp4, webm, mov, mkv, avi, ...), checked against ``limits`` first.
        num_pairs: number of pairs, in ``[limits.min_pairs, limits.max_pairs]``.
        seed: non-negative int; the same video, seed and model give the same report.
        model: see :func:`load_demo_model` (``None``: ``STADYN_MODEL`` or the embedded default).
        out_dir: folder for the outputs (created); default a new temporary folder.
        window: source frames per clip (default: 64, or half of a video shorter than 128 frames; see
            :func:`video_pairs`).
        batch_size: pairs per forward pass.
        limits: the caps (:data:`DEFAULT_LIMITS`).
        progress: show a tqdm bar while probing.
        cancel: called before the video is decoded, before each pair is made and before the report
            is written; when it returns True the analysis stops with :class:`AnalysisCancelled`
            (nothing is written to ``out_dir``). At most one batch of pairs is computed after it
            first returns True. The Space passes a flag set when the client disconnects or cancels.
        on_pair: called as ``on_pair(pairs_made, num_pairs)`` after each pair is made (progress).

    Returns:
        ``(markdown, figure_path, json_path)``: a summary plus the report's tables in markdown, the PNG
        of the share per layer (``bias_layers.png``) and ``report.json`` (load it with
        :meth:`hf_stadyn.BiasReport.load`). ``out_dir`` also holds ``report.md`` and the other figures.

    Raises:
        ValueError / FileNotFoundError: bad inputs or a video outside ``limits``, with what to change.
        AnalysisCancelled: ``cancel()`` returned True.
    """
    from hf_stadyn.pairs import DEFAULT_STYLES
    from hf_stadyn.probing.engine import probe
    from hf_stadyn.report import FIGURE_LAYERS, BiasReport

    num_pairs = check_num_pairs(num_pairs, limits)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if cancel is not None and not callable(cancel):
        raise ValueError(f"cancel must be a callable returning True to stop, got {type(cancel).__name__}.")
    should_stop: Callable[[], bool] = cancel if cancel is not None else (lambda: False)

    def checkpoint(what: str) -> None:
        if should_stop():
            raise AnalysisCancelled(f"analysis cancelled {what}")

    info = check_video(path, limits)
    net, model_id = load_demo_model(model)
    checkpoint("before decoding the video")
    pairs = video_pairs(path, net, num_pairs, int(seed), window=window, limits=limits, info=info)
    checkpoint("before probing")
    watched = _CancellablePairs(pairs, should_stop, on_pair) if (cancel is not None or on_pair is not None) else pairs
    result = probe(net, watched, batch_size=int(batch_size), progress=progress)
    checkpoint("before writing the report")

    num_frames, size = pairs.num_frames, pairs.size
    video_name = Path(path).name
    report = BiasReport.from_results(
        result.layers,
        model_id=model_id,
        pair_settings={
            "source": "one video, several temporal windows",
            "video": video_name,
            "num_pairs": num_pairs,
            "num_frames": num_frames,
            "size": size,
            "window": pairs.window,
            "styles": list(DEFAULT_STYLES),
            "static_fraction": 0.5,
            "fingerprint": result.settings.get("pair_fingerprint"),
            "chunking": result.settings.get("chunking"),
            "num_videos": result.settings.get("num_videos"),
            "interval_notes": result.settings.get("interval_notes", []),
        },
        seed=int(seed),
        extra={
            "demo": "hf_stadyn.demo.analyze_video",
            "video": {
                "name": video_name,
                "width": info.width,
                "height": info.height,
                "num_frames": info.num_frames,
                "fps": round(info.fps, 3),
                "codec": info.codec,
            },
        },
    )
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="stadyn-demo-"))
    paths = report.save(out)
    figure = next(p for p in paths.values() if p.name == FIGURE_LAYERS)
    return (
        _summary(report, info, video_name) + report.to_markdown(heading_level=2, title=False),
        str(figure),
        str(paths["json"]),
    )


def _summary(report: Any, info: Any, video_name: str) -> str:
    """The demo's lead paragraph: the video, the pairs, and the headline share of the last layer."""
    from hf_stadyn.report.compare import share_interval
    from hf_stadyn.report.headline import headline_markdown

    last = report.layers[report.last_layer]
    ps = report.pair_settings
    fps = f" at {info.fps:.3g} fps ({info.duration:.1f} s)" if info.duration is not None else ""
    return "\n".join(
        [
            f"**Video** `{video_name}`: {info.width}x{info.height}, {info.num_frames} frames{fps}, {info.codec}.",
            "",
            f"**Pairs**: {ps['num_pairs']} from this video ({last.num_pairs['dynamic']} dynamic / "
            f"{last.num_pairs['static']} static), windows of {ps['window']} frames subsampled to "
            f"{ps['num_frames']} frames of {ps['size']}x{ps['size']}, seed {report.seed}.",
            "",
            f"**Model** `{report.model_id}`, last probed layer `{report.last_layer}`: {headline_markdown(last)}.",
            "",
            "The share 100 * pi_F leads; the paper's floored dims % is beside it. Read it next to the same "
            "architecture at initialisation: the move away from that baseline is what the model learned. "
            + (
                "Every pair here comes from this one video, so the intervals do not show how the reading would "
                "vary over other videos; treat it as a rough reading."
                if share_interval(last, "dynamic") is not None
                else "Every pair here comes from this one video, and intervals resample whole videos, so there "
                "is no interval: treat it as a rough reading and probe a folder of videos for one."
            ),
            "",
            "",
        ]
    )


# -- examples --------------------------------------------------------------------------------------

#: (file name, motion, appearance class, camouflage) of the bundled synthetic examples.
_EXAMPLES = (
    ("synth_right.mp4", "right", 2, False),
    ("synth_clockwise.mp4", "clockwise", 5, False),
    ("synth_camouflage_up.mp4", "up", 1, True),
)


def make_example_videos(out_dir: str | os.PathLike, seed: int = 0) -> list[Path]:
    """Write a few StaDyn-Synth example videos (48 frames, 128x128, 12 fps) into ``out_dir``.

    One object moving right, one turning clockwise, and a camouflaged object moving up (only motion
    reveals it). Deterministic from ``seed``; existing files are rewritten. Returns the paths.
    """
    from hf_stadyn.synth import SynthConfig, render_clip
    from hf_stadyn.video import write_video

    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{str(out)!r} exists and is not a folder; pass a folder for the example videos.")
    paths = []
    for k, (fname, motion, appearance, camouflage) in enumerate(_EXAMPLES):
        cfg = SynthConfig(num_frames=48, size=128, speed=1.2, object_scale=0.12, camouflage=camouflage)
        clip = render_clip(cfg, cfg.motions.index(motion), appearance, np.random.default_rng([seed, k]))
        paths.append(write_video(out / fname, clip.frames, fps=12))
    return paths
