"""Sequential stopping rule: probe until every chosen layer's share is known to +-W points (docs/method.md §5).

A naive rule ("look at the interval every few pairs, stop as soon as it is narrow enough") peeks: the
jackknife standard error has only G - 1 degrees of freedom (G = 10 chunks), so it wanders by about 25 %
around its true value, and a rule that stops at the first narrow reading stops preferentially where the
error is *under*-estimated; the interval it then reports covers less than 95 % of the time.

The rule here (**Bonferroni over a fixed grid of looks**):

- the looks are fixed before any pair is seen: ``min_pairs`` pairs, then a geometric grid with ratio
  ``growth`` (each rounded up to a multiple of the K chunks), up to ``max_pairs`` (the last look);
  L looks in all (:meth:`StoppingRule.looks`);
- at look l the *sequential* interval of each share is ``estimate +- q_L * se`` with ``se`` the
  leave-one-chunk-out jackknife standard error of docs/method.md §5 and ``q_L`` the Student-t quantile
  on G - 1 degrees of freedom at the two-sided level ``1 - alpha / L`` (``alpha = 1 - confidence``);
- the run stops at the first look where every chosen layer's three shares (dynamic, static, residual,
  in points of 100 * pi_F) have a sequential half-width ``<= W``, else at ``max_pairs``.

By the union bound the L sequential intervals hold *simultaneously* with probability >= 1 - alpha
(when each look's jackknife t interval has its nominal level), so the one reported at a data-dependent
look still covers with >= 95 %: the union bound does not care which look the rule picks. The
ordinary 95 % intervals of the report are the fixed-n intervals of the pairs used (a stopped run reads
exactly like a plain run of that many pairs); at the stop they are narrower than W by q / q_L.
:func:`simulate_stopping` measures both coverages by simulation (tests/test_stopping.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .stats import jackknife_intervals, t_quantile

__all__ = ["SHARE_QUANTITIES", "StopDecision", "StoppingRule", "simulate_stopping"]

#: The quantities the rule checks (interval keys of LayerBias / jackknife_intervals), in points of 100 * pi_F.
SHARE_QUANTITIES = ("share_dynamic", "share_static", "share_residual")


@dataclass
class StopDecision:
    """What one look found.

    Attributes:
        stop: whether the run stops here (every chosen layer met the target).
        look: index of the look (0-based) in :meth:`StoppingRule.looks`.
        num_pairs: pairs probed at this look.
        half_widths: per layer, the largest sequential half-width over the three shares (points); ``inf``
            for a layer without intervals yet (fewer than 2 chunks hold pairs).
        intervals: per layer and share, the sequential interval ``[low, high]`` (points).
        ordinary: per layer and share, the ordinary (fixed-n, ``confidence``) interval ``[low, high]``.
    """

    stop: bool
    look: int
    num_pairs: int
    half_widths: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    ordinary: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON record of the look (sequential intervals rounded to 1e-6 points)."""
        return {
            "look": self.look,
            "num_pairs": self.num_pairs,
            "met": self.stop,
            "half_widths": {k: (round(v, 6) if math.isfinite(v) else None) for k, v in self.half_widths.items()},
            "sequential_intervals": {
                layer: {q: [round(x, 6) for x in iv] for q, iv in ivs.items()} for layer, ivs in self.intervals.items()
            },
        }


@dataclass(frozen=True)
class StoppingRule:
    """Stop when every chosen layer's shares are known to +-``target_ci`` points (docs/method.md §5).

    Args:
        target_ci: W, the half-width wanted for every share, in percentage points (0 < W < 100).
        max_pairs: the most pairs the run may probe (its ``num_pairs``); the last look.
        min_pairs: the first look (default 200): fewer pairs give jackknife chunks too thin to trust.
        growth: ratio between consecutive looks (default 1.5; > 1).
        layers: the layers that must meet the target (default: every probed layer).
        confidence: level of the simultaneous (sequential) intervals (default 0.95).
        num_chunks: K, the estimator's chunks; looks are multiples of it (default 10).
    """

    target_ci: float
    max_pairs: int
    min_pairs: int = 200
    growth: float = 1.5
    layers: tuple[str, ...] | None = None
    confidence: float = 0.95
    num_chunks: int = 10

    def __post_init__(self) -> None:
        w = self.target_ci
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not (0.0 < float(w) < 100.0) or math.isnan(w):
            raise ValueError(f"target_ci must be a half-width in share points in (0, 100), got {w!r}.")
        if not (isinstance(self.max_pairs, (int, np.integer)) and self.max_pairs >= 4):
            raise ValueError(f"max_pairs must be an integer >= 4, got {self.max_pairs!r}.")
        if not (isinstance(self.min_pairs, (int, np.integer)) and self.min_pairs >= 4):
            raise ValueError(f"min_pairs must be an integer >= 4 (2 pairs per factor), got {self.min_pairs!r}.")
        if not (isinstance(self.growth, (int, float)) and self.growth > 1.0):
            raise ValueError(f"growth must be a ratio > 1 between consecutive looks, got {self.growth!r}.")
        if not 0.0 < float(self.confidence) < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence!r}.")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(str(x) for x in self.layers))

    # -- the grid ---------------------------------------------------------------------------------
    def looks(self) -> list[int]:
        """Pair counts at which the rule looks: ``min_pairs * growth**l`` rounded up to a multiple of K,
        strictly increasing, ending at ``max_pairs`` (always a look)."""
        k = max(int(self.num_chunks), 1)
        out: list[int] = []
        x = float(self.min_pairs)
        while True:
            n = int(math.ceil(x / k - 1e-9) * k)
            if n >= self.max_pairs:
                break
            if not out or n > out[-1]:
                out.append(n)
            x *= float(self.growth)
        out.append(int(self.max_pairs))
        return out

    @property
    def look_confidence(self) -> float:
        """The two-sided level of each look's interval: ``1 - (1 - confidence) / L``."""
        return 1.0 - (1.0 - float(self.confidence)) / len(self.looks())

    def quantile(self, num_chunks_used: int) -> float:
        """q_L: the Student-t quantile on G - 1 degrees of freedom at :attr:`look_confidence`."""
        return t_quantile(self.look_confidence, int(num_chunks_used) - 1)

    # -- one look -----------------------------------------------------------------------------------
    def decide_from_states(self, states: Mapping[str, tuple[np.ndarray, np.ndarray]], look: int) -> StopDecision:
        """Decide at look ``look`` from each layer's chunked state ``{layer: (n_k (2, K), st_k (2, K, 4, C))}``
        (NumPy float64, the totals of all processes)."""
        looks = self.looks()
        if not 0 <= look < len(looks):
            raise ValueError(f"look must be in [0, {len(looks)}), got {look}.")
        chosen = list(states) if self.layers is None else list(self.layers)
        missing = [name for name in chosen if name not in states]
        if missing:
            raise ValueError(f"stopping rule: layer(s) {missing} are not probed; probed: {list(states)}.")
        decision = StopDecision(stop=True, look=look, num_pairs=int(looks[look]))
        for name in chosen:
            n_k, st_k = states[name]
            ivs = jackknife_intervals(np.asarray(n_k), np.asarray(st_k), self.confidence)
            used = int((np.asarray(n_k).sum(0) > 0).sum())
            if not ivs or used < 2:
                decision.half_widths[name] = math.inf
                decision.stop = False
                continue
            q = self.quantile(used)
            worst = 0.0
            decision.intervals[name], decision.ordinary[name] = {}, {}
            for key in SHARE_QUANTITIES:
                iv = ivs[key]
                hw = q * iv.stderr
                worst = max(worst, hw)
                decision.intervals[name][key] = [iv.estimate - hw, iv.estimate + hw]
                decision.ordinary[name][key] = [iv.low, iv.high]
            decision.half_widths[name] = worst
            if not worst <= float(self.target_ci):
                decision.stop = False
        return decision

    def to_dict(self) -> dict[str, Any]:
        """JSON settings of the rule (what the report and the resume identity record)."""
        return {
            "rule": "bonferroni-over-looks",
            "target_ci": float(self.target_ci),
            "min_pairs": int(self.min_pairs),
            "growth": float(self.growth),
            "max_pairs": int(self.max_pairs),
            "layers": list(self.layers) if self.layers is not None else None,
            "confidence": float(self.confidence),
            "looks": self.looks(),
            "look_confidence": self.look_confidence,
        }


def simulate_stopping(
    rule: StoppingRule | None,
    *,
    replications: int = 300,
    num_channels: int = 8,
    seed: int = 0,
    naive_every: int = 10,
    naive_target: float | None = None,
) -> dict[str, float]:
    """Coverage of stopped intervals on simulated chunk statistics (no model; docs/method.md §5).

    Each replication draws independent pairs (one source video each, chunk = video % K) of C channels
    ``z = alpha_c * appearance + beta_c * motion + noise`` with fixed loadings: a static pair shares the
    appearance, a dynamic pair the motion, so the true scores are ``s_S = sum alpha^2 / V``,
    ``s_D = sum beta^2 / V`` (V = sum of the channel variances) and the true shares their softmax with the
    residual at 1. The pairs' sufficient statistics are accumulated per chunk with the estimator's own
    code; at each look the rule decides on them.

    Args:
        rule: the rule to check; None checks the naive rule instead (look every ``naive_every`` pairs
            from 20, stop when the ordinary 95 % half-width is ``<= naive_target``).

    Returns:
        ``{"coverage_sequential", "coverage_ordinary", "mean_pairs", "stopped_early"}``: the fraction of
        (replication, share) cases whose interval at the stop (sequential, resp. ordinary 95 %) holds the
        true share (the three shares averaged; NaN sequential for the naive rule), the mean pairs used,
        and the fraction of replications stopped before the last look.
    """
    import torch

    from .state import LayerStats, assign_chunks
    from .stats import shares_from_scores

    rng = np.random.default_rng(seed)
    c = int(num_channels)
    alpha = rng.uniform(0.3, 1.0, c)
    beta = rng.uniform(0.2, 0.8, c)
    sigma = rng.uniform(0.6, 1.2, c)
    v = float((alpha**2 + beta**2 + sigma**2).sum())
    truth = 100.0 * np.array(shares_from_scores(float((beta**2).sum() / v), float((alpha**2).sum() / v)))
    naive_w = math.inf
    if rule is not None:
        looks, k, conf = rule.looks(), rule.num_chunks, rule.confidence
        max_pairs = looks[-1]
    else:
        if naive_target is None:
            raise ValueError("simulate_stopping(None, ...) needs naive_target (the naive rule's half-width).")
        naive_w = float(naive_target)
        k, conf, max_pairs = 10, 0.95, 3000
        looks = list(range(20, max_pairs, naive_every)) + [max_pairs]
    cover_seq = cover_ord = 0.0
    pairs_used = early = 0
    for _ in range(int(replications)):
        factor = (rng.random(max_pairs) < 0.5).astype(np.int64)  # 1 static, 0 dynamic
        shared = rng.normal(size=(max_pairs, 1))
        own_a, own_b = rng.normal(size=(max_pairs, 1)), rng.normal(size=(max_pairs, 1))
        load_shared = np.where(factor[:, None] == 1, alpha, beta)  # the shared factor's loading
        load_other = np.where(factor[:, None] == 1, beta, alpha)
        za = shared * load_shared + own_a * load_other + rng.normal(size=(max_pairs, c)) * sigma
        zb = shared * load_shared + own_b * load_other + rng.normal(size=(max_pairs, c)) * sigma
        stats = LayerStats(c, k)
        chunks = assign_chunks(np.arange(max_pairs), k)
        start = 0
        for li, n in enumerate(looks):
            stats.add(
                torch.from_numpy(za[start:n]), torch.from_numpy(zb[start:n]),
                torch.from_numpy(factor[start:n]), torch.from_numpy(chunks[start:n]),
            )  # fmt: skip
            start = n
            state = (stats.n.numpy().copy(), stats.stats.numpy().copy())
            if rule is not None:
                d = rule.decide_from_states({"layer": state}, li)
                stop = d.stop or li == len(looks) - 1
                ordinary = d.ordinary.get("layer", {})
            else:
                ivs = jackknife_intervals(*state, conf)
                hw = max(t_quantile(conf, k - 1) * ivs[q].stderr for q in SHARE_QUANTITIES) if ivs else math.inf
                stop = hw <= naive_w or li == len(looks) - 1
                ordinary = {q: [ivs[q].low, ivs[q].high] for q in SHARE_QUANTITIES} if ivs else {}
                d = None
            if not stop:
                continue
            pairs_used += n
            early += int(li < len(looks) - 1)
            for i, q in enumerate(SHARE_QUANTITIES):
                if q in ordinary:
                    cover_ord += float(ordinary[q][0] <= truth[i] <= ordinary[q][1]) / 3.0
                if d is not None and "layer" in d.intervals:
                    lo, hi = d.intervals["layer"][q]
                    cover_seq += float(lo <= truth[i] <= hi) / 3.0
            break
    r = float(replications)
    return {
        "coverage_sequential": cover_seq / r if rule is not None else math.nan,
        "coverage_ordinary": cover_ord / r,
        "mean_pairs": pairs_used / r,
        "stopped_early": early / r,
    }
