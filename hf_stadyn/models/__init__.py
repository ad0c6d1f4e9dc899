"""hf-stadyn model classes: VideoMAE / TimeSformer wrappers and the AVOS segmenter, with bias probing.

Every other video architecture of the installed transformers (ViViT, V-JEPA 2, VideoPrism, X-CLIP,
PE-video) is probed through :mod:`hf_stadyn.models.generic` (the upstream class with
:class:`UpstreamVideoProbingMixin`; docs/architectures.md); :func:`hf_stadyn.models.auto.load_model`
picks the class for any checkpoint.

Every model family is an entry of the one registry, :mod:`hf_stadyn.models.registry`; importing this
package registers all of them with the transformers Auto classes (``AutoConfig`` for
``"stadyn_videomae"`` / ``"stadyn_timesformer"`` / ``"stadyn_avos"``, ``AutoModel`` for every config,
``AutoModelForVideoClassification`` for the video classifiers). ``import hf_stadyn`` alone does the same
as soon as transformers is imported (:mod:`hf_stadyn._autoregister`). Checkpoints saved by our video
classifiers are upstream checkpoints by default (see ``StadynVideoMAEConfig.save_as_upstream``): plain
transformers loads them without hf-stadyn.
"""

from __future__ import annotations

from ._upstream import UpstreamCompatibleConfigMixin
from .configuration_avos import AVOSConfig, tiny_avos_config
from .configuration_timesformer import StadynTimesformerConfig, tiny_timesformer_config
from .configuration_videomae import StadynVideoMAEConfig, tiny_videomae_config
from .generic import UpstreamVideoProbingMixin, VideoFamily, model_family, tiny_upstream_config
from .modeling_avos import AVOSModel
from .modeling_timesformer import StadynTimesformerForVideoClassification
from .modeling_videomae import StadynVideoMAEForVideoClassification
from .registry import (
    ModelRegistration,
    model_class_for,
    register_auto_classes,
    register_model,
    registered_models,
    supported_model_types,
)

__all__ = [
    "AVOSConfig",
    "AVOSModel",
    "ModelRegistration",
    "StadynTimesformerConfig",
    "StadynTimesformerForVideoClassification",
    "StadynVideoMAEConfig",
    "StadynVideoMAEForVideoClassification",
    "UpstreamCompatibleConfigMixin",
    "UpstreamVideoProbingMixin",
    "VideoFamily",
    "model_class_for",
    "model_family",
    "register_auto_classes",
    "register_model",
    "registered_models",
    "supported_model_types",
    "tiny_avos_config",
    "tiny_timesformer_config",
    "tiny_upstream_config",
    "tiny_videomae_config",
]


register_auto_classes()
