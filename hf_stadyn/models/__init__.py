"""hf-stadyn model classes: VideoMAE / TimeSformer wrappers with bias probing, Auto registration.

Importing this package registers our configs and models with the transformers Auto classes
(``AutoConfig`` for ``"stadyn_videomae"`` / ``"stadyn_timesformer"``, ``AutoModelForVideoClassification``
for our configs). Checkpoints saved by our classes are upstream checkpoints by default (see
``StadynVideoMAEConfig.save_as_upstream``): plain transformers loads them without hf-stadyn.
"""

from __future__ import annotations

from ._upstream import UpstreamCompatibleConfigMixin
from .configuration_avos import AVOSConfig, tiny_avos_config
from .configuration_timesformer import StadynTimesformerConfig, tiny_timesformer_config
from .configuration_videomae import StadynVideoMAEConfig, tiny_videomae_config
from .modeling_avos import AVOSModel
from .modeling_timesformer import StadynTimesformerForVideoClassification
from .modeling_videomae import StadynVideoMAEForVideoClassification

__all__ = [
    "AVOSConfig",
    "AVOSModel",
    "StadynTimesformerConfig",
    "StadynTimesformerForVideoClassification",
    "StadynVideoMAEConfig",
    "StadynVideoMAEForVideoClassification",
    "UpstreamCompatibleConfigMixin",
    "register_auto_classes",
    "tiny_avos_config",
    "tiny_timesformer_config",
    "tiny_videomae_config",
]


def register_auto_classes() -> None:
    """Register our configs / models with ``AutoConfig`` and ``AutoModelForVideoClassification``.

    Called on import; safe to call again.
    """
    from transformers import AutoConfig, AutoModelForVideoClassification

    for config_cls, model_cls in (
        (StadynVideoMAEConfig, StadynVideoMAEForVideoClassification),
        (StadynTimesformerConfig, StadynTimesformerForVideoClassification),
    ):
        AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
        AutoModelForVideoClassification.register(config_cls, model_cls, exist_ok=True)


register_auto_classes()
