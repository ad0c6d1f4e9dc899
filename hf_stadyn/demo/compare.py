"""The Space's first screen: several models read on ONE varied StaDyn-Synth pair set, side by side.

Every model is probed on the same pairs in one data pass (:func:`hf_stadyn.probing.probe_models`), so the
readings compare paired (docs/method.md §5): each model's share has its own 95 % interval (jackknife over
the source clips), and its difference from the same architecture at initialisation has a paired interval.

The pair set: :class:`hf_stadyn.synth.SynthDataset` ``split="motion"`` clips (``num_clips`` clips, each
object's class, shape, texture, colours and background drawn at random, its motion one of the classes of
the default model's ``training.json`` ``synth_config``), rendered at the models' frame count and size from
``seed``; ``num_pairs`` pairs drawn across them.

The Space shows readings precomputed by ``python scripts/space_readings.py`` (stored in
``spaces_app/readings.json``), and recomputes them on demand with :func:`compare_models` (the same pair
set, fewer pairs by default so that it takes seconds on a CPU).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "READINGS_SCHEMA",
    "compare_models",
    "comparison_figure",
    "comparison_markdown",
    "load_readings",
    "synth_pair_set",
]

READINGS_SCHEMA = "hf-stadyn space readings 1"


def _default_synth_config() -> dict[str, Any]:
    from hf_stadyn.models.auto import DEFAULT_MODEL_DIR

    info = DEFAULT_MODEL_DIR / "training.json"
    if info.is_file():
        return dict(json.loads(info.read_text()).get("synth_config") or {})
    return {}


def synth_pair_set(num_clips: int, num_pairs: int, seed: int, num_frames: int, size: int) -> tuple[Any, dict]:
    """The comparison's pairs and their settings (see the module docstring)."""
    from hf_stadyn.pairs import PairDataset
    from hf_stadyn.synth import SynthConfig, SynthDataset

    extra: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in _default_synth_config().items()}
    cfg = SynthConfig(num_frames=num_frames, size=size, **extra)
    synth = SynthDataset(split="motion", num_clips=num_clips, config=cfg, seed=seed, train=False)
    clips = synth.to_tensors()["frames"].numpy()
    pairs = PairDataset(list(clips), num_frames=num_frames, size=size, window="auto", seed=seed, num_pairs=num_pairs)
    settings = {
        "source": "stadyn-synth",
        "split": "motion",
        "num_clips": int(num_clips),
        "num_pairs": int(num_pairs),
        "seed": int(seed),
        "num_frames": int(num_frames),
        "size": int(size),
        "synth_config": {k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()},
    }
    return pairs, settings


def compare_models(
    choices: Sequence[str],
    *,
    models_dir: str | os.PathLike | None = None,
    num_clips: int = 100,
    num_pairs: int = 300,
    seed: int = 0,
    batch_size: int = 32,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Read the models ``choices`` (:func:`hf_stadyn.demo.models.resolve_model` names) on one synthetic pair set.

    Returns the readings as a JSON-ready dict: ``pair_set`` (settings and fingerprint) and ``models``
    ``{choice: {"label", "layers": {layer: LayerBias.to_dict(include_channels=False)}}}``.
    Raises :class:`hf_stadyn.demo.AnalysisCancelled` when ``cancel()`` turns True (asked before each pair).
    """
    import hf_stadyn
    from hf_stadyn.probing import probe_models

    from . import _CancellablePairs, _input_size
    from .models import resolve_model

    if not choices:
        raise ValueError("pick at least one model to compare.")
    if not 2 <= int(num_clips) <= 2000 or not 16 <= int(num_pairs) <= 5000:
        raise ValueError(f"num_clips must be 2..2000 and num_pairs 16..5000, got {num_clips}, {num_pairs}.")
    nets: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for c in dict.fromkeys(choices):
        nets[c], labels[c] = resolve_model(c, models_dir)
    shapes = {c: _input_size(n) for c, n in nets.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"the models take different inputs {shapes}; compare models of one input size.")
    t, size = next(iter(shapes.values()))
    pairs, settings = synth_pair_set(int(num_clips), int(num_pairs), int(seed), t, size)
    source: Any = _CancellablePairs(pairs, cancel, None) if cancel is not None else pairs
    results = probe_models(nets, source, batch_size=batch_size, progress=False)
    first = next(iter(results.values()))
    settings["fingerprint"] = first.settings.get("pair_fingerprint")
    settings["num_videos"] = first.settings.get("num_videos")
    return {
        "schema": READINGS_SCHEMA,
        "hf_stadyn_version": getattr(hf_stadyn, "__version__", "unknown"),
        "pair_set": settings,
        "models": {
            c: {"label": labels[c], "layers": {k: lb.to_dict(include_channels=False) for k, lb in r.layers.items()}}
            for c, r in results.items()
        },
    }


def load_readings(path: str | os.PathLike) -> dict[str, Any]:
    """Readings written by ``scripts/space_readings.py``; ValueError for another file."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("schema") != READINGS_SCHEMA:
        raise ValueError(f"{Path(path).name} is not a Space readings file ({READINGS_SCHEMA!r}); rebuild it.")
    return data


def _layer_bias(d: Mapping[str, Any]) -> Any:
    from hf_stadyn.metric import LayerBias

    return LayerBias.from_dict(d)


def comparison_markdown(readings: Mapping[str, Any], choices: Sequence[str] | None, layer: str) -> str:
    """Table of the chosen models at ``layer``: share % [95 % interval] and the paired difference from init."""
    from hf_stadyn.report.compare import delta
    from hf_stadyn.report.headline import share_text

    models = readings["models"]
    chosen = [c for c in (choices or list(models)) if c in models]
    missing = [c for c in (choices or []) if c not in models]
    if not chosen:
        raise ValueError("none of the chosen models is in these readings; recompute them with the models picked.")
    if any(layer not in models[c]["layers"] for c in chosen):
        raise ValueError(f"layer {layer!r} is not read for every chosen model; pick another layer.")
    ps = readings["pair_set"]
    base = models.get("init", {}).get("layers", {}).get(layer)
    base_lb = _layer_bias(base) if base else None
    lines = [
        f"**Pairs**: {ps['num_pairs']} StaDyn-Synth pairs ({ps['split']} split) drawn across {ps['num_clips']} "
        f"synthetic clips of {ps['num_frames']} frames at {ps['size']}x{ps['size']} (seed {ps['seed']}); every model "
        "is read on the same pairs. Intervals: 95 %, jackknife over the source clips; "
        "the difference from *init* is paired (same pairs, same chunks).",
        "",
        f"**Layer** `{layer}`",
        "",
        "| model | dynamic share % [95 % CI] | static share % [95 % CI] | dynamic - init (paired) | static - init (paired) |",
        "|---|---|---|---|---|",
    ]
    for c in chosen:
        lb = _layer_bias(models[c]["layers"][layer])
        cells = []
        for f in ("dynamic", "static"):
            if base_lb is None or c == "init":
                cells.append("-")
                continue
            d = delta(lb, base_lb, f"share_{f}", paired=True)
            cells.append(f"{d.estimate:+.1f} [{d.low:+.1f}, {d.high:+.1f}]")
        lines.append(
            f"| {models[c]['label']} | {share_text(lb, 'dynamic')} | {share_text(lb, 'static')} | "
            f"{cells[0]} | {cells[1]} |"
        )
    lines += [
        "",
        "The share 100 * pi_F of each factor (docs/method.md §3) lies between about 14 and 42 %; an untrained "
        "network already reads low dynamic / high static (the *init* row), so the move away from *init*, not the "
        "share alone, is what a model learned."
        + ("" if base_lb is not None else " (*init* is not among these readings.)"),
    ]
    if missing:
        lines += ["", f"Not in these readings: {', '.join(missing)}; press *Recompute* to read them."]
    return "\n".join(lines) + "\n"


def comparison_figure(readings: Mapping[str, Any], choices: Sequence[str] | None, layer: str, path: Any) -> Any:
    """Bar chart (PNG written to ``path``, a file name or a binary file object; returned) of the chosen models' dynamic and static share at ``layer`` with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hf_stadyn.report.compare import share_interval
    from hf_stadyn.report.headline import share_percent

    models = readings["models"]
    chosen = [c for c in (choices or list(models)) if c in models and layer in models[c]["layers"]]
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    width = 0.38
    for j, (f, colour) in enumerate((("dynamic", "#1f77b4"), ("static", "#ff7f0e"))):
        vals, lo, hi = [], [], []
        for c in chosen:
            lb = _layer_bias(models[c]["layers"][layer])
            v = share_percent(lb, f)
            iv = share_interval(lb, f)
            vals.append(v)
            lo.append(v - iv.low if iv else 0.0)
            hi.append(iv.high - v if iv else 0.0)
        xs = [i + (j - 0.5) * width for i in range(len(chosen))]
        ax.bar(xs, vals, width, yerr=[lo, hi], capsize=3, color=colour, label=f"{f} share %")
    ax.set_xticks(range(len(chosen)))
    ax.set_xticklabels([c if len(c) < 24 else c.replace("stadyn-tiny-videomae-", "") for c in chosen], fontsize=8)
    ax.set_ylabel("share %")
    ax.set_title(f"{layer}: share per model, 95 % intervals (same pairs)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
