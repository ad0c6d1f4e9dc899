"""Debiasing toward dynamics: StaticDropout and the bias tracking that refreshes it (docs/method.md §6).

- :class:`StaticDropout`: per-sample dropout of a bounded set of static channels (identity in eval).
- :class:`StaticDropoutConfig`, :func:`select_static_channels`: which channels, from estimator output.
- :func:`apply_static_dropout` / :func:`static_dropout_from_config`: install it in a classifier and
  record it in the model config (config.json).
- :class:`BiasTracker`: measures the layer biases on a fixed set of probe pairs, refreshes the static
  set on a schedule, logs every refresh (logging, JSON lines, trackers) and draws bias vs step.
- :class:`StaticDropoutCallback` / :data:`BiasTrackingCallback` (transformers ``Trainer``; added by
  :class:`hf_stadyn.training.StadynTrainer`) and :class:`StaticDropoutHook` (plain
  accelerate loops) drive a tracker during training.
"""

from .static_dropout import (
    PRE_CLASSIFIER,
    SELECTIONS,
    StaticDropout,
    StaticDropoutConfig,
    apply_static_dropout,
    get_static_dropout,
    remove_static_dropout,
    select_static_channels,
    set_static_channels,
    static_dropout_from_config,
)
from .tracking import (
    BiasRecord,
    BiasTracker,
    BiasTrackingCallback,
    ProbePairs,
    StaticDropoutCallback,
    StaticDropoutHook,
    measure_bias,
)

__all__ = [
    "PRE_CLASSIFIER",
    "SELECTIONS",
    "BiasRecord",
    "BiasTracker",
    "BiasTrackingCallback",
    "ProbePairs",
    "StaticDropout",
    "StaticDropoutCallback",
    "StaticDropoutConfig",
    "StaticDropoutHook",
    "apply_static_dropout",
    "get_static_dropout",
    "measure_bias",
    "remove_static_dropout",
    "select_static_channels",
    "set_static_channels",
    "static_dropout_from_config",
]
