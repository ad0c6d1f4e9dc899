"""Training, evaluation and bias probing of the two-stream AVOS segmenters (docs/method.md §7).

Data (per-frame RGB frame, flow image and mask samples) live in :mod:`hf_stadyn.training.avos_data`.

* :func:`train_avos`: AdamW + cosine schedule with accelerate, seeded shuffling.
* :func:`evaluate_avos`: J, F, mIoU, success curve and its AUC (:mod:`hf_stadyn.training.seg_metrics`).
* :func:`probe_avos`: two-stream pairs through the one probing engine (every stream stage and fusion
  layer).
* :func:`train_avos_on_synth`: the whole ``stadyn train --task avos`` recipe (:class:`AVOSSynthRecipe`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hf_stadyn.probing.two_stream import two_stream_inputs

from .avos_data import AVOSFrames, avos_frames_from_video, build_avos_frames
from .seg_metrics import SegmentationMetrics, SegmentationScores

__all__ = [
    "AVOSFrames",
    "AVOSSynthRecipe",
    "AVOSTrainResult",
    "AVOSTrainingArguments",
    "avos_frames_from_video",
    "avos_inputs",
    "build_avos_frames",
    "build_avos_model",
    "evaluate_avos",
    "predict_avos",
    "probe_avos",
    "train_avos",
    "train_avos_on_synth",
]

logger = logging.getLogger(__name__)


def avos_inputs(
    rgb: torch.Tensor, flow: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(B, H, W, 3)`` RGB and flow images -> normalised float ``(B, 3, H, W)`` model inputs.

    The same function as :func:`hf_stadyn.probing.two_stream_inputs` (which the probe adapter uses).
    """
    return two_stream_inputs(rgb, flow, mean, std)


# -------------------------------------------------------------------------------------- training
def build_avos_model(config: Any, seed: int = 0) -> torch.nn.Module:
    """An :class:`~hf_stadyn.models.modeling_avos.AVOSModel` whose random init depends only on ``seed``.

    The global torch RNG is left as it was.
    """
    from hf_stadyn.models.modeling_avos import AVOSModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return AVOSModel(config)


@dataclass
class AVOSTrainingArguments:
    """Settings of :func:`train_avos`.

    Attributes:
        epochs: passes over the training frames.
        batch_size: frames per step.
        learning_rate, weight_decay: AdamW settings; the rate follows a cosine schedule with
            ``warmup_ratio`` of linear warm-up.
        max_grad_norm: gradient clipping (0 disables).
        seed: seed of the shuffling order.
        progress: show a tqdm bar.
    """

    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    seed: int = 0
    progress: bool = False

    def validate(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}.")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}.")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}.")
        if self.weight_decay < 0 or not (0 <= self.warmup_ratio < 1) or self.max_grad_norm < 0:
            raise ValueError("weight_decay and max_grad_norm must be >= 0 and warmup_ratio in [0, 1).")


@dataclass
class AVOSTrainResult:
    """What :func:`train_avos` returns: mean loss per epoch, per-step losses, steps and seconds."""

    epoch_losses: list[float]
    step_losses: list[float]
    num_steps: int
    seconds: float
    args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch_losses": self.epoch_losses,
            "num_steps": self.num_steps,
            "seconds": self.seconds,
            "args": self.args,
        }


def _mean_std(model: torch.nn.Module) -> tuple[list[float], list[float]]:
    cfg = getattr(model, "config", None)
    return list(getattr(cfg, "image_mean", (0.485, 0.456, 0.406))), list(
        getattr(cfg, "image_std", (0.229, 0.224, 0.225))
    )


def train_avos(
    model: torch.nn.Module,
    data: AVOSFrames,
    args: AVOSTrainingArguments | None = None,
    *,
    accelerator: Any = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> AVOSTrainResult:
    """Train an AVOS model on per-frame samples (BCE + soft IoU/Dice, the model's own loss).

    Args:
        model: an :class:`~hf_stadyn.models.modeling_avos.AVOSModel` (trained in place).
        data: training frames.
        args: :class:`AVOSTrainingArguments`.
        accelerator: an ``accelerate.Accelerator``; default: a new one (CPU or the visible GPU).
        checkpoint_dir: write ``last.pt`` there after every epoch (model, optimizer, scheduler, the
            shuffling generator, torch RNG, losses; written to a temporary name, then renamed).
        resume: continue from ``checkpoint_dir/last.pt`` when it exists: the same weights and losses
            as an uninterrupted run (single process).

    Returns:
        :class:`AVOSTrainResult`.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    args = args or AVOSTrainingArguments()
    args.validate()
    if not isinstance(data, AVOSFrames) or len(data) == 0:
        raise ValueError("data must be a non-empty AVOSFrames (see build_avos_frames).")
    accelerator = accelerator or Accelerator()
    mean, std = _mean_std(model)
    gen = torch.Generator().manual_seed(int(args.seed))
    index = torch.utils.data.TensorDataset(torch.arange(len(data)))
    loader = torch.utils.data.DataLoader(
        index, batch_size=args.batch_size, shuffle=True, generator=gen, drop_last=len(data) > args.batch_size
    )
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.learning_rate,
    )
    total = args.epochs * len(loader)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(args.warmup_ratio * total), total)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    model.train()
    dev = accelerator.device
    step_losses: list[float] = []
    epoch_losses: list[float] = []
    t0 = time.perf_counter()
    start_epoch = 0
    ckpt = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    if resume and ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        accelerator.unwrap_model(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, epoch_losses, step_losses = (
            int(state["epoch"]),
            list(state["epoch_losses"]),
            list(state["step_losses"]),
        )
        logger.info("AVOS: resumed from %s after epoch %d", ckpt, start_epoch)
    bar = tqdm(
        total=total, initial=start_epoch * len(loader), disable=not (args.progress and accelerator.is_main_process),
        desc="training AVOS", unit="step",
    )  # fmt: skip
    for epoch in range(start_epoch, args.epochs):
        losses = []
        for (idx,) in loader:
            idx = idx.cpu()
            pv, fv = avos_inputs(data.rgb[idx].to(dev), data.flow[idx].to(dev), mean, std)
            labels = data.mask[idx].to(dev).unsqueeze(1).float()
            out = model(pixel_values=pv, flow_values=fv, labels=labels)
            accelerator.backward(out.loss)
            if args.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss = float(out.loss.detach())
            if not math.isfinite(loss):
                raise ValueError(
                    f"the training loss became {loss} at epoch {epoch}; lower learning_rate or check the inputs."
                )
            losses.append(loss)
            step_losses.append(loss)
            bar.update(1)
        epoch_losses.append(float(np.mean(losses)))
        logger.info("AVOS epoch %d/%d: loss %.4f", epoch + 1, args.epochs, epoch_losses[-1])
        if ckpt is not None and accelerator.is_main_process:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({
                "model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "epoch": epoch + 1, "epoch_losses": epoch_losses, "step_losses": step_losses,
            }, tmp)  # fmt: skip
            os.replace(tmp, ckpt)
    bar.close()
    model.eval()
    return AVOSTrainResult(
        epoch_losses=epoch_losses,
        step_losses=step_losses,
        num_steps=len(step_losses),
        seconds=time.perf_counter() - t0,
        args=dataclasses.asdict(args),
    )


# ------------------------------------------------------------------------------------ evaluation
@torch.inference_mode()
def predict_avos(model: torch.nn.Module, data: AVOSFrames, batch_size: int = 64) -> torch.Tensor:
    """Foreground probabilities ``(N, H, W)`` float32 (model in eval mode, restored afterwards)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    mean, std = _mean_std(model)
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = []
        for s in range(0, len(data), batch_size):
            pv, fv = avos_inputs(data.rgb[s : s + batch_size].to(dev), data.flow[s : s + batch_size].to(dev), mean, std)
            out.append(torch.sigmoid(model(pixel_values=pv, flow_values=fv).logits[:, 0].float()).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def evaluate_avos(
    model: torch.nn.Module,
    data: AVOSFrames,
    *,
    batch_size: int = 64,
    threshold: float = 0.5,
    bound_th: float = 0.008,
) -> SegmentationScores:
    """J, F, mIoU, success rates and AUC of ``model`` on ``data`` (predictions binarised at ``threshold``)."""
    probs = predict_avos(model, data, batch_size)
    m = SegmentationMetrics(threshold=threshold, bound_th=bound_th)
    m.update(probs.numpy(), data.mask.numpy(), clip_ids=data.clip_id.tolist())
    return m.compute()


# --------------------------------------------------------------------------------------- probing
def probe_avos(
    model: torch.nn.Module,
    pairs: Any,
    num_pairs: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    *,
    layers: Sequence[str] | None = None,
    threshold: float = 0.5,
    num_chunks: int = 10,
    progress: bool = False,
) -> dict[str, Any]:
    """Static/dynamic estimate of every AVOS stream stage and fusion layer (docs/method.md §1.2, §2, §3).

    Args:
        model: an :class:`~hf_stadyn.models.modeling_avos.AVOSModel`.
        pairs: two-stream pairs: a map-style dataset (e.g. :class:`hf_stadyn.pairs.TwoStreamPairDataset`)
            or sequence of items with the RGB frames and flow images of both members (``frame_a``,
            ``flow_a``, ``frame_b``, ``flow_b``: ``(H, W, 3)`` uint8), ``factor`` and optionally
            ``index``; or an :class:`AVOSFrames` set, from which pairs are made with
            :func:`hf_stadyn.pairs.make_two_stream_pair` (dynamic: two styles of the frame with the
            identical flow image; static: one style with the original and a jittered flow image).
        num_pairs: how many pairs (default: all of a dataset; required for :class:`AVOSFrames`).
        batch_size: pairs per forward (``2 * batch_size`` frames).
        seed: seed of the pairs made from :class:`AVOSFrames` (frame choice, factor, styles, jitter).
        layers: probed layers (default all: ``app_stage{i}``, ``mot_stage{i}``, ``fusion{i}``).
        threshold, num_chunks: estimator settings.

    Returns:
        ``{layer: LayerBias}``.
    """
    from hf_stadyn.probing import probe

    if not callable(getattr(model, "probe_inputs", None)) or not hasattr(model, "taps"):
        raise ValueError(f"{type(model).__name__} is not a two-stream model (no probe taps); use AVOSModel.")
    if isinstance(pairs, AVOSFrames):
        if num_pairs is None:
            raise ValueError("num_pairs is required when pairs are made from AVOSFrames.")
        pairs = _pairs_from_frames(pairs, int(num_pairs), int(seed))
    result = probe(
        model, pairs, layers, num_pairs=num_pairs, batch_size=batch_size, threshold=threshold,
        num_chunks=num_chunks, place=False, progress=progress, desc="probing AVOS pairs",
    )  # fmt: skip
    return result.layers


class _FramePairs:
    """Two-stream pairs made on demand from :class:`AVOSFrames` (item ``i`` depends on ``(seed, i)``)."""

    def __init__(self, frames: AVOSFrames, num_pairs: int, seed: int):
        if num_pairs < 4:
            raise ValueError(f"num_pairs must be >= 4 (at least 2 pairs per factor), got {num_pairs}.")
        self.frames, self.num_pairs, self.seed = frames, num_pairs, seed

    def __len__(self) -> int:
        return self.num_pairs

    def __getitem__(self, i: int) -> dict[str, Any]:
        from hf_stadyn.pairs import make_two_stream_pair

        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(int(i),)))
        j = int(rng.integers(len(self.frames)))
        factor = int(rng.random() < 0.5)  # 0 dynamic, 1 static, 50/50 (docs/method.md §1.1)
        pair = make_two_stream_pair(
            self.frames.rgb[j : j + 1].numpy(), self.frames.flow[j : j + 1].numpy(), 0, factor, rng
        )
        out = dataclasses.asdict(pair)
        out["index"] = int(i)
        out["video_index"] = int(self.frames.clip_id[j])  # the source clip: intervals resample clips, not pairs
        return out


def _pairs_from_frames(frames: AVOSFrames, num_pairs: int, seed: int) -> _FramePairs:
    return _FramePairs(frames, num_pairs, seed)


# ------------------------------------------------------------------------------ the synth recipe
@dataclass
class AVOSSynthRecipe:
    """A complete AVOS training run on StaDyn-Synth (what ``stadyn train --task avos`` runs).

    Attributes:
        fusion, cross_connection: the AVOS variant (see :class:`~hf_stadyn.models.AVOSConfig`).
        hidden_sizes: channels of the tiny ResNet stages (the first is also the stem width).
        size, num_frames: frame side and frames per rendered clip.
        train_clips, test_clips: clips rendered for training and for each test set (normal, camouflage).
        camouflage_fraction: share of the training clips rendered in camouflage mode.
        epochs, batch_size, learning_rate, seed: training settings (see :class:`AVOSTrainingArguments`).
        flow_method: optical-flow method of :func:`hf_stadyn.video.compute_flow`.
    """

    fusion: str = "concat"
    cross_connection: str = "none"
    hidden_sizes: tuple[int, ...] = (8, 16, 24, 32)
    size: int = 64
    num_frames: int = 8
    train_clips: int = 200
    test_clips: int = 40
    camouflage_fraction: float = 0.5
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0
    flow_method: str = "dis"


def train_avos_on_synth(
    recipe: AVOSSynthRecipe, output_dir: str | os.PathLike, *, progress: bool = False, resume: bool = False
) -> dict[str, Any]:
    """Render StaDyn-Synth frames, train an AVOS model, evaluate it and save it to ``output_dir``.

    ``output_dir`` receives the model (``save_pretrained``: config.json, model.safetensors) and
    ``metrics.json`` (training losses, J / F / AUC on normal and camouflage test clips, the scene
    settings); it is written atomically (a temporary sibling folder renamed at the end), so a failure
    leaves nothing half-written. Per-epoch checkpoints go to the sibling ``.<name>.checkpoints/``
    (removed on success); ``resume=True`` continues from there.

    Returns:
        The metrics written to ``metrics.json``.
    """
    from hf_stadyn._io import atomic_write_json, current_umask
    from hf_stadyn.models.configuration_avos import tiny_avos_config
    from hf_stadyn.synth.config import SynthConfig

    out = Path(output_dir)
    synth = SynthConfig(size=recipe.size, num_frames=recipe.num_frames, speed=max(1.0, 3.0 * recipe.size / 64))
    n_camo = int(round(recipe.camouflage_fraction * recipe.train_clips))
    common = dict(synth_config=synth, flow_method=recipe.flow_method)
    parts = []
    if recipe.train_clips - n_camo > 0:
        parts.append(build_avos_frames(recipe.train_clips - n_camo, seed=recipe.seed, progress=progress, **common))
    if n_camo > 0:
        parts.append(build_avos_frames(n_camo, camouflage=True, seed=recipe.seed + 1, progress=progress, **common))
    train = AVOSFrames.concat(parts)
    tests = {
        mode: build_avos_frames(recipe.test_clips, camouflage=mode == "camouflage", seed=recipe.seed, train=False, **common)
        for mode in ("normal", "camouflage")
    }  # fmt: skip
    hs = list(recipe.hidden_sizes)
    config = tiny_avos_config(
        recipe.fusion, recipe.cross_connection, hidden_sizes=tuple(hs), embedding_size=hs[0],
        decoder_hidden_size=max(16, hs[0] * 2),
    )  # fmt: skip
    config.image_size = int(recipe.size)  # the frame side it is trained on: probing makes pairs at this size
    model = build_avos_model(config, seed=recipe.seed)
    targs = AVOSTrainingArguments(
        epochs=recipe.epochs, batch_size=recipe.batch_size, learning_rate=recipe.learning_rate, seed=recipe.seed,
        progress=progress,
    )  # fmt: skip
    ckpt_dir = out.parent / f".{out.name}.checkpoints"
    result = train_avos(model, train, targs, checkpoint_dir=ckpt_dir, resume=resume)
    scores = {mode: evaluate_avos(model, data).to_dict() for mode, data in tests.items()}
    metrics = {
        "task": "avos",
        "fusion": recipe.fusion,
        "cross_connection": recipe.cross_connection,
        "train": {**result.to_dict(), "num_frames": len(train), "camouflage_clips": n_camo},
        "eval": scores,
        "synth": dataclasses.asdict(synth),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        atomic_write_json(tmp / "metrics.json", metrics)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0o700
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return metrics
