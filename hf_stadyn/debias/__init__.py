"""Debiasing toward dynamics: StaticDropout, static-pair losses, StillMix, bias tracking (docs/debiasing.md).

- :class:`StaticDropout`: per-sample dropout of a bounded set of static channels (identity in eval).
- :class:`StaticDropoutConfig`, :func:`select_static_channels`: which channels, from estimator output.
- :func:`apply_static_dropout` / :func:`static_dropout_from_config`: install it in a classifier and
  record it in the model config (config.json).
- :class:`BiasTracker`: measures the layer biases on a fixed set of probe pairs, refreshes the static
  set on a schedule, logs every refresh (logging, JSON lines, trackers) and draws bias vs step.
- :class:`StaticDropoutCallback` / :data:`BiasTrackingCallback` (transformers ``Trainer``; added by
  :class:`hf_stadyn.training.StadynTrainer`) and :class:`StaticDropoutHook` (plain
  accelerate loops) drive a tracker during training.
- Static-pair losses (one shared extra forward of the frame-shuffled clips, :class:`ShuffledForward`):
  :class:`StaticPairDecorrelation` (settings :class:`DecorrelationConfig`) and
  :class:`ShuffleUniformPenalty`; :func:`debias_loss_terms` builds them for ``StadynTrainer(loss_terms=...)``.
- :class:`StillMixAugment`: a still frame of another training clip blended into each clip (label kept).
- :func:`record_debias_config` / :func:`get_debias_config`: the settings in the checkpoint config.
"""

from .config import DECORRELATION_FORMS, DecorrelationConfig, get_debias_config, record_debias_config
from .losses import (
    ShuffledForward,
    ShuffledOutputs,
    ShuffleUniformPenalty,
    StaticPairDecorrelation,
    debias_loss_terms,
    decorrelation_penalty,
    static_pair_score,
)
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
from .stillmix import StillMixAugment, StillMixDraw
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
    "DECORRELATION_FORMS",
    "PRE_CLASSIFIER",
    "SELECTIONS",
    "BiasRecord",
    "BiasTracker",
    "BiasTrackingCallback",
    "DecorrelationConfig",
    "ProbePairs",
    "ShuffleUniformPenalty",
    "ShuffledForward",
    "ShuffledOutputs",
    "StaticDropout",
    "StaticDropoutCallback",
    "StaticDropoutConfig",
    "StaticDropoutHook",
    "StaticPairDecorrelation",
    "StillMixAugment",
    "StillMixDraw",
    "apply_static_dropout",
    "debias_loss_terms",
    "decorrelation_penalty",
    "get_debias_config",
    "get_static_dropout",
    "measure_bias",
    "record_debias_config",
    "remove_static_dropout",
    "select_static_channels",
    "set_static_channels",
    "static_dropout_from_config",
    "static_pair_score",
]
