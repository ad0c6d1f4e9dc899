"""What ONE video can say about a model, instead of a layer estimate (docs/space.md "One video").

The estimator (docs/method.md §3) measures how features co-vary across pairs, so it needs pairs whose motion
and appearance vary; windows of one clip share one motion, and the reading they give is close to that of an
untrained network whatever the model learned. One video can still show how the model reacts to it:

- **shuffle movement** per layer: how far the pooled features move when the clip's frames are shuffled
  (the motion is destroyed, the appearance kept), as ``||f(shuffled) - f(clip)|| / ||f(clip)||`` in %;
- **restyle movement** per layer: the same when the clip is restyled (the appearance changed by one of the
  pair styles, the motion kept);
- **prediction under shuffling**: the model's top class on the clip, and how often and how far it changes
  when the frames are shuffled (with the class names of ``config.id2label`` where the model has them).

Each number is a mean over ``num_clips`` clips from evenly spaced windows of the video, ``num_shuffles``
shuffles and one restyling per style of :data:`hf_stadyn.pairs.DEFAULT_STYLES` each; everything is seeded.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["explain_video", "video_clips"]


def video_clips(video: np.ndarray, num_frames: int, num_clips: int, window: int | None = None) -> np.ndarray:
    """``num_clips`` clips ``(K, T, H, W, 3)`` from evenly spaced windows of ``video`` ``(N, H, W, 3)``.

    Each window spans ``window`` frames (default: half the video, at least ``num_frames``, at most 64, never
    more than the video) and is subsampled to ``num_frames`` evenly spaced frames (both ends included).
    """
    n = int(video.shape[0])
    if window is None:
        window = min(64, max(num_frames, n // 2))
    window = max(1, min(int(window), n))
    starts = np.linspace(0, n - window, num_clips).round().astype(int)
    idx = np.linspace(0, window - 1, num_frames).round().astype(int)
    return np.stack([video[s + idx] for s in starts])


def _class_name(config: Any, k: int) -> str:
    labels = getattr(config, "id2label", None) or {}
    name = labels.get(k, labels.get(str(k))) if isinstance(labels, dict) else None
    if not name or re.fullmatch(r"LABEL_\d+", str(name)):
        return f"class {k}"
    return f"'{name}'"


def _shuffle(rng: np.random.Generator, t: int) -> np.ndarray:
    """A permutation of ``t`` frames that moves at least one frame (unless t < 2)."""
    while True:
        p = rng.permutation(t)
        if t < 2 or not np.array_equal(p, np.arange(t)):
            return p


def explain_video(
    path: str | os.PathLike,
    model: Any = None,
    seed: int = 0,
    *,
    num_clips: int = 4,
    num_shuffles: int = 4,
    models_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    limits: Any = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[str, str]:
    """Per-layer shuffle vs restyle movement and the prediction under shuffling, on one video.

    Args:
        path: the video, checked against ``limits`` (:func:`hf_stadyn.demo.check_video`) before decoding.
        model: a Space model choice (:func:`hf_stadyn.demo.models.resolve_model`: ``None``/"default", "init",
            a released name, "hub:owner/name") or a loaded model with the probing mixin.
        seed: non-negative int; the same video, model and seed give the same numbers.
        num_clips: windows of the video (1 to 16); num_shuffles: frame shuffles per clip (1 to 16).
        models_dir: the Space's folder of released checkpoints.
        out_dir: where ``single_video.json`` is written (default: a new temporary folder).
        cancel: asked before each clip; True stops with :class:`hf_stadyn.demo.AnalysisCancelled`.

    Returns:
        ``(markdown, json_path)``: the explanation (a table per layer, one sentence per quantity, the
        prediction with class names) and the numbers as JSON.
    """
    import torch

    from hf_stadyn.pairs import DEFAULT_STYLES, stylize
    from hf_stadyn.video import read_video

    from . import DEFAULT_LIMITS, AnalysisCancelled, _input_size, _is_int, check_video, load_demo_model
    from .models import resolve_model

    limits = DEFAULT_LIMITS if limits is None else limits
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    for name, v in (("num_clips", num_clips), ("num_shuffles", num_shuffles)):
        if not _is_int(v) or not 1 <= v <= 16:
            raise ValueError(f"{name} must be an integer from 1 to 16, got {v!r}.")
    stop = cancel if cancel is not None else (lambda: False)
    info = check_video(path, limits)
    if model is None or isinstance(model, str):
        net, label = resolve_model(model, models_dir)
    else:
        net, label = load_demo_model(model)
    t, size = _input_size(net)
    if stop():
        raise AnalysisCancelled("analysis cancelled before decoding the video")
    video = read_video(path, size=size, name=Path(path).name)
    clips = video_clips(video, t, num_clips)
    rng = np.random.default_rng([int(seed), 18])
    layers: list[str] | None = None
    shuffle_moves: dict[str, list[float]] = {}
    style_moves: dict[str, list[float]] = {}
    base_top: list[int] = []
    kept: list[float] = []
    drop: list[float] = []
    shuffled_tops: list[int] = []
    for k, clip in enumerate(clips):
        if stop():
            raise AnalysisCancelled(f"analysis cancelled after {k} of {num_clips} clips")
        shuffled = [clip[_shuffle(rng, t)] for _ in range(num_shuffles)]
        styled = [stylize(clip, s, rng) for s in DEFAULT_STYLES]
        batch = np.stack([clip, *shuffled, *styled])
        pv = net.prepare_pixel_values(batch)
        with torch.no_grad():
            feats = net.pooled_features(pv)
            out = net(**{getattr(net, "main_input_name", "pixel_values"): pv})
            logits = getattr(out, "logits", None)  # a bare encoder has no prediction to compare
            logits = logits.float() if isinstance(logits, torch.Tensor) else None
        if layers is None:
            layers = list(feats)
        for name, f in feats.items():
            f = f.double()
            ref = f[0].norm().clamp_min(1e-12)
            d = (f[1:] - f[0]).norm(dim=1) / ref * 100
            shuffle_moves.setdefault(name, []).extend(d[:num_shuffles].tolist())
            style_moves.setdefault(name, []).extend(d[num_shuffles:].tolist())
        if logits is not None and logits.ndim == 2 and logits.shape[1] > 1:
            p = torch.softmax(logits, dim=1)
            top = int(p[0].argmax())
            base_top.append(top)
            tops = p[1 : 1 + num_shuffles].argmax(dim=1).tolist()
            shuffled_tops.extend(tops)
            kept.extend(1.0 if x == top else 0.0 for x in tops)
            drop.extend((p[0, top] - p[1 : 1 + num_shuffles, top]).tolist())
    if stop():
        raise AnalysisCancelled("analysis cancelled before writing the explanation")
    assert layers is not None
    rows = {
        name: {
            "shuffle_movement_percent": float(np.mean(shuffle_moves[name])),
            "restyle_movement_percent": float(np.mean(style_moves[name])),
            "shuffle_range": [float(np.min(shuffle_moves[name])), float(np.max(shuffle_moves[name]))],
            "restyle_range": [float(np.min(style_moves[name])), float(np.max(style_moves[name]))],
        }
        for name in layers
    }
    prediction = None
    if base_top:
        cfg = getattr(net, "config", None)
        values, counts = np.unique(base_top, return_counts=True)
        main = int(values[counts.argmax()])
        sv, sc = np.unique(shuffled_tops, return_counts=True)
        prediction = {
            "top_class": main,
            "top_class_name": _class_name(cfg, main),
            "clips_with_top_class": int(counts.max()),
            "kept_top1_percent": 100 * float(np.mean(kept)),
            "mean_probability_drop": float(np.mean(drop)),
            "shuffled_top_classes": {_class_name(cfg, int(c)): int(n) for c, n in zip(sv, sc, strict=True)},
        }
    result = {
        "model": label,
        "video": {"name": Path(path).name, "width": info.width, "height": info.height, "num_frames": info.num_frames},
        "seed": int(seed),
        "num_clips": int(num_clips),
        "num_shuffles": int(num_shuffles),
        "styles": list(DEFAULT_STYLES),
        "input": {"num_frames": t, "size": size},
        "layers": rows,
        "prediction": prediction,
    }
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="stadyn-single-"))
    out.mkdir(parents=True, exist_ok=True)
    js = out / "single_video.json"
    js.write_text(json.dumps(result, indent=2) + "\n")
    return single_video_markdown(result), str(js)


def _layer_sentence(name: str, row: dict[str, Any]) -> str:
    s, r = row["shuffle_movement_percent"], row["restyle_movement_percent"]
    if s > 1.25 * r:
        lean = "on this video it reacts more to the frame order (motion) than to the appearance"
    elif r > 1.25 * s:
        lean = "on this video it reacts more to the appearance than to the frame order (motion)"
    else:
        lean = "on this video it reacts about as much to the frame order as to the appearance"
    return f"`{name}`: shuffling moves its features by {s:.1f} %, restyling by {r:.1f} %; {lean}."


def single_video_markdown(result: dict[str, Any]) -> str:
    """The explanation of :func:`explain_video`'s result, in markdown."""
    v, n = result["video"], result["num_clips"]
    lines = [
        f"**Model**: {result['model']}",
        "",
        f"**Video** `{v['name']}`: {v['width']}x{v['height']}, {v['num_frames']} frames; {n} clips of "
        f"{result['input']['num_frames']} frames at {result['input']['size']}x{result['input']['size']} from evenly "
        f"spaced windows, {result['num_shuffles']} frame shuffles and {len(result['styles'])} restylings each, "
        f"seed {result['seed']}.",
        "",
        "**One video gives no layer estimate.** The estimator measures how features co-vary across pairs, so it "
        "needs pairs whose motion and appearance vary; all windows of one video share one motion. Upload several "
        "videos in *A set of videos* for the estimate; here is what one video can show:",
        "",
        "- **Shuffle movement**: how far a layer's pooled features move (distance in % of their length) when the "
        "clip's frames are put in random order, which destroys the motion and keeps the appearance.",
        "- **Restyle movement**: the same when the clip is redrawn in another style (colours, texture), which "
        "changes the appearance and keeps the motion.",
        "- **Prediction under shuffling**: whether the model's top class survives the shuffling; a model that "
        "decides from motion changes its answer, one that decides from appearance keeps it.",
        "",
        "| layer | shuffle movement (%) [min, max] | restyle movement (%) [min, max] |",
        "|---|---|---|",
    ]
    for name, row in result["layers"].items():
        s, r = row["shuffle_range"], row["restyle_range"]
        lines.append(
            f"| {name} | {row['shuffle_movement_percent']:.1f} [{s[0]:.1f}, {s[1]:.1f}] | "
            f"{row['restyle_movement_percent']:.1f} [{r[0]:.1f}, {r[1]:.1f}] |"
        )
    lines += ["", *(f"- {_layer_sentence(k, row)}" for k, row in result["layers"].items()), ""]
    p = result["prediction"]
    if p is None:
        lines.append("**Prediction**: this model has no classification head, so there is no prediction to compare.")
    else:
        others = ", ".join(f"{k} ({c})" for k, c in p["shuffled_top_classes"].items())
        lines.append(
            f"**Prediction**: {p['top_class_name']} on {p['clips_with_top_class']} of {n} clips. After shuffling the "
            f"frames the top class stays the same in {p['kept_top1_percent']:.0f} % of the shuffled clips (top "
            f"classes after shuffling: {others}), and the probability of the original top class falls by "
            f"{100 * p['mean_probability_drop']:.1f} points on average."
        )
    lines += [
        "",
        "These are readings of one video, not of the model: other videos may give other numbers.",
    ]
    return "\n".join(lines) + "\n"
