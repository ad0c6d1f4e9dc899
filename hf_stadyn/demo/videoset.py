"""The layer estimate of a model on a SET of uploaded videos (docs/space.md "A set of videos").

Pairs are drawn across the videos (pair ``i`` from video ``i % num_videos``, :class:`hf_stadyn.pairs.PairDataset`),
so their motion and appearance vary as much as the videos do. Intervals resample whole videos (jackknife
over videos, docs/method.md §5): with few videos an interval rests on few units and is itself rough, and
the report says how many videos and pairs it rests on. Fewer than :data:`MIN_VIDEOS` videos are refused
(use the single-video explanation, :func:`hf_stadyn.demo.single.explain_video`, for one video).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MAX_VIDEOS", "MIN_VIDEOS", "analyze_videos"]

#: Fewest videos for a layer estimate: the jackknife over videos needs several units.
MIN_VIDEOS = 3
#: Most videos per request (each is checked against the caps and decoded at the model's input size).
MAX_VIDEOS = 16
#: Below this many videos the report warns that the interval itself is rough.
FEW_VIDEOS = 10


def analyze_videos(
    paths: Sequence[str | os.PathLike],
    num_pairs: int = 64,
    seed: int = 0,
    model: Any = None,
    *,
    models_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
    limits: Any = None,
    cancel: Callable[[], bool] | None = None,
    on_pair: Callable[[int, int], None] | None = None,
) -> tuple[str, str, str]:
    """Per-layer static/dynamic report of ``model`` on pairs drawn across several videos.

    Args:
        paths: ``MIN_VIDEOS`` to ``MAX_VIDEOS`` video files; each is checked against ``limits``
            (:func:`hf_stadyn.demo.check_video`: size, duration, resolution, frames) before any is decoded,
            and together they must fit ``limits.max_decoded_mb`` once decoded at the model's input size.
        num_pairs: pairs, in ``[limits.min_pairs, limits.max_pairs]``.
        seed: non-negative int.
        model: a Space model choice (:func:`hf_stadyn.demo.models.resolve_model`) or a loaded model.
        cancel, on_pair: as for :func:`hf_stadyn.demo.analyze_video` (asked before each pair).

    Returns:
        ``(markdown, figure_path, json_path)`` as :func:`hf_stadyn.demo.analyze_video`; the summary names the
        model and says how many videos and pairs the intervals rest on.
    """
    from hf_stadyn.pairs import DEFAULT_STYLES, PairDataset
    from hf_stadyn.probing.engine import probe
    from hf_stadyn.report import FIGURE_LAYERS, BiasReport
    from hf_stadyn.video import read_video

    from . import (
        DEFAULT_LIMITS,
        AnalysisCancelled,
        _CancellablePairs,
        _input_size,
        _is_int,
        check_num_pairs,
        check_video,
        load_demo_model,
    )
    from .models import resolve_model

    limits = DEFAULT_LIMITS if limits is None else limits
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [p for p in (paths or []) if p]
    if len(paths) < MIN_VIDEOS:
        raise ValueError(
            f"{len(paths)} video(s) given; a layer estimate needs at least {MIN_VIDEOS} videos, because it measures how "
            "features co-vary across pairs whose motion and appearance vary, and its interval resamples whole videos. "
            "Upload more videos, or use the single-video explanation for one video."
        )
    if len(paths) > MAX_VIDEOS:
        raise ValueError(f"{len(paths)} videos given; the demo takes at most {MAX_VIDEOS} at once. Upload fewer.")
    num_pairs = check_num_pairs(num_pairs, limits)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    names = [Path(p).name for p in paths]
    if len(set(names)) < len(names) or len({os.path.realpath(p) for p in paths}) < len(paths):
        raise ValueError("the same video was given twice; each video of the set must be a different file.")
    infos = [check_video(p, limits) for p in paths]
    stop = cancel if cancel is not None else (lambda: False)
    if model is None or isinstance(model, str):
        net, label = resolve_model(model, models_dir)
    else:
        net, label = load_demo_model(model)
    t, size = _input_size(net)
    decoded_mb = sum(i.num_frames for i in infos) * size * size * 3 / 1e6
    if decoded_mb > limits.max_decoded_mb:
        raise ValueError(
            f"the {len(paths)} videos need {decoded_mb:.0f} MB decoded; the demo holds at most "
            f"{limits.max_decoded_mb:g} MB. Upload fewer or shorter videos."
        )
    videos = []
    for k, p in enumerate(paths):
        if stop():
            raise AnalysisCancelled(f"analysis cancelled while decoding video {k + 1} of {len(paths)}")
        videos.append(read_video(p, size=size, name=names[k]))
    pairs = PairDataset(videos, num_frames=t, size=size, window="auto", seed=int(seed), num_pairs=num_pairs)
    watched = _CancellablePairs(pairs, stop, on_pair) if (cancel is not None or on_pair is not None) else pairs
    result = probe(net, watched, batch_size=int(batch_size), progress=False)
    if stop():
        raise AnalysisCancelled("analysis cancelled before writing the report")
    num_videos = result.settings.get("num_videos") or len(paths)
    report = BiasReport.from_results(
        result.layers,
        model_id=label,
        pair_settings={
            "source": "uploaded videos",
            "videos": names,
            "num_videos": num_videos,
            "num_pairs": num_pairs,
            "num_frames": t,
            "size": size,
            "window": "auto (64, fitted to each video)",
            "styles": list(DEFAULT_STYLES),
            "static_fraction": 0.5,
            "fingerprint": result.settings.get("pair_fingerprint"),
            "chunking": result.settings.get("chunking"),
            "interval_notes": result.settings.get("interval_notes", []),
        },
        seed=int(seed),
        extra={"demo": "hf_stadyn.demo.videoset.analyze_videos"},
    )
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="stadyn-set-"))
    saved = report.save(out)
    figure = next(p for p in saved.values() if p.name == FIGURE_LAYERS)
    return (
        videoset_summary(report, names) + report.to_markdown(heading_level=2, title=False),
        str(figure),
        str(saved["json"]),
    )


def videoset_summary(report: Any, names: Sequence[str]) -> str:
    """The lead paragraph: the model, the videos and pairs the intervals rest on, and the last layer's share."""
    from hf_stadyn.report.headline import headline_markdown

    last = report.layers[report.last_layer]
    ps = report.pair_settings
    n = int(ps["num_videos"])
    d, s = last.num_pairs["dynamic"], last.num_pairs["static"]
    rough = (
        f" With only {n} videos the interval is itself rough (a jackknife over {n} units); {FEW_VIDEOS} or more "
        "videos give a steadier one."
        if n < FEW_VIDEOS
        else ""
    )
    lines = [
        f"**Model**: {report.model_id}",
        "",
        f"**Videos**: {n} ({', '.join(f'`{x}`' for x in names)}). **Pairs**: {ps['num_pairs']} ({d} dynamic / {s} "
        f"static), drawn across the videos, {ps['num_frames']} frames of {ps['size']}x{ps['size']}, seed {report.seed}.",
        "",
        f"**The intervals rest on {n} videos and {ps['num_pairs']} pairs**: they resample whole videos (the pairs of "
        f"one video are not independent), so they show how the reading would vary over other videos like these."
        + rough,
        "",
        f"Last probed layer `{report.last_layer}`: {headline_markdown(last)}.",
        "",
        "Read it next to the same architecture at initialisation (pick *init* as the model): the move away from that "
        "baseline is what the model learned.",
        "",
        "",
    ]
    return "\n".join(lines)
