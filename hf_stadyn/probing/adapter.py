"""The probe-adapter protocol: how any model plugs into the one probing engine.

The engine (:func:`hf_stadyn.probing.probe`) needs three things from a model, whatever its kind:

- ``probe_layer_specs()``: ``{layer name: LayerSpec}``, which modules to hook and how to pool them;
- ``probe_input_spec()``: what one input is (frame count, frame size, normalisation statistics);
- ``probe_inputs(batch, device)``: a collated batch of ``B`` pairs -> the keyword arguments (or the
  positional input) of ONE forward over the ``2B`` members, members ``a`` first, then members ``b``.

and, to build pairs from videos for that model, ``pairs_from_videos(videos, seed=..., num_pairs=..., ...)``.

Implementations:

- :class:`~hf_stadyn.probing.BiasProbingMixin`: clip models (VideoMAE, TimeSformer, ViViT, ...);
- :class:`~hf_stadyn.probing.TwoStreamProbingMixin`: two-stream models (RGB frame + flow image, AVOS);
- :class:`ModuleAdapter`: any ``torch.nn.Module`` with a ``{module name: layout}`` mapping and a
  function from uint8 clips to the model's input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from .hooks import LayerSpec, _resolve_layers

__all__ = ["ModuleAdapter", "ProbeAdapter", "adapter_for", "select_layer_specs"]


@runtime_checkable
class ProbeAdapter(Protocol):
    """What the probing engine asks of a model (see the module docstring)."""

    def probe_layer_specs(self) -> dict[str, LayerSpec]: ...

    def probe_input_spec(self) -> Mapping[str, Any]: ...

    def probe_inputs(self, batch: Mapping[str, Any], device: str | torch.device | None = None) -> Any: ...


def _as_tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def clip_members(batch: Mapping[str, Any], device: str | torch.device | None = None) -> torch.Tensor:
    """``clip_a`` and ``clip_b`` of a collated batch, ``(B, T, H, W, 3)`` each -> ``(2B, T, H, W, 3)``."""
    missing = [k for k in ("clip_a", "clip_b") if k not in batch]
    if missing:
        raise ValueError(
            f"clip pair batch has no {', '.join(missing)} (keys found: {sorted(batch)}); clip-model pairs hold "
            "clip_a and clip_b, uint8 (T, H, W, 3). Two-stream pairs need a two-stream model."
        )
    clips = torch.cat([_as_tensor(batch["clip_a"]), _as_tensor(batch["clip_b"])], dim=0)
    return clips.to(device) if device is not None else clips


class ModuleAdapter:
    """Probe any ``nn.Module``: named layers from a mapping, inputs from a function of the clips.

    Args:
        model: the module.
        layers: ``{module name: layout | LayerSpec}`` (see :class:`~hf_stadyn.probing.FeatureProbe`),
            or names of the model's own probe layers when it has them.
        forward_fn: uint8 clips ``(2B, T, H, W, 3)`` on the model's device -> the model's input: a
            tensor (passed positionally), a sequence of positional arguments or a mapping of keyword
            arguments.
        input_spec: optional ``{"num_frames", "image_size", ...}`` used when pairs are made from videos.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Mapping[str, Any] | Sequence[str],
        forward_fn: Callable[[torch.Tensor], Any],
        input_spec: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(forward_fn):
            raise ValueError("forward_fn must be callable: uint8 clips (B, T, H, W, 3) -> the model's input.")
        self.model = model
        self.forward_fn = forward_fn
        self._specs = _resolve_layers(model, layers, layout=None, num_frames=None, select=None)
        self._input_spec = dict(input_spec) if input_spec is not None else None

    def probe_layer_specs(self) -> dict[str, LayerSpec]:
        return dict(self._specs)

    def probe_input_spec(self) -> Mapping[str, Any]:
        if self._input_spec is not None:
            return self._input_spec
        own = getattr(self.model, "probe_input_spec", None)
        if callable(own):
            return own()
        raise ValueError(
            f"{type(self.model).__name__} has no input spec: pass input_spec={{'num_frames': T, 'image_size': S}} "
            "to make pairs from videos, or give a pair dataset."
        )

    def probe_inputs(self, batch: Mapping[str, Any], device: str | torch.device | None = None) -> Any:
        return self.forward_fn(clip_members(batch, device))

    def pairs_from_videos(self, videos: Any, **kwargs: Any) -> Any:
        from .mixin import clip_pairs_for_spec

        return clip_pairs_for_spec(self.probe_input_spec(), videos, **kwargs)


def adapter_for(
    model: nn.Module,
    layers: Mapping[str, Any] | Sequence[str] | None = None,
    forward_fn: Callable[[torch.Tensor], Any] | None = None,
) -> Any:
    """The probe adapter of ``model``: the model itself when it implements the protocol, else a
    :class:`ModuleAdapter` (which needs ``forward_fn`` and ``layers``)."""
    if forward_fn is not None:
        if layers is None or (
            not isinstance(layers, Mapping) and not callable(getattr(model, "probe_layer_specs", None))
        ):
            raise ValueError(
                "probing with forward_fn needs layers as a non-empty mapping {module_name: layout} (or names of "
                "the model's own probe layers)."
            )
        return ModuleAdapter(model, layers, forward_fn)
    if isinstance(model, ProbeAdapter):
        return model
    raise ValueError(
        f"{type(model).__name__} has no probing mixin: pass layers={{module_name: layout}} and forward_fn (uint8 "
        "clips -> model input) to probe any module, or use a model class with BiasProbingMixin / "
        "TwoStreamProbingMixin."
    )


def select_layer_specs(
    model: nn.Module, adapter: Any, layers: Mapping[str, Any] | Sequence[str] | str | None
) -> dict[str, LayerSpec]:
    """``{layer: LayerSpec}`` to probe: all of the adapter's layers, the named ones (in the order given)
    or a ``{name: layout | LayerSpec}`` mapping resolved against ``model``'s modules."""
    specs = adapter.probe_layer_specs()
    if layers is None or isinstance(adapter, ModuleAdapter):
        return specs
    if isinstance(layers, Mapping):
        return _resolve_layers(model, layers, layout=None, num_frames=None, select=None)
    if isinstance(layers, str):
        layers = [layers]
    names = list(layers)
    if not names:
        raise ValueError("layers is empty; pass None for every probe layer or name at least one.")
    unknown = [name for name in names if name not in specs]
    if unknown:
        raise ValueError(
            f"unknown probe layer(s) {unknown} for {type(model).__name__}; available: {', '.join(specs)}. "
            "To probe other modules pass a {module_name: layout} mapping."
        )
    return {name: specs[name] for name in names}
