"""Streaming static/dynamic estimator (METHOD.md sections 3-5).

Everything the layer- and channel-level estimates need follows from per-factor sufficient statistics
of the pooled pair features ``z_a, z_b: (B, C)``:

    n        number of pairs                               (per factor, per chunk)
    sum_a    sum of z_a                                    (C,)
    sum_b    sum of z_b                                    (C,)
    sumsq    sum of z_a**2 + z_b**2                        (C,)
    sum_ab   sum of z_a * z_b                              (C,)

They are accumulated in float64, split over ``num_chunks`` chunks (a pair goes to chunk
``pair_id % num_chunks``) so that jackknife intervals come for free. Memory is
``O(num_chunks * C)`` per layer and factor whatever the number of pairs, and states add up exactly
across batches, processes (``torch.distributed`` all-reduce with SUM) and resumed runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CATEGORIES",
    "DYNAMIC",
    "FACTORS",
    "STATIC",
    "Interval",
    "LayerBias",
    "LayerStats",
    "StaticDynamicEstimator",
    "parse_factors",
    "scores_from_shares",
    "shares_from_scores",
]

DYNAMIC = 0
STATIC = 1
FACTORS = ("dynamic", "static")
CATEGORIES = ("dynamic", "static", "joint", "none")
RESIDUAL_SCORE = 1.0
STATE_VERSION = 1
_N_STATS = 4  # sum_a, sum_b, sumsq, sum_ab
_DEAD_RTOL = 1e-10


def parse_factors(factors: Any, batch: int, *, name: str = "factors") -> np.ndarray:
    """Turn factor labels into an int array of DYNAMIC (0) / STATIC (1).

    Accepts strings ``"dynamic"``/``"static"`` (also ``"d"``/``"s"``), ints 0/1, bools (True = static)
    or a single label applied to the whole batch. Raises ``ValueError`` for anything else.
    """
    if isinstance(factors, (str, int, np.integer)) and not isinstance(factors, bool):
        factors = [factors] * batch
    try:
        import torch

        if isinstance(factors, torch.Tensor):
            factors = factors.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(factors, dtype=object).reshape(-1)
    if arr.shape[0] != batch:
        raise ValueError(
            f"{name} has {arr.shape[0]} labels but the features have {batch} pairs; give one factor label per pair."
        )
    out = np.empty(batch, dtype=np.int64)
    for i, f in enumerate(arr):
        if isinstance(f, (bool, np.bool_)):
            out[i] = STATIC if f else DYNAMIC
        elif isinstance(f, (int, np.integer)) and int(f) in (DYNAMIC, STATIC):
            out[i] = int(f)
        elif isinstance(f, str) and f.strip().lower() in ("dynamic", "d", "static", "s"):
            out[i] = DYNAMIC if f.strip().lower() in ("dynamic", "d") else STATIC
        else:
            raise ValueError(
                f"{name}[{i}] = {f!r} is not a known factor label; use 'dynamic' or 'static' "
                f"(or 0 = dynamic, 1 = static)."
            )
    return out


def _as_float64(x: Any, name: str):
    """Validate one feature batch and return it as a float64 torch tensor on its own device."""
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


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval with its point estimate and standard error."""

    estimate: float
    low: float
    high: float
    stderr: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "stderr": self.stderr}

    def overlaps(self, other: Interval) -> bool:
        return not (self.high < other.low or other.high < self.low)


def shares_from_scores(s_dynamic: float, s_static: float) -> tuple[float, float, float]:
    """Softmax shares (pi_D, pi_S, pi_R) of the scores with the residual fixed at 1 (METHOD.md §3)."""
    s = np.array([s_dynamic, s_static, RESIDUAL_SCORE], dtype=np.float64)
    e = np.exp(s - s.max())
    p = e / e.sum()
    return float(p[0]), float(p[1]), float(p[2])


def scores_from_shares(pi_dynamic: float, pi_static: float) -> tuple[float, float]:
    """Invert :func:`shares_from_scores`: s_F = 1 + ln(pi_F / pi_R)."""
    pi_r = 1.0 - pi_dynamic - pi_static
    return 1.0 + math.log(pi_dynamic / pi_r), 1.0 + math.log(pi_static / pi_r)


def _dims(pi_d: float, pi_s: float, c: int) -> tuple[int, int, int]:
    d_d = int(math.floor(pi_d * c))
    d_s = int(math.floor(pi_s * c))
    return d_d, d_s, c - d_d - d_s


@dataclass
class LayerBias:
    """Static/dynamic estimate of one layer (METHOD.md §3 and §4).

    Attributes:
        layer: layer name.
        num_channels: C.
        num_pairs: pairs seen per factor, ``{"dynamic": N_D, "static": N_S}``.
        s_dynamic, s_static: raw layer scores s_D and s_S.
        share: softmax shares with the residual score fixed at 1,
            ``{"dynamic", "static", "residual"}`` summing to 1.
        dims: floor(pi_F * C) for dynamic and static, the remainder to residual.
        percent: ``round(100 * dims / C, 1)`` per factor.
        rho_dynamic, rho_static: per-channel scores, shape (C,), never NaN (dead channels read 0).
        categories: per-channel category names (``CATEGORIES``), shape (C,).
        category_counts / category_percent: over all C channels (dead channels count as "none").
        dead_channels: number of channels whose variance is zero for at least one factor.
        threshold: tau used for the categories.
        intervals: jackknife intervals, keys ``s_dynamic``, ``s_static`` and ``percent_dynamic``,
            ``percent_static``, ``percent_residual`` (continuous ``100 * pi_F``), when >= 2 chunks
            have pairs of both factors; else empty.
    """

    layer: str
    num_channels: int
    num_pairs: dict[str, int]
    s_dynamic: float
    s_static: float
    share: dict[str, float]
    dims: dict[str, int]
    percent: dict[str, float]
    rho_dynamic: np.ndarray
    rho_static: np.ndarray
    categories: np.ndarray
    category_counts: dict[str, int]
    category_percent: dict[str, float]
    dead_channels: int
    threshold: float
    confidence: float = 0.95
    intervals: dict[str, Interval] = field(default_factory=dict)

    def to_dict(self, include_channels: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "layer": self.layer,
            "num_channels": self.num_channels,
            "num_pairs": dict(self.num_pairs),
            "s_dynamic": self.s_dynamic,
            "s_static": self.s_static,
            "share": dict(self.share),
            "dims": dict(self.dims),
            "percent": dict(self.percent),
            "category_counts": dict(self.category_counts),
            "category_percent": dict(self.category_percent),
            "dead_channels": self.dead_channels,
            "threshold": self.threshold,
            "confidence": self.confidence,
            "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
        }
        if include_channels:
            d["rho_dynamic"] = [float(x) for x in self.rho_dynamic]
            d["rho_static"] = [float(x) for x in self.rho_static]
            d["categories"] = [str(x) for x in self.categories]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerBias:
        return cls(
            layer=d["layer"],
            num_channels=int(d["num_channels"]),
            num_pairs={k: int(v) for k, v in d["num_pairs"].items()},
            s_dynamic=float(d["s_dynamic"]),
            s_static=float(d["s_static"]),
            share={k: float(v) for k, v in d["share"].items()},
            dims={k: int(v) for k, v in d["dims"].items()},
            percent={k: float(v) for k, v in d["percent"].items()},
            rho_dynamic=np.asarray(d.get("rho_dynamic", []), dtype=np.float64),
            rho_static=np.asarray(d.get("rho_static", []), dtype=np.float64),
            categories=np.asarray(d.get("categories", []), dtype=object),
            category_counts={k: int(v) for k, v in d["category_counts"].items()},
            category_percent={k: float(v) for k, v in d["category_percent"].items()},
            dead_channels=int(d["dead_channels"]),
            threshold=float(d["threshold"]),
            confidence=float(d.get("confidence", 0.95)),
            intervals={k: Interval(**v) for k, v in d.get("intervals", {}).items()},
        )


def categorize(rho_dynamic: np.ndarray, rho_static: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Channel categories with strict inequalities (METHOD.md §4); ties fall in "none"."""
    d_hi, d_lo = rho_dynamic > threshold, rho_dynamic < threshold
    s_hi, s_lo = rho_static > threshold, rho_static < threshold
    cat = np.full(rho_dynamic.shape, "none", dtype=object)
    cat[d_hi & s_lo] = "dynamic"
    cat[s_hi & d_lo] = "static"
    cat[d_hi & s_hi] = "joint"
    return cat


class LayerStats:
    """Sufficient statistics of one layer: ``n (2, K)`` and ``stats (2, K, 4, C)`` in float64.

    Index 0 of the first axis is the dynamic factor, 1 the static factor; K is the number of chunks.
    """

    def __init__(self, num_channels: int, num_chunks: int):
        import torch

        self.num_channels = int(num_channels)
        self.num_chunks = int(num_chunks)
        self.n = torch.zeros(2, num_chunks, dtype=torch.float64)
        self.stats = torch.zeros(2, num_chunks, _N_STATS, num_channels, dtype=torch.float64)

    # -- accumulation ---------------------------------------------------------------------------
    def add(self, za, zb, factor_idx, chunk_idx) -> None:
        """Add a validated batch: za, zb float64 (B, C) tensors; indices int64 tensors (B,)."""
        import torch

        slot = factor_idx * self.num_chunks + chunk_idx  # (B,)
        per_pair = torch.stack([za, zb, za * za + zb * zb, za * zb], dim=1)  # (B, 4, C)
        flat = self.stats.view(2 * self.num_chunks, _N_STATS, self.num_channels)
        flat.index_add_(0, slot.to(flat.device), per_pair.to(flat.device))
        self.n.view(-1).index_add_(
            0, slot.to(self.n.device), torch.ones_like(slot, dtype=torch.float64, device=self.n.device)
        )

    def merge_(self, other: LayerStats) -> None:
        if other.num_channels != self.num_channels or other.num_chunks != self.num_chunks:
            raise ValueError(
                f"cannot merge statistics of shape (C={other.num_channels}, K={other.num_chunks}) "
                f"into (C={self.num_channels}, K={self.num_chunks}); estimators must probe the same "
                "layers with the same num_chunks."
            )
        self.n += other.n
        self.stats += other.stats

    # -- estimation -----------------------------------------------------------------------------
    @staticmethod
    def _estimate(n: np.ndarray, st: np.ndarray) -> dict[str, Any]:
        """Point estimates from totals ``n: (2,)`` and ``st: (2, 4, C)`` (numpy float64)."""
        total_n = 2.0 * n.sum()  # number of feature vectors in Z
        sum_all = st[:, 0].sum(0) + st[:, 1].sum(0)  # (C,)
        sumsq_all = st[:, 2].sum(0)
        mu = sum_all / total_n
        ez2 = sumsq_all / total_n
        var_c = np.maximum(ez2 - mu * mu, 0.0)
        var_c[var_c <= _DEAD_RTOL * ez2] = 0.0
        V = float(var_c.sum())

        cov = np.zeros((2, st.shape[-1]))
        var_f = np.zeros((2, st.shape[-1]))
        for f in (DYNAMIC, STATIC):
            nf = n[f]
            mean_a = st[f, 0] / nf
            mean_b = st[f, 1] / nf
            m = 0.5 * (mean_a + mean_b)
            # (1/n) sum (a - m)(b - m) = E[ab] - m (E[a] + E[b]) + m^2 = E[ab] - m^2
            cov[f] = st[f, 3] / nf - m * m
            ez2_f = st[f, 2] / (2.0 * nf)
            v = np.maximum(ez2_f - m * m, 0.0)
            v[v <= _DEAD_RTOL * ez2_f] = 0.0
            var_f[f] = v
        if V > 0:
            s = cov.sum(axis=1) / V
        else:
            s = np.zeros(2)
        return {"s": s, "cov": cov, "var": var_f, "V": V}

    def compute(self, layer: str, threshold: float = 0.5, confidence: float = 0.95) -> LayerBias:
        n_k = self.n.cpu().numpy()  # (2, K)
        st_k = self.stats.cpu().numpy()  # (2, K, 4, C)
        n = n_k.sum(1)
        for f, name in enumerate(FACTORS):
            if n[f] < 2:
                raise ValueError(
                    f"layer {layer!r} has {int(n[f])} {name} pair(s); the estimate needs at least 2 "
                    f"pairs of each factor. Probe more pairs (num_pairs) or check the factor labels."
                )
        st = st_k.sum(1)
        est = self._estimate(n, st)
        c = self.num_channels
        s_d, s_s = float(est["s"][DYNAMIC]), float(est["s"][STATIC])
        pi = shares_from_scores(s_d, s_s)
        d_d, d_s, d_r = _dims(pi[0], pi[1], c)

        var = est["var"]
        dead = (var[DYNAMIC] == 0) | (var[STATIC] == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(var > 0, est["cov"] / np.where(var > 0, var, 1.0), 0.0)
        rho[:, dead] = 0.0
        cats = categorize(rho[DYNAMIC], rho[STATIC], threshold)
        cats[dead] = "none"
        counts = {k: int((cats == k).sum()) for k in CATEGORIES}

        intervals = self._jackknife(n_k, st_k, c, confidence)
        return LayerBias(
            layer=layer,
            num_channels=c,
            num_pairs={"dynamic": int(n[DYNAMIC]), "static": int(n[STATIC])},
            s_dynamic=s_d,
            s_static=s_s,
            share={"dynamic": pi[0], "static": pi[1], "residual": pi[2]},
            dims={"dynamic": d_d, "static": d_s, "residual": d_r},
            percent={
                "dynamic": round(100.0 * d_d / c, 1),
                "static": round(100.0 * d_s / c, 1),
                "residual": round(100.0 * d_r / c, 1),
            },
            rho_dynamic=rho[DYNAMIC],
            rho_static=rho[STATIC],
            categories=cats,
            category_counts=counts,
            category_percent={k: round(100.0 * v / c, 1) for k, v in counts.items()},
            dead_channels=int(dead.sum()),
            threshold=float(threshold),
            confidence=float(confidence),
            intervals=intervals,
        )

    def _jackknife(self, n_k: np.ndarray, st_k: np.ndarray, c: int, confidence: float) -> dict[str, Interval]:
        from statistics import NormalDist

        n_tot = n_k.sum(1)
        st_tot = st_k.sum(1)
        # Leave-one-chunk-out replicates over the chunks that hold pairs.
        used = [k for k in range(n_k.shape[1]) if n_k[:, k].sum() > 0]
        reps = []
        for k in used:
            n_loo = n_tot - n_k[:, k]
            if (n_loo < 2).any():
                return {}
            est = self._estimate(n_loo, st_tot - st_k[:, k])
            pi = shares_from_scores(*est["s"])
            reps.append([est["s"][0], est["s"][1], 100 * pi[0], 100 * pi[1], 100 * pi[2]])
        if len(reps) < 2:
            return {}
        reps_a = np.asarray(reps)
        g = len(reps)
        full = self._estimate(n_tot, st_tot)
        pi = shares_from_scores(*full["s"])
        point = np.array([full["s"][0], full["s"][1], 100 * pi[0], 100 * pi[1], 100 * pi[2]])
        se = np.sqrt((g - 1) / g * ((reps_a - reps_a.mean(0)) ** 2).sum(0))
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        names = ["s_dynamic", "s_static", "percent_dynamic", "percent_static", "percent_residual"]
        return {
            nm: Interval(float(p), float(p - z * e), float(p + z * e), float(e)) for nm, p, e in zip(names, point, se)
        }


class StaticDynamicEstimator:
    """Streaming estimator over any number of layers (torchmetrics-like).

    Example:
        >>> import numpy as np
        >>> est = StaticDynamicEstimator()
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(8, 16))
        >>> est.update(z, z + 0.1 * rng.normal(size=(8, 16)), ["static", "dynamic"] * 4, layer="block")
        >>> est.compute()["block"].num_pairs
        {'dynamic': 4, 'static': 4}

    Args:
        threshold: tau for channel categories (strict inequalities), default 0.5.
        num_chunks: K chunks for jackknife intervals; a pair goes to chunk ``pair_id % K``.
        confidence: level of the intervals (default 0.95).
    """

    def __init__(self, threshold: float = 0.5, num_chunks: int = 10, confidence: float = 0.95):
        if not (isinstance(num_chunks, int) and num_chunks >= 1):
            raise ValueError(f"num_chunks must be a positive integer, got {num_chunks!r}.")
        if not (0.0 < float(confidence) < 1.0):
            raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")
        self.threshold = _check_threshold(threshold)
        self.num_chunks = num_chunks
        self.confidence = float(confidence)
        self.layers: dict[str, LayerStats] = {}
        self._next_pair_id: dict[str, int] = {}

    # -- update ------------------------------------------------------------------------------
    def update(
        self,
        z_a: Any,
        z_b: Any = None,
        factors: Any = None,
        *,
        layer: str = "layer",
        pair_ids: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Add a batch of pairs.

        Args:
            z_a, z_b: pooled features of the pair members, (B, C) numpy arrays or torch tensors.
                Alternatively ``z_a`` may be a mapping ``{layer: (z_a, z_b)}`` to update several
                layers with the same pairs (then ``z_b`` is omitted and ``factors`` given).
            factors: per pair, "dynamic"/"static" (or 0/1), or one label for the whole batch.
            layer: layer name when single arrays are given.
            pair_ids: optional global pair indices (B,) that fix each pair's chunk; give them when
                pairs are split over processes so that intervals match a single-process run.
        """
        if isinstance(z_a, Mapping):
            if factors is None:
                factors = z_b
            for name, pair in z_a.items():
                if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                    raise ValueError(
                        f"layer {name!r}: expected a (z_a, z_b) pair of (B, C) arrays, got {type(pair).__name__}."
                    )
                self.update(pair[0], pair[1], factors, layer=name, pair_ids=pair_ids)
            return
        import torch

        if z_b is None or factors is None:
            raise ValueError("update() needs z_a, z_b and factors (one label per pair).")
        a = _as_float64(z_a, f"z_a (layer {layer!r})")
        b = _as_float64(z_b, f"z_b (layer {layer!r})")
        if a.shape != b.shape:
            raise ValueError(
                f"layer {layer!r}: z_a has shape {tuple(a.shape)} but z_b has {tuple(b.shape)}; both "
                "members of each pair must have the same (B, C) shape."
            )
        batch, c = a.shape
        f_idx = torch.from_numpy(parse_factors(factors, batch))
        if layer in self.layers and self.layers[layer].num_channels != c:
            raise ValueError(
                f"layer {layer!r} had C = {self.layers[layer].num_channels} channels and now gets C = {c}; "
                "each layer must keep its channel count."
            )
        if pair_ids is None:
            start = self._next_pair_id.get(layer, 0)
            ids = np.arange(start, start + batch)
        else:
            ids = np.asarray(pair_ids).reshape(-1)
            if ids.shape[0] != batch or ids.dtype.kind not in "iu" or (ids < 0).any():
                raise ValueError(f"pair_ids must be {batch} non-negative integers (one per pair), got {ids!r}.")
        stats = self.layers.get(layer)
        if stats is None:
            stats = self.layers[layer] = LayerStats(c, self.num_chunks)
        stats.add(a.cpu(), b.cpu(), f_idx, torch.from_numpy((ids % self.num_chunks).astype(np.int64)))
        self._next_pair_id[layer] = int(max(self._next_pair_id.get(layer, 0), ids.max() + 1))

    # -- torchmetrics-like API ----------------------------------------------------------------
    def compute(self) -> dict[str, LayerBias]:
        """Per-layer results, in the order layers were first seen."""
        if not self.layers:
            raise ValueError("the estimator has seen no pairs; call update() first.")
        return {
            name: st.compute(name, threshold=self.threshold, confidence=self.confidence)
            for name, st in self.layers.items()
        }

    def reset(self) -> None:
        self.layers.clear()
        self._next_pair_id.clear()

    def merge(self, other: StaticDynamicEstimator) -> StaticDynamicEstimator:
        """Add another estimator's statistics into this one (in place) and return self."""
        if other.num_chunks != self.num_chunks:
            raise ValueError(f"cannot merge estimators with num_chunks {other.num_chunks} and {self.num_chunks}.")
        for name, st in other.layers.items():
            if name in self.layers:
                self.layers[name].merge_(st)
            else:
                mine = self.layers[name] = LayerStats(st.num_channels, st.num_chunks)
                mine.merge_(st)
            self._next_pair_id[name] = self._next_pair_id.get(name, 0) + other._next_pair_id.get(name, 0)
        return self

    def state_dict(self) -> dict[str, Any]:
        """A dict of tensors and plain values; round-trips through ``torch.save`` / safetensors."""
        return {
            "version": STATE_VERSION,
            "threshold": self.threshold,
            "num_chunks": self.num_chunks,
            "confidence": self.confidence,
            "layers": {
                name: {"n": st.n.clone(), "stats": st.stats.clone(), "next_pair_id": self._next_pair_id[name]}
                for name, st in self.layers.items()
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        import torch

        if int(state.get("version", -1)) != STATE_VERSION:
            raise ValueError(
                f"estimator state has version {state.get('version')!r}, this hf_stadyn reads "
                f"version {STATE_VERSION}; re-run the probe with this version."
            )
        self.threshold = _check_threshold(state["threshold"])
        self.num_chunks = int(state["num_chunks"])
        self.confidence = float(state["confidence"])
        self.reset()
        for name, s in state["layers"].items():
            n = torch.as_tensor(s["n"], dtype=torch.float64)
            stats = torch.as_tensor(s["stats"], dtype=torch.float64)
            if n.shape != (2, self.num_chunks) or stats.ndim != 4 or stats.shape[:3] != (2, self.num_chunks, _N_STATS):
                raise ValueError(f"estimator state for layer {name!r} has inconsistent shapes.")
            st = LayerStats(stats.shape[-1], self.num_chunks)
            st.n.copy_(n)
            st.stats.copy_(stats)
            self.layers[name] = st
            self._next_pair_id[name] = int(s["next_pair_id"])

    def sync(self, accelerator: Any = None) -> StaticDynamicEstimator:
        """Sum the statistics over all processes (in place), via accelerate or torch.distributed.

        Every process must have seen the same layers (call after a first batch everywhere).
        """
        import torch

        names = sorted(self.layers)
        if accelerator is not None:
            if accelerator.num_processes == 1:
                return self
            for name in names:
                st = self.layers[name]
                dev = accelerator.device
                st.n = accelerator.reduce(st.n.to(dev), reduction="sum").cpu()
                st.stats = accelerator.reduce(st.stats.to(dev), reduction="sum").cpu()
            ids = torch.tensor([self._next_pair_id[n] for n in names], dtype=torch.float64, device=accelerator.device)
            ids = accelerator.reduce(ids, reduction="max").cpu()
            for n, v in zip(names, ids.tolist()):
                self._next_pair_id[n] = int(v)
            return self
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        for name in names:
            st = self.layers[name]
            dist.all_reduce(st.n, op=dist.ReduceOp.SUM)
            dist.all_reduce(st.stats, op=dist.ReduceOp.SUM)
        return self

    @property
    def num_pairs(self) -> dict[str, dict[str, int]]:
        return {
            name: {"dynamic": int(st.n[DYNAMIC].sum()), "static": int(st.n[STATIC].sum())}
            for name, st in self.layers.items()
        }


def _check_threshold(threshold: Any) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in [-1, 1], got {threshold!r}.") from None
    if not (-1.0 <= t <= 1.0) or math.isnan(t):
        raise ValueError(f"threshold must be a number in [-1, 1] (rho is a correlation), got {threshold!r}.")
    return t


def compute_from_arrays(
    z_a: Any, z_b: Any, factors: Any, *, threshold: float = 0.5, layer: str = "layer", num_chunks: int = 10
) -> LayerBias:
    """One-call convenience: the layer result of a full set of pairs."""
    est = StaticDynamicEstimator(threshold=threshold, num_chunks=num_chunks)
    est.update(z_a, z_b, factors, layer=layer)
    return est.compute()[layer]
