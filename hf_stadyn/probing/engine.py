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

Resume state (docs/method.md §5): each process saves its estimator state (safetensors + JSON, never
pickle; :func:`hf_stadyn.metric.state.save_probe_state`) every ``save_every_pairs`` pairs, after the
current batch on SIGTERM, and on any interruption or error once probing began; on resume the saved
identity (pairs, :func:`model_fingerprint`, number-relevant settings, the caller's ``run_identity``)
must match, else ValueError names every difference.

(Over 500 lines on purpose: the one loop, its resume identity and its signal handling live together,
so the rules that keep a resumed run identical sit next to the loop they protect.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hf_stadyn.metric import STATE_VERSION, LayerBias, StaticDynamicEstimator
from hf_stadyn.metric.state import load_probe_state, save_probe_state

from .adapter import adapter_for, select_layer_specs
from .hooks import extract_features

__all__ = ["ProbeResult", "collate_pairs", "model_fingerprint", "pair_fingerprint", "probe"]

logger = logging.getLogger(__name__)

#: Models whose parameters and buffers hold at most this many bytes are hashed in full (model_fingerprint).
_FULL_HASH_BYTES = 512 * 2**20
_SAMPLE_ELEMENTS = 1 << 16  # per tensor, above _FULL_HASH_BYTES
#: Keys of ``ProbeResult.settings``: only what changes the numbers (no paths, progress, resume or save settings).
SETTINGS_KEYS = (
    "num_pairs", "threshold", "num_chunks", "num_processes", "mixed_precision", "layers", "chunking", "num_videos",
    "interval_notes", "pair_fingerprint", "model_fingerprint",
)  # fmt: skip


@dataclass
class ProbeResult:
    """What :func:`probe` returns.

    Attributes:
        layers: per-layer estimates, in probing order.
        estimator: the (synchronised) estimator, e.g. to merge with another run.
        num_pairs: pairs used in total.
        settings: what changes the numbers, and nothing else (no paths, batch size, workers, progress,
            resume or save settings, so a report written from it is the same bytes for any output
            folder and after a resume); the keys :data:`SETTINGS_KEYS`: ``num_pairs``, ``threshold``,
            ``num_chunks``, ``num_processes``, ``mixed_precision``, ``layers`` (probed, in order),
            ``chunking`` ("video": jackknife chunks by source video; "pair": by pair index, for pairs
            without ``video_index``), ``num_videos``, ``interval_notes`` (warnings about too few videos
            for the chunks), ``pair_fingerprint`` (:func:`pair_fingerprint`) and ``model_fingerprint``
            (:func:`model_fingerprint`, its ``sha256``).
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


def _tensor_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of a tensor, any dtype (bf16 too), on the CPU."""
    x = t.detach().reshape(-1).cpu()
    if not x.numel():
        return b""
    if x.stride() != (1,):  # broadcast (stride 0) or strided: a fresh dense copy
        x = torch.empty(x.shape, dtype=x.dtype).copy_(x)
    return x.view(torch.uint8).numpy().tobytes()


def model_fingerprint(model: torch.nn.Module) -> dict[str, Any]:
    """The identity of what a model computes: its class, its config and its weights.

    What is hashed (sha256): the class's module and name; the config's JSON (``model.config.to_dict()``,
    keys sorted, without ``_name_or_path`` and ``transformers_version``, which name where and with what it
    was loaded, not what it computes), or None for a module without a config; and every parameter and
    buffer (``named_parameters()`` then ``named_buffers()``, in module order): its name, dtype and shape
    and, when all of them together hold at most 512 MiB, every byte. Above that only a strided sample of
    at most 65,536 elements per tensor is hashed (one pass over a large model would cost seconds;
    fine-tuning changes most elements, so a changed model still differs), said by ``"weights": "sampled"``.

    Returns:
        ``{"class", "config_sha256", "weights_sha256", "weights": "full" | "sampled", "sha256"}``;
        ``sha256`` covers the other four.
    """
    cls = f"{type(model).__module__}.{type(model).__qualname__}"
    config = getattr(model, "config", None)
    config_sha = None
    if config is not None and callable(getattr(config, "to_dict", None)):
        doc = {k: v for k, v in config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
        config_sha = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    tensors = [*model.named_parameters(), *model.named_buffers()]
    total = sum(t.numel() * t.element_size() for _, t in tensors)
    full = total <= _FULL_HASH_BYTES
    h = hashlib.sha256()
    with torch.no_grad():
        for name, t in tensors:
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)};".encode())
            if t.device.type == "meta":
                continue
            if full or t.numel() <= _SAMPLE_ELEMENTS:
                h.update(_tensor_bytes(t))
            else:
                step = -(-t.numel() // _SAMPLE_ELEMENTS)
                h.update(_tensor_bytes(t.detach().reshape(-1)[::step]))
    out = {"class": cls, "config_sha256": config_sha, "weights_sha256": h.hexdigest()}
    out["weights"] = "full" if full else "sampled"
    out["sha256"] = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()
    return out


def _short(value: Any) -> str:
    """A sha256 hex digest as its first 12 digits, anything else as JSON."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return f"{value[:12]}.."
    return json.dumps(value)


def _identity_differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """One phrase per field of the resume identity that differs (both sides as read back from JSON)."""
    out = []
    sm, nm = saved.get("model") or {}, now["model"]
    if sm.get("sha256") != nm["sha256"]:
        parts = [k.replace("_sha256", "") for k in ("class", "config_sha256", "weights_sha256") if sm.get(k) != nm[k]]
        out.append(
            f"model {'/'.join(parts) or 'fingerprint'} differ (saved fingerprint {_short(sm.get('sha256'))} vs "
            f"{_short(nm['sha256'])})"
        )
    for key in ("layers", "threshold", "num_chunks", "num_pairs", "mixed_precision", "num_processes"):
        if saved.get(key) != now[key]:
            out.append(f"{key} {_short(saved.get(key))} vs {_short(now[key])}")
    sr, nr = saved.get("run") or {}, now["run"]
    for key in sorted(set(sr) | set(nr)):
        if sr.get(key) != nr.get(key):
            out.append(f"{key} {json.dumps(sr.get(key))} vs {json.dumps(nr.get(key))}")
    return out


def _pairs_difference(pairs: Any, saved: Sequence[tuple], positions: Sequence[int], my_indices: Sequence[int]) -> str:
    """Regenerate the pairs at a few finished positions and compare their records with the saved ones."""
    if not positions:
        return ""
    ids_at = [my_indices[k] for k in positions]
    batch = collate_pairs([pairs[i] for i in ids_at])
    ids = batch.get("index") or ids_at
    now = _pair_records(batch, ids, batch.get("video_index") or ids)
    before = [saved[k] for k in positions]
    if [tuple(r) for r in before] == now:
        return ""
    return (
        f"seed/pairs differ (saved fingerprint {_short(pair_fingerprint(before))} vs {_short(pair_fingerprint(now))})"
    )


class _Signals:
    """Signal handling while :func:`probe` runs in the main thread with a checkpoint folder.

    SIGTERM sets a flag: the loop ends after the current batch (the state is saved and KeyboardInterrupt
    raised). SIGINT raises KeyboardInterrupt at once, as Python's default does, except inside
    :meth:`whole` (the update of the estimator, pair records and pair count of one batch), where it
    is held until the update is complete, so a saved state never holds part of a batch.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.terminate = False
        self._inside = False
        self._held = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if self.enabled:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
                self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_term)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_int)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_term(self, signum: int, frame: Any) -> None:
        self.terminate = True

    def _on_int(self, signum: int, frame: Any) -> None:
        if self._inside:
            self._held = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def whole(self) -> Any:
        self._inside = True
        try:
            yield
        finally:
            self._inside = False
        if self._held:
            self._held = False
            raise KeyboardInterrupt


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
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "probing pairs",
    save_every_pairs: int = 200,
    run_identity: Mapping[str, Any] | None = None,
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
        batch_size: pairs per forward (the forward batch holds ``2 * batch_size`` inputs). It does not
            change the numbers (pairs are added one by one in index order; the test suite checks that
            the tiny models give the same bits for any batch size on the CPU), so a run may resume
            with another one.
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
        num_workers: DataLoader workers making pairs (any count gives the same numbers).
        checkpoint_dir: where each process saves its resume state (``probe_state_rank{r}.json`` and a
            safetensors file, no pickle): every ``save_every_pairs`` pairs, after the current batch on
            SIGTERM (then KeyboardInterrupt is raised), and on KeyboardInterrupt or any error once
            probing began. The engine never deletes it. With ``resume=True`` a saved state there is
            loaded and its pairs are skipped; ValueError when the saved run differs in anything that
            changes the numbers (the pairs, the model, layers, threshold, num_pairs, num_chunks,
            mixed precision, process count or ``run_identity``), or when the state is of an older
            hf_stadyn (a pickle ``.pt`` file, never loaded).
        save_every_pairs: pairs per process between two saves of the state (default 200).
        checkpoint_every: deprecated (batches between saves); use ``save_every_pairs``
            (``checkpoint_every * batch_size`` pairs).
        run_identity: what else the caller knows changes the numbers (JSON values, e.g. the model id,
            its revision, window settings); recorded in the state and compared on resume.
        progress: show a tqdm bar (``desc``) on the main process.

    Returns:
        :class:`ProbeResult` with per-layer :class:`~hf_stadyn.metric.LayerBias`.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if checkpoint_every is not None:
        warnings.warn(
            "probe(checkpoint_every=...) (batches between saves) is deprecated; pass save_every_pairs=... "
            "(pairs per process between saves of the resume state).",
            DeprecationWarning,
            stacklevel=2,
        )
        if not (isinstance(checkpoint_every, int) and checkpoint_every >= 1):
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every!r}.")
        save_every_pairs = checkpoint_every * batch_size
    if not (isinstance(save_every_pairs, (int, np.integer)) and save_every_pairs >= 1):
        raise ValueError(f"save_every_pairs must be an integer >= 1, got {save_every_pairs!r}.")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (the folder holding the saved probe state).")
    try:
        run = json.loads(json.dumps(dict(run_identity or {}), sort_keys=True))
    except (TypeError, ValueError):
        raise ValueError(
            f"run_identity must be a mapping of JSON values (str, numbers, lists, dicts), got {run_identity!r}."
        ) from None

    adapter = adapter_for(model, layers, forward_fn)
    specs = select_layer_specs(model, adapter, layers)
    model_fp = model_fingerprint(model)

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
    mixed = str(accelerator.mixed_precision) if (place and accelerator is not None) else "no"
    identity = {
        "model": model_fp, "layers": list(specs), "threshold": float(threshold), "num_chunks": int(num_chunks),
        "num_pairs": int(num_pairs), "mixed_precision": mixed, "num_processes": int(world), "run": run,
    }  # fmt: skip
    identity = json.loads(json.dumps(identity))  # compared with what a saved state reads back
    my_indices = range(rank, num_pairs, world)
    # the engine syncs explicitly below (world > 1); with world == 1 every process has read all pairs
    estimator = StaticDynamicEstimator(threshold=threshold, num_chunks=num_chunks, sync_on_compute=False)
    done = 0  # number of my indices already processed
    records: list[tuple] = []  # fingerprint records of my processed pairs, in processing order
    chunking: str | None = None  # "video" when the pairs carry video_index, else "pair"
    saved = load_probe_state(checkpoint_dir, rank) if (resume and checkpoint_dir is not None) else None
    if saved is not None:
        state, saved_records, doc = saved
        done = int(doc.get("done", -1))
        if not (0 <= done <= len(my_indices)) or len(saved_records) != done:
            raise ValueError(
                f"cannot resume from {checkpoint_dir}: its probe state is inconsistent ({len(saved_records)} pair "
                f"records for {done} pairs done); rerun without resume (stadyn probe --overwrite) to start fresh."
            )
        positions = sorted({0, done // 2, done - 1}) if done else []
        diffs = [_pairs_difference(pairs, saved_records, positions, my_indices)]
        diffs = [d for d in diffs if d] + _identity_differences(doc.get("identity") or {}, identity)
        if diffs:
            raise ValueError(
                f"cannot resume from {checkpoint_dir}: {', '.join(diffs)}; rerun with the original settings or start "
                "fresh (resume=False; stadyn probe --overwrite)."
            )
        estimator.load_state_dict(state)
        records = list(saved_records)
        chunking = doc.get("chunking")
        logger.info(
            "resuming from %s: %d of %d pairs on this process already done", checkpoint_dir, done, len(my_indices)
        )

    subset = torch.utils.data.Subset(pairs, my_indices[done:])
    loader = torch.utils.data.DataLoader(
        subset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_pairs
    )

    def save_state() -> None:
        if checkpoint_dir is None:
            return
        meta = {"done": done, "chunking": chunking, "estimator_state_version": STATE_VERSION, "identity": identity}
        save_probe_state(checkpoint_dir, rank, estimator.state_dict(), records, meta)

    main = accelerator.is_main_process if accelerator is not None else True
    bar = tqdm(total=len(my_indices), initial=done, disable=not (progress and main), desc=desc, unit="pair")
    last_save = done
    signals = _Signals(enabled=checkpoint_dir is not None)
    try:
        with signals, torch.inference_mode(), autocast():
            for batch in loader:
                b = len(batch["factor"])
                ids = batch.get("index") or [my_indices[done + k] for k in range(b)]
                videos = batch.get("video_index")
                mode = "video" if videos is not None else "pair"
                if chunking is not None and mode != chunking:
                    raise ValueError(
                        "some pair items carry video_index and others do not; give every item its source video's "
                        "index (or none)."
                    )
                new_records = _pair_records(batch, ids, videos if videos is not None else ids)
                feats = extract_features(model, adapter.probe_inputs(batch, device), specs)
                features = {name: (z.float()[:b], z.float()[b:]) for name, z in feats.items()}
                with signals.whole():  # all layers, records and the count, or none of them
                    estimator.update_layers(
                        features, batch["factor"], pair_ids=np.asarray(ids, dtype=np.int64),
                        groups=np.asarray(videos, dtype=np.int64) if videos is not None else None,
                    )  # fmt: skip
                    chunking = mode
                    records.extend(new_records)
                    done += b
                bar.update(b)
                if signals.terminate:
                    raise KeyboardInterrupt(f"SIGTERM: probing stopped after {done} pairs, state saved")
                if done - last_save >= save_every_pairs:
                    save_state()
                    last_save = done
    except BaseException as err:
        try:
            save_state()  # an interrupted or failed run resumes from here
        except Exception:
            logger.exception("could not save the probe state to %s after %s", checkpoint_dir, type(err).__name__)
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
        "threshold": threshold,
        "num_chunks": num_chunks,
        "num_processes": world,
        "mixed_precision": mixed,
        "layers": list(specs),
        "chunking": chunking or "pair",
        "num_videos": num_videos,
        "interval_notes": notes,
        "pair_fingerprint": pair_fingerprint(records),
        "model_fingerprint": model_fp["sha256"],
    }
    return ProbeResult(layers=results, estimator=estimator, num_pairs=int(num_pairs), settings=settings)
