"""Bias probing: feature layouts and pooling, forward hooks for any model, and the probing mixin.

- :class:`Layout` / :func:`pool`: one pooling function per activation layout (docs/method.md §2).
- :class:`FeatureProbe`: hooks that pool chosen modules of any ``nn.Module`` during its forward pass.
- :func:`extract_features`: one inference-mode forward pass returning ``{layer: (B, C)}``.
- :class:`BiasProbingMixin` / :class:`TwoStreamProbingMixin`: the probe adapters of clip and two-stream
  models (named probe layers, input spec, pair inputs); :class:`ModuleAdapter` for any module.
- :func:`probe`: THE probing loop (one engine for the CLI, bias tracking, AVOS and the demo).
"""

from .adapter import ModuleAdapter, ProbeAdapter, adapter_for
from .engine import ProbeResult, collate_pairs, probe, probe_models
from .hooks import FeatureProbe, LayerSpec, eval_mode, extract_features, parse_autocast_dtype
from .layouts import Layout, Selector, first_tensor, parse_layout, pool
from .mixin import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    BiasProbingMixin,
    ProbeInputSpec,
    clip_pairs_for_spec,
    clips_to_pixel_values,
)
from .two_stream import TwoStreamProbingMixin, two_stream_inputs

__all__ = [
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "IMAGENET_STANDARD_MEAN",
    "IMAGENET_STANDARD_STD",
    "BiasProbingMixin",
    "FeatureProbe",
    "LayerSpec",
    "Layout",
    "ModuleAdapter",
    "ProbeAdapter",
    "ProbeInputSpec",
    "ProbeResult",
    "Selector",
    "TwoStreamProbingMixin",
    "adapter_for",
    "clip_pairs_for_spec",
    "clips_to_pixel_values",
    "collate_pairs",
    "eval_mode",
    "extract_features",
    "first_tensor",
    "parse_autocast_dtype",
    "parse_layout",
    "pool",
    "probe",
    "probe_models",
    "two_stream_inputs",
]
