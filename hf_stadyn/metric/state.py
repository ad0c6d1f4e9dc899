"""The estimator's state: validated feature batches, jackknife chunks and per-layer sufficient statistics.

:class:`LayerStats` holds, for one layer, ``n: (2, K)`` pairs and ``stats: (2, K, 4, C)`` sums in float64
(factor x chunk x {sum_a, sum_b, sumsq, sum_ab} x channel; docs/method.md §5). It lives on the device of
the features it is fed (CPU or CUDA; other devices, e.g. MPS without float64, keep it on the CPU), and
moves to the CPU only to compute (:mod:`hf_stadyn.metric.stats`).

Which chunk a pair goes to is decided by :func:`assign_chunks` alone: ``group % K`` for the pair's group
(its source video, docs/method.md §5), or ``pair_id % K`` for pairs without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .factors import parse_factors
from .results import Interval, LayerBias
from .stats import NUM_STATS, estimate_from_totals, jackknife_intervals, layer_bias

if TYPE_CHECKING:
    import torch

__all__ = [
    "FeatureBatch",
    "LayerStats",
    "as_float64_features",
    "assign_chunks",
    "check_confidence",
    "check_ids",
    "check_num_chunks",
    "prepare_batch",
    "state_device",
]

_N_STATS = NUM_STATS  # old private name


def assign_chunks(ids: np.ndarray, num_chunks: int) -> np.ndarray:
    """The jackknife chunk ``(B,)`` int64 of each pair: ``id % K`` of its group (source video) or pair id.

    The one place that decides chunk membership: the estimator and the functional form both call it.
    Given groups (the source-video indices ``(B,)``), all pairs of one video land in one chunk, so the
    jackknife resamples videos, the independent unit (docs/method.md §5); consecutive video indices
    spread over the K chunks evenly. Given pair ids, chunks are by pair (for pairs without videos).
    """
    return (np.asarray(ids) % num_chunks).astype(np.int64)


def check_ids(ids: Any, batch: int, what: str) -> np.ndarray:
    """Validate ``(B,)`` non-negative integer ids (pair ids or groups) and return them as int64 numpy."""
    if hasattr(ids, "detach"):  # a torch tensor, possibly on an accelerator
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids).reshape(-1)
    if arr.shape[0] != batch or arr.dtype.kind not in "iu" or (arr < 0).any():
        raise ValueError(f"{what} must be {batch} non-negative integers (one per pair), got {arr!r}.")
    return arr.astype(np.int64)


def check_num_chunks(num_chunks: Any) -> int:
    if not (isinstance(num_chunks, int) and num_chunks >= 1):
        raise ValueError(f"num_chunks must be a positive integer, got {num_chunks!r}.")
    return num_chunks


def check_confidence(confidence: Any) -> float:
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")
    return float(confidence)


def state_device(device: Any) -> torch.device:
    """Where float64 state for features on ``device`` lives: that device if CPU or CUDA, else the CPU."""
    import torch

    device = torch.device(device)
    return device if device.type in ("cpu", "cuda") else torch.device("cpu")


def as_float64_features(x: Any, name: str) -> torch.Tensor:
    """Validate one feature batch ``(B, C)`` and return it as a float64 torch tensor on its own device."""
    import torch

    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point()):
            raise ValueError(
                f"{name} has dtype {x.dtype}; pooled features must be floating point (cast with .float())."
            )
        t = x.detach().to(torch.float64)
    else:
        arr = np.asarray(x)
        if arr.dtype.kind != "f":
            raise ValueError(
                f"{name} has dtype {arr.dtype}; pooled features must be floating point (cast with .astype(np.float32))."
            )
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
    if t.ndim != 2:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)}; expected (B, C) pooled features "
            "(pool maps/tokens first, see hf_stadyn.probing)."
        )
    if t.shape[1] == 0:
        raise ValueError(f"{name} has C = 0 channels; a layer needs at least one channel.")
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); check the model's numerics "
            "(e.g. fp16 overflow) before probing."
        )
    return t


@dataclass
class FeatureBatch:
    """One validated batch of one layer: ``a, b`` float64 tensors (B, C); ``factors``, ``pair_ids`` int64 (B,);
    ``groups`` int64 (B,) source-video ids or None (chunks by pair id)."""

    a: torch.Tensor
    b: torch.Tensor
    factors: np.ndarray
    pair_ids: np.ndarray
    groups: np.ndarray | None = None

    @property
    def chunk_ids(self) -> np.ndarray:
        """What :func:`assign_chunks` reads: the groups when given, else the pair ids."""
        return self.groups if self.groups is not None else self.pair_ids

    @property
    def num_channels(self) -> int:
        return int(self.a.shape[1])


def prepare_batch(
    z_a: Any,
    z_b: Any,
    factors: Any,
    *,
    layer: str,
    pair_ids: Sequence[int] | np.ndarray | None = None,
    first_pair_id: int = 0,
    groups: Sequence[int] | np.ndarray | None = None,
) -> FeatureBatch:
    """Validate ``z_a, z_b: (B, C)``, the factor labels, the pair ids and the groups of one layer's batch.

    Without ``pair_ids`` the pairs are numbered ``first_pair_id, first_pair_id + 1, ...``.
    """
    if z_b is None or factors is None:
        raise ValueError("update() needs z_a, z_b and factors (one label per pair).")
    a = as_float64_features(z_a, f"z_a (layer {layer!r})")
    b = as_float64_features(z_b, f"z_b (layer {layer!r})")
    if a.shape != b.shape:
        raise ValueError(
            f"layer {layer!r}: z_a has shape {tuple(a.shape)} but z_b has {tuple(b.shape)}; both "
            "members of each pair must have the same (B, C) shape."
        )
    batch = int(a.shape[0])
    f_idx = parse_factors(factors, batch)
    if pair_ids is None:
        ids = np.arange(first_pair_id, first_pair_id + batch)
    else:
        ids = check_ids(pair_ids, batch, "pair_ids")
    grp = check_ids(groups, batch, "groups") if groups is not None else None
    return FeatureBatch(a=a, b=b, factors=f_idx, pair_ids=ids, groups=grp)


class LayerStats:
    """Sufficient statistics of one layer: ``n (2, K)`` and ``stats (2, K, 4, C)`` in float64.

    Index 0 of the first axis is the dynamic factor, 1 the static factor; K is the number of chunks.
    The tensors are plain (never inference) tensors on ``device``.
    """

    def __init__(self, num_channels: int, num_chunks: int, device: Any = None):
        import torch

        self.num_channels = int(num_channels)
        self.num_chunks = int(num_chunks)
        dev = state_device(device if device is not None else "cpu")
        with torch.inference_mode(False):
            self.n = torch.zeros(2, num_chunks, dtype=torch.float64, device=dev)
            self.stats = torch.zeros(2, num_chunks, NUM_STATS, num_channels, dtype=torch.float64, device=dev)

    @property
    def device(self) -> torch.device:
        return self.n.device

    def to(self, device: Any) -> LayerStats:
        """Move the state to ``device`` (in place; CPU for devices without float64) and return self."""
        import torch

        dev = state_device(device)
        if dev != self.n.device:
            with torch.inference_mode(False):
                self.n = self.n.to(dev)
                self.stats = self.stats.to(dev)
        return self

    def clone(self) -> LayerStats:
        import torch

        out = LayerStats.__new__(LayerStats)
        out.num_channels, out.num_chunks = self.num_channels, self.num_chunks
        with torch.inference_mode(False):
            out.n, out.stats = self.n.clone(), self.stats.clone()
        return out

    # -- accumulation ---------------------------------------------------------------------------
    def add(self, za: torch.Tensor, zb: torch.Tensor, factor_idx: torch.Tensor, chunk_idx: torch.Tensor) -> None:
        """Add a validated batch: za, zb float64 (B, C) tensors; indices int64 tensors (B,).

        The state first moves to the features' device. On the CPU the sums use ``index_add_``; on other
        devices a one-hot matrix product, which (unlike CUDA's atomic ``index_add_``) gives the same
        bits on every run.
        """
        import torch

        self.to(za.device)
        dev = self.n.device
        slot = (factor_idx * self.num_chunks + chunk_idx).to(dev)  # (B,)
        per_pair = torch.stack([za, zb, za * za + zb * zb, za * zb], dim=1).to(dev)  # (B, 4, C)
        flat = self.stats.view(2 * self.num_chunks, NUM_STATS, self.num_channels)
        accumulate = _accumulate_index_add if dev.type == "cpu" else _accumulate_matmul
        accumulate(flat, self.n.view(-1), slot, per_pair)

    def merge_(self, other: LayerStats) -> None:
        if other.num_channels != self.num_channels or other.num_chunks != self.num_chunks:
            raise ValueError(
                f"cannot merge statistics of shape (C={other.num_channels}, K={other.num_chunks}) "
                f"into (C={self.num_channels}, K={self.num_chunks}); estimators must probe the same "
                "layers with the same num_chunks."
            )
        self.n += other.n.to(self.n.device)
        self.stats += other.stats.to(self.stats.device)

    # -- estimation -----------------------------------------------------------------------------
    _estimate = staticmethod(estimate_from_totals)

    def compute(self, layer: str, threshold: float = 0.5, confidence: float = 0.95) -> LayerBias:
        """The layer's reading (moves the state to the CPU as NumPy; the state itself stays put)."""
        n_k = self.n.cpu().numpy()  # (2, K)
        st_k = self.stats.cpu().numpy()  # (2, K, 4, C)
        return layer_bias(n_k, st_k, layer, threshold=threshold, confidence=confidence)

    def _jackknife(self, n_k: np.ndarray, st_k: np.ndarray, c: int, confidence: float) -> dict[str, Interval]:
        return jackknife_intervals(n_k, st_k, confidence)


def _accumulate_index_add(flat: torch.Tensor, n_flat: torch.Tensor, slot: torch.Tensor, per_pair: torch.Tensor) -> None:
    """``flat[slot[i]] += per_pair[i]``, ``n_flat[slot[i]] += 1`` with ``index_add_`` (CPU: fixed order).

    Shapes: ``flat (2K, 4, C)``, ``n_flat (2K,)``, ``slot (B,)`` int64, ``per_pair (B, 4, C)``.
    """
    import torch

    flat.index_add_(0, slot, per_pair)
    n_flat.index_add_(0, slot, torch.ones_like(slot, dtype=torch.float64, device=n_flat.device))


def _accumulate_matmul(flat: torch.Tensor, n_flat: torch.Tensor, slot: torch.Tensor, per_pair: torch.Tensor) -> None:
    """The same sums as :func:`_accumulate_index_add` through a one-hot ``(2K, B)`` matrix product.

    Used off the CPU: CUDA's ``index_add_`` adds with atomics in a varying order, a matrix product
    gives the same bits on every run.
    """
    import torch

    onehot = torch.zeros(flat.shape[0], slot.shape[0], dtype=torch.float64, device=slot.device)
    onehot[slot, torch.arange(slot.shape[0], device=slot.device)] = 1.0
    flat += (onehot @ per_pair.reshape(per_pair.shape[0], -1)).view_as(flat)
    n_flat += onehot.sum(1)
