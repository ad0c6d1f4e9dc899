"""The static/dynamic estimator (METHOD.md §3-5) and the ``evaluate`` module that wraps it."""

from .estimator import (
    CATEGORIES,
    DYNAMIC,
    FACTORS,
    STATIC,
    Interval,
    LayerBias,
    LayerStats,
    StaticDynamicEstimator,
    categorize,
    compute_from_arrays,
    parse_factors,
    scores_from_shares,
    shares_from_scores,
)
from .evaluate_module import load_metric, metric_path, register_metric

__all__ = [
    "CATEGORIES",
    "DYNAMIC",
    "FACTORS",
    "STATIC",
    "Interval",
    "LayerBias",
    "LayerStats",
    "StaticDynamicEstimator",
    "categorize",
    "compute_from_arrays",
    "load_metric",
    "metric_path",
    "parse_factors",
    "register_metric",
    "scores_from_shares",
    "shares_from_scores",
]
