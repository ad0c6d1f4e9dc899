"""Ground-truth validation of the estimator on StaDyn-Synth (issue: probing must be trustworthy).

Tiny VideoMAE / TimeSformer models trained on the motion-only split (label = motion, appearance random)
must read more dynamic at their last block than the same architecture trained on the appearance-only
split (label = appearance, motion random) shown by colour and texture (the style-sensitive cue), which in
turn must read more static; the output-level check of docs/method.md §8 (shuffle sensitivity) goes with it.
A third model is trained on the appearance split shown by shape and background layout (the
style-invariant ``cue="invariant"``): what a dynamic pair's two styles keep, so the method reads it as
"dynamic" too (docs/method.md §10). The appearance-free dynamic pairs of
:mod:`hf_stadyn.pairs.appearance_free` share motion only and are validated on the same models;
:func:`order_sensitive_reading` and :func:`mild_styles` measure why an untrained network reads "maximally
static". ``scripts/ground_truth_validation.py`` runs the full study; the test suite runs a reduced one.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hf_stadyn.metric import LayerBias
from hf_stadyn.pairs.styles import Stylizer

__all__ = [
    "GroundTruthRun",
    "MildGain",
    "MildGamma",
    "init_model",
    "last_block_summary",
    "mild_styles",
    "order_sensitive_reading",
    "probe_clip_pairs",
    "read_trained_model",
    "reference_reading",
    "train_and_probe",
    "validation_synth_config",
]


def validation_synth_config(num_frames: int = 8, size: int = 32):
    """Four directions (left/right/up/down) and four appearance classes: what tiny video transformers
    learn reliably from scratch on a CPU in 6000 clips x 8 epochs (the nine motion classes reach 98 %
    with 12000 clips x 16 epochs: tests/bench/bench_synth_learn.py)."""
    from hf_stadyn.synth import SynthConfig

    return SynthConfig(num_frames=num_frames, size=size, motions=("left", "right", "up", "down"), num_appearances=4)


logger = logging.getLogger(__name__)


@dataclass
class GroundTruthRun:
    """One trained model's readings.

    Attributes:
        arch, split, seed: what was trained; ``cue``: which attributes show the appearance class of the
            appearance split ("sensitive": colour + texture; "invariant": shape + background layout).
        accuracy: test accuracy on clips of its own split; ``shuffled_accuracy`` with frames shuffled;
            ``shuffle_drop``: relative drop ``1 - shuffled / accuracy``.
        layers: per-layer estimates on the probe pairs; ``last_layer`` names the last block.
        model_dir: where the trained checkpoint was saved (None when not kept).
    """

    arch: str
    split: str
    seed: int
    accuracy: float
    shuffled_accuracy: float
    shuffle_drop: float
    layers: dict[str, LayerBias]
    last_layer: str
    model_dir: str | None = None
    cue: str = "sensitive"
    extra: dict[str, dict[str, LayerBias]] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary of the last block (and of each extra pair set's reading of it, under ``"extra"``)."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("layers", "extra")}
        d.update(last_block_summary(self.layers[self.last_layer]))
        d["extra"] = {name: last_block_summary(layers[self.last_layer]) for name, layers in self.extra.items()}
        return d


def last_block_summary(lb: LayerBias) -> dict[str, Any]:
    """``{"percent", "s_dynamic", "s_static", "intervals", "category_counts"}`` of one layer's reading."""
    return {
        "percent": lb.percent,
        "s_dynamic": lb.s_dynamic,
        "s_static": lb.s_static,
        "intervals": {k: v.to_dict() for k, v in lb.intervals.items()},
        "category_counts": lb.category_counts,
    }


def probe_clip_pairs(
    num_pairs: int, seed: int, num_frames: int = 8, size: int = 32, num_clips: int = 256, styles: Any = None
):
    """Probe pairs from StaDyn-Synth test clips whose motion and appearance are both random.

    The same pairs serve every model, so readings are comparable. A synthetic clip is exactly
    ``num_frames`` long, so its sampling window is the whole clip. ``styles``: as for
    :class:`~hf_stadyn.pairs.PairDataset` (default: the default styles; :func:`mild_styles` for mild ones).
    """
    from hf_stadyn.pairs import PairDataset
    from hf_stadyn.synth import SynthDataset

    synth = SynthDataset("motion", num_clips=num_clips, config=validation_synth_config(num_frames, size),
                         seed=seed + 7919, train=False)  # fmt: skip
    clips = list(synth.to_tensors()["frames"].numpy())
    return PairDataset(clips, num_frames=num_frames, size=size, window=num_frames, seed=seed, num_pairs=num_pairs,
                       styles=styles)  # fmt: skip


def train_and_probe(
    arch: str,
    split: str,
    *,
    seed: int = 0,
    num_train: int = 6000,
    num_test: int = 1000,
    epochs: int = 8,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    num_pairs: int = 1500,
    keep_dir: str | Path | None = None,
    pairs: Any = None,
    progress: bool = False,
    cue: str = "sensitive",
    extra_pairs: dict[str, Any] | None = None,
) -> GroundTruthRun:
    """Train a tiny ``arch`` ("videomae" / "timesformer") on StaDyn-Synth ``split`` and probe it.

    Args:
        keep_dir: save the trained checkpoint there (else it is discarded).
        pairs: probe pairs (default :func:`probe_clip_pairs` with ``seed``).
        cue: the appearance cue of the appearance split: "sensitive" (colour + texture, what the styles
            change) or "invariant" (shape + background layout, what the styles keep).
        extra_pairs: ``{name: pairs}`` read as well (e.g. appearance-free pairs); in ``run.extra``.
    """
    from accelerate.state import AcceleratorState

    from hf_stadyn.training.classification import ClassificationTrainingConfig, synth_datasets, train_classification

    if split not in ("motion", "appearance"):
        raise ValueError(f"split must be 'motion' or 'appearance', got {split!r}")
    _check_cue(cue)
    # cue="sensitive": the appearance classes are shown by colour + texture, what a dynamic pair's two
    # styles change. cue="invariant": shape + background layout, which survive stylization, so a model
    # that reads them is invariant across a dynamic pair and reads "dynamic" by the method's definition.
    train, evals, names = synth_datasets(
        split, num_train=num_train, num_eval=num_test, seed=seed, config=validation_synth_config(), trap_cue=cue
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(keep_dir) if keep_dir is not None else Path(tmp) / "run"
        cfg = ClassificationTrainingConfig(
            output_dir=str(out), model=arch, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            seed=seed, cpu=True, track_bias=False, progress=progress, save_total_limit=1, overwrite=True,
        )  # fmt: skip
        AcceleratorState._reset_state(reset_partial_state=True)
        res = train_classification(cfg, train, evals, label_names=names)
        from hf_stadyn.models.auto import load_model

        model = load_model(res.model_dir)
    return read_trained_model(model, arch, split, seed=seed, test=evals["test"], num_pairs=num_pairs, pairs=pairs,
                              model_dir=str(Path(keep_dir) / "model") if keep_dir is not None else None,
                              progress=progress, cue=cue, extra_pairs=extra_pairs)  # fmt: skip


def _check_cue(cue: str) -> None:
    if cue not in ("sensitive", "invariant"):
        raise ValueError(f"cue must be 'sensitive' (colour + texture) or 'invariant' (shape + layout), got {cue!r}")


def read_trained_model(
    model: Any,
    arch: str,
    split: str,
    *,
    seed: int = 0,
    test: Any = None,
    num_test: int = 1000,
    num_pairs: int = 1500,
    pairs: Any = None,
    model_dir: str | None = None,
    progress: bool = False,
    cue: str = "sensitive",
    extra_pairs: dict[str, Any] | None = None,
) -> GroundTruthRun:
    """Accuracy, shuffle sensitivity and per-layer readings of a trained classifier.

    ``test`` defaults to ``num_test`` StaDyn-Synth test clips of ``split`` with appearance ``cue``
    (validation scene settings). ``extra_pairs``: ``{name: pairs}`` also probed (``run.extra[name]``).
    """
    from hf_stadyn.training.classification import evaluate_classifier, synth_datasets

    if test is None:
        _check_cue(cue)
        _, evals, _ = synth_datasets(split, num_train=1, num_eval=num_test, seed=seed,
                                     config=validation_synth_config(), trap_cue=cue)  # fmt: skip
        test = evals["test"]
    acc = evaluate_classifier(model, test, seed=seed)["accuracy"]
    shuf = evaluate_classifier(model, test, seed=seed, shuffle_frames=True)["accuracy"]
    if pairs is None:
        pairs = probe_clip_pairs(num_pairs, seed)
    layers = _probe_layers(model, pairs, num_pairs, progress)
    extra = {name: _probe_layers(model, p, num_pairs, progress) for name, p in (extra_pairs or {}).items()}
    blocks = [name for name in layers if name.startswith("block_")]
    return GroundTruthRun(
        arch=arch, split=split, seed=seed, accuracy=acc, shuffled_accuracy=shuf,
        shuffle_drop=(1.0 - shuf / acc) if acc > 0 else float("nan"),
        layers=layers, last_layer=blocks[-1], model_dir=model_dir, cue=cue, extra=extra,
    )  # fmt: skip


def _probe_layers(model: Any, pairs: Any, num_pairs: int, progress: bool = False) -> dict[str, LayerBias]:
    from accelerate.state import AcceleratorState

    from hf_stadyn.probing.engine import probe

    AcceleratorState._reset_state(reset_partial_state=True)
    return probe(model, pairs, num_pairs=min(num_pairs, len(pairs)), batch_size=64, cpu=True, progress=progress).layers


def init_model(arch: str, seed: int = 0) -> torch.nn.Module:
    """The tiny ``arch`` ("videomae" / "timesformer") at initialisation (``torch.manual_seed(seed)``), in eval mode."""
    from hf_stadyn import models

    torch.manual_seed(seed)
    if arch == "videomae":
        model = models.StadynVideoMAEForVideoClassification(models.tiny_videomae_config(num_labels=4))
    elif arch == "timesformer":
        model = models.StadynTimesformerForVideoClassification(models.tiny_timesformer_config(num_labels=4))
    else:
        raise ValueError(f"arch must be 'videomae' or 'timesformer', got {arch!r}")
    return model.eval()


def reference_reading(arch: str, pairs: Any, num_pairs: int, seed: int = 0) -> dict[str, LayerBias]:
    """The same tiny architecture at initialisation, probed on ``pairs``."""
    return _probe_layers(init_model(arch, seed), pairs, num_pairs)


class MildGain(Stylizer):
    """A mild style: per-channel gain in [0.85, 1.15] and offset in [-12, 12] (clip-wide)."""

    name = "mild_gain"

    def sample_params(self, rng: Any) -> dict[str, np.ndarray]:
        return {"gain": rng.uniform(0.85, 1.15, size=3), "offset": rng.uniform(-12.0, 12.0, size=3)}

    def apply(self, clip: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        out = clip.astype(np.float32) * params["gain"].astype(np.float32) + params["offset"].astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class MildGamma(Stylizer):
    """A mild style: per-channel gamma in [0.8, 1.25] (clip-wide)."""

    name = "mild_gamma"

    def sample_params(self, rng: Any) -> dict[str, np.ndarray]:
        return {"gamma": np.exp(rng.uniform(np.log(0.8), np.log(1.25), size=3))}

    def apply(self, clip: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        out = 255.0 * (clip.astype(np.float32) / 255.0) ** params["gamma"].astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def mild_styles() -> list[Stylizer]:
    """Two mild, temporally consistent styles (small colour gains/offsets, gammas): a dynamic pair's
    members then differ little in appearance, unlike with the default styles (docs/method.md §10)."""
    return [MildGain(), MildGamma()]


def order_sensitive_reading(
    model: Any, pairs: Any, num_pairs: int, layer: str = "block_3", batch_size: int = 64
) -> LayerBias:
    """The reading of a VideoMAE token layer with an *order-sensitive* pooling (docs/method.md §10).

    The layer's tokens ``(B, T' * S, C)`` (``T' = T / tubelet`` time positions, ``S`` patches each, in
    time-major order as VideoMAE's patch embedding emits them) are averaged over the ``S`` patches of each
    time position and the ``T'`` means are concatenated: a ``(B, T' * C)`` feature that changes when the
    frames are shuffled, unlike the mean over all tokens (docs/method.md §2). The jackknife chunks follow
    the items' ``video_index`` when they carry it (as in the engine), else the pair ids.
    """
    from hf_stadyn.metric.functional import static_dynamic_bias

    spec = model.probe_layer_specs()[layer]
    cfg = model.config
    t_pos = int(cfg.num_frames) // int(cfg.tubelet_size)
    module = dict(model.named_modules())[spec.module]
    feats: list[torch.Tensor] = []

    def hook(_m: Any, _i: Any, out: Any) -> None:
        x = out[0] if isinstance(out, (tuple, list)) else out
        b, n, c = x.shape
        feats.append(x.float().reshape(b, t_pos, n // t_pos, c).mean(2).reshape(b, t_pos * c))

    za, zb, fac, ids, groups = [], [], [], [], []
    n = min(num_pairs, len(pairs))
    handle = module.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                items = [pairs[i] for i in range(start, min(n, start + batch_size))]
                clips = torch.stack([torch.as_tensor(it["clip_a"]) for it in items] +
                                    [torch.as_tensor(it["clip_b"]) for it in items])  # fmt: skip
                feats.clear()
                model(pixel_values=model.prepare_pixel_values(clips))
                z = feats[0]
                za.append(z[: len(items)])
                zb.append(z[len(items) :])
                fac += [int(it["factor"]) for it in items]
                ids += [int(it.get("index", start + k)) for k, it in enumerate(items)]
                groups += [it.get("video_index") for it in items]
    finally:
        handle.remove()
    # chunks by source video when the pairs carry it (as the engine does, docs/method.md §5), else by pair id
    by_video = {"groups": np.array(groups)} if all(g is not None for g in groups) else {}
    return static_dynamic_bias(
        torch.cat(za), torch.cat(zb), np.array(fac), layer=layer, pair_ids=np.array(ids), **by_video
    )
