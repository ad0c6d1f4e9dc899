"""The checkpoint's own preprocessing: read its image / video processor settings and resolve the input spec.

docs/method.md §1.1: a checkpoint's ``video_preprocessor_config.json`` (a transformers video
processor) or else its ``preprocessor_config.json`` (an image processor) says how its inputs were
prepared: normalisation statistics, resize and centre-crop sizes and, for video processors, the frame
count. :func:`read_processor_config` reads those settings with transformers' own loading
(``AutoImageProcessor`` / ``AutoVideoProcessor``, never ``trust_remote_code``), falling back to the
file's dict when the processor class cannot be built here (e.g. video processors need torchvision);
:func:`resolve_input_spec` turns them, with the model's config and class defaults, into the values
``probe_input_spec()`` returns and a record of where each value came from (contract 5 of issue #10:
``spec["processor"]``).

Precedence of each value: the processor file, then the model's config, then the model class's defaults
(the documented fallback). A value the model cannot take (a frame count or input size different from
a fixed position table) keeps the config's value, with a warning and a note in the record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CLASS_DEFAULTS",
    "PROCESSOR_FILES",
    "SAMPLING_RATE_KEYS",
    "read_processor_config",
    "resolve_input_spec",
]

logger = logging.getLogger(__name__)

#: Processor files looked for, in order (transformers' VIDEO_PROCESSOR_NAME, IMAGE_PROCESSOR_NAME).
PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")
#: Keys (in a processor file, the config, or the config's ``stadyn`` dict) that declare the temporal
#: sampling rate: source frames between two sampled frames. window = rate x num_frames.
SAMPLING_RATE_KEYS = ("sampling_rate", "frame_sample_rate", "sample_rate", "frame_sampling_rate")
#: The ``source`` of a value that no file or config declared.
CLASS_DEFAULTS = "class defaults"

_KEYS = (
    "image_mean", "image_std", "do_normalize", "do_rescale", "rescale_factor", "do_resize", "size",
    "do_center_crop", "crop_size", "num_frames", "resample",
)  # fmt: skip


# ------------------------------------------------------------------------------------------ read
def read_processor_config(name_or_path: str | os.PathLike, *, revision: str | None = None) -> dict[str, Any] | None:
    """The processor settings of a checkpoint (local folder or Hub id), or None when it has no processor file.

    Returns:
        ``{"file", "processor_class", "loaded_with", "image_mean", "image_std", "do_normalize",
        "do_rescale", "rescale_factor", "do_resize", "size", "do_center_crop", "crop_size",
        "num_frames", "resample", "sampling_rate"}``; sizes are dicts (``{"shortest_edge": S}``,
        ``{"height": H, "width": W}``), a value the processor does not set is None. JSON-ready.
    """
    from transformers.utils import cached_file

    src = str(name_or_path)
    for fname in PROCESSOR_FILES:
        path = cached_file(
            src, fname, revision=revision,
            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
        )  # fmt: skip
        if path:
            break
    else:
        return None
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    if not isinstance(raw, dict):
        raise ValueError(f"{fname} of {src!r} is not a JSON object; fix or remove the file.")
    video = fname == PROCESSOR_FILES[0]
    values, loaded_with = _load_with_transformers(src, revision, video)
    if values is None:
        values = {k: raw.get(k) for k in _KEYS}
    else:  # keys the processor class does not know (a frame count of an image processor) come from the file
        values = {k: raw.get(k) if values.get(k) is None else values[k] for k in _KEYS}
    values["size"] = _size_dict(values["size"], square=False)
    values["crop_size"] = _size_dict(values["crop_size"], square=True)
    for k in ("image_mean", "image_std"):
        v = values[k]
        values[k] = [float(x) for x in v] if isinstance(v, (list, tuple)) else (None if v is None else float(v))
    rate = next((raw[k] for k in SAMPLING_RATE_KEYS if raw.get(k) is not None), None)
    cls_name = raw.get("video_processor_type" if video else "image_processor_type") or raw.get("image_processor_type")
    out: dict[str, Any] = {
        "file": fname,
        "processor_class": cls_name,
        "loaded_with": loaded_with,
        **{k: _jsonable(values[k]) for k in _KEYS},
        "sampling_rate": None if rate is None else int(rate),
    }
    return out


def _load_with_transformers(src: str, revision: str | None, video: bool) -> tuple[dict[str, Any] | None, str]:
    """Build the processor with the transformers Auto class; ``(None, why)`` when it cannot be built here."""
    try:
        if video:
            from transformers import AutoVideoProcessor

            proc = AutoVideoProcessor.from_pretrained(src, revision=revision, trust_remote_code=False)
            name = "transformers.AutoVideoProcessor"
        else:
            from transformers import AutoImageProcessor

            # the PIL backend needs no torchvision; the settings are the same for either backend
            proc = AutoImageProcessor.from_pretrained(src, revision=revision, trust_remote_code=False, backend="pil")
            name = "transformers.AutoImageProcessor"
    except (ImportError, ValueError, OSError, KeyError, TypeError, AttributeError) as err:
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        logger.debug("processor of %s not built with transformers (%s); reading its dict", src, why)
        return None, f"processor dict ({type(err).__name__}: {why[:120]})"
    return {k: getattr(proc, k, None) for k in _KEYS}, name


def _size_dict(size: Any, *, square: bool) -> dict[str, int] | None:
    """A processor size (SizeDict, dict, int, (h, w)) as a plain dict of its set keys, or None."""
    if size is None:
        return None
    if dataclasses.is_dataclass(size) and not isinstance(size, type):
        size = dataclasses.asdict(size)
    if isinstance(size, Mapping):
        out = {str(k): int(v) for k, v in size.items() if v is not None}
        return out or None
    if isinstance(size, (int, float)):  # legacy: an int is the square side (crop) or the shortest edge (resize)
        return {"height": int(size), "width": int(size)} if square else {"shortest_edge": int(size)}
    if isinstance(size, Sequence) and len(size) == 2:
        return {"height": int(size[0]), "width": int(size[1])}
    raise ValueError(f"processor size {size!r} is not understood; give {{'height': H, 'width': W}} or an int.")


def _jsonable(v: Any) -> Any:
    if hasattr(v, "value") and not isinstance(v, (int, float, str)):  # enums (resample)
        v = v.value
    if isinstance(v, tuple):
        return list(v)
    return v


# --------------------------------------------------------------------------------------- resolve
def resolve_input_spec(
    settings: Mapping[str, Any] | None,
    *,
    config: Any,
    default_mean: Sequence[float],
    default_std: Sequence[float],
    default_stats_source: str = CLASS_DEFAULTS,
    fixed_num_frames: bool = True,
    fixed_image_size: bool = True,
    model_name: str = "model",
) -> tuple[dict[str, Any], list[str]]:
    """The values ``probe_input_spec()`` returns, from processor settings (or None), config and defaults.

    Args:
        settings: :func:`read_processor_config`'s dict, or None (no processor file / a model built in
            memory).
        config: the model's config (``num_frames``, ``image_size``, a sampling-rate key).
        default_mean, default_std: the fallback statistics (the class's or the config's).
        default_stats_source: what to call that fallback in the record (``"class defaults"`` or
            ``"config (image_mean, image_std)"`` for a config that carries statistics).
        fixed_num_frames, fixed_image_size: the model takes only ``config.num_frames`` frames /
            ``config.image_size`` pixels (a fixed position table); a processor value that differs is
            then not used (warning).

    Returns:
        ``(values, warnings)``: values holds ``num_frames``, ``image_size`` (int, ``(H, W)`` or None),
        ``mean``, ``std`` (tuples applied to ``x / 255``), ``window`` (int or None) and ``processor``
        (the JSON-ready record of contract 5: ``source``, ``mean``, ``std``, ``size``, ``crop_size``,
        ``image_size``, ``num_frames``, ``sampling_rate``, ``window``, ``sources`` per value, ``notes``).
    """
    s = dict(settings or {})
    file = s.get("file")
    origin = file or CLASS_DEFAULTS
    cfg_src = "config"
    notes: list[str] = []
    warns: list[str] = []
    sources: dict[str, str] = {}

    # -- statistics: (x * rescale - image_mean) / image_std  ==  (x / 255 - mean) / std
    if file is not None and s.get("do_normalize") is not False and s.get("image_mean") is not None:
        m_raw, sd_raw, stats_src = s["image_mean"], s.get("image_std"), file
        if sd_raw is None:
            sd_raw, sources["std"] = list(default_std), default_stats_source
    elif file is not None and s.get("do_normalize") is False:
        m_raw, sd_raw, stats_src = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], file
        notes.append("the processor does not normalise (do_normalize false): mean 0, std 1")
    else:
        m_raw, sd_raw, stats_src = list(default_mean), list(default_std), default_stats_source
    m3, s3 = _three(m_raw, "image_mean", model_name), _three(sd_raw, "image_std", model_name)
    scale = 1.0  # the processor's pixels are (x / 255) * scale
    if file is not None:
        if s.get("do_rescale") is False:
            scale = 255.0
            notes.append("the processor does not rescale (do_rescale false): its statistics apply to 0-255 pixels")
        elif s.get("rescale_factor") is not None:
            scale = 255.0 * float(s["rescale_factor"])
            if abs(scale - 1.0) > 1e-9:
                notes.append(f"rescale_factor {s['rescale_factor']} folded into mean/std")
            else:
                scale = 1.0
    mean = tuple(v / scale for v in m3)
    std = tuple(v / scale for v in s3)
    if any(v <= 0 for v in std):
        raise ValueError(f"{model_name}: processor std {list(s3)} must be > 0; fix {origin}.")
    sources.setdefault("mean", stats_src)
    sources.setdefault("std", stats_src)

    # -- input size: crop size when the processor crops, else its resize size, else the config
    cfg_size = getattr(config, "image_size", None)
    cfg_hw = _hw(cfg_size) if cfg_size is not None else None
    size, crop = s.get("size"), s.get("crop_size")
    proc_hw: tuple[int, int] | None = None
    if file is not None:
        if s.get("do_center_crop") is not False and crop and "height" in crop and "width" in crop:
            proc_hw = (int(crop["height"]), int(crop["width"]))
        elif s.get("do_resize") is not False and size and "height" in size and "width" in size:
            proc_hw = (int(size["height"]), int(size["width"]))
        elif s.get("do_resize") is not False and size and "shortest_edge" in size:
            e = int(size["shortest_edge"])
            proc_hw = (e, e)
            notes.append(
                f"the processor resizes the shortest edge to {e} without a crop; clips are centre-cropped square"
            )
    hw = cfg_hw
    sources["image_size"] = cfg_src if cfg_hw is not None else CLASS_DEFAULTS
    if proc_hw is not None:
        if cfg_hw is not None and proc_hw != cfg_hw and fixed_image_size:
            warns.append(
                f"{model_name}: {file} gives input size {proc_hw} but the model takes only {cfg_hw} "
                f"(config.image_size, a fixed position table); using {cfg_hw}. Fix {file} or the config."
            )
            notes.append(f"processor input size {list(proc_hw)} not used: the model takes only {list(cfg_hw)}")
        else:
            hw, sources["image_size"] = proc_hw, file  # type: ignore[assignment]
    resize_edge = int(size["shortest_edge"]) if size and "shortest_edge" in size else None
    if resize_edge is not None and hw is not None and resize_edge != min(hw):
        notes.append(
            f"the processor resizes the shortest edge to {resize_edge} before cropping {min(hw)}; PairDataset "
            f"resizes the short side to {min(hw)} and crops the centre square (a wider field of view)"
        )

    # -- frame count
    cfg_t = getattr(config, "num_frames", None)
    t = int(cfg_t) if cfg_t is not None else None
    sources["num_frames"] = cfg_src if t is not None else CLASS_DEFAULTS
    proc_t = s.get("num_frames")
    if proc_t is not None and file is not None:
        if t is not None and int(proc_t) != t and fixed_num_frames:
            warns.append(
                f"{model_name}: {file} samples {proc_t} frames but the model takes only {t} (config.num_frames); "
                f"using {t}. Fix {file} or the config."
            )
            notes.append(f"processor num_frames {proc_t} not used: the model takes only {t}")
        else:
            t, sources["num_frames"] = int(proc_t), file

    # -- temporal window = sampling rate x frames, when declared
    rate, rate_src = s.get("sampling_rate"), file
    if rate is None:
        rate, rate_src = _config_rate(config), cfg_src
    window = None
    if rate is not None:
        if int(rate) < 1:
            raise ValueError(f"{model_name}: sampling rate {rate} (from {rate_src}) must be >= 1.")
        rate = int(rate)
        window = rate * t if t is not None else None
        sources["window"] = rate_src  # type: ignore[assignment]
    else:
        sources["window"] = "none declared (the default, fitted to each video)"

    image_size: int | tuple[int, int] | None = None if hw is None else (hw[0] if hw[0] == hw[1] else hw)
    record = {
        "source": origin,
        "processor_class": s.get("processor_class"),
        "loaded_with": s.get("loaded_with"),
        "mean": list(mean),
        "std": list(std),
        "size": size,
        "crop_size": crop,
        "image_size": image_size if not isinstance(image_size, tuple) else list(image_size),
        "num_frames": t,
        "sampling_rate": rate,
        "window": window,
        "sources": sources,
        "notes": notes,
    }
    values = {"num_frames": t, "image_size": image_size, "mean": mean, "std": std, "window": window}
    return {**values, "processor": record}, warns


def _three(v: Any, name: str, model_name: str) -> tuple[float, float, float]:
    if isinstance(v, (int, float)):
        return (float(v),) * 3  # type: ignore[return-value]
    vals = tuple(float(x) for x in v)
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise ValueError(f"{model_name}: {name} {list(vals)} must hold 3 values (RGB).")
    return vals  # type: ignore[return-value]


def _hw(size: Any) -> tuple[int, int]:
    if isinstance(size, (list, tuple)):
        return (int(size[0]), int(size[-1]))
    return (int(size), int(size))


def _config_rate(config: Any) -> int | None:
    for key in SAMPLING_RATE_KEYS:
        v = getattr(config, key, None)
        if v is not None:
            return int(v)
    extra = getattr(config, "stadyn", None)
    if isinstance(extra, Mapping):
        for key in SAMPLING_RATE_KEYS:
            if extra.get(key) is not None:
                return int(extra[key])
    return None
