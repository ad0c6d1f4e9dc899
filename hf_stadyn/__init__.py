"""hf-stadyn: static vs dynamic information in video models (Kowal et al., TPAMI, arXiv 2211.01783).

The public API is re-exported here lazily (heavy modules such as transformers load on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it. Keep one entry per line, grouped by package.
_LAZY: dict[str, str] = {
    # metric
    "StaticDynamicEstimator": "hf_stadyn.metric",
    "LayerBias": "hf_stadyn.metric",
    "Interval": "hf_stadyn.metric",
    "compute_from_arrays": "hf_stadyn.metric",
    "shares_from_scores": "hf_stadyn.metric",
    "scores_from_shares": "hf_stadyn.metric",
    "load_metric": "hf_stadyn.metric",
    "metric_path": "hf_stadyn.metric",
    "register_metric": "hf_stadyn.metric",
    # video
    "read_video": "hf_stadyn.video",
    "read_clip": "hf_stadyn.video",
    "write_video": "hf_stadyn.video",
    "probe_video": "hf_stadyn.video",
    "sample_indices": "hf_stadyn.video",
    "resize_and_crop": "hf_stadyn.video",
    "compute_flow": "hf_stadyn.video",
    "flow_to_color": "hf_stadyn.video",
    "flow_images": "hf_stadyn.video",
    "jitter_flow_image": "hf_stadyn.video",
    "VideoInfo": "hf_stadyn.video",
    "VideoClip": "hf_stadyn.video",
    # pairs
    "PairDataset": "hf_stadyn.pairs",
    "TwoStreamPairDataset": "hf_stadyn.pairs",
    "Pair": "hf_stadyn.pairs",
    "TwoStreamPair": "hf_stadyn.pairs",
    "make_pair": "hf_stadyn.pairs",
    "make_two_stream_pair": "hf_stadyn.pairs",
    "shuffle_frames": "hf_stadyn.pairs",
    "stylize": "hf_stadyn.pairs",
    "Stylizer": "hf_stadyn.pairs",
    "register_style": "hf_stadyn.pairs",
    "get_style": "hf_stadyn.pairs",
    "list_styles": "hf_stadyn.pairs",
    "DEFAULT_STYLES": "hf_stadyn.pairs",
    # synth
    "SynthConfig": "hf_stadyn.synth",
    "SynthClip": "hf_stadyn.synth",
    "SynthDataset": "hf_stadyn.synth",
    "render_clip": "hf_stadyn.synth",
    "generate_synth": "hf_stadyn.synth",
    "load_synth": "hf_stadyn.synth",
    # probing
    "probe": "hf_stadyn.probing.runner",
    "ProbeResult": "hf_stadyn.probing.runner",
    "load_model": "hf_stadyn.models.auto",
    "Layout": "hf_stadyn.probing",
    "pool": "hf_stadyn.probing",
    "LayerSpec": "hf_stadyn.probing",
    "FeatureProbe": "hf_stadyn.probing",
    "extract_features": "hf_stadyn.probing",
    "BiasProbingMixin": "hf_stadyn.probing",
    "ProbeInputSpec": "hf_stadyn.probing",
    # models
    "StadynVideoMAEConfig": "hf_stadyn.models",
    "StadynVideoMAEForVideoClassification": "hf_stadyn.models",
    "StadynTimesformerConfig": "hf_stadyn.models",
    "StadynTimesformerForVideoClassification": "hf_stadyn.models",
    "tiny_videomae_config": "hf_stadyn.models",
    "tiny_timesformer_config": "hf_stadyn.models",
    "AVOSConfig": "hf_stadyn.models.modeling_avos",
    "AVOSModel": "hf_stadyn.models.modeling_avos",
    "tiny_avos_config": "hf_stadyn.models.modeling_avos",
    # debias
    "StaticDropout": "hf_stadyn.debias",
    "StaticDropoutConfig": "hf_stadyn.debias",
    "apply_static_dropout": "hf_stadyn.debias",
    "static_dropout_from_config": "hf_stadyn.debias",
    "select_static_channels": "hf_stadyn.debias",
    "set_static_channels": "hf_stadyn.debias",
    "get_static_dropout": "hf_stadyn.debias",
    "BiasTracker": "hf_stadyn.debias",
    "BiasRecord": "hf_stadyn.debias",
    "ProbePairs": "hf_stadyn.debias",
    "measure_bias": "hf_stadyn.debias",
    "StaticDropoutCallback": "hf_stadyn.debias",
    "StaticDropoutHook": "hf_stadyn.debias",
    # training
    "ClassificationTrainingConfig": "hf_stadyn.training.classification",
    "ClassificationTrainResult": "hf_stadyn.training.classification",
    "train_classification": "hf_stadyn.training.classification",
    "evaluate_classifier": "hf_stadyn.training.classification",
    "synth_datasets": "hf_stadyn.training.classification",
    "video_folder_datasets": "hf_stadyn.training.classification",
    "hf_video_datasets": "hf_stadyn.training.classification",
    "StylizeAugment": "hf_stadyn.training.augment",
    "AVOSFrames": "hf_stadyn.training.avos",
    "AVOSTrainingArguments": "hf_stadyn.training.avos",
    "build_avos_frames": "hf_stadyn.training.avos",
    "train_avos": "hf_stadyn.training.avos",
    "evaluate_avos": "hf_stadyn.training.avos",
    "probe_avos": "hf_stadyn.training.avos",
    "SegmentationMetrics": "hf_stadyn.training.seg_metrics",
    "unit_masking": "hf_stadyn.probing.unit_masking",
    # report / hub
    "BiasReport": "hf_stadyn.report",
    "bias_model_card": "hf_stadyn.hub",
    "write_model_card_folder": "hf_stadyn.hub",
    "push_report": "hf_stadyn.hub",
    # demo
    "analyze_video": "hf_stadyn.demo",
    "DemoLimits": "hf_stadyn.demo",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_stadyn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
