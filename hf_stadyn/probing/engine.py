"""THE probing loop: pairs -> one forward per batch and model -> pooled features -> streaming estimators.

Every reading in hf-stadyn goes through :func:`probe`: ``stadyn probe``, bias tracking during training
(:func:`hf_stadyn.debias.measure_bias`), two-stream (AVOS) probing and the demo. Models plug in
through the probe-adapter protocol (:mod:`hf_stadyn.probing.adapter`).

The loop shards the pairs over processes by pair index (pair ``i`` goes to rank ``i % world_size``),
feeds both members of each pair in the same forward batch, pools every probed layer with hooks
during that single forward, updates the estimator, checkpoints its state periodically and resumes
after an interruption with a result identical to an uninterrupted run (pairs go to jackknife chunks
by their source video, ``video_index``, or by their global index for pair sets without videos, so
neither the process count nor an interruption changes any number; docs/method.md §5).

One data pass for several models (:func:`probe_models`; docs/scaling.md "Reference in one pass"): each
batch of pairs is made once and goes through every model (a model and its reference at initialisation,
or models to compare), each with its own estimator, so each result equals a separate run on the same pairs.

Fewer forwards for the same answer (``target_ci``; docs/method.md §5): the run stops at the first of the
stopping rule's fixed looks (:class:`hf_stadyn.metric.stopping.StoppingRule`) where every chosen layer's
sequential interval of the shares is no wider than +-W points; batches are cut at the looks, so a look
sees the same pairs for any batch size, process count or resumption.

After the first batches the loop estimates the run time and pairs/s (``on_estimate``; ``stadyn probe``
prints it with the options that shorten the run).

Every run records a pair-set fingerprint (:func:`pair_fingerprint`): two readings with the same
fingerprint used the same pairs, hence the same chunks, and can be compared paired
(:func:`hf_stadyn.metric.paired_difference`).

Resume state (docs/method.md §5): each process saves its estimator state (safetensors + JSON, never
pickle; :func:`hf_stadyn.metric.state.save_probe_state`) every ``save_every_pairs`` pairs, after the
current batch on SIGTERM, and on any interruption or error once probing began; on resume the saved
identity (pairs, :func:`model_fingerprint`, number-relevant settings, the caller's ``run_identity``)
must match, else ValueError names every difference.

(Over 500 lines on purpose: the one loop, its resume identity, its signal handling, the stopping rule's
looks and the models of one pass live together, so the rules that keep a resumed, sharded or stopped run
identical sit next to the loop they protect.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hf_stadyn.metric import STATE_VERSION, LayerBias, StaticDynamicEstimator
from hf_stadyn.metric.state import load_probe_state, save_probe_state
from hf_stadyn.metric.stopping import StoppingRule

from .adapter import adapter_for, select_layer_specs
from .hooks import extract_features

__all__ = ["ProbeResult", "collate_pairs", "model_fingerprint", "pair_fingerprint", "probe", "probe_models"]

logger = logging.getLogger(__name__)

#: Models whose parameters and buffers hold at most this many bytes are hashed in full (model_fingerprint).
_FULL_HASH_BYTES = 512 * 2**20
_SAMPLE_ELEMENTS = 1 << 16  # per tensor, above _FULL_HASH_BYTES
#: Keys of ``ProbeResult.settings``: only what changes the numbers (no paths, progress, resume or save settings).
SETTINGS_KEYS = (
    "num_pairs", "threshold", "num_chunks", "num_processes", "mixed_precision", "layers", "chunking", "num_videos",
    "interval_notes", "pair_fingerprint", "model_fingerprint", "stopping",
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
            (:func:`model_fingerprint`, its ``sha256``) and ``stopping`` (None, or with ``target_ci``
            the rule, every look's half-widths and why and when the run stopped; ``num_pairs`` is then
            the pairs used; docs/method.md §5).
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
    for key in ("layers", "threshold", "num_chunks", "num_pairs", "mixed_precision", "num_processes", "stopping"):
        if saved.get(key) != now.get(key):
            out.append(f"{key} {_short(saved.get(key))} vs {_short(now.get(key))}")
    sr, nr = saved.get("run") or {}, now["run"]
    for key in sorted(set(sr) | set(nr)):
        if sr.get(key) != nr.get(key):
            out.append(f"{key} {json.dumps(sr.get(key))} vs {json.dumps(nr.get(key))}")
    return out


def _pairs_difference(
    pairs: Any, saved: Sequence[tuple], positions: Sequence[int], my_indices: Sequence[int], device: Any = None
) -> str:
    """Regenerate the pairs at a few finished positions and compare their records with the saved ones."""
    if not positions:
        return ""
    ids_at = [my_indices[k] for k in positions]
    batch = collate_pairs([pairs[i] for i in ids_at])
    render = getattr(pairs, "render_batch", None)
    if callable(render):  # as the loop does: the records hash the rendered members
        batch = render(batch, device)
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


@dataclass
class _Entry:
    """One model of a run: its adapter, probed layers, estimator, resume folder and resume identity."""

    name: str
    model: torch.nn.Module
    adapter: Any
    specs: dict[str, Any]
    fingerprint: dict[str, Any]
    estimator: StaticDynamicEstimator
    checkpoint_dir: Any
    identity: dict[str, Any] = field(default_factory=dict)


def _batches_cut_at(positions: int, cuts: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of ``range(positions)`` of at most ``batch_size`` items that never straddle a position in
    ``cuts`` (the stopping rule's looks, in this process's own positions), so a look sees whole batches."""
    out: list[list[int]] = []
    edges = sorted({c for c in cuts if 0 < c < positions} | {positions})
    start = 0
    for end in edges:
        for s in range(start, end, batch_size):
            out.append(list(range(s, min(s + batch_size, end))))
        start = end
    return out


def _estimate_message(info: Mapping[str, Any]) -> str:
    """One line: expected time and pairs/s, and what shortens the run (docs/scaling.md)."""
    left = float(info["seconds_left"])
    hms = f"{int(left // 3600)} h {int(left % 3600 // 60)} min" if left >= 3600 else f"{left / 60:.1f} min"
    models = " + ".join(info["models"])
    capped = " at most (the stopping rule may end it sooner)" if info.get("stopping") else ""
    return (
        f"expected {hms}{capped} for the {info['pairs_left']} pairs left ({info['pairs_per_s']:.2f} pairs/s, "
        f"{models} in one pass, {info['num_processes']} process(es)); shorter: fewer pairs (--num_pairs), a target "
        "interval (--target_ci W), fewer layers (--layers), DataLoader workers (--dataloader_num_workers), a GPU "
        "with --bf16, more processes (accelerate launch)"
    )


def probe(
    model: torch.nn.Module,
    pairs: Any,
    layers: Sequence[str] | Mapping[str, Any] | None = None,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    desc: str = "probing pairs",
    **kwargs: Any,
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
        checkpoint_dir: where each process saves its resume state (``probe_state_rank{r}.json`` and a
            safetensors file, no pickle): every ``save_every_pairs`` pairs, after the current batch on
            SIGTERM (then KeyboardInterrupt is raised), and on KeyboardInterrupt or any error once
            probing began. The engine never deletes it. With ``resume=True`` a saved state there is
            loaded and its pairs are skipped; ValueError when the saved run differs in anything that
            changes the numbers (the pairs, the model, layers, threshold, num_pairs, num_chunks,
            mixed precision, process count, the stopping rule or ``run_identity``), or when the state is
            of an older hf_stadyn (a pickle ``.pt`` file, never loaded).
        desc: the progress bar's label.
        **kwargs: every other option of :func:`probe_models` (``num_pairs``, ``batch_size``, ``seed``,
            ``threshold``, ``num_chunks``, ``forward_fn``, ``accelerator``, ``mixed_precision``, ``cpu``,
            ``place``, ``num_workers``, ``resume``, ``progress``, ``save_every_pairs``,
            ``checkpoint_every`` (deprecated), ``run_identity``, ``target_ci``, ``stop_layers``,
            ``on_estimate``).

    Returns:
        :class:`ProbeResult` with per-layer :class:`~hf_stadyn.metric.LayerBias`.
    """
    if "checkpoint_every" in kwargs:
        kwargs["_deprecated_stacklevel"] = 3
    out = probe_models({"model": model}, pairs, layers, checkpoint_dir=checkpoint_dir, desc=desc, _flat=True, **kwargs)
    return out["model"]


def probe_models(
    models: Mapping[str, torch.nn.Module],
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
    num_workers: int | str | None = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str | None = None,
    save_every_pairs: int = 200,
    run_identity: Mapping[str, Any] | None = None,
    target_ci: float | StoppingRule | None = None,
    stop_layers: Sequence[str] | None = None,
    on_estimate: Callable[[dict[str, Any]], None] | None = None,
    _flat: bool = False,
    _deprecated_stacklevel: int = 2,
) -> dict[str, ProbeResult]:
    """Probe several models on the same pairs in ONE data pass (docs/scaling.md "Reference in one pass").

    Each batch of pairs is made once (decoded, styled, shuffled) and goes through every model in turn;
    each model has its own estimator, so each result equals what :func:`probe` gives for that model
    alone on the same pairs (the test suite checks the bits), at the cost of one data pass. All
    results share the pair-set fingerprint, so they compare paired (docs/method.md §5).

    Args:
        models: ``{name: model}`` in report order, e.g. ``{"model": m, "reference": r}``. Every model
            takes the same ``layers`` and ``forward_fn``; videos given as ``pairs`` are made into pairs
            by the first model's adapter.
        checkpoint_dir: resume folder; each model saves under ``checkpoint_dir/<name>/`` (all at the
            same pair count).
        num_pairs: how many pairs (the first ``num_pairs`` indices of ``pairs``; default all); with
            ``target_ci`` the most pairs the run may probe.
        batch_size: pairs per forward (the forward batch holds ``2 * batch_size`` inputs). It does not
            change the numbers (pairs are added one by one in index order; the tiny models give the
            same bits for any batch size on the CPU), so a run may resume with another one.
        seed: seed of the pairs when ``pairs`` are videos.
        threshold, num_chunks: estimator settings (channel categories, jackknife chunks).
        forward_fn: for any module: uint8 clips ``(2B, T, H, W, 3)`` -> the model's input.
        accelerator: an ``accelerate.Accelerator``. With ``place=True`` (default) one is made when
            none is given (``mixed_precision``, ``cpu``), the models are moved to its device and the
            forwards run under its autocast; launch with ``accelerate launch`` / ``torchrun`` to use
            several processes (pairs are sharded by index: pair ``i`` on rank ``i % world_size``).
        place: ``False`` leaves the models where they are and runs in full precision (bias tracking
            during training); a given ``accelerator`` then only shards the pairs and sums the statistics.
        mixed_precision: "no", "bf16" or "fp16" autocast (GPU; bf16 also works on CPU).
        num_workers: DataLoader workers making pairs; "auto" (or None) = cores available minus one
            (:func:`hf_stadyn.pairs.loading.default_num_workers`); any count gives the same numbers.
        resume: load the saved state in ``checkpoint_dir`` and skip its pairs (see :func:`probe`).
        save_every_pairs: pairs per process between two saves of the state (default 200).
        checkpoint_every: deprecated (batches between saves); use ``save_every_pairs``.
        run_identity: what else the caller knows changes the numbers (JSON values, e.g. the model id,
            its revision, window settings); recorded in the state and compared on resume.
        progress: show a tqdm bar (``desc``; default names the models) on the main process.
        target_ci: stop once every chosen layer's shares are known to +- this many points, by the
            sequential rule of docs/method.md §5 (:class:`~hf_stadyn.metric.stopping.StoppingRule`;
            give a rule to change its ``min_pairs`` / ``growth``), checked at the rule's fixed looks;
            every model of the run must meet it. ``settings["stopping"]`` records the rule, each look
            and why and when the run stopped; ``settings["num_pairs"]`` the pairs used.
        stop_layers: the layers that must meet ``target_ci`` (default: every probed layer).
        on_estimate: called once on the main process after the first batches with ``{"pairs_per_s",
            "seconds_left", "pairs_left", "models", "num_processes", "stopping"}`` (default: logged at
            INFO level with the options that shorten the run).

    Returns:
        ``{name: ProbeResult}`` in the order of ``models``.
    """
    from tqdm.auto import tqdm

    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping {name: model}, e.g. {'model': m, 'reference': r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if checkpoint_every is not None:
        warnings.warn(
            "probe(checkpoint_every=...) (batches between saves) is deprecated; pass save_every_pairs=... "
            "(pairs per process between saves of the resume state).",
            DeprecationWarning,
            stacklevel=_deprecated_stacklevel,
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

    entries: list[_Entry] = []
    for name, m in models.items():
        adapter = adapter_for(m, layers, forward_fn)
        specs = select_layer_specs(m, adapter, layers)
        ckpt = None if checkpoint_dir is None else (checkpoint_dir if _flat else os.path.join(checkpoint_dir, name))
        est = StaticDynamicEstimator(threshold=threshold, num_chunks=num_chunks, sync_on_compute=False)
        entries.append(_Entry(str(name), m, adapter, specs, model_fingerprint(m), est, ckpt))

    if place:
        if accelerator is None:
            from accelerate import Accelerator

            accelerator = Accelerator(mixed_precision=mixed_precision, cpu=bool(cpu))
        for e in entries:
            e.model = e.model.to(accelerator.device).eval()
        device: torch.device | None = accelerator.device
        autocast: Callable[[], Any] = accelerator.autocast
    else:
        device = None
        autocast = contextlib.nullcontext

    if _is_video_source(pairs):
        make = getattr(entries[0].adapter, "pairs_from_videos", None)
        if not callable(make):
            raise ValueError(
                f"pairs given as videos need a model that knows its input (pairs_from_videos); build a pair dataset "
                f"(hf_stadyn.pairs.PairDataset) for {type(entries[0].model).__name__} yourself."
            )
        pairs = make(pairs, seed=seed)

    total = len(pairs)
    if num_pairs is None:
        num_pairs = total
    if not (isinstance(num_pairs, (int, np.integer)) and 1 <= num_pairs <= total):
        raise ValueError(f"num_pairs must be an integer in [1, {total}] (the pairs available), got {num_pairs!r}.")

    rule: StoppingRule | None = None
    if target_ci is not None:
        base = target_ci if isinstance(target_ci, StoppingRule) else StoppingRule(target_ci=target_ci, max_pairs=4)
        chosen = tuple(stop_layers) if stop_layers is not None else base.layers
        rule = dataclasses.replace(base, max_pairs=int(num_pairs), num_chunks=int(num_chunks), layers=chosen)
        for e in entries:
            unknown = [x for x in (rule.layers or ()) if x not in e.specs]
            if unknown:
                raise ValueError(f"stop_layers: {unknown} are not probed for {e.name!r}; probed: {list(e.specs)}.")
    elif stop_layers is not None:
        raise ValueError("stop_layers needs target_ci (the half-width the layers must reach).")
    looks = rule.looks() if rule is not None else []

    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    mixed = str(accelerator.mixed_precision) if (place and accelerator is not None) else "no"
    for e in entries:
        identity = {
            "model": e.fingerprint, "layers": list(e.specs), "threshold": float(threshold),
            "num_chunks": int(num_chunks), "num_pairs": int(num_pairs), "mixed_precision": mixed,
            "num_processes": int(world), "run": run,
        }  # fmt: skip
        if rule is not None:  # only then: states of runs without a rule keep their identity
            identity["stopping"] = rule.to_dict()
        e.identity = json.loads(json.dumps(identity))  # compared with what a saved state reads back
    my_indices = range(rank, num_pairs, world)
    done = 0  # number of my indices already processed (the same for every model)
    records: list[tuple] = []  # fingerprint records of my processed pairs, in processing order
    chunking: str | None = None  # "video" when the pairs carry video_index, else "pair"
    saved_history: list[dict[str, Any]] = []
    if resume and checkpoint_dir is not None:
        done, records, chunking, saved_history = _resume(entries, pairs, rank, my_indices, checkpoint_dir, device)

    def mine_below(n: int) -> int:  # how many of my indices are < n (my position of global look n)
        return len(range(rank, n, world))

    next_look = 0
    if rule is not None:  # the first look not passed yet (a look at exactly `done` is redone: same state)
        first = next((i for i, n in enumerate(looks) if mine_below(n) >= done), len(looks) - 1)
        if world > 1:
            from hf_stadyn.metric.distributed import all_gather_object

            first = max(all_gather_object(first, accelerator))
        next_look = first
    # the looks already taken (a look at exactly `done` is taken again below, so it is not kept twice)
    history: list[dict[str, Any]] = [h for h in saved_history if h.get("num_pairs") in looks[:next_look]]
    cuts = [mine_below(n) - done for n in looks[:-1]]
    subset = torch.utils.data.Subset(pairs, my_indices[done:])
    from hf_stadyn.pairs.loading import pair_loader_options

    loader = torch.utils.data.DataLoader(
        subset, batch_sampler=_batches_cut_at(len(subset), cuts, batch_size), collate_fn=collate_pairs,
        **pair_loader_options(num_workers, device),
    )  # fmt: skip
    render = getattr(pairs, "render_batch", None)  # styles/shuffles on the model's device (opt-in datasets)

    def save_state() -> None:
        if checkpoint_dir is None:
            return
        for e in entries:
            meta: dict[str, Any] = {
                "done": done,
                "chunking": chunking,
                "estimator_state_version": STATE_VERSION,
                "identity": e.identity,
            }
            if rule is not None:
                meta["stopping_history"] = history
            save_probe_state(e.checkpoint_dir, rank, e.estimator.state_dict(), records, meta)

    stopped: dict[str, Any] | None = None

    def look(index: int) -> bool:
        """Decide at look ``index`` (collective when world > 1); record it; True to stop."""
        assert rule is not None
        decisions = []
        for e in entries:
            if world > 1:
                e.estimator.sync(accelerator)
            try:
                states = {n: (st.n.cpu().numpy(), st.stats.cpu().numpy()) for n, st in e.estimator.layers.items()}
            finally:
                e.estimator.unsync()
            decisions.append(rule.decide_from_states(states, index))
        stop = all(d.stop for d in decisions)
        if world > 1:
            from hf_stadyn.metric.distributed import all_gather_object

            stop = bool(all_gather_object(stop, accelerator)[0])  # rank 0 decides for all
        history.append({"num_pairs": looks[index], **{e.name: d.to_dict() for e, d in zip(entries, decisions)}})
        worst = max(max(d.half_widths.values(), default=math.inf) for d in decisions)
        bar.set_postfix_str(f"+-{worst:.2f} pts at {looks[index]} pairs (target +-{rule.target_ci:g})", refresh=False)
        return stop

    main = accelerator.is_main_process if accelerator is not None else True
    names = [e.name for e in entries]
    label = desc if desc is not None else f"probing pairs ({' + '.join(names)}, one pass)"
    bar = tqdm(total=len(my_indices), initial=done, disable=not (progress and main), desc=label, unit="pair")
    last_save = done
    signals = _Signals(enabled=checkpoint_dir is not None)
    clock: tuple[float, int, int] | None = None  # (time, done, batches) after the first batch
    estimated = False
    try:
        with signals, torch.inference_mode(), autocast():
            while rule is not None and next_look < len(looks) - 1 and mine_below(looks[next_look]) <= done:
                if look(next_look):  # resumed at (or past) a look
                    stopped = {"reason": "target met", "look": next_look, "num_pairs": looks[next_look]}
                    break
                next_look += 1
            for batch in loader if stopped is None else ():
                if callable(render):
                    batch = render(batch, device)
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
                features = {}
                for e in entries:
                    feats = extract_features(e.model, e.adapter.probe_inputs(batch, device), e.specs)
                    features[e.name] = {name: (z.float()[:b], z.float()[b:]) for name, z in feats.items()}
                with signals.whole():  # all models, layers, records and the count, or none of them
                    for e in entries:
                        e.estimator.update_layers(
                            features[e.name], batch["factor"], pair_ids=np.asarray(ids, dtype=np.int64),
                            groups=np.asarray(videos, dtype=np.int64) if videos is not None else None,
                        )  # fmt: skip
                    chunking = mode
                    records.extend(new_records)
                    done += b
                bar.update(b)
                clock, estimated = _maybe_estimate(
                    clock, estimated, done, len(my_indices), world, names, rule, main, on_estimate
                )
                while rule is not None and next_look < len(looks) - 1 and mine_below(looks[next_look]) <= done:
                    if look(next_look):
                        stopped = {"reason": "target met", "look": next_look, "num_pairs": looks[next_look]}
                        break
                    next_look += 1
                if signals.terminate:
                    raise KeyboardInterrupt(f"SIGTERM: probing stopped after {done} pairs, state saved")
                if stopped is not None:
                    break
                if done - last_save >= save_every_pairs:
                    save_state()
                    last_save = done
            # a process whose pairs ran out before the others' still takes part in the remaining looks
            while stopped is None and rule is not None and next_look < len(looks) - 1:
                if look(next_look):
                    stopped = {"reason": "target met", "look": next_look, "num_pairs": looks[next_look]}
                next_look += 1
    except BaseException as err:
        try:
            save_state()  # an interrupted or failed run resumes from here
        except Exception:
            logger.exception("could not save the probe state to %s after %s", checkpoint_dir, type(err).__name__)
        raise
    finally:
        bar.close()
    save_state()
    used = int(stopped["num_pairs"]) if stopped is not None else int(num_pairs)
    if world > 1:
        from hf_stadyn.metric.distributed import all_gather_object

        for e in entries:
            e.estimator.sync(accelerator)
        gathered = all_gather_object((chunking, records), accelerator)
        modes = {m for m, _ in gathered if m is not None}
        if len(modes) > 1:
            raise ValueError("some processes' pairs carry video_index and others' do not; give it on every item.")
        chunking = modes.pop() if modes else chunking
        records = [r for _, recs in gathered for r in recs]
    stopping = None
    if rule is not None:
        if stopped is None:  # the last look: the target was met there or not
            final = [
                rule.decide_from_states(
                    {n: (st.n.cpu().numpy(), st.stats.cpu().numpy()) for n, st in e.estimator.layers.items()},
                    len(looks) - 1,
                )
                for e in entries
            ]
            history.append({"num_pairs": looks[-1], **{e.name: d.to_dict() for e, d in zip(entries, final)}})
            met = all(d.stop for d in final)
            stopped = {
                "reason": "max pairs reached, target met" if met else "max pairs reached, target not met",
                "look": len(looks) - 1,
                "num_pairs": looks[-1],
            }
        stopping = {**rule.to_dict(), "stopped": stopped, "history": history}
        logger.info("stopping rule: %s after %d of at most %d pairs", stopped["reason"], used, num_pairs)
    out: dict[str, ProbeResult] = {}
    for e in entries:
        results = e.estimator.compute()
        info = e.estimator.chunking()
        num_videos = max((v["num_videos"] or 0 for v in info.values()), default=0) if chunking == "video" else None
        notes = e.estimator.chunking_notes()
        if chunking == "pair":
            msg = (
                "pair items carry no video_index: jackknife chunks go by pair index, right only for independent "
                "pairs (pairs that reuse a clip give intervals too narrow; docs/method.md §5)"
            )
            logger.info(msg)
            notes = [msg, *notes]
        settings = {
            "num_pairs": used,
            "threshold": threshold,
            "num_chunks": num_chunks,
            "num_processes": world,
            "mixed_precision": mixed,
            "layers": list(e.specs),
            "chunking": chunking or "pair",
            "num_videos": num_videos,
            "interval_notes": notes,
            "pair_fingerprint": pair_fingerprint(records),
            "model_fingerprint": e.fingerprint["sha256"],
            "stopping": stopping,
        }
        out[e.name] = ProbeResult(layers=results, estimator=e.estimator, num_pairs=used, settings=settings)
    return out


def _maybe_estimate(
    clock: tuple[float, int, int] | None,
    estimated: bool,
    done: int,
    mine: int,
    world: int,
    names: list[str],
    rule: StoppingRule | None,
    main: bool,
    on_estimate: Callable[[dict[str, Any]], None] | None,
) -> tuple[tuple[float, int, int] | None, bool]:
    """The cost estimate after the first batches (docs/scaling.md): the clock starts after batch 1 (worker
    start-up and first-call overheads excluded) and the estimate is given after 2 more batches and 2 s, or 8
    batches; returns the updated ``(clock, estimated)``."""
    now = time.perf_counter()
    if estimated:
        return clock, True
    if clock is None:
        return (now, done, 0), False
    t0, d0, nb = clock
    nb += 1
    elapsed = now - t0
    if not ((nb >= 2 and elapsed >= 2.0) or nb >= 8) or done <= d0 or done >= mine:
        return (t0, d0, nb), False
    rate = (done - d0) / max(elapsed, 1e-9)  # this process's pairs per second
    info = {
        "pairs_per_s": rate * world,
        "seconds_left": (mine - done) / rate,
        "pairs_left": (mine - done) * world,
        "models": list(names),
        "num_processes": world,
        "stopping": rule is not None,
    }
    if main:
        if on_estimate is not None:
            on_estimate(info)
        else:
            logger.info(_estimate_message(info))
    return (t0, d0, nb), True


def _resume(
    entries: list[_Entry], pairs: Any, rank: int, my_indices: range, checkpoint_dir: Any, device: Any = None
) -> tuple[int, list[tuple], str | None, list[dict[str, Any]]]:
    """Load every model's saved state (all at one pair count), check it against this run; return
    ``(done, records, chunking, stopping history)`` (0, [], None, [] when nothing was saved)."""
    loaded = [(e, load_probe_state(e.checkpoint_dir, rank)) for e in entries]
    present = [(e, s) for e, s in loaded if s is not None]
    if not present:
        return 0, [], None, []
    if len(present) != len(entries):
        missing = [e.name for e, s in loaded if s is None]
        raise ValueError(
            f"cannot resume from {checkpoint_dir}: no saved state for {missing}; rerun without resume (stadyn probe "
            "--overwrite) to start fresh."
        )
    dones = {int(s[2].get("done", -1)) for _, s in present}
    if len(dones) != 1:
        raise ValueError(
            f"cannot resume from {checkpoint_dir}: its models were saved at different pair counts {sorted(dones)}; "
            "rerun without resume (stadyn probe --overwrite) to start fresh."
        )
    done = dones.pop()
    records: list[tuple] = []
    chunking = None
    for e, (state, saved_records, doc) in present:
        if not (0 <= done <= len(my_indices)) or len(saved_records) != done:
            raise ValueError(
                f"cannot resume from {checkpoint_dir}: its probe state is inconsistent ({len(saved_records)} pair "
                f"records for {done} pairs done); rerun without resume (stadyn probe --overwrite) to start fresh."
            )
        positions = sorted({0, done // 2, done - 1}) if done else []
        diffs = [_pairs_difference(pairs, saved_records, positions, my_indices, device)]
        diffs = [d for d in diffs if d] + _identity_differences(doc.get("identity") or {}, e.identity)
        if diffs:
            raise ValueError(
                f"cannot resume from {checkpoint_dir}: {', '.join(diffs)}; rerun with the original settings or start "
                "fresh (resume=False; stadyn probe --overwrite)."
            )
        e.estimator.load_state_dict(state)
        records = list(saved_records)
        chunking = doc.get("chunking")
    logger.info("resuming from %s: %d of %d pairs on this process already done", checkpoint_dir, done, len(my_indices))
    return done, records, chunking, list(present[0][1][2].get("stopping_history") or [])
