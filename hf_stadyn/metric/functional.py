"""Functional form of the estimator: one call on a full set of pairs (like ``torchmetrics.functional``).

:func:`static_dynamic_bias` validates the arrays, accumulates them into the same sufficient statistics
as :class:`~hf_stadyn.metric.StaticDynamicEstimator` (:class:`~hf_stadyn.metric.state.LayerStats`) and
reads them with the same formulas (:mod:`hf_stadyn.metric.stats`), so its result is bit-identical to a
streaming estimator fed the same pairs with the same pair ids and groups. The score/share helpers of
docs/method.md §3-4 are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .results import LayerBias
from .state import LayerStats, assign_chunks, check_confidence, check_num_chunks, prepare_batch
from .stats import categorize, check_threshold, dims_from_shares, scores_from_shares, shares_from_scores

__all__ = [
    "categorize",
    "compute_from_arrays",
    "dims_from_shares",
    "scores_from_shares",
    "shares_from_scores",
    "static_dynamic_bias",
]


def static_dynamic_bias(
    z_a: Any,
    z_b: Any,
    factors: Any,
    *,
    threshold: float = 0.5,
    num_chunks: int = 10,
    confidence: float = 0.95,
    layer: str = "layer",
    pair_ids: Sequence[int] | np.ndarray | None = None,
    groups: Sequence[int] | np.ndarray | None = None,
) -> LayerBias:
    """The static/dynamic reading of one layer from all its pairs at once.

    Args:
        z_a, z_b: pooled features of the pair members, (B, C) numpy arrays or torch tensors.
        factors: per pair, "dynamic"/"static" (or 0/1), or one label for all pairs.
        threshold: tau for the channel categories (strict inequalities).
        num_chunks: K chunks of the jackknife intervals.
        confidence: level of the intervals.
        layer: the name recorded in the result (and used in error messages).
        pair_ids: global pair ids (B,); default ``0 .. B-1``. They fix the chunks when ``groups`` is None.
        groups: source-video index (B,) of each pair: all pairs of a video go to one chunk, so the
            intervals resample videos (docs/method.md §5). None: chunks by pair id (independent pairs).

    Returns:
        :class:`~hf_stadyn.metric.LayerBias`.
    """
    num_chunks = check_num_chunks(num_chunks)
    confidence = check_confidence(confidence)
    threshold = check_threshold(threshold)
    import torch

    batch = prepare_batch(z_a, z_b, factors, layer=layer, pair_ids=pair_ids, groups=groups)
    stats = LayerStats(batch.num_channels, num_chunks, device=batch.a.device)
    chunks = assign_chunks(batch.chunk_ids, num_chunks)
    stats.add(batch.a, batch.b, torch.from_numpy(batch.factors), torch.from_numpy(chunks))
    return stats.compute(layer, threshold=threshold, confidence=confidence)


#: The name used before :func:`static_dynamic_bias`; the same function.
compute_from_arrays = static_dynamic_bias
