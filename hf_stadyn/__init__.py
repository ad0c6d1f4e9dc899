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
    # pairs
    # synth
    # probing
    # models
    # debias
    # training
    # report / hub
    "BiasReport": "hf_stadyn.report",
    "bias_model_card": "hf_stadyn.hub",
    "write_model_card_folder": "hf_stadyn.hub",
    "push_report": "hf_stadyn.hub",
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
