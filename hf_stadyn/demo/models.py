"""Which model a Space request probes: the embedded default, its architecture at initialisation, the
released checkpoints bundled with the Space, or (only when the Space allows it) a Hub id.

Every choice resolves to ``(model, label)``; the label is what every output of the Space shows.

- ``"default"``: the embedded default model (``hf_stadyn/assets/default_model``, the same weights as the
  release ``stadyn-tiny-videomae-synth-motion``).
- ``"init"``: the same architecture at initialisation (seed 0): the baseline a trained model is read against.
- a released checkpoint's name (``stadyn-tiny-videomae-trap-plain``, ...): its folder under the Space's
  ``models/`` folder (``scripts/space_readings.py --copy_models`` copies them from ``model_cards/``).
- ``"hub:<owner>/<name>"``: only when the environment variable :data:`ALLOW_HUB_ENV` is ``1``; the repo must
  hold ``model.safetensors`` (no pickle weights, remote code never runs) of at most :data:`MAX_HUB_MODEL_MB`
  MB, checked from the Hub's file list before anything is downloaded.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from pathlib import Path
from typing import Any

__all__ = [
    "ALLOW_HUB_ENV",
    "DEFAULT_CHOICE",
    "INIT_CHOICE",
    "MAX_HUB_MODEL_MB",
    "MAX_MODEL_MB_ENV",
    "RELEASED_MODELS",
    "hub_allowed",
    "init_model",
    "model_choices",
    "resolve_model",
]

logger = logging.getLogger(__name__)

#: Set to ``1`` (a Space variable) to let visitors give a Hub model id.
ALLOW_HUB_ENV = "STADYN_SPACE_ALLOW_HUB"
#: Environment variable (a Space variable) with the largest weights a visitor's Hub id may have, in MB.
MAX_MODEL_MB_ENV = "STADYN_SPACE_MAX_MODEL_MB"
#: The default of :data:`MAX_MODEL_MB_ENV`.
MAX_HUB_MODEL_MB = 400.0
DEFAULT_CHOICE = "default"
INIT_CHOICE = "init"
#: The released checkpoints (model_cards/README.md), in the order the Space lists them, with what each is.
RELEASED_MODELS: dict[str, str] = {
    "stadyn-tiny-videomae-trap-plain": "plain fine-tuning on the static-cue trap",
    "stadyn-tiny-videomae-trap-staticdropout": "StaticDropout on the trap",
    "stadyn-tiny-videomae-trap-stillmix": "StillMix (still-frame mixing) on the trap",
    "stadyn-tiny-videomae-trap-decorrelation": "static-pair decorrelation on the trap",
}
_LABELS = {
    DEFAULT_CHOICE: "embedded default (stadyn-tiny-videomae-synth-motion, motion-trained)",
    INIT_CHOICE: "init: the embedded default's architecture at initialisation (seed 0)",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_INIT_CACHE: dict[tuple[str, int], Any] = {}
_INIT_LOCK = threading.Lock()


def hub_allowed() -> bool:
    """True when :data:`ALLOW_HUB_ENV` is ``1`` / ``true`` / ``yes``."""
    return os.environ.get(ALLOW_HUB_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def model_choices(models_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """``{choice: label}`` of the models a visitor may pick: default, init, and the released checkpoints found
    in ``models_dir`` (each a folder with ``config.json`` and ``model.safetensors``)."""
    out = dict(_LABELS)
    if models_dir is not None:
        root = Path(models_dir)
        for name, what in RELEASED_MODELS.items():
            if (root / name / "config.json").is_file() and (root / name / "model.safetensors").is_file():
                out[name] = f"{name} ({what})"
    return out


def init_model(seed: int = 0) -> Any:
    """The embedded default's architecture at initialisation (seeded; cached), its inputs prepared as the default's
    (the same processor settings). ``STADYN_MODEL`` does not change it, so precomputed readings of it stay valid."""
    import torch

    trained, model_id = _embedded()
    with _INIT_LOCK:
        key = (model_id, int(seed))
        if key not in _INIT_CACHE:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                ref = type(trained)(trained.config)
            if callable(getattr(ref, "set_probe_processor", None)):
                ref.set_probe_processor(getattr(trained, "probe_processor", None))
            _INIT_CACHE.clear()
            _INIT_CACHE[key] = ref.eval()
        return _INIT_CACHE[key]


def _embedded() -> tuple[Any, str]:
    from hf_stadyn.models.auto import DEFAULT_MODEL_DIR

    from . import load_demo_model

    return load_demo_model(str(DEFAULT_MODEL_DIR))


def _max_hub_mb() -> float:
    raw = os.environ.get(MAX_MODEL_MB_ENV, "").strip()
    if not raw:
        return MAX_HUB_MODEL_MB
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{MAX_MODEL_MB_ENV}={raw!r} is not a positive number of MB; fix the Space variable.")
    return value


def _check_hub_size(repo_id: str, max_mb: float) -> None:
    """ValueError unless the Hub repo has ``model.safetensors`` files totalling at most ``max_mb`` MB."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo_id, files_metadata=True)
    except Exception as e:  # not found, private, offline: one line for the visitor
        raise ValueError(
            f"cannot read Hub model {repo_id!r} ({type(e).__name__}); check the id (owner/name)."
        ) from None
    files = {s.rfilename: (s.size or 0) for s in (info.siblings or [])}
    weights = {k: v for k, v in files.items() if k.endswith(".safetensors") and "/" not in k}
    if "config.json" not in files or not weights:
        raise ValueError(
            f"Hub model {repo_id!r} has no config.json and model.safetensors at its root; the Space loads "
            "safetensors weights only (never pickle files, never remote code)."
        )
    total = sum(weights.values()) / 1e6
    if total > max_mb:
        raise ValueError(
            f"Hub model {repo_id!r} has {total:.0f} MB of weights; this Space takes models up to {max_mb:g} MB."
        )


def resolve_model(
    choice: str | None, models_dir: str | os.PathLike | None = None, *, max_hub_mb: float | None = None
) -> tuple[Any, str]:
    """``(model, label)`` for a visitor's ``choice`` (see the module docstring); ValueError for anything else.

    ``None`` or ``"default"`` gives :func:`hf_stadyn.demo.load_demo_model` ``(None)`` (so ``STADYN_MODEL`` still
    names the Space's default); its label is the model id that function returns when ``STADYN_MODEL`` is set.
    """
    from . import DEFAULT_MODEL_NAME, load_demo_model

    if choice is None or choice == DEFAULT_CHOICE:
        net, model_id = load_demo_model(None)
        return net, (_LABELS[DEFAULT_CHOICE] if model_id == DEFAULT_MODEL_NAME else model_id)
    if not isinstance(choice, str):
        raise ValueError(f"model choice must be a string, got {type(choice).__name__}.")
    if choice == INIT_CHOICE:
        return init_model(0), _LABELS[INIT_CHOICE]
    if choice in RELEASED_MODELS:
        folder = Path(models_dir) / choice if models_dir is not None else None
        if folder is None or not (folder / "model.safetensors").is_file():
            raise ValueError(f"released model {choice!r} is not bundled with this Space; pick another model.")
        net, _ = load_demo_model(str(folder))
        return net, choice
    if choice.startswith("hub:"):
        repo_id = choice[4:].strip()
        if not hub_allowed():
            raise ValueError(
                f"this Space does not load Hub models (set {ALLOW_HUB_ENV}=1 to allow it); pick a listed model."
            )
        if not _HUB_ID.match(repo_id) or ".." in repo_id:
            raise ValueError(f"{repo_id!r} is not a Hub model id; give owner/name, e.g. MCG-NJU/videomae-base.")
        _check_hub_size(repo_id, _max_hub_mb() if max_hub_mb is None else max_hub_mb)
        net, _ = load_demo_model(repo_id)
        return net, f"{repo_id} (Hub)"
    raise ValueError(f"unknown model {choice!r}; pick one of: {', '.join(model_choices(models_dir))}.")
