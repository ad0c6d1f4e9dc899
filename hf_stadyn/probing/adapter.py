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
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import torch
from torch import nn

from .hooks import LayerSpec, _resolve_layers

__all__ = [
    "ModuleAdapter",
    "ProbeAdapter",
    "adapter_for",
    "default_forward_fn",
    "load_factory",
    "parse_layer_layouts",
    "select_layer_specs",
]


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
        frames = input_spec.get("num_frames") if input_spec is not None else None
        # per-frame layouts ("frames", "frame_tokens") pool per clip of the input's T frames
        self._specs = _resolve_layers(
            model, layers, layout=None, num_frames=int(frames) if frames else None, select=None
        )
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

    def probe_layers(self) -> dict[str, Any]:
        """``{layer: layout}`` of the probed layers."""
        return {name: spec.layout for name, spec in self._specs.items()}

    # ------------------------------------------------------------------ model factories
    factory: str | None = None

    @classmethod
    def from_factory(
        cls, factory: str, layers: str | Mapping[str, Any] | Sequence[str] | None = None, *, seed: int | None = None
    ) -> ModuleAdapter:
        """Build a model with a user's factory function and probe it: ``"path/to/file.py:build"``.

        This EXECUTES the file's Python code (as ``python path/to/file.py`` would): only give files you
        wrote or reviewed. The file defines:

        - the factory (``build`` here): no arguments, returns the ``nn.Module`` to probe (built and
          loaded however the user likes);
        - ``INPUT_SPEC``: ``{"num_frames": T, "image_size": S, "mean": [...], "std": [...]}`` (mean and
          std of ``x / 255``; default ImageNet's), unless the module has ``probe_input_spec()``;
        - optionally ``forward_fn(clips)``: uint8 clips ``(B, T, H, W, 3)`` -> the module's input;
          default :func:`default_forward_fn`: normalised ``(B, 3, T, H, W)`` float clips (the 3D-CNN
          convention).

        Args:
            factory: ``"file.py:function"``.
            layers: ``"name:layout,name:layout"`` (module names of ``model.named_modules()`` and
                :class:`~hf_stadyn.probing.Layout` values), a ``{name: layout}`` mapping, or names of the
                model's own probe layers when it has them.
            seed: ``torch.manual_seed`` before the factory runs (the reference at initialisation).

        Raises:
            ValueError / FileNotFoundError: one line naming the file, the function or the layer.
        """
        if isinstance(layers, str):
            layers = parse_layer_layouts(layers)  # checked before the file runs
        module, ns = load_factory(factory, seed=seed)
        if layers is None:
            if not callable(getattr(module, "probe_layer_specs", None)):
                raise ValueError(
                    f"--model_factory {factory}: give the layers to probe, --layers name:layout,... (module names of "
                    "the model and layouts such as cthw, tokens)."
                )
            layers = list(cast(Any, module).probe_layer_specs())
        spec = ns.get("INPUT_SPEC")
        if spec is None and not callable(getattr(module, "probe_input_spec", None)):
            raise ValueError(
                f"--model_factory {factory}: the file defines no INPUT_SPEC = {{'num_frames': T, 'image_size': S, "
                "'mean': [...], 'std': [...]}} and the model has no probe_input_spec(); add one."
            )
        input_spec = (
            _factory_input_spec(spec, factory) if spec is not None else dict(cast(Any, module).probe_input_spec())
        )
        fn = ns.get("forward_fn")
        if fn is not None and not callable(fn):
            raise ValueError(f"--model_factory {factory}: forward_fn in the file is not a function.")
        forward = fn if fn is not None else default_forward_fn(input_spec)
        adapter = cls(module, layers, forward, input_spec=input_spec)
        adapter.factory = factory
        return adapter

    def rebuild_reference(self, seed: int) -> ModuleAdapter:
        """The reference at initialisation: the factory file's ``build_reference()`` (the same architecture,
        not trained), run under ``torch.manual_seed(seed)``, with the same layers, input and forward_fn.

        Raises:
            ValueError: not made by :meth:`from_factory`, or the file has no ``build_reference``.
        """
        if self.factory is None:
            raise ValueError("rebuild_reference() needs an adapter made by ModuleAdapter.from_factory.")
        path = self.factory.rpartition(":")[0]
        try:
            module, _ = load_factory(f"{path}:build_reference", seed=seed)
        except ValueError as e:
            raise ValueError(
                f"--reference with --model_factory needs a function build_reference() in {path} (the same "
                f"architecture at initialisation); add one or pass --no_reference ({e})"
            ) from None
        adapter = type(self)(module, dict(self._specs), self.forward_fn, input_spec=self._input_spec)
        adapter.factory = f"{path}:build_reference"
        return adapter


def parse_layer_layouts(text: str) -> dict[str, str]:
    """``"layer1:cthw,layer2:cthw"`` -> ``{"layer1": "cthw", "layer2": "cthw"}`` (layouts checked).

    Raises:
        ValueError: an item without ``:layout``, an unknown layout or a repeated name.
    """
    from .layouts import parse_layout

    out: dict[str, str] = {}
    for item in (t.strip() for t in str(text).split(",")):
        if not item:
            continue
        name, sep, lay = item.rpartition(":")
        if not sep or not name.strip():
            raise ValueError(f"--layers item {item!r} has no layout; write name:layout (e.g. layer3:cthw).")
        name = name.strip()
        if name in out:
            raise ValueError(f"--layers names {name!r} twice; give each module once.")
        out[name] = parse_layout(lay, name=f"layout of layer {name!r}").value
    if not out:
        raise ValueError("--layers is empty; give name:layout pairs, e.g. layer3:cthw,layer4:cthw.")
    return out


def load_factory(factory: str, *, seed: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Run ``"file.py:function"`` (executing the file, see :meth:`ModuleAdapter.from_factory`).

    Returns:
        ``(module, the file's namespace)``.
    """
    import importlib.util
    import os
    from pathlib import Path

    path_text, sep, func = str(factory).rpartition(":")
    if not sep or not path_text or not func.isidentifier():
        raise ValueError(f"--model_factory {factory!r} must be path/to/file.py:function (e.g. my_models.py:build).")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"--model_factory: {path_text} is not a file; give the Python file that builds the model."
        )
    name = f"stadyn_model_factory_{abs(hash(os.fspath(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--model_factory: {path_text} cannot be imported as a Python file.")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    build = getattr(mod, func, None)
    if not callable(build):
        found = [k for k, v in vars(mod).items() if callable(v) and not k.startswith("_")]
        raise ValueError(f"--model_factory: {path_text} has no function {func!r} (functions found: {found}).")
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = build()
    else:
        model = build()
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"--model_factory: {func}() in {path_text} returned {type(model).__name__}, not a torch.nn.Module."
        )
    return model.eval(), vars(mod)


def _factory_input_spec(spec: Any, factory: str) -> dict[str, Any]:
    from .mixin import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    if not isinstance(spec, Mapping) or "num_frames" not in spec or "image_size" not in spec:
        raise ValueError(f"--model_factory {factory}: INPUT_SPEC must be a dict with num_frames and image_size.")
    given = {k: "INPUT_SPEC" for k in ("num_frames", "image_size", "mean", "std") if k in spec}
    mean = tuple(float(v) for v in spec.get("mean", IMAGENET_DEFAULT_MEAN))
    std = tuple(float(v) for v in spec.get("std", IMAGENET_DEFAULT_STD))
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"--model_factory {factory}: INPUT_SPEC mean/std need 3 values each, std > 0.")
    size = spec["image_size"]
    out = {
        "num_frames": int(spec["num_frames"]),
        "image_size": int(size) if isinstance(size, int) else tuple(int(v) for v in size),
        "mean": mean,
        "std": std,
        "window": spec.get("window"),
    }
    sources = {k: given.get(k, "class defaults (ImageNet)") for k in ("num_frames", "image_size", "mean", "std")}
    out["processor"] = {"source": f"model factory {factory}", "mean": list(mean), "std": list(std),
                        "num_frames": out["num_frames"], "image_size": spec["image_size"], "sources": sources,
                        "notes": []}  # fmt: skip
    return out


def default_forward_fn(spec: Mapping[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 clips ``(B, T, H, W, 3)`` -> ``(B, 3, T, H, W)`` float, ``(x / 255 - mean) / std`` (3D CNNs)."""
    from .mixin import clips_to_pixel_values

    mean, std = tuple(spec["mean"]), tuple(spec["std"])

    def forward_fn(clips: torch.Tensor) -> torch.Tensor:
        return clips_to_pixel_values(clips, mean, std).transpose(1, 2).contiguous()

    return forward_fn


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
