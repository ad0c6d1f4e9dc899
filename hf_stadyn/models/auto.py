"""Load any supported checkpoint (Hub id or local folder) into the hf_stadyn class with the probing mixin.

``SUPPORTED_MODEL_TYPES`` (a tuple of ``model_type`` strings) and the ``model_type -> class`` table of
:func:`load_model` are read from the one model registry, :mod:`hf_stadyn.models.registry`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MODEL_DIR", "SUPPORTED_MODEL_TYPES", "load_model"]  # noqa: F822 (module __getattr__)

logger = logging.getLogger(__name__)

#: The embedded default checkpoint shipped inside the package (trained on StaDyn-Synth by
#: scripts/train_default_model.py).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "default_model"


def _classes() -> dict[str, Any]:
    """``{model_type: class}`` of every registered model type (from :mod:`hf_stadyn.models.registry`)."""
    from hf_stadyn.models.registry import model_class_for, supported_model_types

    return {t: model_class_for(t) for t in supported_model_types()}


def __getattr__(name: str) -> Any:
    # SUPPORTED_MODEL_TYPES is read from the registry when asked for, so types registered later count.
    if name == "SUPPORTED_MODEL_TYPES":
        from hf_stadyn.models.registry import supported_model_types

        return supported_model_types()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_model(name_or_path: str | os.PathLike | None = None, *, revision: str | None = None, **kwargs: Any):
    """Load a video model for probing.

    Args:
        name_or_path: a Hub model id (``"MCG-NJU/videomae-base-finetuned-kinetics"``) or a local folder
            holding ``config.json`` and ``model.safetensors``; ``None`` gives the embedded default.
        revision: Hub revision (branch, tag or commit).
        kwargs: passed to ``from_pretrained`` (e.g. ``dtype``).

    Weights are read from safetensors only and ``trust_remote_code`` is never enabled.

    Inputs are prepared the way the checkpoint says (docs/method.md §1.1): its
    ``video_preprocessor_config.json`` or ``preprocessor_config.json`` (read with transformers' Auto
    processor classes, :func:`hf_stadyn.models.processor.read_processor_config`) gives the
    normalisation statistics, input size and, for video processors, the frame count, and a declared
    sampling rate gives the temporal window; ``model.probe_input_spec()["processor"]`` records where
    each value came from. Without a processor file the class defaults and the config apply (source
    ``"class defaults"``).

    Raises:
        ValueError: the checkpoint's ``model_type`` is not one hf_stadyn wraps (probe it with
            ``hf_stadyn.probing.FeatureProbe`` and a layer mapping instead).
        FileNotFoundError: a local path that does not exist or has no config.json.
    """
    from transformers import AutoConfig

    if name_or_path is None:
        name_or_path = DEFAULT_MODEL_DIR
    src = str(name_or_path)
    local = Path(src).expanduser()
    if local.exists() or src.startswith((".", "/", "~")) or os.sep in src.rstrip("/").split("/", 1)[-1]:
        if not local.is_dir():
            raise FileNotFoundError(f"model folder {src!r} does not exist; give a local folder or a Hub model id.")
        if not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"model folder {src!r} has no config.json; save the model with save_pretrained() first."
            )
        src = str(local)
    try:
        config = AutoConfig.from_pretrained(src, revision=revision, trust_remote_code=False)
    except OSError as e:
        if local.is_dir():
            raise  # a local folder: its own error (a corrupt config.json, ...) is the clearer one
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"cannot load model {src!r} (revision {revision or 'main'}) from the Hub at {endpoint}: not found or not "
            f"accessible; check the id and revision, or set HF_TOKEN for a private repo ({first})"
        ) from None
    table = _classes()
    cls = table.get(config.model_type)
    if cls is None:
        raise ValueError(
            f"model {src!r} has model_type {config.model_type!r}; hf_stadyn wraps {sorted(table)}. "
            "For other architectures use hf_stadyn.probing.FeatureProbe with a {module_name: layout} mapping."
        )
    kwargs.setdefault("use_safetensors", True)
    model = cls.from_pretrained(src, revision=revision, **kwargs)
    if callable(getattr(model, "set_probe_processor", None)):
        from .processor import read_processor_config

        settings = read_processor_config(src, revision=revision)
        model.set_probe_processor(settings)
        if settings is None:
            logger.info("%s has no processor file; inputs use the class defaults (docs/method.md §1.1)", src)
        else:
            logger.info("%s: inputs prepared as its %s says", src, settings["file"])
    return model.eval()
