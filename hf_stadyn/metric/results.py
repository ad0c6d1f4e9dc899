"""Result types of the estimator: :class:`LayerBias` (one layer's reading) and :class:`Interval`.

Field meanings follow docs/method.md §3 (layer scores, shares, dims %) and §4 (channel scores and
categories); intervals are the jackknife intervals of docs/method.md §5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CATEGORIES", "Interval", "LayerBias"]

#: Channel categories (docs/method.md §4), in report order.
CATEGORIES = ("dynamic", "static", "joint", "none")


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


@dataclass
class LayerBias:
    """Static/dynamic estimate of one layer (docs/method.md §3 and §4).

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
        intervals: jackknife intervals (t quantile on K - 1 degrees of freedom, docs/method.md §5), keys
            ``s_dynamic``, ``s_static`` and ``percent_dynamic``, ``percent_static``, ``percent_residual``
            (continuous ``100 * pi_F``) with the aliases ``share_dynamic``, ``share_static``,
            ``share_residual`` (the same intervals), when >= 2 chunks have pairs; else empty.
        replicates: leave-one-chunk-out values, ``{"s_dynamic", "s_static", "share_dynamic",
            "share_static", "share_residual"}`` -> ``(K,)`` float64 (shares in percent, 100 * pi_F), one
            per chunk used, in chunk order; empty when fewer than 2 chunks are usable. Two readings of
            the same pairs have aligned replicates (:func:`hf_stadyn.metric.paired_difference`).
        num_chunks_used: K, the number of replicates (0 when there are none).
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
    replicates: dict[str, np.ndarray] = field(default_factory=dict)
    num_chunks_used: int = 0

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
            "replicates": {k: [float(x) for x in v] for k, v in self.replicates.items()},
            "num_chunks_used": self.num_chunks_used,
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
            intervals=_intervals_with_aliases({k: Interval(**v) for k, v in d.get("intervals", {}).items()}),
            replicates={k: np.asarray(v, dtype=np.float64) for k, v in d.get("replicates", {}).items()},
            num_chunks_used=int(d.get("num_chunks_used", 0)),
        )


#: ``share_*`` interval keys and the ``percent_*`` keys that carry the same interval (continuous 100 * pi_F).
SHARE_ALIASES = {
    "share_dynamic": "percent_dynamic",
    "share_static": "percent_static",
    "share_residual": "percent_residual",
}


def _intervals_with_aliases(intervals: dict[str, Interval]) -> dict[str, Interval]:
    """Add the ``share_*`` aliases to intervals read from an older report (which has ``percent_*`` only)."""
    for alias, name in SHARE_ALIASES.items():
        if name in intervals and alias not in intervals:
            intervals[alias] = intervals[name]
    return intervals
