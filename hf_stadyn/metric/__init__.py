"""The static/dynamic estimator (docs/method.md §3-5) and the ``evaluate`` module that wraps it.

- :mod:`.factors`: the factor vocabulary (``DYNAMIC``/``STATIC``, ``FACTORS``, :func:`parse_factors`),
  the one definition the other packages import from here.
- :class:`StaticDynamicEstimator` (:mod:`.estimator`): streaming, distributed, resumable.
- :mod:`.functional`: ``functional.static_dynamic_bias`` for a full set of pairs at once (not re-exported
  here: the name is also the folder of the ``evaluate`` module, ``static_dynamic_bias/``).
- :mod:`.results`: :class:`LayerBias`, :class:`Interval`; :mod:`.stats`: the formulas.
- :mod:`.paired`: :func:`paired_difference`, the jackknife of the difference of two readings on the same pairs.
"""

from . import functional
from .estimator import STATE_VERSION, StaticDynamicEstimator
from .evaluate_module import load_metric, metric_path, register_metric
from .factors import DYNAMIC, FACTORS, STATIC, factor_name, parse_factors
from .functional import compute_from_arrays
from .paired import paired_difference
from .results import CATEGORIES, Interval, LayerBias
from .state import LayerStats
from .stats import categorize, scores_from_shares, shares_from_scores

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
    "factor_name",
    "functional",
    "load_metric",
    "metric_path",
    "paired_difference",
    "parse_factors",
    "register_metric",
    "scores_from_shares",
    "shares_from_scores",
]
