"""StaDyn-Synth: labelled videos whose static and dynamic factors are known (docs/method.md §9).

In memory (fast, for training and probing on CPU)::

    from hf_stadyn.synth import SynthConfig, SynthDataset, render_clip
    train = SynthDataset("trap", 6000, SynthConfig(), seed=0, trap_share=0.99, trap_cue="invariant")
    test = SynthDataset("trap", 1000, SynthConfig(), seed=0, train=False, test_variant="conflicting")
    item = train[0]   # {"frames": (T, H, W, 3) uint8, "label", "motion", "appearance", "mask", "cue_agrees", "index"}

On disk (mp4 + npz masks + metadata that ``datasets`` loads)::

    from hf_stadyn.synth import generate, load_synth
    folder = generate("synth_motion", split="motion", num_clips=500, seed=0)
    ds = load_synth(folder)   # datasets.Dataset with video/mask path columns
"""

import importlib
from typing import Any

# The settings (config.py) import nothing heavy; the dataset, export and renderer pull in torch and
# PyAV, so they load on first use (``stadyn`` builds its parsers from the settings alone).
from .config import (
    BACKGROUNDS,
    COLOR_NAMES,
    COLORS,
    CUE_ATTRIBUTES,
    CUES,
    MOTIONS,
    SHAPES,
    SPLITS,
    TEST_VARIANTS,
    TEXTURES,
    SynthConfig,
)

_LAZY = {
    "SynthDataset": ".dataset",
    "generate": ".export",
    "generate_synth": ".export",  # the name under which the top-level ``hf_stadyn`` package exports it
    "load_instance_masks": ".export",
    "load_masks": ".export",
    "load_synth": ".export",
    "SynthClip": ".render",
    "render_clip": ".render",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_stadyn.synth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), "generate" if name == "generate_synth" else name)
    globals()[name] = value
    return value


__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "COLOR_NAMES",
    "CUES",
    "CUE_ATTRIBUTES",
    "MOTIONS",
    "SHAPES",
    "SPLITS",
    "TEST_VARIANTS",
    "TEXTURES",
    "SynthClip",
    "SynthConfig",
    "SynthDataset",
    "generate",
    "generate_synth",
    "load_instance_masks",
    "load_masks",
    "load_synth",
    "render_clip",
]
