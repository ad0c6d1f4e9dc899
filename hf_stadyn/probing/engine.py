"""THE probing loop: pairs -> one forward per batch -> pooled features -> streaming estimator.

Every reading in hf-stadyn goes through :func:`probe`: ``stadyn probe``, bias tracking during training
(:func:`hf_stadyn.debias.measure_bias`), two-stream (AVOS) probing and the demo. Models plug in
through the probe-adapter protocol (:mod:`hf_stadyn.probing.adapter`).

The loop shards the pairs over processes by pair index (pair ``i`` goes to rank ``i % world_size``),
feeds both members of each pair in the same forward batch, pools every probed layer with hooks
during that single forward, updates the estimator, checkpoints its state periodically and resumes
after an interruption with a result identical to an uninterrupted run (pairs go to jackknife chunks
by their source video, ``video_index``, or by their global index for pair sets without videos, so
neither the process count nor an interruption changes any number; docs/method.md §5).

Every run records a pair-set fingerprint (:func:`pair_fingerprint`): two readings with the same
fingerprint used the same pairs, hence the same chunks, and can be compared paired
(:func:`hf_stadyn.metric.paired_difference`).
"""

from __future__ import annotations

import contextlib
import hashlib
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

from .adapter import adapter_for, select_layer_specs
from .hooks import extract_features

__all__ = ["ProbeResult", "collate_pairs", "pair_fingerprint", "probe"]

logger = logging.getLogger(__name__)

_STATE_FILE = "probe_state_rank{rank}.pt"


@dataclass
class ProbeResult:
    """What :func:`probe` returns.

    Attributes:
        layers: per-layer estimates, in probing order.
        estimator: the (synchronised) estimator, e.g. to merge with another run.
        num_pairs: pairs used in total.
        settings: the engine settings (for reports), among them ``chunking`` ("video": jackknife
            chunks by source video; "pair": by pair index, for pairs without ``video_index``),
            ``num_videos``, ``interval_notes`` (warnings about too few videos for the chunks) and
            ``pair_fingerprint`` (:func:`pair_fingerprint`).
    """

    layers: dict[str, LayerBias]
    estimator: StaticDynamicEstimator
    num_pairs: int
    settings: dict[str, Any] = field(default_factory=dict)


def collate_pairs(items: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate pair items: arrays and tensors are stacked, ``factor`` / ``index`` become int lists, the
    rest (style names, video names, ...) lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if key in ("factor", "index", "video_index"):
            out[key] = [int(v) for v in values]
        elif isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], np.ndarray):
            out[key] = torch.from_numpy(np.stack(values))
        else:
            out[key] = values
    return out


#: Which keys of a pair item hold member a and member b (clip pairs; two-stream pairs).
_MEMBER_KEYS = ((("clip_a",), ("clip_b",)), (("rgb_a", "flow_a"), ("rgb_b", "flow_b")))


def _digest(values: list[Any]) -> str:
    """sha256 (hex) over the bytes of tensors / arrays (or lists of them, for multi-pathway clips), in order."""
    h = hashlib.sha256()
    stack = list(values)
    while stack:
        v = stack.pop(0)
        if isinstance(v, (list, tuple)):
            stack[:0] = list(v)
            continue
        arr = v.detach().cpu().contiguous().numpy() if isinstance(v, torch.Tensor) else np.ascontiguousarray(v)
        h.update(arr.tobytes())
    return h.hexdigest()


def _pair_records(batch: Mapping[str, Any], ids: Sequence[int], groups: Sequence[int]) -> list[tuple]:
    """``(index, factor, video_index, sha256(member a), sha256(member b))`` of each pair of a collated batch."""
    keys = next((m for m in _MEMBER_KEYS if all(k in batch for k in m[0] + m[1])), None)
    out = []
    for k, (i, f, g) in enumerate(zip(ids, batch["factor"], groups)):
        if keys is None:
            ha = hb = ""
        else:
            ha = _digest([batch[key][k] for key in keys[0]])
            hb = _digest([batch[key][k] for key in keys[1]])
        out.append((int(i), int(f), int(g), ha, hb))
    return out


def pair_fingerprint(records: Sequence[tuple]) -> str:
    """Hex sha256 of a pair set: over ``(index, factor, video_index, sha256 a, sha256 b)`` in index order.

    The same for any batch size, worker count and process count (records are sorted by index first).
    """
    h = hashlib.sha256()
    for rec in sorted(records, key=lambda r: r[0]):
        i, f, g, ha, hb = rec
        h.update(f"{int(i)},{int(f)},{int(g)},{ha},{hb};".encode())
    return h.hexdigest()


def _is_video_source(pairs: Any) -> bool:
    return isinstance(pairs, (str, os.PathLike, list, tuple))


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
    place: bool = True,
    num_workers: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 20,
    resume: bool = False,
    progress: bool = True,
    desc: str = "probing pairs",
) -> ProbeResult:
    """Estimate the static/dynamic bias of every probed layer of ``model`` on ``pairs``.

    Args:
        model: a model implementing the probe-adapter protocol (our VideoMAE / TimeSformer / AVOS
            classes: :class:`~hf_stadyn.probing.BiasProbingMixin`,
            :class:`~hf_stadyn.probing.TwoStreamProbingMixin`), or any ``torch.nn.Module`` together
            with ``layers`` as a mapping ``{module_name: layout}`` and ``forward_fn``.
        pairs: a map-style dataset of pairs whose items hold both members (clip pairs: ``clip_a``,
            ``clip_b`` uint8 ``(T, H, W, 3)``; two-stream pairs: ``rgb_a``, ``flow_a``, ``rgb_b``,
            ``flow_b`` uint8 ``(H, W, 3)``), ``factor`` (0 dynamic, 1 static) and ``index``; or videos
            (a folder or a list of paths), turned into pairs by the model's ``pairs_from_videos`` with
            ``seed`` (a :class:`~hf_stadyn.pairs.PairDataset` at the model's frame count and size for
            clip models, a :class:`~hf_stadyn.pairs.TwoStreamPairDataset` for two-stream models).
        layers: names of the layers to probe (default: all the model offers) or a mapping of module
            names to layouts.
        num_pairs: how many pairs (the first ``num_pairs`` indices of ``pairs``; default all).
        batch_size: pairs per forward (the forward batch holds ``2 * batch_size`` inputs).
        seed: seed of the pairs when ``pairs`` are videos.
        threshold, num_chunks: estimator settings (channel categories, jackknife chunks).
        forward_fn: for any module: uint8 clips ``(2B, T, H, W, 3)`` -> the model's input.
        accelerator: an ``accelerate.Accelerator``. With ``place=True`` (default) one is made when
            none is given (``mixed_precision``, ``cpu``), the model is moved to its device and the
            forward runs under its autocast; launch with ``accelerate launch`` / ``torchrun`` to use
            several processes.
        place: ``False`` leaves the model where it is and runs in full precision (bias tracking during
            training); a given ``accelerator`` then only shards the pairs and sums the statistics.
        mixed_precision: "no", "bf16" or "fp16" autocast (GPU; bf16 also works on CPU).
        num_workers: DataLoader workers making pairs.
        checkpoint_dir: where to save the estimator state every ``checkpoint_every`` batches; with
            ``resume=True`` a saved state there is loaded and finished pairs are skipped.
        progress: show a tqdm bar (``desc``) on the main process.

    Returns:
        :class:`ProbeResult` with per-layer :class:`~hf_stadyn.metric.LayerBias`.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}.")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (the folder holding the saved probe state).")

    adapter = adapter_for(model, layers, forward_fn)
    specs = select_layer_specs(model, adapter, layers)

    if place:
        if accelerator is None:
            from accelerate import Accelerator

            accelerator = Accelerator(mixed_precision=mixed_precision, cpu=bool(cpu))
        model = model.to(accelerator.device).eval()
        device: torch.device | None = accelerator.device
        autocast: Callable[[], Any] = accelerator.autocast
    else:
        device = None
        autocast = contextlib.nullcontext

    if _is_video_source(pairs):
        make = getattr(adapter, "pairs_from_videos", None)
        if not callable(make):
            raise ValueError(
                f"pairs given as videos need a model that knows its input (pairs_from_videos); build a pair dataset "
                f"(hf_stadyn.pairs.PairDataset) for {type(model).__name__} yourself."
            )
        pairs = make(pairs, seed=seed)

    total = len(pairs)
    if num_pairs is None:
        num_pairs = total
    if not (isinstance(num_pairs, (int, np.integer)) and 1 <= num_pairs <= total):
        raise ValueError(f"num_pairs must be an integer in [1, {total}] (the pairs available), got {num_pairs!r}.")

    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    my_indices = list(range(rank, num_pairs, world))
    # the engine syncs explicitly below (world > 1); with world == 1 every process has read all pairs
    estimator = StaticDynamicEstimator(threshold=threshold, num_chunks=num_chunks, sync_on_compute=False)
    done = 0  # number of my indices already processed
    records: list[tuple] = []  # fingerprint records of my processed pairs
    chunking: str | None = None  # "video" when the pairs carry video_index, else "pair"
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
        records = [tuple(r) for r in saved.get("records", [])]
        chunking = saved.get("chunking")
        logger.info("resuming from %s: %d of %d pairs on this process already done", state_path, done, len(my_indices))

    subset = torch.utils.data.Subset(pairs, my_indices[done:])
    loader = torch.utils.data.DataLoader(
        subset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_pairs
    )

    def save_state() -> None:
        if state_path is None:
            return
        with atomic_path(state_path) as tmp:
            torch.save(
                {
                    "estimator": estimator.state_dict(), "done": done, "num_pairs": num_pairs, "world": world,
                    "records": records, "chunking": chunking,
                },
                tmp,
            )  # fmt: skip

    main = accelerator.is_main_process if accelerator is not None else True
    bar = tqdm(total=len(my_indices), initial=done, disable=not (progress and main), desc=desc, unit="pair")
    position = done
    try:
        with torch.inference_mode(), autocast():
            for step, batch in enumerate(loader, start=1):
                b = len(batch["factor"])
                ids = batch.get("index") or [my_indices[position + k] for k in range(b)]
                videos = batch.get("video_index")
                mode = "video" if videos is not None else "pair"
                if chunking is not None and mode != chunking:
                    raise ValueError(
                        "some pair items carry video_index and others do not; give every item its source video's "
                        "index (or none)."
                    )
                chunking = mode
                groups = np.asarray(videos, dtype=np.int64) if videos is not None else None
                records.extend(_pair_records(batch, ids, videos if videos is not None else ids))
                feats = extract_features(model, adapter.probe_inputs(batch, device), specs)
                for name, z in feats.items():
                    z = z.float()
                    estimator.update(
                        z[:b], z[b:], batch["factor"], layer=name, pair_ids=np.asarray(ids, dtype=np.int64),
                        groups=groups,
                    )  # fmt: skip
                done += b
                position += b
                bar.update(b)
                if step % checkpoint_every == 0:
                    save_state()
    except BaseException:
        save_state()  # an interrupted run resumes from here
        raise
    finally:
        bar.close()
    save_state()
    if world > 1:
        from hf_stadyn.metric.distributed import all_gather_object

        estimator.sync(accelerator)
        gathered = all_gather_object((chunking, records), accelerator)
        modes = {m for m, _ in gathered if m is not None}
        if len(modes) > 1:
            raise ValueError("some processes' pairs carry video_index and others' do not; give it on every item.")
        chunking = modes.pop() if modes else chunking
        records = [r for _, recs in gathered for r in recs]
    results = estimator.compute()
    info = estimator.chunking()
    num_videos = max((v["num_videos"] or 0 for v in info.values()), default=0) if chunking == "video" else None
    notes = estimator.chunking_notes()
    if chunking == "pair":
        msg = (
            "pair items carry no video_index: jackknife chunks go by pair index, right only for independent pairs "
            "(pairs that reuse a clip give intervals too narrow; docs/method.md §5)"
        )
        logger.info(msg)
        notes = [msg, *notes]
    settings = {
        "num_pairs": int(num_pairs),
        "batch_size": batch_size,
        "threshold": threshold,
        "num_chunks": num_chunks,
        "num_processes": world,
        "mixed_precision": str(accelerator.mixed_precision) if (place and accelerator is not None) else "no",
        "chunking": chunking or "pair",
        "num_videos": num_videos,
        "interval_notes": notes,
        "pair_fingerprint": pair_fingerprint(records),
    }
    return ProbeResult(layers=results, estimator=estimator, num_pairs=int(num_pairs), settings=settings)
