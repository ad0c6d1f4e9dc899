"""Load any supported checkpoint (Hub id or local folder) into the hf_stadyn class with the probing mixin.

``SUPPORTED_MODEL_TYPES`` (a tuple of ``model_type`` strings) and the ``model_type -> class`` table of
:func:`load_model` are read from the one model registry, :mod:`hf_stadyn.models.registry`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MODEL_DIR", "SUPPORTED_MODEL_TYPES", "check_model_folder", "load_model", "loadable_model_types"]  # noqa: F822 (module __getattr__)

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

    Architectures (:func:`loadable_model_types`): hf_stadyn's own classes (VideoMAE, TimeSformer, AVOS),
    every other architecture of transformers' ``AutoModelForVideoClassification`` mapping, their bare
    encoders and the video towers of X-CLIP and PE-video (:mod:`hf_stadyn.models.generic`: layers and
    layouts from the config, checked here against one forward on zero clips), and VidEoMT
    (:mod:`hf_stadyn.models.vis`). docs/architectures.md lists them.

    Raises:
        ValueError: the checkpoint's ``model_type`` is not one hf_stadyn probes (probe the module with
            ``stadyn probe --model_factory`` / :class:`hf_stadyn.probing.ModuleAdapter` instead), or its
            probed shapes differ from its config's.
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
    if local.is_dir():
        check_model_folder(local, src)
    try:
        config = AutoConfig.from_pretrained(src, revision=revision, trust_remote_code=False)
    except OSError as e:
        if local.is_dir():
            raise ValueError(
                f"model folder {src!r}: config.json cannot be read ({_first_line(e)}); re-save the model with "
                "save_pretrained() or fix the file."
            ) from None
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
            raise ValueError(
                f"cannot load model {src!r} (revision {revision or 'main'}): HF_HUB_OFFLINE is set and it is not in "
                "the local cache; unset HF_HUB_OFFLINE to download it, or give a local model folder"
            ) from None
        if "couldn't connect" in str(e).lower() or "offline" in str(e).lower():
            raise ValueError(
                f"cannot load model {src!r} (revision {revision or 'main'}): the Hub at {endpoint} cannot be reached "
                "and it is not in the local cache; check the network and HF_ENDPOINT, or download it first "
                f"({_first_line(e)})"
            ) from None
        raise ValueError(
            f"cannot load model {src!r} (revision {revision or 'main'}) from the Hub at {endpoint}: not found or not "
            f"accessible; check the id and revision, or set HF_TOKEN for a private repo ({_first_line(e)})"
        ) from None
    from . import generic

    table = _classes()
    vis = config.model_type in generic.VIS_MODEL_TYPES
    cls: Any = table.get(config.model_type) or generic.probe_class_for(config)
    if vis:
        cls = _vis_class(config)
    if cls is None:
        raise ValueError(
            f"model {src!r} has model_type {config.model_type!r}; hf_stadyn probes {sorted(loadable_model_types())}. "
            "For another torch module use stadyn probe --model_factory file.py:build --layers name:layout,... "
            "(or hf_stadyn.probing.ModuleAdapter)."
        )
    kwargs.setdefault("use_safetensors", True)
    try:
        model = cls.from_pretrained(src, revision=revision, **kwargs)
    except OSError as e:
        text = str(e)
        if "safetensors" in text and ("no file named" in text or "does not appear to have" in text):
            raise ValueError(
                f"model {src!r} has no safetensors weights (model.safetensors); hf_stadyn never loads pickle weights "
                "(pytorch_model.bin). Convert them: load with transformers and save_pretrained(..., "
                "safe_serialization=True), or pick a revision that has model.safetensors."
            ) from None
        raise ValueError(f"cannot load the weights of model {src!r} ({_first_line(e)}); check the files.") from None
    except Exception as e:
        if type(e).__name__ != "SafetensorError":
            raise
        raise ValueError(
            f"model {src!r}: its safetensors weights cannot be read ({_first_line(e)}); the file is truncated or "
            "corrupt: download or save it again."
        ) from None
    if vis:
        model = _vis_adapter(model)
    if callable(getattr(model, "set_probe_processor", None)):
        from .processor import read_processor_config

        upstream = isinstance(model, generic.UpstreamVideoProbingMixin)
        settings = (generic.read_probe_processor if upstream else read_processor_config)(src, revision=revision)
        model.set_probe_processor(settings)
        if settings is None:
            logger.info("%s has no processor file; inputs use the class defaults (docs/method.md §1.1)", src)
        else:
            logger.info("%s: inputs prepared as its %s says", src, settings["file"])
        if upstream:  # layers and layouts from the config, checked against one real forward
            model.check_probe_layers()
    return model.eval()


def loadable_model_types() -> tuple[str, ...]:
    """Every ``model_type`` :func:`load_model` accepts: hf_stadyn's classes (:data:`SUPPORTED_MODEL_TYPES`),
    the upstream video architectures of :mod:`hf_stadyn.models.generic` and the VIS models."""
    from hf_stadyn.models.registry import supported_model_types

    from . import generic

    return (*supported_model_types(), *generic.generic_model_types(), *generic.VIS_MODEL_TYPES)


def _vis_class(config: Any) -> Any:
    """The transformers class of a VIS checkpoint (VidEoMT: ``VideomtForUniversalSegmentation``)."""
    import transformers

    archs = [a for a in (getattr(config, "architectures", None) or []) if hasattr(transformers, a)]
    if archs:
        return getattr(transformers, archs[0])
    return transformers.AutoModelForUniversalSegmentation._model_mapping[type(config)]


def _vis_adapter(model: Any) -> Any:
    """The probe adapter of a VIS model: :func:`hf_stadyn.models.vis.load_vis_adapter` (helper module)."""
    try:
        from .vis import load_vis_adapter
    except ImportError:
        raise ValueError(
            f"{type(model).__name__}: VIS probing (hf_stadyn.models.vis) is not available yet in this hf_stadyn; "
            "probe its encoder with --model_factory and explicit --layers meanwhile."
        ) from None
    return load_vis_adapter(model)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


#: weight files transformers reads; only the safetensors ones are ever loaded by hf_stadyn.
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


def check_model_folder(folder: str | os.PathLike, name: str | None = None) -> None:
    """Cheap checks of a local model folder before anything is loaded (no weights are read).

    ``config.json`` must be JSON; the weights must be safetensors (``model.safetensors`` or a sharded
    ``model.safetensors.index.json`` whose shards all exist), each with a readable header that covers
    the whole file (a truncated download fails here, not after minutes of work).

    Raises:
        FileNotFoundError / ValueError: one line naming the folder, the file and what to do.
    """
    import json

    folder = Path(folder)
    name = name or str(folder)
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise FileNotFoundError(f"model folder {name!r} has no config.json; save the model with save_pretrained().")
    try:
        json.loads(cfg.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"model folder {name!r}: config.json is not valid JSON ({_first_line(e)}); re-save the model with "
            "save_pretrained() or fix the file."
        ) from None
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError) as e:
            raise ValueError(
                f"model folder {name!r}: model.safetensors.index.json cannot be read ({_first_line(e)}); save the "
                "model again."
            ) from None
        files = [folder / s for s in shards]
    elif (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    else:
        found = [f for f in _PICKLE_WEIGHTS if (folder / f).is_file()]
        what = f"only {', '.join(found)} (pickle weights, never loaded by hf_stadyn)" if found else "no weights"
        raise ValueError(
            f"model folder {name!r} has no model.safetensors: {what}; convert with transformers: "
            "from_pretrained(...).save_pretrained(folder, safe_serialization=True)."
        )
    from safetensors import safe_open

    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"model folder {name!r}: shard {f.name} listed in the index is missing.")
        try:
            with safe_open(str(f), framework="pt") as fh:
                fh.keys()
        except Exception as e:  # SafetensorError: header truncated, invalid or not covering the file
            raise ValueError(
                f"model folder {name!r}: {f.name} cannot be read ({_first_line(e)}); the file is truncated or "
                "corrupt: download or save it again."
            ) from None
