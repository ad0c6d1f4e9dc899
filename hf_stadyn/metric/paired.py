"""Paired comparisons of two readings on the same pairs (docs/method.md §5).

A model and its reference (or two models) read on the same pairs share the jackknife chunks, so the
interval of their difference comes from the leave-one-chunk-out replicates of the difference, not from
two independent standard errors (which ignore that both readings move together with the pairs).
"""

from __future__ import annotations

import numpy as np

from .results import SHARE_ALIASES, Interval, LayerBias
from .stats import REPLICATE_NAMES, jackknife_interval

__all__ = ["PAIRED_QUANTITIES", "paired_difference", "point_value"]

#: Quantities :func:`paired_difference` accepts (``percent_*`` are accepted as aliases of ``share_*``).
PAIRED_QUANTITIES = REPLICATE_NAMES

_PERCENT_TO_SHARE = {v: k for k, v in SHARE_ALIASES.items()}


def _canonical(quantity: str) -> str:
    q = _PERCENT_TO_SHARE.get(quantity, quantity)
    if q not in REPLICATE_NAMES:
        raise ValueError(
            f"unknown quantity {quantity!r}; choose one of {', '.join(REPLICATE_NAMES)} "
            "(percent_* are accepted for share_*)."
        )
    return q


def point_value(bias: LayerBias, quantity: str) -> float:
    """The full-sample value of ``quantity`` of one reading (shares in percent, 100 * pi_F)."""
    q = _canonical(quantity)
    if q == "s_dynamic":
        return float(bias.s_dynamic)
    if q == "s_static":
        return float(bias.s_static)
    return 100.0 * float(bias.share[q.removeprefix("share_")])


def paired_difference(a: LayerBias, b: LayerBias, quantity: str, confidence: float = 0.95) -> Interval:
    """Interval of ``a - b`` for ``quantity`` from the jackknife of the difference over the same chunks.

    Args:
        a, b: readings of the same layer on the same pairs (same chunks; check the pair-set
            fingerprint, ``ProbeResult.settings["pair_fingerprint"]``, before calling).
        quantity: ``s_dynamic``, ``s_static``, ``share_dynamic``, ``share_static`` or ``share_residual``
            (shares in percent, 100 * pi_F; ``percent_*`` are aliases).
        confidence: level of the interval.

    Returns:
        :class:`Interval` of the difference: estimate ``value(a) - value(b)``, standard error
        ``sqrt((K-1)/K * sum_k (d_k - mean d)^2)`` over the replicate differences ``d_k``, half-width with
        a Student-t quantile on K - 1 degrees of freedom.

    Raises:
        ValueError: replicates missing (a report written before they were recorded, or fewer than 2
            usable chunks) or of different lengths (the readings did not use the same chunks).
    """
    q = _canonical(quantity)
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")
    ra, rb = a.replicates.get(q), b.replicates.get(q)
    if ra is None or rb is None or len(ra) < 2 or len(rb) < 2:
        which = "the first" if ra is None or len(ra) < 2 else "the second"
        raise ValueError(
            f"{which} reading of layer {a.layer!r} has no jackknife replicates of {q}; re-probe with this version "
            "of hf_stadyn (reports written before 0.2 have none) or compare with independent errors."
        )
    ra, rb = np.asarray(ra, dtype=np.float64), np.asarray(rb, dtype=np.float64)
    if ra.shape != rb.shape:
        raise ValueError(
            f"layer {a.layer!r}: the readings have {ra.shape[0]} and {rb.shape[0]} jackknife replicates; a paired "
            "difference needs the same chunks (the same pairs): probe both on the same pair set."
        )
    return jackknife_interval(point_value(a, q) - point_value(b, q), ra - rb, float(confidence))
