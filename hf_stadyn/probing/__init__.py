"""Bias probing: feature layouts and pooling, forward hooks for any model, and the probing mixin.

- :class:`Layout` / :func:`pool`: one pooling function per activation layout (METHOD.md §2).
- :class:`FeatureProbe`: hooks that pool chosen modules of any ``nn.Module`` during its forward pass.
- :func:`extract_features`: one inference-mode forward pass returning ``{layer: (B, C)}``.
- :class:`BiasProbingMixin`: named probe layers, input spec and pooled (pair) features for models.
"""

from .hooks import FeatureProbe, LayerSpec, eval_mode, extract_features, parse_autocast_dtype
from .layouts import Layout, Selector, first_tensor, parse_layout, pool
from .mixin import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    BiasProbingMixin,
    ProbeInputSpec,
    clips_to_pixel_values,
)

__all__ = [
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "IMAGENET_STANDARD_MEAN",
    "IMAGENET_STANDARD_STD",
    "BiasProbingMixin",
    "FeatureProbe",
    "LayerSpec",
    "Layout",
    "ProbeInputSpec",
    "Selector",
    "clips_to_pixel_values",
    "eval_mode",
    "extract_features",
    "first_tensor",
    "parse_autocast_dtype",
    "parse_layout",
    "pool",
]
