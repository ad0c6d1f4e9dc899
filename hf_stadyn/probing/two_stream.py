"""``TwoStreamProbingMixin``: the probe adapter of two-stream (RGB frame + flow image) models (docs/method.md §1.2).

A two-stream model takes one RGB frame and its colour-coded optical-flow image per sample
(``pixel_values`` and ``flow_values``, both ``(B, 3, H, W)``). Its probe layers are per-frame
``(B, C, H, W)`` maps (layout ``"chw"``, pooled over H and W, docs/method.md §2) read through named
``nn.Identity`` taps held in ``self.taps`` (an ``nn.ModuleDict``): ``app_stage{i}``, ``mot_stage{i}``
and ``fusion{i}`` for the hf-stadyn AVOS family.

The mixin implements the probe-adapter protocol of :mod:`hf_stadyn.probing.adapter`, so the one
probing engine (:func:`hf_stadyn.probing.probe`) reads these models exactly as it reads clip models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .hooks import LayerSpec
from .layouts import Layout
from .mixin import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = ["TWO_STREAM_KEYS", "TwoStreamProbingMixin", "two_stream_inputs"]

#: Item keys of a two-stream pair: (RGB frame, flow image) of member a, then of member b. The first
#: name of each tuple is the canonical one; the others are accepted aliases.
TWO_STREAM_KEYS: dict[str, tuple[str, ...]] = {
    "rgb_a": ("rgb_a", "frame_a", "image_a"),
    "flow_a": ("flow_a",),
    "rgb_b": ("rgb_b", "frame_b", "image_b"),
    "flow_b": ("flow_b",),
}


def two_stream_inputs(
    rgb: torch.Tensor, flow: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(B, H, W, 3)`` RGB frames and flow images -> normalised float ``(B, 3, H, W)`` model inputs.

    Both are rescaled to ``[0, 1]`` and normalised per channel with the same statistics,
    ``(x / 255 - mean) / std``.
    """
    if rgb.dtype != torch.uint8 or flow.dtype != torch.uint8 or rgb.ndim != 4 or rgb.shape != flow.shape:
        raise ValueError(
            f"rgb {tuple(rgb.shape)} {rgb.dtype} and flow {tuple(flow.shape)} {flow.dtype} must both be uint8 "
            "(B, H, W, 3)."
        )
    m = torch.tensor(mean, dtype=torch.float32, device=rgb.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=rgb.device).view(1, 3, 1, 1)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return ((x.permute(0, 3, 1, 2).float() / 255.0) - m) / s

    return norm(rgb), norm(flow)


def _member(batch: Mapping[str, Any], key: str) -> torch.Tensor:
    for name in TWO_STREAM_KEYS[key]:
        if name in batch:
            v = batch[name]
            return v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v))
    raise ValueError(
        f"two-stream pair batch has no {key} (looked for {TWO_STREAM_KEYS[key]}); items need the RGB frame and "
        f"flow image of both members and a factor (keys found: {sorted(batch)})."
    )


class TwoStreamProbingMixin:
    """Probe layers, input spec and pair inputs of a two-stream model whose layers are taps.

    The model class provides ``self.taps`` (``nn.ModuleDict`` of ``nn.Identity`` modules, one per probe
    layer, in probing order) and a ``config`` with ``image_mean`` / ``image_std`` (default ImageNet
    statistics) and optionally ``image_size`` (the frame side the model was trained on; ``None``
    keeps the source size when pairs are made from videos).

    A checkpoint's processor file (``preprocessor_config.json``, read by
    :func:`hf_stadyn.models.auto.load_model` into ``probe_processor`` through
    :meth:`set_probe_processor`) overrides those: its statistics and its crop size (docs/method.md §1.1).
    """

    taps: nn.ModuleDict
    probe_processor: dict[str, Any] | None = None

    # ----------------------------------------------------------------- layers
    def probe_layers(self) -> dict[str, Layout]:
        """``{layer: Layout.CHW}`` for every tap, in probing order (per-frame maps pooled over H, W)."""
        return {name: Layout.CHW for name in self.taps}

    def probe_module_name(self, name: str) -> str:
        """Module path (in ``named_modules()``) of the tap whose output is layer ``name``."""
        self.get_probe_module(name)
        return f"taps.{name}"

    def get_probe_module(self, name: str) -> nn.Module:
        """The ``nn.Identity`` tap whose output is layer ``name`` (hook it to read or edit the layer)."""
        if name not in self.taps:
            raise ValueError(f"unknown probe layer {name!r} of {type(self).__name__}; choose one of {list(self.taps)}.")
        return self.taps[name]

    def probe_layer_specs(self) -> dict[str, LayerSpec]:
        """``{layer: LayerSpec}`` of every tap (the adapter protocol)."""
        return {name: LayerSpec(module=self.probe_module_name(name), layout=Layout.CHW) for name in self.taps}

    # ------------------------------------------------------------------ input
    def set_probe_processor(self, settings: Mapping[str, Any] | None) -> None:
        """Use the checkpoint's processor settings (statistics, crop size), or None for the config's.

        ``settings`` is :func:`hf_stadyn.models.processor.read_processor_config`'s dict; a frame count
        or sampling rate in it does not apply (a two-stream pair is one frame) and is noted.
        """
        self._resolve_probe_input(settings)
        self.probe_processor = dict(settings) if settings else None

    def _resolve_probe_input(self, settings: Mapping[str, Any] | None) -> dict[str, Any]:
        from hf_stadyn.models.processor import resolve_input_spec

        cfg = getattr(self, "config", None)
        values, _ = resolve_input_spec(
            settings, config=_SizeOnly(getattr(cfg, "image_size", None)),
            default_mean=tuple(getattr(cfg, "image_mean", None) or IMAGENET_DEFAULT_MEAN),
            default_std=tuple(getattr(cfg, "image_std", None) or IMAGENET_DEFAULT_STD),
            default_stats_source="config (image_mean, image_std)",
            fixed_num_frames=False, fixed_image_size=False, model_name=type(self).__name__,
        )  # fmt: skip
        record = values["processor"]
        if record["num_frames"] is not None or record["sampling_rate"] is not None:
            record["notes"].append("frame count and sampling rate do not apply: a two-stream pair is one frame")
        record.update(num_frames=1, sampling_rate=None, window=None)
        record["sources"].update(num_frames="two-stream (one frame per pair)", window="does not apply")
        if record["image_size"] is None:
            record["sources"]["image_size"] = "source frames (config.image_size is None)"
        return values

    def probe_input_spec(self) -> dict[str, Any]:
        """``{"num_frames": 1, "image_size", "mean", "std", "window": None, "processor", "streams": ("rgb", "flow")}``.

        ``image_size`` None keeps the source frames' size; ``processor`` says where each value came from.
        """
        v = self._resolve_probe_input(self.probe_processor)
        return {
            "num_frames": 1, "image_size": v["image_size"], "mean": v["mean"], "std": v["std"], "window": None,
            "processor": v["processor"], "streams": ("rgb", "flow"),
        }  # fmt: skip

    def probe_inputs(self, batch: Mapping[str, Any], device: str | torch.device | None = None) -> dict[str, Any]:
        """A collated batch of B two-stream pairs -> ``{"pixel_values", "flow_values"}`` of ``2B`` samples.

        Members a come first, then members b (the engine splits the pooled features the same way).
        """
        spec = self.probe_input_spec()
        rgb = torch.cat([_member(batch, "rgb_a"), _member(batch, "rgb_b")], dim=0)
        flow = torch.cat([_member(batch, "flow_a"), _member(batch, "flow_b")], dim=0)
        if device is not None:
            rgb, flow = rgb.to(device), flow.to(device)
        pv, fv = two_stream_inputs(rgb, flow, spec["mean"], spec["std"])
        return {"pixel_values": pv, "flow_values": fv}

    def pairs_from_videos(self, videos: Any, *, seed: int = 0, num_pairs: int | None = None, **kwargs: Any) -> Any:
        """Two-stream pairs (every frame of every video, docs/method.md §1.2) at the model's frame size.

        The set holds one pair per frame, whatever ``num_pairs`` says (it is accepted for the protocol's
        sake and checked by the engine, which probes the first ``num_pairs`` pairs). ``window`` does not
        apply (a two-stream pair is one frame) and is refused unless left at its default.
        """
        from hf_stadyn.pairs import TwoStreamPairDataset

        kwargs.pop("num_frames", None)
        window = kwargs.pop("window", None)
        if window not in (None, 64):
            raise ValueError(
                f"window={window} does not apply to two-stream pairs (each pair is one frame); leave it out."
            )
        size = kwargs.pop("size", None) or self.probe_input_spec()["image_size"]
        return TwoStreamPairDataset(videos, size=size, seed=seed, **kwargs)


class _SizeOnly:
    """The config fields :func:`~hf_stadyn.models.processor.resolve_input_spec` reads, for a one-frame model."""

    num_frames = None

    def __init__(self, image_size: Any) -> None:
        self.image_size = image_size
