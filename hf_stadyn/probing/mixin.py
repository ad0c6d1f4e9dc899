"""``BiasProbingMixin``: named probe layers, input spec and one-forward pooled features for models.

Mix it into a transformers ``PreTrainedModel`` (or any ``nn.Module`` with a ``config``) *before* the
model class::

    class MyProbedVivit(BiasProbingMixin, VivitForVideoClassification):
        _probe_blocks_module = "vivit.layers"
        _probe_token_layout = "tokens_cls"

The probe layers are named model-independently: ``"embeddings"`` (patch + position embeddings),
``"block_0"`` .. ``"block_{L-1}"`` (the raw outputs of the encoder blocks, before any final norm,
pooled over all tokens, CLS included; docs/method.md §2) and ``"pre_classifier"`` (the pooled vector that
feeds the classifier, captured before ``feature_dropout`` when the model has one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from .hooks import LayerSpec, extract_features
from .layouts import Layout, parse_layout

__all__ = [
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "IMAGENET_STANDARD_MEAN",
    "IMAGENET_STANDARD_STD",
    "BiasProbingMixin",
    "ProbeInputSpec",
    "clip_pairs_for_spec",
    "clips_to_pixel_values",
]

# The image processors' defaults (transformers.utils.constants; docs/method.md §1.1).
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)

logger = logging.getLogger(__name__)

_BLOCK_CANDIDATES = ("encoder.layer", "encoder.layers", "encoder.blocks", "layers", "blocks", "layer")


class _RequiredInputSpec(TypedDict):
    num_frames: int
    image_size: int | tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class ProbeInputSpec(_RequiredInputSpec, total=False):
    """What a model expects as input: ``pixel_values`` ``(B, num_frames, 3, H, W)``.

    Keys:
        num_frames: frames per clip ``T`` (VideoMAE accepts no other count).
        image_size: side of the square input after resizing / cropping, an int like
            ``config.image_size`` (the ``size`` that ``hf_stadyn.video`` resizes to); ``(H, W)`` only
            for a model configured with a non-square input.
        mean, std: per-channel RGB normalisation applied to ``[0, 1]`` pixels.
        window: source frames a clip spans, ``sampling_rate x num_frames`` when the checkpoint's
            processor or config declares a sampling rate; None = the default (64), fitted to each video.
        processor: JSON-ready record of where each value came from (``"source"``: the processor file
            read, ``"preprocessor_config.json"`` / ``"video_preprocessor_config.json"``, or
            ``"class defaults"``; ``"mean"``, ``"std"``, ``"size"``, ``"crop_size"``, ``"image_size"``,
            ``"num_frames"``, ``"sampling_rate"``, ``"window"``, ``"sources"`` per value, ``"notes"``);
            see :func:`hf_stadyn.models.processor.resolve_input_spec` and docs/method.md §1.1.

    ``window`` and ``processor`` are always present for hf_stadyn's models; other adapters may omit them.
    """

    window: int | None
    processor: dict[str, Any]


def clips_to_pixel_values(
    clips: np.ndarray | torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    num_frames: int | None = None,
    image_size: int | Sequence[int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Turn uint8 RGB clips ``(B, T, H, W, 3)`` into normalised ``pixel_values`` ``(B, T, 3, H, W)``.

    Pixels are rescaled to ``[0, 1]`` and normalised per channel, ``(x / 255 - mean) / std``, as the
    transformers image processors do. A single clip ``(T, H, W, 3)`` gives a batch of one. No resizing
    happens here: clips must already have the model's size (see ``hf_stadyn.video`` for sampling and
    resizing).

    Raises:
        ValueError: wrong rank, channel count, dtype, frame count or size (when ``num_frames`` /
            ``image_size`` are given), with the expected values.
    """
    if isinstance(clips, np.ndarray):
        if clips.dtype != np.uint8:
            raise ValueError(
                f"clips must be uint8 RGB (0-255), got numpy dtype {clips.dtype}; convert or use pixel_values."
            )
        x = torch.from_numpy(np.ascontiguousarray(clips))
    elif isinstance(clips, torch.Tensor):
        if clips.dtype != torch.uint8:
            raise ValueError(
                f"clips must be uint8 RGB (0-255), got torch dtype {clips.dtype}; convert or use pixel_values."
            )
        x = clips
    else:
        raise ValueError(f"clips must be a numpy array or torch tensor (B, T, H, W, 3), got {type(clips).__name__}.")
    if x.ndim == 4:
        x = x.unsqueeze(0)
    if x.ndim != 5 or x.shape[-1] != len(mean):
        raise ValueError(f"clips must have shape (B, T, H, W, {len(mean)}) (channels last), got {tuple(clips.shape)}.")
    if len(mean) != len(std):
        raise ValueError(f"mean has {len(mean)} values but std has {len(std)}.")
    if num_frames is not None and x.shape[1] != num_frames:
        raise ValueError(
            f"clips have {x.shape[1]} frames but the model takes exactly {num_frames}; sample {num_frames} frames "
            "per clip (hf_stadyn.video) before probing."
        )
    if image_size is not None:
        hw = _as_hw(image_size)
        if tuple(x.shape[2:4]) != hw:
            raise ValueError(
                f"clips are {tuple(x.shape[2:4])} (H, W) but the model takes {hw}; resize/crop them first "
                "(hf_stadyn.video)."
            )
    if device is not None:
        x = x.to(device)
    x = x.permute(0, 1, 4, 2, 3).to(torch.float32) / 255.0
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 1, -1, 1, 1)
    return ((x - m) / s).to(dtype).contiguous()


def _as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(v) for v in size)
    if len(size) == 1:
        return (size[0], size[0])
    if len(size) != 2:
        raise ValueError(f"image_size {size!r} must be an int or (H, W).")
    return size  # type: ignore[return-value]


class BiasProbingMixin:
    """Static/dynamic bias probing for a model class: named layers, input spec, pooled features.

    Class attributes a model class may set (``None`` = detect from the model):

    - ``_probe_embeddings_module``: module whose output is the ``"embeddings"`` layer; default
      ``"<base_model_prefix>.embeddings"`` when it exists.
    - ``_probe_blocks_module``: the ``nn.ModuleList`` of encoder blocks; default the first of
      ``<prefix>.encoder.layer``, ``<prefix>.encoder.layers``, ``<prefix>.layers``, ... that exists.
    - ``_probe_token_layout``: ``"tokens"`` or ``"tokens_cls"`` for embeddings and blocks.
    - ``_probe_classifier_input_module``: module whose *input* is ``"pre_classifier"``; default
      ``"feature_dropout"`` when present, else ``"classifier"``.
    - ``_probe_image_mean`` / ``_probe_image_std``: the fallback normalisation, used when the checkpoint
      has no processor file (default ImageNet "default" statistics; docs/method.md §1.1).
    - ``_probe_fixed_num_frames`` / ``_probe_fixed_image_size``: the model takes only
      ``config.num_frames`` frames / ``config.image_size`` pixels (a fixed position table), so a
      processor that declares other values is overruled by the config, with a warning (default True).

    Instance attribute ``probe_processor``: the processor settings of the checkpoint
    (:func:`hf_stadyn.models.processor.read_processor_config`), set by
    :func:`hf_stadyn.models.auto.load_model` through :meth:`set_probe_processor`; ``None`` (a model
    built in memory, or a checkpoint without a processor file) means the class defaults and the config.

    Block outputs that are tuples (TimeSformer) are probed through their first tensor.
    """

    classifier_input_layer: str = "pre_classifier"
    _probe_embeddings_module: str | None = None
    _probe_blocks_module: str | None = None
    _probe_token_layout: Layout | str = Layout.TOKENS
    _probe_classifier_input_module: str | None = None
    _probe_image_mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    _probe_image_std: tuple[float, float, float] = IMAGENET_DEFAULT_STD
    _probe_fixed_num_frames: bool = True
    _probe_fixed_image_size: bool = True
    probe_processor: dict[str, Any] | None = None

    # ----------------------------------------------------------------- layers
    def probe_layer_specs(self) -> dict[str, LayerSpec]:
        """``{layer name: LayerSpec}`` for ``"embeddings"``, ``"block_i"`` and ``"pre_classifier"``."""
        assert isinstance(self, nn.Module), "BiasProbingMixin must be mixed into an nn.Module"
        modules = dict(self.named_modules())
        prefix = getattr(self, "base_model_prefix", "") or ""
        layout = parse_layout(self._probe_token_layout)
        specs: dict[str, LayerSpec] = {}

        emb = self._probe_embeddings_module or _first_existing(modules, prefix, ("embeddings",))
        if emb is not None and emb in modules:
            specs["embeddings"] = LayerSpec(module=emb, layout=layout)

        blocks = self._probe_blocks_module or _first_existing(modules, prefix, _BLOCK_CANDIDATES, list_only=True)
        if blocks is None or not isinstance(modules.get(blocks), nn.ModuleList):
            raise ValueError(
                f"{type(self).__name__}: cannot find the encoder blocks (an nn.ModuleList); set the class "
                "attribute _probe_blocks_module to its module name, e.g. 'vivit.layers'."
            )
        for i in range(len(modules[blocks])):
            specs[f"block_{i}"] = LayerSpec(module=f"{blocks}.{i}", layout=layout)

        head = self._probe_classifier_input_module
        if head is None:
            head = next((n for n in ("feature_dropout", "classifier") if n in modules), None)
        if head is not None and head in modules:
            specs[self.classifier_input_layer] = LayerSpec(module=head, layout=Layout.VECTOR, capture="input")
        return specs

    def probe_layers(self) -> dict[str, Layout]:
        """``{layer name: layout}``: ``embeddings``, ``block_0`` .. ``block_{L-1}``, ``pre_classifier``."""
        return {name: spec.layout for name, spec in self.probe_layer_specs().items()}  # type: ignore[misc]

    def _select_layer_specs(self, layers: Sequence[str] | None) -> dict[str, LayerSpec]:
        specs = self.probe_layer_specs()
        if layers is None:
            return specs
        if isinstance(layers, str):
            layers = [layers]
        unknown = [name for name in layers if name not in specs]
        if unknown:
            raise ValueError(
                f"unknown probe layer(s) {unknown} for {type(self).__name__}; available: {', '.join(specs)}. "
                "To probe other modules use hf_stadyn.probing.FeatureProbe with module names."
            )
        if not layers:
            raise ValueError("layers is empty; pass None for every probe layer or name at least one.")
        return {name: specs[name] for name in layers}

    # ------------------------------------------------------------------ input
    def set_probe_processor(self, settings: Mapping[str, Any] | None) -> None:
        """Prepare inputs the way the checkpoint's processor says (docs/method.md §1.1).

        Args:
            settings: :func:`hf_stadyn.models.processor.read_processor_config`'s dict, or None for the
                class defaults. Values the model cannot take are logged as warnings (and noted in
                ``probe_input_spec()["processor"]["notes"]``).

        Raises:
            ValueError: settings with unusable values (std <= 0, not 3 channels, sampling rate < 1).
        """
        _, warnings = self._resolve_probe_input(settings)
        for msg in warnings:
            logger.warning(msg)
        self.probe_processor = dict(settings) if settings else None

    def _resolve_probe_input(self, settings: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
        from hf_stadyn.models.processor import resolve_input_spec

        return resolve_input_spec(
            settings, config=getattr(self, "config", None),
            default_mean=self._probe_image_mean, default_std=self._probe_image_std,
            fixed_num_frames=self._probe_fixed_num_frames, fixed_image_size=self._probe_fixed_image_size,
            model_name=type(self).__name__,
        )  # fmt: skip

    def probe_input_spec(self) -> ProbeInputSpec:
        """``{"num_frames", "image_size", "mean", "std", "window", "processor"}`` the model expects.

        From the checkpoint's processor settings (:attr:`probe_processor`) when it has them, else the
        config's ``num_frames`` / ``image_size`` and the class's statistics (see :class:`ProbeInputSpec`,
        docs/method.md §1.1).
        """
        values, _ = self._resolve_probe_input(self.probe_processor)
        if values["num_frames"] is None or values["image_size"] is None:
            raise ValueError(f"{type(self).__name__}.config has no num_frames/image_size; override probe_input_spec().")
        h, w = _as_hw(values["image_size"])
        return ProbeInputSpec(
            num_frames=int(values["num_frames"]),
            image_size=h if h == w else (h, w),
            mean=tuple(float(v) for v in values["mean"]),  # type: ignore[typeddict-item]
            std=tuple(float(v) for v in values["std"]),  # type: ignore[typeddict-item]
            window=values["window"],
            processor=values["processor"],
        )

    def prepare_pixel_values(
        self, clips: np.ndarray | torch.Tensor, device: str | torch.device | None = None
    ) -> torch.Tensor:
        """uint8 clips ``(B, T, H, W, 3)`` (or one ``(T, H, W, 3)``) -> normalised ``(B, T, 3, H, W)``."""
        spec = self.probe_input_spec()
        return clips_to_pixel_values(
            clips, spec["mean"], spec["std"], num_frames=spec["num_frames"], image_size=spec["image_size"],
            device=device,
        )  # fmt: skip

    def _check_pixel_values(self, pixel_values: Any, name: str = "pixel_values") -> None:
        spec = self.probe_input_spec()
        t, (h, w) = spec["num_frames"], _as_hw(spec["image_size"])
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 5:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            raise ValueError(f"{name} must be a (B, T, 3, H, W) tensor, got {shape}.")
        if pixel_values.shape[1] != t or tuple(pixel_values.shape[3:]) != (h, w):
            raise ValueError(
                f"{name} has shape {tuple(pixel_values.shape)} but {type(self).__name__} takes (B, {t}, "
                f"{pixel_values.shape[2]}, {h}, {w}): exactly {t} frames of {h}x{w} (frames before channels)."
            )
        if not pixel_values.is_floating_point():
            raise ValueError(
                f"{name} must be float (normalised); got {pixel_values.dtype}. Use prepare_pixel_values(clips) "
                "for uint8 clips."
            )

    # ------------------------------------------------------ probe adapter protocol
    def probe_inputs(self, batch: Mapping[str, Any], device: str | torch.device | None = None) -> dict[str, Any]:
        """A collated batch of B clip pairs -> ``{main_input_name: (2B, T, 3, H, W)}``, members a first.

        This is the probe-adapter protocol of :mod:`hf_stadyn.probing.adapter`; the engine calls it once
        per batch and hooks every probed layer during the single forward pass.
        """
        from .adapter import clip_members

        target = device if device is not None else _device_of(self)
        pixel_values = self.prepare_pixel_values(clip_members(batch, target), device=target)
        self._check_pixel_values(pixel_values)
        return {getattr(self, "main_input_name", "pixel_values"): pixel_values}

    def pairs_from_videos(self, videos: Any, **kwargs: Any) -> Any:
        """A :class:`~hf_stadyn.pairs.PairDataset` of clip pairs from ``videos`` at this model's frame count
        and input size (keyword arguments as for :func:`clip_pairs_for_spec`)."""
        return clip_pairs_for_spec(self.probe_input_spec(), videos, **kwargs)

    # --------------------------------------------------------------- features
    def pooled_features(
        self,
        pixel_values: torch.Tensor,
        layers: Sequence[str] | None = None,
        *,
        autocast_dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
    ) -> dict[str, torch.Tensor]:
        """Pooled features of the probe layers for a batch, in ONE forward pass.

        Args:
            pixel_values: ``(B, T, 3, H, W)`` normalised float clips (see :meth:`prepare_pixel_values`).
            layers: probe-layer names (see :meth:`probe_layers`); ``None`` = all.
            autocast_dtype: ``None``/``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (for GPUs).
            device: where to put the features; ``None`` keeps the model's device.

        Returns:
            ``{layer: (B, C) float32}`` in the order of ``layers``.
        """
        self._check_pixel_values(pixel_values)
        specs = self._select_layer_specs(layers)
        input_name = getattr(self, "main_input_name", "pixel_values")
        return extract_features(
            self,  # type: ignore[arg-type]
            {input_name: pixel_values},
            specs,
            autocast_dtype=autocast_dtype,
            device=device,
        )

    def pooled_pair_features(
        self,
        pixel_values_a: torch.Tensor,
        pixel_values_b: torch.Tensor,
        layers: Sequence[str] | None = None,
        *,
        autocast_dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Features of both members of B pairs, from one forward pass over the ``2B`` clips.

        Returns:
            ``(feats_a, feats_b)``, each ``{layer: (B, C) float32}``; ready for
            ``StaticDynamicEstimator.update(feats_a[l], feats_b[l], factors, layer=l)``.
        """
        self._check_pixel_values(pixel_values_a, "pixel_values_a")
        self._check_pixel_values(pixel_values_b, "pixel_values_b")
        if pixel_values_a.shape != pixel_values_b.shape:
            raise ValueError(
                f"pair members differ in shape: {tuple(pixel_values_a.shape)} vs {tuple(pixel_values_b.shape)}."
            )
        b = pixel_values_a.shape[0]
        both = torch.cat([pixel_values_a, pixel_values_b.to(pixel_values_a.device)], dim=0)
        feats = self.pooled_features(both, layers, autocast_dtype=autocast_dtype, device=device)
        return {k: v[:b] for k, v in feats.items()}, {k: v[b:] for k, v in feats.items()}


def _device_of(model: Any) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def clip_pairs_for_spec(
    spec: Mapping[str, Any],
    videos: Any,
    *,
    seed: int = 0,
    num_pairs: int | None = None,
    window: int | None = None,
    **kwargs: Any,
) -> Any:
    """Clip pairs (docs/method.md §1.1) from ``videos`` for a model with input spec ``spec``.

    Clips are ``spec["num_frames"]`` frames sampled from ``window`` source frames and resized /
    centre-cropped to the (short side of the) model's input size. ``window`` None takes the model's
    declared window (``spec["window"]``, sampling rate x frames) when it has one, else
    :class:`~hf_stadyn.pairs.PairDataset`'s default. Other keyword arguments go to
    :class:`~hf_stadyn.pairs.PairDataset` (``video_column``, ``styles``, ...).
    """
    from hf_stadyn.pairs import PairDataset

    size = spec["image_size"]
    size = size if isinstance(size, int) or size is None else min(size)
    if window is None:
        window = spec.get("window")
    if window is not None:
        kwargs["window"] = window
    return PairDataset(videos, num_frames=int(spec["num_frames"]), size=size, seed=seed, num_pairs=num_pairs, **kwargs)


def _first_existing(
    modules: Mapping[str, nn.Module], prefix: str, candidates: Sequence[str], *, list_only: bool = False
) -> str | None:
    for cand in candidates:
        for name in ((f"{prefix}.{cand}" if prefix else cand), cand):
            mod = modules.get(name)
            if mod is not None and (not list_only or isinstance(mod, nn.ModuleList)):
                return name
    return None
