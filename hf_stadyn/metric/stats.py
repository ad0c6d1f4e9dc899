"""The estimator's mathematics on sufficient statistics (docs/method.md §3-5), in NumPy float64.

Input everywhere is the chunked state of one layer:

    n_k   (2, K)        pairs per factor (0 = dynamic, 1 = static) and chunk
    st_k  (2, K, 4, C)  per factor and chunk: sum z_a, sum z_b, sum (z_a**2 + z_b**2), sum z_a * z_b

:func:`layer_bias` turns it into a :class:`~hf_stadyn.metric.results.LayerBias`: layer scores s_F and
softmax shares (§3), per-channel scores rho_F and categories (§4), leave-one-chunk-out jackknife
intervals (§5). Both the streaming estimator and :mod:`hf_stadyn.metric.functional` end here, so
there is one implementation of the formulas.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .factors import DYNAMIC, FACTORS, STATIC
from .results import CATEGORIES, SHARE_ALIASES, Interval, LayerBias

__all__ = [
    "NUM_STATS",
    "RESIDUAL_SCORE",
    "categorize",
    "check_threshold",
    "dims_from_shares",
    "estimate_from_totals",
    "jackknife_intervals",
    "jackknife_replicates",
    "layer_bias",
    "scores_from_shares",
    "shares_from_scores",
    "t_quantile",
]

RESIDUAL_SCORE = 1.0
#: Statistics per factor, chunk and channel: sum_a, sum_b, sumsq (a**2 + b**2), sum_ab.
NUM_STATS = 4
#: A variance below this fraction of E[z**2] is rounding noise of a constant channel: treat it as 0.
DEAD_RTOL = 1e-10
_INTERVAL_NAMES = ("s_dynamic", "s_static", "percent_dynamic", "percent_static", "percent_residual")
#: Names of the replicate vectors (LayerBias.replicates), in the order of ``_INTERVAL_NAMES``; shares in
#: percent (100 * pi_F), like the ``percent_*`` intervals.
REPLICATE_NAMES = ("s_dynamic", "s_static", "share_dynamic", "share_static", "share_residual")
#: Interval aliases: ``share_*`` carries the same interval as ``percent_*`` (continuous 100 * pi_F).
INTERVAL_ALIASES = SHARE_ALIASES


def _t_two_sided_mass(q: float, df: int) -> float:
    """P(|T| < q) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4, exact finite sums)."""
    theta = math.atan(q / math.sqrt(df))
    c2, sin, cos = math.cos(theta) ** 2, math.sin(theta), math.cos(theta)
    if df % 2 == 1:
        total, term = 0.0, cos
        for k in range(1, (df - 1) // 2 + 1):  # cos + (2/3) cos^3 + (2*4)/(3*5) cos^5 + ...
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return (2.0 / math.pi) * (theta + (sin * total if df > 1 else 0.0))
    total, term = 0.0, 1.0
    for k in range(1, df // 2 + 1):  # 1 + (1/2) cos^2 + (1*3)/(2*4) cos^4 + ...
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return sin * total


def _t_quantile_exact(confidence: float, df: int) -> float:
    """:func:`t_quantile` without scipy: bisection (to 1e-12) on the exact integer-df distribution."""
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, df) < confidence:
        hi *= 2.0
    while hi - lo > 1e-12 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_two_sided_mass(mid, df) < confidence else (lo, mid)
    return 0.5 * (lo + hi)


def t_quantile(confidence: float, df: int) -> float:
    """Two-sided Student-t critical value: q with P(|T_df| < q) = ``confidence`` (``scipy.stats.t.ppf``).

    Uses scipy when installed, else the exact finite-sum t distribution for integer ``df``
    (:func:`_t_quantile_exact`), which agrees with scipy to about 1e-12.
    """
    df = int(df)
    if df < 1:
        raise ValueError(f"a t quantile needs df >= 1 degrees of freedom, got {df}.")
    try:
        from scipy.stats import t as student_t
    except Exception:  # scipy is optional (and a broken scipy import must not break the estimator)
        return _t_quantile_exact(confidence, df)
    return float(student_t.ppf(0.5 + confidence / 2.0, df))


def check_threshold(threshold: Any) -> float:
    """Validate tau (a correlation threshold in [-1, 1]) and return it as a float."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in [-1, 1], got {threshold!r}.") from None
    if not (-1.0 <= t <= 1.0) or math.isnan(t):
        raise ValueError(f"threshold must be a number in [-1, 1] (rho is a correlation), got {threshold!r}.")
    return t


def shares_from_scores(s_dynamic: float, s_static: float) -> tuple[float, float, float]:
    """Softmax shares (pi_D, pi_S, pi_R) of the scores with the residual fixed at 1 (docs/method.md §3)."""
    s = np.array([s_dynamic, s_static, RESIDUAL_SCORE], dtype=np.float64)
    e = np.exp(s - s.max())
    p = e / e.sum()
    return float(p[0]), float(p[1]), float(p[2])


def scores_from_shares(pi_dynamic: float, pi_static: float) -> tuple[float, float]:
    """Invert :func:`shares_from_scores`: s_F = 1 + ln(pi_F / pi_R)."""
    pi_r = 1.0 - pi_dynamic - pi_static
    return 1.0 + math.log(pi_dynamic / pi_r), 1.0 + math.log(pi_static / pi_r)


def dims_from_shares(pi_dynamic: float, pi_static: float, num_channels: int) -> tuple[int, int, int]:
    """Dims (d_D, d_S, d_R): floor(pi_F * C) for the two factors, the remainder to the residual (§3)."""
    d_d = int(math.floor(pi_dynamic * num_channels))
    d_s = int(math.floor(pi_static * num_channels))
    return d_d, d_s, num_channels - d_d - d_s


def categorize(rho_dynamic: np.ndarray, rho_static: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Channel categories ``(C,)`` with strict inequalities (docs/method.md §4); ties fall in "none"."""
    d_hi, d_lo = rho_dynamic > threshold, rho_dynamic < threshold
    s_hi, s_lo = rho_static > threshold, rho_static < threshold
    cat = np.full(rho_dynamic.shape, "none", dtype=object)
    cat[d_hi & s_lo] = "dynamic"
    cat[s_hi & d_lo] = "static"
    cat[d_hi & s_hi] = "joint"
    return cat


def estimate_from_totals(n: np.ndarray, st: np.ndarray) -> dict[str, Any]:
    """Point estimates from totals ``n: (2,)`` and ``st: (2, 4, C)`` (numpy float64).

    Returns ``{"s": (2,) layer scores, "cov": (2, C), "var": (2, C) per-factor variances (0 for dead
    channels), "V": total variance}``.
    """
    total_n = 2.0 * n.sum()  # number of feature vectors in Z
    sum_all = st[:, 0].sum(0) + st[:, 1].sum(0)  # (C,)
    sumsq_all = st[:, 2].sum(0)
    mu = sum_all / total_n
    ez2 = sumsq_all / total_n
    var_c = np.maximum(ez2 - mu * mu, 0.0)
    var_c[var_c <= DEAD_RTOL * ez2] = 0.0
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
        v[v <= DEAD_RTOL * ez2_f] = 0.0
        var_f[f] = v
    s = cov.sum(axis=1) / V if V > 0 else np.zeros(2)
    return {"s": s, "cov": cov, "var": var_f, "V": V}


def jackknife_replicates(n_k: np.ndarray, st_k: np.ndarray) -> np.ndarray:
    """Leave-one-chunk-out values ``(G, 5)`` of (s_D, s_S, 100 pi_D, 100 pi_S, 100 pi_R) (docs/method.md §5).

    One row per chunk that holds pairs (in chunk order); ``(0, 5)`` when fewer than 2 such chunks
    exist or when leaving a chunk out leaves fewer than 2 pairs of a factor.
    """
    n_tot = n_k.sum(1)
    st_tot = st_k.sum(1)
    used = [k for k in range(n_k.shape[1]) if n_k[:, k].sum() > 0]
    reps = []
    for k in used:
        n_loo = n_tot - n_k[:, k]
        if (n_loo < 2).any():
            return np.zeros((0, len(REPLICATE_NAMES)))
        est = estimate_from_totals(n_loo, st_tot - st_k[:, k])
        pi = shares_from_scores(*est["s"])
        reps.append([est["s"][0], est["s"][1], 100 * pi[0], 100 * pi[1], 100 * pi[2]])
    if len(reps) < 2:
        return np.zeros((0, len(REPLICATE_NAMES)))
    return np.asarray(reps, dtype=np.float64)


def jackknife_interval(point: float, replicates: np.ndarray, confidence: float) -> Interval:
    """Jackknife interval from the full-sample value and G leave-one-out ``replicates`` (G,) >= 2.

    Standard error ``sqrt((G-1)/G * sum (r_k - mean r)^2)``; half-width ``t_{G-1} * se`` with the
    Student-t quantile on G - 1 degrees of freedom (docs/method.md §5).
    """
    g = int(replicates.shape[0])
    if g < 2:
        raise ValueError(f"a jackknife interval needs at least 2 replicates, got {g}.")
    se = float(np.sqrt((g - 1) / g * ((replicates - replicates.mean()) ** 2).sum()))
    q = t_quantile(confidence, g - 1)
    return Interval(float(point), float(point - q * se), float(point + q * se), se)


def jackknife_intervals(
    n_k: np.ndarray, st_k: np.ndarray, confidence: float, replicates: np.ndarray | None = None
) -> dict[str, Interval]:
    """Leave-one-chunk-out jackknife intervals of s_F and 100 * pi_F (docs/method.md §5).

    Keys ``s_dynamic``, ``s_static``, ``percent_*`` and their aliases ``share_*`` (same values). Uses
    the chunks that hold pairs, with a t quantile on G - 1 degrees of freedom (G = chunks used);
    returns ``{}`` when :func:`jackknife_replicates` gives none.
    """
    reps = jackknife_replicates(n_k, st_k) if replicates is None else replicates
    if reps.shape[0] < 2:
        return {}
    full = estimate_from_totals(n_k.sum(1), st_k.sum(1))
    pi = shares_from_scores(*full["s"])
    point = np.array([full["s"][0], full["s"][1], 100 * pi[0], 100 * pi[1], 100 * pi[2]])
    out = {nm: jackknife_interval(p, reps[:, i], confidence) for i, (nm, p) in enumerate(zip(_INTERVAL_NAMES, point))}
    for alias, name in INTERVAL_ALIASES.items():
        out[alias] = out[name]
    return out


def layer_bias(
    n_k: np.ndarray, st_k: np.ndarray, layer: str, *, threshold: float = 0.5, confidence: float = 0.95
) -> LayerBias:
    """The reading of one layer from its chunked state ``n_k: (2, K)``, ``st_k: (2, K, 4, C)``.

    Raises ``ValueError`` when a factor has fewer than 2 pairs.
    """
    n = n_k.sum(1)
    for f, name in enumerate(FACTORS):
        if n[f] < 2:
            raise ValueError(
                f"layer {layer!r} has {int(n[f])} {name} pair(s); the estimate needs at least 2 "
                f"pairs of each factor. Probe more pairs (num_pairs) or check the factor labels."
            )
    st = st_k.sum(1)
    est = estimate_from_totals(n, st)
    c = int(st_k.shape[-1])
    s_d, s_s = float(est["s"][DYNAMIC]), float(est["s"][STATIC])
    pi = shares_from_scores(s_d, s_s)
    d_d, d_s, d_r = dims_from_shares(pi[0], pi[1], c)

    var = est["var"]
    dead = (var[DYNAMIC] == 0) | (var[STATIC] == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(var > 0, est["cov"] / np.where(var > 0, var, 1.0), 0.0)
    rho[:, dead] = 0.0
    cats = categorize(rho[DYNAMIC], rho[STATIC], threshold)
    cats[dead] = "none"
    counts = {k: int((cats == k).sum()) for k in CATEGORIES}

    reps = jackknife_replicates(n_k, st_k)
    intervals = jackknife_intervals(n_k, st_k, confidence, replicates=reps)
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
        replicates={nm: reps[:, i].copy() for i, nm in enumerate(REPLICATE_NAMES)} if reps.shape[0] >= 2 else {},
        num_chunks_used=int(reps.shape[0]),
    )
