"""hf-stadyn: static vs dynamic information in video models (Kowal et al., TPAMI, arXiv 2211.01783).

The front door: ``hf_stadyn.__all__`` holds the names a user needs (load, probe, pairs, estimator,
report, synth, debias, train, model and config classes), re-exported lazily (heavy modules such as
transformers load on first use); everything else is importable from its subpackage
(``hf_stadyn.video``, ``hf_stadyn.pairs``, ``hf_stadyn.probing``, ``hf_stadyn.metric``, ...).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"

# The front door: the names a user needs, public name -> module that defines it.
_PUBLIC: dict[str, str] = {
    # load and probe
    "load_model": "hf_stadyn.models.auto",
    "probe": "hf_stadyn.probing.engine",
    "ProbeResult": "hf_stadyn.probing.engine",
    # pairs
    "PairDataset": "hf_stadyn.pairs",
    "TwoStreamPairDataset": "hf_stadyn.pairs",
    "ProbePairs": "hf_stadyn.pairs",
    # estimator and report
    "StaticDynamicEstimator": "hf_stadyn.metric",
    "LayerBias": "hf_stadyn.metric",
    "load_metric": "hf_stadyn.metric",
    "BiasReport": "hf_stadyn.report",
    # StaDyn-Synth
    "SynthConfig": "hf_stadyn.synth",
    "SynthDataset": "hf_stadyn.synth",
    "generate_synth": "hf_stadyn.synth",
    # debias and train
    "StaticDropout": "hf_stadyn.debias",
    "StaticDropoutConfig": "hf_stadyn.debias",
    "BiasTracker": "hf_stadyn.debias",
    "StaticDropoutCallback": "hf_stadyn.debias",
    "train_classification": "hf_stadyn.training.classification",
    "train_avos": "hf_stadyn.training.avos",
    # models and configs
    "StadynVideoMAEConfig": "hf_stadyn.models",
    "StadynVideoMAEForVideoClassification": "hf_stadyn.models",
    "StadynTimesformerConfig": "hf_stadyn.models",
    "StadynTimesformerForVideoClassification": "hf_stadyn.models",
    "AVOSConfig": "hf_stadyn.models",
    "AVOSModel": "hf_stadyn.models",
}

# Names the top level exported before 0.2. They keep working for one release, with a
# DeprecationWarning that names the subpackage to import them from.
_DEPRECATED: dict[str, str] = {
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
    "read_video_info": "hf_stadyn.video",
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

for _name in _PUBLIC:
    _DEPRECATED.pop(_name, None)

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        module = _DEPRECATED.get(name)
        if module is None:
            raise AttributeError(f"module 'hf_stadyn' has no attribute {name!r}")
        warnings.warn(
            f"hf_stadyn.{name} is deprecated and will be removed in 0.3; import it from {module} instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


# Register every hf-stadyn model type with the transformers Auto classes, without importing transformers
# now: at once if it is already imported, else right after it is (an import hook).
from hf_stadyn import _autoregister as _ar  # noqa: E402

_ar.install()
