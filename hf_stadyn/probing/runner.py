"""The probe runner: pairs -> one forward per batch -> pooled features -> streaming estimator.

``probe`` places the model and data with accelerate, shards the pairs over processes by pair index
(pair ``i`` goes to rank ``i % world_size``), feeds both members of each pair in the same forward
batch, checkpoints the estimator state periodically and resumes after an interruption with a result
identical to an uninterrupted run (pairs are assigned to jackknife chunks by their global index, so
neither the process count nor an interruption changes any number).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hf_stadyn._io import atomic_path
from hf_stadyn.metric import LayerBias, StaticDynamicEstimator

__all__ = ["ProbeResult", "probe"]

logger = logging.getLogger(__name__)

_STATE_FILE = "probe_state_rank{rank}.pt"


@dataclass
class ProbeResult:
    """What :func:`probe` returns.

    Attributes:
        layers: per-layer estimates, in probing order.
        estimator: the (synchronised) estimator, e.g. to merge with another run.
        num_pairs: pairs used in total.
        settings: the runner settings (for reports).
    """

    layers: dict[str, LayerBias]
    estimator: StaticDynamicEstimator
    num_pairs: int
    settings: dict[str, Any] = field(default_factory=dict)


def _default_forward(model: torch.nn.Module) -> Callable[[torch.Tensor], Mapping[str, torch.Tensor]]:
    """For models with the probing mixin: uint8 clips -> {layer: (B, C)} in one forward."""

    def run(clips: torch.Tensor, layers: Sequence[str] | None) -> Mapping[str, torch.Tensor]:
        pv = model.prepare_pixel_values(clips, device=_device_of(model))
        return model.pooled_features(pv, layers=layers)

    return run


def _device_of(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _collate(items: list[Mapping[str, Any]]) -> dict[str, Any]:
    def as_tensor(x: Any) -> torch.Tensor:
        return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))

    return {
        "clip_a": torch.stack([as_tensor(it["clip_a"]) for it in items]),
        "clip_b": torch.stack([as_tensor(it["clip_b"]) for it in items]),
        "factor": [int(it["factor"]) for it in items],
        "index": [int(it["index"]) for it in items],
    }


def probe(
    model: torch.nn.Module,
    pairs: Any,
    layers: Sequence[str] | Mapping[str, Any] | None = None,
    *,
    num_pairs: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    threshold: float = 0.5,
    num_chunks: int = 10,
    forward_fn: Callable[[torch.Tensor], Any] | None = None,
    accelerator: Any = None,
    mixed_precision: str | None = None,
    cpu: bool | None = None,
    num_workers: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 20,
    resume: bool = False,
    progress: bool = True,
) -> ProbeResult:
    """Estimate the static/dynamic bias of every probed layer of ``model`` on ``pairs``.

    Args:
        model: a model with :class:`~hf_stadyn.probing.BiasProbingMixin` (our VideoMAE/TimeSformer/
            AVOS classes), or any ``torch.nn.Module`` together with ``layers`` as a mapping
            ``{module_name: layout}`` and ``forward_fn`` (uint8 clips ``(B, T, H, W, 3)`` -> whatever
            the model's forward needs, called as ``model(forward_fn(clips))``).
        pairs: a map-style dataset of pairs (e.g. :class:`hf_stadyn.pairs.PairDataset`) whose items
            hold ``clip_a``, ``clip_b`` (uint8 ``(T, H, W, 3)``), ``factor`` (0 dynamic, 1 static)
            and ``index``; or videos (a folder or a list of paths), turned into a ``PairDataset``
            with the model's frame count and input size and ``seed``.
        layers: names of the layers to probe (default: all the mixin offers) or, for any module, a
            mapping of module names to layouts.
        num_pairs: how many pairs (the first ``num_pairs`` indices of ``pairs``; default all).
        batch_size: pairs per forward (the forward batch holds ``2 * batch_size`` clips).
        seed: seed of the pairs when ``pairs`` are videos.
        threshold, num_chunks: estimator settings (channel categories, jackknife chunks).
        accelerator: an ``accelerate.Accelerator``; default one is made (``mixed_precision``,
            ``cpu``). Launch with ``accelerate launch`` / ``torchrun`` to use several processes.
        mixed_precision: "no", "bf16" or "fp16" autocast (GPU; bf16 also works on CPU).
        checkpoint_dir: where to save the estimator state every ``checkpoint_every`` batches;
            with ``resume=True`` a saved state there is loaded and finished pairs are skipped.
        progress: show a tqdm bar on the main process.

    Returns:
        :class:`ProbeResult` with per-layer :class:`~hf_stadyn.metric.LayerBias`.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}.")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (the folder holding the saved probe state).")

    if accelerator is None:
        accelerator = Accelerator(mixed_precision=mixed_precision, cpu=bool(cpu))
    model = model.to(accelerator.device).eval()

    if isinstance(pairs, (str, os.PathLike, list, tuple)):
        from hf_stadyn.pairs import PairDataset

        if not hasattr(model, "probe_input_spec"):
            raise ValueError(
                "pairs given as videos need a model with the probing mixin (to know its frame count and "
                "input size); build a hf_stadyn.pairs.PairDataset yourself for other models."
            )
        spec = model.probe_input_spec()
        pairs = PairDataset(pairs, num_frames=spec["num_frames"], size=spec["image_size"], seed=seed)

    total = len(pairs)
    if num_pairs is None:
        num_pairs = total
    if not (isinstance(num_pairs, (int, np.integer)) and 1 <= num_pairs <= total):
        raise ValueError(f"num_pairs must be an integer in [1, {total}] (the pairs available), got {num_pairs!r}.")

    if forward_fn is None:
        if not hasattr(model, "pooled_features"):
            raise ValueError(
                f"{type(model).__name__} has no probing mixin: pass layers={{module_name: layout}} and "
                "forward_fn (uint8 clips -> model input) to probe any module."
            )
        run_layers = list(layers) if layers is not None else None
        fwd = _default_forward(model)

        def features(clips: torch.Tensor) -> Mapping[str, torch.Tensor]:
            return fwd(clips, run_layers)

        probe_ctx = None
    else:
        from hf_stadyn.probing.hooks import FeatureProbe

        if not isinstance(layers, Mapping) or not layers:
            raise ValueError("probing any module needs layers as a non-empty mapping {module_name: layout}.")
        probe_ctx = FeatureProbe(model, layers)

        def features(clips: torch.Tensor) -> Mapping[str, torch.Tensor]:
            inp = forward_fn(clips)
            if isinstance(inp, Mapping):
                model(**inp)
            else:
                model(inp)
            return probe_ctx.pop()

    rank, world = accelerator.process_index, accelerator.num_processes
    my_indices = list(range(rank, num_pairs, world))
    estimator = StaticDynamicEstimator(threshold=threshold, num_chunks=num_chunks)
    done = 0  # number of my indices already processed
    state_path = Path(checkpoint_dir) / _STATE_FILE.format(rank=rank) if checkpoint_dir is not None else None
    if resume and state_path is not None and state_path.is_file():
        saved = torch.load(state_path, weights_only=False)
        if saved.get("num_pairs") != num_pairs or saved.get("world") != world:
            raise ValueError(
                f"cannot resume from {state_path}: it was saved for num_pairs={saved.get('num_pairs')} on "
                f"{saved.get('world')} process(es), this run has num_pairs={num_pairs} on {world}; use the same "
                "settings or a fresh checkpoint_dir."
            )
        estimator.load_state_dict(saved["estimator"])
        done = int(saved["done"])
        logger.info("resuming from %s: %d of %d pairs on this process already done", state_path, done, len(my_indices))

    subset = torch.utils.data.Subset(pairs, my_indices[done:])
    loader = torch.utils.data.DataLoader(
        subset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_collate
    )

    def save_state() -> None:
        if state_path is None:
            return
        with atomic_path(state_path) as tmp:
            torch.save({"estimator": estimator.state_dict(), "done": done, "num_pairs": num_pairs, "world": world}, tmp)

    bar = tqdm(
        total=len(my_indices),
        initial=done,
        disable=not (progress and accelerator.is_main_process),
        desc="probing pairs",
        unit="pair",
    )
    try:
        if probe_ctx is not None:
            probe_ctx.__enter__()
        with torch.inference_mode(), accelerator.autocast():
            for step, batch in enumerate(loader, start=1):
                b = batch["clip_a"].shape[0]
                clips = torch.cat([batch["clip_a"], batch["clip_b"]], dim=0).to(accelerator.device)
                feats = features(clips)
                for name, z in feats.items():
                    z = z.float()
                    estimator.update(z[:b], z[b:], batch["factor"], layer=name, pair_ids=batch["index"])
                done += b
                bar.update(b)
                if step % checkpoint_every == 0:
                    save_state()
    except BaseException:
        save_state()  # an interrupted run resumes from here
        raise
    finally:
        bar.close()
        if probe_ctx is not None:
            probe_ctx.__exit__(None, None, None)
    save_state()
    estimator.sync(accelerator)
    results = estimator.compute()
    settings = {
        "num_pairs": int(num_pairs),
        "batch_size": batch_size,
        "threshold": threshold,
        "num_chunks": num_chunks,
        "num_processes": world,
        "mixed_precision": str(accelerator.mixed_precision),
    }
    return ProbeResult(layers=results, estimator=estimator, num_pairs=int(num_pairs), settings=settings)
