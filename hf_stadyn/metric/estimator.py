"""Streaming static/dynamic estimator (docs/method.md §3-5), shaped like a torchmetrics ``Metric``.

Everything the layer- and channel-level estimates need follows from per-factor sufficient statistics
of the pooled pair features ``z_a, z_b: (B, C)``:

    n        number of pairs                               (per factor, per chunk)
    sum_a    sum of z_a                                    (C,)
    sum_b    sum of z_b                                    (C,)
    sumsq    sum of z_a**2 + z_b**2                        (C,)
    sum_ab   sum of z_a * z_b                              (C,)

They are accumulated in float64, split over ``num_chunks`` chunks (a pair goes to chunk
:func:`~hf_stadyn.metric.state.assign_chunks` of its group, the source video, when given, else of its
pair id) so that jackknife intervals come for free.
Memory is ``O(num_chunks * C)`` per layer and factor whatever the number of pairs, and states add up
exactly across batches, processes and resumed runs.

Lifecycle (as in torchmetrics): ``update()`` / ``update_layers()`` accumulate this process's pairs;
``sync()`` replaces the state by its reduction over all processes (:attr:`StaticDynamicEstimator.reductions`);
``compute()`` reads it. The modules: :mod:`.factors` (labels), :mod:`.results` (result types),
:mod:`.stats` (the formulas), :mod:`.state` (per-layer statistics, chunks), :mod:`.distributed`
(collectives), :mod:`.functional` (one-shot arrays). Every name this module exported before the split
is still importable from it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .distributed import Reduction, all_gather_object, all_reduce, distributed_world_size, world_size
from .factors import DYNAMIC, FACTORS, STATIC, parse_factors
from .functional import compute_from_arrays
from .results import CATEGORIES, Interval, LayerBias
from .state import (
    FeatureBatch,
    LayerStats,
    assign_chunks,
    check_confidence,
    check_num_chunks,
    prepare_batch,
)
from .state import as_float64_features as _as_float64  # noqa: F401  (old private name)
from .stats import DEAD_RTOL as _DEAD_RTOL  # noqa: F401  (old private name)
from .stats import (
    NUM_STATS,
    RESIDUAL_SCORE,  # noqa: F401  (re-exported)
    categorize,
    scores_from_shares,
    shares_from_scores,
)
from .stats import check_threshold as _check_threshold
from .stats import dims_from_shares as _dims  # noqa: F401  (old private name)

__all__ = [
    "CATEGORIES",
    "DYNAMIC",
    "FACTORS",
    "STATE_VERSION",
    "STATIC",
    "Interval",
    "LayerBias",
    "LayerStats",
    "StaticDynamicEstimator",
    "categorize",
    "compute_from_arrays",
    "parse_factors",
    "scores_from_shares",
    "shares_from_scores",
]

logger = logging.getLogger(__name__)

#: Version 2 adds, per layer, the chunking ("video" or "pair") and the groups (source videos) seen;
#: version-1 states (chunks by pair id) still load.
STATE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_N_STATS = NUM_STATS  # old private name


class StaticDynamicEstimator:
    """Streaming estimator over any number of layers, with the lifecycle of a torchmetrics ``Metric``.

    Example:
        >>> import numpy as np
        >>> est = StaticDynamicEstimator()
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(8, 16))
        >>> est.update(z, z + 0.1 * rng.normal(size=(8, 16)), ["static", "dynamic"] * 4, layer="block")
        >>> est.compute()["block"].num_pairs
        {'dynamic': 4, 'static': 4}

    State, per layer, with the reduction that combines processes (``reductions``): ``n`` and ``stats``
    add up (``"sum"``); ``next_pair_id``, one more than the largest pair id seen, takes the maximum
    (``"max"``: pair ids are global indices); the groups seen (source-video ids, when given) are united.
    ``sync()``, ``merge()`` and resuming use these reductions and no other. The tensors live on the device of the features (float64; CPU for devices without
    float64) and go to the CPU only in ``compute()``.

    Chunks (docs/method.md §5): give ``groups`` (each pair's source-video index) so that all pairs of
    one video share a chunk and the intervals resample videos, the independent unit; without them
    chunks go by pair id (right only for independent pairs). With fewer videos than K, only as many
    chunks as videos are used (logged; no intervals below 2). A layer keeps one chunking.

    Distributed use: each process updates with its own pairs (give global ``pair_ids``), then either
    calls ``sync()`` (explicit, stays synced) or just ``compute()``, which, when ``torch.distributed``
    is initialised with more than one process, syncs for the computation and restores the local state
    afterwards (``sync_on_compute``). Every process must then call ``compute()``. A second ``sync()`` is
    a no-op, so totals are never counted twice. A synced estimator is read-only: ``update()``,
    ``update_layers()`` and ``merge()`` raise until ``unsync()`` (back to this process's own totals) or
    ``reset()``.

    Args:
        threshold: tau for channel categories (strict inequalities), default 0.5.
        num_chunks: K chunks for jackknife intervals (:func:`~hf_stadyn.metric.state.assign_chunks`).
        confidence: level of the intervals (default 0.95).
        sync_on_compute: let ``compute()`` sync over ``torch.distributed`` when it is initialised with
            world size > 1 and the state is not synced yet (default True). Pass False when every
            process already holds all pairs.
    """

    #: How each piece of per-layer state is combined across processes (and in ``merge``).
    reductions: ClassVar[dict[str, Reduction]] = {"n": "sum", "stats": "sum", "next_pair_id": "max"}

    def __init__(
        self, threshold: float = 0.5, num_chunks: int = 10, confidence: float = 0.95, *, sync_on_compute: bool = True
    ):
        self.num_chunks = check_num_chunks(num_chunks)
        self.confidence = check_confidence(confidence)
        self.threshold = _check_threshold(threshold)
        self.sync_on_compute = bool(sync_on_compute)
        self.layers: dict[str, LayerStats] = {}
        self._next_pair_id: dict[str, int] = {}
        self._chunking: dict[str, str] = {}  # layer -> "video" (chunks by group) or "pair"
        self._groups: dict[str, set[int]] = {}  # layer -> groups (source videos) seen
        self._synced = False
        self._cache: tuple[dict[str, LayerStats], dict[str, int], dict[str, set[int]]] | None = None

    # -- update ------------------------------------------------------------------------------
    def update(
        self,
        z_a: Any,
        z_b: Any = None,
        factors: Any = None,
        *,
        layer: str = "layer",
        pair_ids: Sequence[int] | np.ndarray | None = None,
        groups: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Add a batch of pairs of one layer.

        Args:
            z_a, z_b: pooled features of the pair members, (B, C) numpy arrays or torch tensors (any
                float dtype, any device). Both are required.
            factors: per pair, "dynamic"/"static" (or 0/1), or one label for the whole batch. Required.
            layer: layer name.
            pair_ids: optional global pair indices (B,) that fix each pair's chunk; give them when
                pairs are split over processes so that intervals match a single-process run. Default:
                the next ids of this layer, ``next_pair_id, next_pair_id + 1, ...``.
            groups: optional source-video index (B,) of each pair; all pairs of a video go to one chunk
                (the jackknife's resampling unit, docs/method.md §5). Without them chunks go by pair id.

        Deprecated: ``update({layer: (z_a, z_b)}, factors)`` (a mapping as first argument) still works
        for one release with a ``DeprecationWarning``; use :meth:`update_layers`.
        """
        if isinstance(z_a, Mapping):
            warnings.warn(
                "StaticDynamicEstimator.update({layer: (z_a, z_b)}, factors) is deprecated; call "
                "update_layers({layer: (z_a, z_b)}, factors, pair_ids=...) instead.",
                DeprecationWarning,
                stacklevel=2,
            )
            self.update_layers(z_a, factors if factors is not None else z_b, pair_ids=pair_ids)
            return
        self._check_not_synced("update()")
        batch = self._prepare(z_a, z_b, factors, layer, pair_ids, groups)
        self._add(layer, batch)

    def update_layers(
        self,
        features: Mapping[str, tuple[Any, Any]],
        factors: Any,
        *,
        pair_ids: Sequence[int] | np.ndarray | None = None,
        groups: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Add the same batch of pairs to several layers.

        Args:
            features: ``{layer: (z_a, z_b)}`` with (B, C_layer) features per layer (same B everywhere).
            factors, pair_ids, groups: as in :meth:`update`, shared by all layers.

        All layers are validated before any is updated, so a bad layer leaves the state unchanged.
        """
        self._check_not_synced("update_layers()")
        if not isinstance(features, Mapping):
            raise ValueError(
                f"features must be a mapping {{layer: (z_a, z_b)}}, got {type(features).__name__}; "
                "use update(z_a, z_b, factors, layer=...) for one layer."
            )
        batches: dict[str, FeatureBatch] = {}
        for name, pair in features.items():
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ValueError(
                    f"layer {name!r}: expected a (z_a, z_b) pair of (B, C) arrays, got {type(pair).__name__}."
                )
            batches[name] = self._prepare(pair[0], pair[1], factors, name, pair_ids, groups)
        for name, batch in batches.items():
            self._add(name, batch)

    def _prepare(self, z_a: Any, z_b: Any, factors: Any, layer: str, pair_ids: Any, groups: Any = None) -> FeatureBatch:
        batch = prepare_batch(
            z_a, z_b, factors, layer=layer, pair_ids=pair_ids, first_pair_id=self._next_pair_id.get(layer, 0),
            groups=groups,
        )  # fmt: skip
        mode = "video" if batch.groups is not None else "pair"
        if self._chunking.get(layer, mode) != mode:
            raise ValueError(
                f"layer {layer!r} was chunked by {self._chunking[layer]} and now gets pairs "
                f"{'with' if mode == 'video' else 'without'} groups; give groups for every batch or for none."
            )
        if layer in self.layers and self.layers[layer].num_channels != batch.num_channels:
            raise ValueError(
                f"layer {layer!r} had C = {self.layers[layer].num_channels} channels and now gets "
                f"C = {batch.num_channels}; each layer must keep its channel count."
            )
        return batch

    def _add(self, layer: str, batch: FeatureBatch) -> None:
        import torch

        stats = self.layers.get(layer)
        if stats is None:
            stats = self.layers[layer] = LayerStats(batch.num_channels, self.num_chunks, device=batch.a.device)
        chunks = assign_chunks(batch.chunk_ids, self.num_chunks)
        stats.add(batch.a, batch.b, torch.from_numpy(batch.factors), torch.from_numpy(chunks))
        self._next_pair_id[layer] = int(max(self._next_pair_id.get(layer, 0), batch.pair_ids.max() + 1))
        self._chunking[layer] = "video" if batch.groups is not None else "pair"
        if batch.groups is not None:
            self._groups.setdefault(layer, set()).update(int(g) for g in np.unique(batch.groups))

    def _check_not_synced(self, what: str) -> None:
        if self._synced:
            raise RuntimeError(
                f"{what} on a synced estimator: it holds the totals of all processes. Call unsync() to "
                "go back to this process's own state (or reset()) before adding pairs."
            )

    # -- compute / reset / merge ---------------------------------------------------------------
    def compute(self) -> dict[str, LayerBias]:
        """Per-layer results, in the order layers were first seen.

        Under ``torch.distributed`` with world size > 1 and ``sync_on_compute``, an unsynced estimator is
        synced for this call and restored afterwards (every process must call ``compute()``).
        """
        if self.sync_on_compute and not self._synced and distributed_world_size() > 1:
            self.sync()
            try:
                return self._compute()
            finally:
                self.unsync()
        return self._compute()

    def _compute(self) -> dict[str, LayerBias]:
        if not self.layers:
            raise ValueError("the estimator has seen no pairs; call update() first.")
        for note in self.chunking_notes():
            logger.warning(note)
        return {
            name: st.compute(name, threshold=self.threshold, confidence=self.confidence)
            for name, st in self.layers.items()
        }

    def chunking(self) -> dict[str, dict[str, Any]]:
        """Per layer: ``{"chunking": "video" | "pair", "num_videos": int | None, "num_chunks_used": int}``."""
        out: dict[str, dict[str, Any]] = {}
        for name, st in self.layers.items():
            mode = self._chunking.get(name, "pair")
            used = int((st.n.sum(0) > 0).sum())
            out[name] = {
                "chunking": mode,
                "num_videos": len(self._groups.get(name, ())) if mode == "video" else None,
                "num_chunks_used": used,
            }
        return out

    def chunking_notes(self) -> list[str]:
        """Warnings about the intervals' chunks: fewer videos (or pairs) than K chunks (one line per case)."""
        notes = []
        for name, info in self.chunking().items():
            used = info["num_chunks_used"]
            if used >= self.num_chunks:
                continue
            unit = (
                f"{info['num_videos']} source video(s)" if info["chunking"] == "video" else f"{used} chunk(s) of pairs"
            )
            effect = f"intervals use K = {used} chunks" if used >= 2 else "no intervals (fewer than 2 chunks)"
            notes.append(
                f"layer {name!r}: {unit} for {self.num_chunks} jackknife chunks: {effect}; probe more videos for "
                "intervals on K chunks."
            )
        return notes

    def reset(self) -> None:
        """Forget all pairs (and any synced state)."""
        self.layers.clear()
        self._next_pair_id.clear()
        self._chunking.clear()
        self._groups.clear()
        self._synced = False
        self._cache = None

    def merge(self, other: StaticDynamicEstimator) -> StaticDynamicEstimator:
        """Combine another estimator's state into this one (in place) with :attr:`reductions`; return self.

        Statistics add up; the pair-id counter takes the maximum (pair ids are global indices, so a
        merge of disjoint shards continues numbering after the largest id, not after their sum).
        """
        if other.num_chunks != self.num_chunks:
            raise ValueError(f"cannot merge estimators with num_chunks {other.num_chunks} and {self.num_chunks}.")
        self._check_not_synced("merge()")
        for name, st in other.layers.items():
            theirs, mine_mode = other._chunking.get(name, "pair"), self._chunking.get(name)
            if mine_mode is not None and name in self.layers and mine_mode != theirs:
                raise ValueError(f"cannot merge layer {name!r} chunked by {theirs} into one chunked by {mine_mode}.")
            self._chunking[name] = theirs
            if name in other._groups:
                self._groups.setdefault(name, set()).update(other._groups[name])
            if name in self.layers:
                self.layers[name].merge_(st)
            else:
                mine = self.layers[name] = LayerStats(st.num_channels, st.num_chunks, device=st.device)
                mine.merge_(st)
            self._next_pair_id[name] = max(self._next_pair_id.get(name, 0), other._next_pair_id.get(name, 0))
        return self

    def to(self, device: Any) -> StaticDynamicEstimator:
        """Move every layer's state to ``device`` (CPU for devices without float64); return self."""
        for st in self.layers.values():
            st.to(device)
        return self

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A dict of CPU tensors and plain values; round-trips through ``torch.save`` / safetensors.

        After ``sync()`` it holds the totals of all processes (load it in one process only).
        """
        import torch

        return {
            "version": STATE_VERSION,
            "threshold": self.threshold,
            "num_chunks": self.num_chunks,
            "confidence": self.confidence,
            "layers": {
                name: {
                    "n": st.n.detach().to("cpu", copy=True),
                    "stats": st.stats.detach().to("cpu", copy=True),
                    "next_pair_id": self._next_pair_id[name],
                    "chunking": self._chunking.get(name, "pair"),
                    "groups": torch.tensor(sorted(self._groups.get(name, ())), dtype=torch.int64),
                }
                for name, st in self.layers.items()
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the state by ``state`` (from :meth:`state_dict`); the result is not synced."""
        import torch

        if int(state.get("version", -1)) not in _READABLE_VERSIONS:
            raise ValueError(
                f"estimator state has version {state.get('version')!r}, this hf_stadyn reads "
                f"versions {', '.join(map(str, _READABLE_VERSIONS))}; re-run the probe with this version."
            )
        self.threshold = _check_threshold(state["threshold"])
        self.num_chunks = int(state["num_chunks"])
        self.confidence = float(state["confidence"])
        self.reset()
        for name, s in state["layers"].items():
            n = torch.as_tensor(s["n"], dtype=torch.float64)
            stats = torch.as_tensor(s["stats"], dtype=torch.float64)
            if n.shape != (2, self.num_chunks) or stats.ndim != 4 or stats.shape[:3] != (2, self.num_chunks, NUM_STATS):
                raise ValueError(f"estimator state for layer {name!r} has inconsistent shapes.")
            st = LayerStats(stats.shape[-1], self.num_chunks)
            st.n.copy_(n)
            st.stats.copy_(stats)
            self.layers[name] = st
            self._next_pair_id[name] = int(s["next_pair_id"])
            self._chunking[name] = str(s.get("chunking", "pair"))  # version 1: chunks by pair id
            groups = s.get("groups")
            if groups is not None and len(groups):
                self._groups[name] = {int(g) for g in torch.as_tensor(groups).tolist()}

    # -- distributed ------------------------------------------------------------------------------
    @property
    def is_synced(self) -> bool:
        """True between ``sync()`` over several processes and ``unsync()`` / ``reset()``."""
        return self._synced

    def sync(self, accelerator: Any = None) -> StaticDynamicEstimator:
        """Replace the state by its reduction over all processes (in place; :attr:`reductions`).

        Goes through ``accelerator`` when given (an ``accelerate.Accelerator``), else through
        ``torch.distributed``; does nothing in a single process. Layers seen by only some processes are
        added (empty) on the others first, so ranks with no pairs of a layer do not stall the run.
        A second call is a no-op: the totals are counted once. ``unsync()`` restores the local state.
        Collective: every process must call it.
        """
        if self._synced:
            logger.debug("sync(): the estimator is already synced; nothing to do.")
            return self
        if world_size(accelerator) == 1:
            return self
        import torch

        tables = all_gather_object(
            (
                self.num_chunks,
                [(name, st.num_channels) for name, st in self.layers.items()],
                {name: (self._chunking.get(name, "pair"), sorted(self._groups.get(name, ()))) for name in self.layers},
            ),
            accelerator,
        )
        union: dict[str, int] = {}
        chunking: dict[str, str] = {}
        groups: dict[str, set[int]] = {}
        for rank, (_, _, table_groups) in enumerate(tables):
            for name, (mode, seen) in table_groups.items():
                if chunking.setdefault(name, mode) != mode:
                    raise ValueError(
                        f"layer {name!r} is chunked by {chunking[name]} on one process and by {mode} on rank {rank}; "
                        "give groups on every process or on none."
                    )
                if seen:
                    groups.setdefault(name, set()).update(seen)
        for rank, (num_chunks, table, _) in enumerate(tables):
            if num_chunks != self.num_chunks:
                raise ValueError(
                    f"num_chunks is {self.num_chunks} on this process and {num_chunks} on rank {rank}; "
                    "every process must use the same estimator settings."
                )
            for name, c in table:
                if union.setdefault(name, c) != c:
                    raise ValueError(
                        f"layer {name!r} has C = {union[name]} channels on one process and C = {c} on rank "
                        f"{rank}; every process must probe the same layers of the same model."
                    )
        local_layers, local_ids = dict(self.layers), dict(self._next_pair_id)
        local_groups = {k: set(v) for k, v in self._groups.items()}
        device = next(iter(self.layers.values())).device if self.layers else None
        synced: dict[str, LayerStats] = {}
        for name in union:
            st = self.layers.get(name)
            synced[name] = st.clone() if st is not None else LayerStats(union[name], self.num_chunks, device=device)
        names = sorted(union)  # the same order on every process
        for name in names:
            st = synced[name]
            st.n = all_reduce(st.n, self.reductions["n"], accelerator)
            st.stats = all_reduce(st.stats, self.reductions["stats"], accelerator)
        ids = torch.tensor([local_ids.get(name, 0) for name in names], dtype=torch.int64)
        ids = all_reduce(ids, self.reductions["next_pair_id"], accelerator)
        self.layers = synced
        reduced_ids = dict(zip(names, ids.tolist()))
        self._next_pair_id = {name: int(reduced_ids[name]) for name in synced}
        self._chunking.update(chunking)
        self._groups = groups
        self._cache = (local_layers, local_ids, local_groups)
        self._synced = True
        return self

    def unsync(self) -> StaticDynamicEstimator:
        """Restore this process's own state after :meth:`sync` (no-op when not synced); return self."""
        if self._synced and self._cache is not None:
            self.layers, self._next_pair_id, self._groups = self._cache
        self._cache = None
        self._synced = False
        return self

    @property
    def num_pairs(self) -> dict[str, dict[str, int]]:
        """Pairs per layer and factor, ``{layer: {"dynamic": N_D, "static": N_S}}``."""
        return {
            name: {"dynamic": int(st.n[DYNAMIC].sum()), "static": int(st.n[STATIC].sum())}
            for name, st in self.layers.items()
        }
