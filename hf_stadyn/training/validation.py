"""Ground-truth validation of the estimator on StaDyn-Synth (issue: probing must be trustworthy).

Tiny VideoMAE / TimeSformer models trained on the motion-only split (label = motion, appearance random)
must read more dynamic at their last block than the same architecture trained on the appearance-only
split (label = appearance, motion random), which in turn must read more static; the output-level check
of docs/method.md §8 (shuffle sensitivity) goes with it. ``scripts/ground_truth_validation.py`` runs the full
study; the test suite runs a reduced one.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hf_stadyn.metric import LayerBias

__all__ = [
    "GroundTruthRun",
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
        arch, split, seed: what was trained.
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

    def summary(self) -> dict[str, Any]:
        lb = self.layers[self.last_layer]
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "layers"}
        d.update(
            percent=lb.percent,
            s_dynamic=lb.s_dynamic,
            s_static=lb.s_static,
            intervals={k: v.to_dict() for k, v in lb.intervals.items()},
            category_counts=lb.category_counts,
        )
        return d


def probe_clip_pairs(num_pairs: int, seed: int, num_frames: int = 8, size: int = 32, num_clips: int = 256):
    """Probe pairs from StaDyn-Synth test clips whose motion and appearance are both random.

    The same pairs serve every model, so readings are comparable. A synthetic clip is exactly
    ``num_frames`` long, so its sampling window is the whole clip.
    """
    from hf_stadyn.pairs import PairDataset
    from hf_stadyn.synth import SynthDataset

    synth = SynthDataset("motion", num_clips=num_clips, config=validation_synth_config(num_frames, size),
                         seed=seed + 7919, train=False)  # fmt: skip
    clips = list(synth.to_tensors()["frames"].numpy())
    return PairDataset(clips, num_frames=num_frames, size=size, window=num_frames, seed=seed, num_pairs=num_pairs)


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
) -> GroundTruthRun:
    """Train a tiny ``arch`` ("videomae" / "timesformer") on StaDyn-Synth ``split`` and probe it.

    Args:
        keep_dir: save the trained checkpoint there (else it is discarded).
        pairs: probe pairs (default :func:`probe_clip_pairs` with ``seed``).
    """
    from accelerate.state import AcceleratorState

    from hf_stadyn.training.classification import ClassificationTrainingConfig, synth_datasets, train_classification

    if split not in ("motion", "appearance"):
        raise ValueError(f"split must be 'motion' or 'appearance', got {split!r}")
    # The appearance classes are shown by colour + texture (the "sensitive" cue): what a dynamic pair's
    # two styles change. A shape/layout cue survives stylization, so a model that reads it is invariant
    # across a dynamic pair and reads "dynamic" by the method's definition.
    train, evals, names = synth_datasets(
        split, num_train=num_train, num_eval=num_test, seed=seed, config=validation_synth_config(), trap_cue="sensitive"
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
                              progress=progress)  # fmt: skip


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
) -> GroundTruthRun:
    """Accuracy, shuffle sensitivity and per-layer readings of a trained classifier.

    ``test`` defaults to ``num_test`` StaDyn-Synth test clips of ``split`` (validation scene settings).
    """
    from accelerate.state import AcceleratorState

    from hf_stadyn.probing.engine import probe
    from hf_stadyn.training.classification import evaluate_classifier, synth_datasets

    if test is None:
        _, evals, _ = synth_datasets(split, num_train=1, num_eval=num_test, seed=seed,
                                     config=validation_synth_config(), trap_cue="sensitive")  # fmt: skip
        test = evals["test"]
    acc = evaluate_classifier(model, test, seed=seed)["accuracy"]
    shuf = evaluate_classifier(model, test, seed=seed, shuffle_frames=True)["accuracy"]
    if pairs is None:
        pairs = probe_clip_pairs(num_pairs, seed)
    AcceleratorState._reset_state(reset_partial_state=True)
    result = probe(model, pairs, num_pairs=min(num_pairs, len(pairs)), batch_size=64, cpu=True, progress=progress)
    blocks = [name for name in result.layers if name.startswith("block_")]
    return GroundTruthRun(
        arch=arch, split=split, seed=seed, accuracy=acc, shuffled_accuracy=shuf,
        shuffle_drop=(1.0 - shuf / acc) if acc > 0 else float("nan"),
        layers=result.layers, last_layer=blocks[-1], model_dir=model_dir,
    )  # fmt: skip


def reference_reading(arch: str, pairs: Any, num_pairs: int, seed: int = 0) -> dict[str, LayerBias]:
    """The same tiny architecture at initialisation, probed on ``pairs``."""
    from accelerate.state import AcceleratorState

    from hf_stadyn import models
    from hf_stadyn.probing.engine import probe

    torch.manual_seed(seed)
    if arch == "videomae":
        model = models.StadynVideoMAEForVideoClassification(models.tiny_videomae_config(num_labels=4))
    else:
        model = models.StadynTimesformerForVideoClassification(models.tiny_timesformer_config(num_labels=4))
    AcceleratorState._reset_state(reset_partial_state=True)
    return probe(model.eval(), pairs, num_pairs=min(num_pairs, len(pairs)), batch_size=64, cpu=True,
                 progress=False).layers  # fmt: skip
