"""Probe adapters for the video architectures of the installed transformers, derived from each config.

Every architecture of transformers' ``AutoModelForVideoClassification`` mapping that hf_stadyn does not
wrap with its own class (ViViT, V-JEPA 2, VideoPrism; VideoMAE and TimeSformer have the classes of
:mod:`hf_stadyn.models.modeling_videomae` / ``modeling_timesformer``), the bare encoders of those
families, and the video towers of X-CLIP and PE-video are probed through one mixin,
:class:`UpstreamVideoProbingMixin`, put in front of the upstream class (``StadynVivitForVideoClassification``
is ``VivitForVideoClassification`` plus probing; its state dict, config and ``save_pretrained`` are
upstream's). What differs between families lives in one :class:`VideoFamily` entry each:

- the probe layers (``embeddings``, ``block_0`` .. ``block_{L-1}``, a second stack's blocks where the
  family has one, and the classifier input ``pre_classifier`` or, without a classifier, its equivalent:
  ``encoder_output`` of a bare encoder, ``video_embeds`` of a video-text model's video tower) and their
  layouts (CLS tokens, tubelets, per-frame vs clip tokens), from the config;
- the expected shape of every probed tensor, from the config: :meth:`UpstreamVideoProbingMixin.check_probe_layers`
  runs one real forward and compares (``load_model`` does it once per load);
- the input: config keys of the frame count and size, the class-default statistics (those of the
  family's processor class, used when a checkpoint has no processor file; docs/method.md §1.1), the
  forward's input name and shape.

(Over 500 lines on purpose: one entry per family, each next to the shapes it promises, so a new family
is added by reading one file.)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import torch
from torch import nn

from ..probing.hooks import LayerSpec, eval_mode
from ..probing.layouts import Layout, first_tensor
from ..probing.mixin import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    BiasProbingMixin,
    _as_hw,
)

__all__ = [
    "FAMILIES",
    "VIS_MODEL_TYPES",
    "UpstreamVideoProbingMixin",
    "VideoFamily",
    "family_for",
    "generic_model_types",
    "model_family",
    "probe_class_for",
    "read_probe_processor",
    "tiny_upstream_config",
    "tiny_upstream_names",
]

logger = logging.getLogger(__name__)

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: Model types of video instance segmentation models, probed by :mod:`hf_stadyn.models.vis`.
VIS_MODEL_TYPES = ("videomt",)

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class VideoFamily:
    """One upstream video architecture: how to probe it, derived from its config.

    Attributes:
        model_type: ``config.model_type`` of its checkpoints.
        name: the family's name in reports (``"ViViT"``).
        classes: ``{architecture name in config.architectures: upstream class name}``; the first is
            used when the config names none of them.
        layers: ``(model, prefix) -> {layer: LayerSpec}`` (``prefix`` is the base model's attribute
            plus a dot, or ``""`` for a bare encoder).
        shapes: ``(model, B, T, H, W) -> {layer: expected shape of the probed tensor}``.
        frames: the frame count from the config; ``size``: the input side(s) from the config.
        mean, std: statistics of the family's processor class (applied to ``x / 255``), used without a
            processor file; ``stats_note`` says where they come from.
        fixed_num_frames, fixed_image_size: the model accepts only the config's frame count / size.
        input_name: the forward's keyword for the clips ``(B, T, 3, H, W)``.
        forward_kwargs: extra keyword arguments of a probing forward (``skip_predictor=True``...).
        frame_multiple: the frame count must be a multiple of this (tubelet depth).
        rescale_offset: the processor subtracts 1 after rescaling (ViViT's ``offset``).
        requires: a package the family's modules need (``"timm"``), checked before building.
    """

    model_type: str
    name: str
    classes: dict[str, str]
    layers: Callable[[nn.Module, str], dict[str, LayerSpec]]
    shapes: Callable[[nn.Module, int, int, int, int], Shapes]
    frames: Callable[[Any], int]
    size: Callable[[Any], Any]
    mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, float, float] = IMAGENET_DEFAULT_STD
    stats_note: str = ""
    fixed_num_frames: bool = True
    fixed_image_size: bool = True
    input_name: str = "pixel_values"
    forward_kwargs: Callable[[nn.Module], dict[str, Any]] = field(default=lambda model: {})
    frame_multiple: Callable[[Any], int] = field(default=lambda config: 1)
    rescale_offset: bool = False
    requires: str | None = None


def _hw(size: Any) -> tuple[int, int]:
    return _as_hw(int(size) if isinstance(size, int) else tuple(int(v) for v in size))


def _blocks(prefix: str, path: str, n: int, layout: Layout, name: str = "block", **kw: Any) -> dict[str, LayerSpec]:
    return {f"{name}_{i}": LayerSpec(module=f"{prefix}{path}.{i}", layout=layout, **kw) for i in range(n)}


def _head_input(model: nn.Module) -> dict[str, LayerSpec]:
    return {"pre_classifier": LayerSpec(module="classifier", layout=Layout.VECTOR, capture="input")}


def _is_classifier(model: nn.Module) -> bool:
    return isinstance(getattr(model, "classifier", None), nn.Module)


def _config(model: nn.Module) -> Any:
    """The model's transformers config (``model.config``), typed as Any for attribute access."""
    return model.config


# ------------------------------------------------------------------------------------------ ViViT
def _vivit_layers(model: nn.Module, p: str) -> dict[str, LayerSpec]:
    cfg: Any = model.config
    out = {"embeddings": LayerSpec(module=f"{p}embeddings", layout=Layout.TOKENS_CLS)}
    out.update(_blocks(p, "layers", cfg.num_hidden_layers, Layout.TOKENS_CLS))
    if _is_classifier(model):
        out.update(_head_input(model))
    else:  # the final LayerNorm's tokens (what a classifier reads the CLS token of)
        out["encoder_output"] = LayerSpec(module=f"{p}layernorm", layout=Layout.TOKENS_CLS)
    return out


def _vivit_shapes(model: nn.Module, b: int, t: int, h: int, w: int) -> Shapes:
    cfg: Any = model.config
    tt, ph, pw = (int(v) for v in cfg.tubelet_size)
    n, c = 1 + (t // tt) * (h // ph) * (w // pw), cfg.hidden_size
    out: Shapes = {name: (b, n, c) for name in ["embeddings", *[f"block_{i}" for i in range(cfg.num_hidden_layers)]]}
    if _is_classifier(model):
        out["pre_classifier"] = (b, c)
    else:
        out["encoder_output"] = (b, n, c)
    return out


# ------------------------------------------------------------------------------------------ V-JEPA 2
def _vjepa2_layers(model: nn.Module, p: str) -> dict[str, LayerSpec]:
    cfg: Any = model.config
    out = {"embeddings": LayerSpec(module=f"{p}encoder.embeddings", layout=Layout.TOKENS)}
    out.update(_blocks(p, "encoder.layer", cfg.num_hidden_layers, Layout.TOKENS))
    if _is_classifier(model):  # the attentive pooler's output, the classifier input
        out.update(_head_input(model))
    else:
        out["encoder_output"] = LayerSpec(module=f"{p}encoder.layernorm", layout=Layout.TOKENS)
    return out


def _vjepa2_shapes(model: nn.Module, b: int, t: int, h: int, w: int) -> Shapes:
    cfg: Any = model.config
    ps = int(cfg.patch_size if isinstance(cfg.patch_size, int) else cfg.patch_size[0])
    n, c = (max(t, cfg.tubelet_size) // cfg.tubelet_size) * (h // ps) * (w // ps), cfg.hidden_size
    out: Shapes = {name: (b, n, c) for name in ["embeddings", *[f"block_{i}" for i in range(cfg.num_hidden_layers)]]}
    if _is_classifier(model):
        out["pre_classifier"] = (b, c)
    else:
        out["encoder_output"] = (b, n, c)
    return out


# ------------------------------------------------------------------------------------------ VideoPrism
def _regroup(rows: int) -> Callable[[Any], torch.Tensor]:
    """Selector: ``(B * rows, L, C)`` -> ``(B, rows * L, C)`` (rows ``b * rows + r`` belong to clip ``b``)."""

    def select(output: Any) -> torch.Tensor:
        x = first_tensor(output)
        return x.reshape(x.shape[0] // rows, rows * x.shape[1], x.shape[2])

    select.__qualname__ = select.__name__ = f"regroup_{rows}"
    return select


def _videoprism_grid(cfg: Any, t: int, h: int, w: int) -> tuple[int, int]:
    tt, ph, pw = (int(v) for v in cfg.tubelet_size)
    return t // tt, (h // ph) * (w // pw)


def _videoprism_layers(model: nn.Module, p: str) -> dict[str, LayerSpec]:
    cfg: Any = model.config
    t = int(cfg.num_frames) // int(cfg.tubelet_size[0])
    h, w = _hw(cfg.image_size)
    _, patches = _videoprism_grid(cfg, int(cfg.num_frames), h, w)
    out = {"embeddings": LayerSpec(module=f"{p}spatial_embeddings", layout=Layout.FRAME_TOKENS, num_frames=t)}
    out.update(_blocks(p, "spatial_layers", cfg.num_spatial_layers, Layout.FRAME_TOKENS, num_frames=t))
    # temporal stage: (B * P, T, C) sequences, one per spatial position; regrouped per clip
    regroup = _regroup(patches)
    out["temporal_embeddings"] = LayerSpec(module=f"{p}temporal_embeddings", layout=Layout.TOKENS, select=regroup)
    out.update(
        _blocks(p, "temporal_layers", cfg.num_temporal_layers, Layout.TOKENS, name="temporal_block", select=regroup)
    )
    if _is_classifier(model):  # attention-pooling head + its LayerNorm: the classifier input, (B, 1, C)
        out["pre_classifier"] = LayerSpec(module="classifier", layout=Layout.TOKENS, capture="input")
    else:
        out["encoder_output"] = LayerSpec(module=p.rstrip(".") or "", layout=Layout.TOKENS)
    return out


def _videoprism_shapes(model: nn.Module, b: int, t: int, h: int, w: int) -> Shapes:
    cfg: Any = model.config
    tt, patches = _videoprism_grid(cfg, t, h, w)
    c = cfg.hidden_size
    out: Shapes = {"embeddings": (b * tt, patches, c)}
    out.update({f"block_{i}": (b * tt, patches, c) for i in range(cfg.num_spatial_layers)})
    out["temporal_embeddings"] = (b, patches * tt, c)
    out.update({f"temporal_block_{i}": (b, patches * tt, c) for i in range(cfg.num_temporal_layers)})
    if _is_classifier(model):
        out["pre_classifier"] = (b, 1, c)  # the pooling head keeps its one query token
    else:
        out["encoder_output"] = (b, tt * patches, c)
    return out


# ------------------------------------------------------------------------------------------ X-CLIP
def _xclip_vision(cfg: Any) -> Any:
    return getattr(cfg, "vision_config", cfg)


def _xclip_layers(model: nn.Module, p: str) -> dict[str, LayerSpec]:
    vc = _xclip_vision(model.config)
    t = int(vc.num_frames)
    vis = "vision_model." if hasattr(model, "vision_model") else ""
    out = {"embeddings": LayerSpec(module=f"{vis}embeddings", layout=Layout.FRAME_TOKENS, num_frames=t)}
    out.update(_blocks(vis, "encoder.layers", vc.num_hidden_layers, Layout.FRAME_TOKENS, num_frames=t))
    if hasattr(model, "mit"):  # the multi-frame integration transformer over the T projected CLS tokens
        out.update(_blocks("mit.", "encoder.layers", vc.mit_num_hidden_layers, Layout.TOKENS, name="mit_block"))
        pooled = _field("pooler_output")
        out["video_embeds"] = LayerSpec(module="mit", layout=Layout.VECTOR, select=pooled)
    else:  # the bare vision tower: per-frame CLS after post_layernorm, pooled per clip
        out["encoder_output"] = LayerSpec(
            module="post_layernorm", layout=Layout.FRAME_TOKENS, num_frames=t, select=_unsqueeze1
        )
    return out


def _unsqueeze1(output: Any) -> torch.Tensor:
    return first_tensor(output).unsqueeze(1)


def _field(name: str) -> Callable[[Any], torch.Tensor]:
    def select(output: Any) -> torch.Tensor:
        return output[name] if isinstance(output, Mapping) else getattr(output, name)

    select.__qualname__ = select.__name__ = f"select_{name}"
    return select


def _xclip_shapes(model: nn.Module, b: int, t: int, h: int, w: int) -> Shapes:
    vc = _xclip_vision(model.config)
    ps = int(vc.patch_size if isinstance(vc.patch_size, int) else vc.patch_size[0])
    n, c = 1 + (h // ps) * (w // ps), vc.hidden_size
    out: Shapes = {"embeddings": (b * t, n, c)}
    out.update({f"block_{i}": (b * t, n, c) for i in range(vc.num_hidden_layers)})
    if hasattr(model, "mit"):
        d = _config(model).projection_dim
        out.update({f"mit_block_{i}": (b, t, d) for i in range(vc.mit_num_hidden_layers)})
        out["video_embeds"] = (b, d)
    else:
        out["encoder_output"] = (b * t, 1, c)
    return out


class _XCLIPVideoForward:
    """X-CLIP's forward runs the video tower when no text is given (the probing forward)."""

    main_input_name = "pixel_values"

    def forward(self, input_ids: Any = None, pixel_values: Any = None, **kwargs: Any) -> Any:
        """``pixel_values`` ``(B, T, 3, H, W)`` alone -> the video tower's output (``pooler_output``: the
        video embeddings ``(B, projection_dim)``); with ``input_ids`` the upstream X-CLIP forward."""
        if input_ids is None and pixel_values is not None and hasattr(self, "mit"):
            return self.get_video_features(pixel_values=pixel_values, **kwargs)  # type: ignore[attr-defined]
        if input_ids is None and pixel_values is not None:  # bare vision tower: frames stacked along the batch
            return super().forward(pixel_values=pixel_values.flatten(0, 1), **kwargs)  # type: ignore[misc]
        return super().forward(input_ids=input_ids, pixel_values=pixel_values, **kwargs)  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ PE-video
def _pe_encoder(cfg: Any) -> Any:
    return getattr(cfg, "video_config", cfg)


def _pe_layers(model: nn.Module, p: str) -> dict[str, LayerSpec]:
    enc = "video_encoder." if hasattr(model, "video_encoder") else ""
    ec = _pe_encoder(_config(model))
    out = {
        "frame_embeddings": LayerSpec(module=f"{enc}embedder", layout=Layout.TOKENS),
        "embeddings": LayerSpec(module=f"{enc}patch_embedder", layout=Layout.TOKENS_CLS),
    }
    out.update(_blocks(enc, "layers", ec.num_hidden_layers, Layout.TOKENS_CLS))
    if enc:  # the video head's embedding of the CLS token
        out["video_embeds"] = LayerSpec(module="video_head", layout=Layout.VECTOR)
    else:
        out["encoder_output"] = LayerSpec(module="output", layout=Layout.VECTOR, select=_cls_token)
    return out


def _cls_token(output: Any) -> torch.Tensor:
    return first_tensor(output)[:, 0]


def _pe_shapes(model: nn.Module, b: int, t: int, h: int, w: int) -> Shapes:
    ec = _pe_encoder(_config(model))
    c = ec.hidden_size
    out: Shapes = {"frame_embeddings": (b, t, c), "embeddings": (b, 1 + t, c)}
    out.update({f"block_{i}": (b, 1 + t, c) for i in range(ec.num_hidden_layers)})
    if hasattr(model, "video_encoder"):
        out["video_embeds"] = (b, _config(model).text_config.hidden_size)
    else:
        out["encoder_output"] = (b, c)
    return out


class _PeVideoForward:
    """PE-video's forward runs the video tower when no text is given (the probing forward)."""

    main_input_name = "pixel_values_videos"

    def forward(self, input_ids: Any = None, pixel_values_videos: Any = None, **kwargs: Any) -> Any:
        """``pixel_values_videos`` ``(B, T, 3, H, W)`` alone -> ``(B, D)`` video embeddings (the video
        encoder's CLS token through ``video_head``); with ``input_ids`` the upstream forward."""
        if input_ids is None and pixel_values_videos is not None and hasattr(self, "video_encoder"):
            out = self.video_encoder(pixel_values_videos=pixel_values_videos, **kwargs)  # type: ignore[attr-defined]
            return self.video_head(out.pooler_output)  # type: ignore[attr-defined]
        return super().forward(input_ids=input_ids, pixel_values_videos=pixel_values_videos, **kwargs)  # type: ignore[misc]


def _pe_size(cfg: Any) -> Any:
    vc = _pe_encoder(cfg).vision_config
    args = dict(getattr(vc, "model_args", None) or {})
    if "img_size" in args:
        return args["img_size"]
    arch = str(getattr(vc, "architecture", ""))
    digits = arch.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else 224


# ------------------------------------------------------------------------------------------ the table
FAMILIES: dict[str, VideoFamily] = {
    f.model_type: f
    for f in (
        VideoFamily(
            "vivit", "ViViT", {"VivitForVideoClassification": "VivitForVideoClassification", "VivitModel": "VivitModel"},
            _vivit_layers, _vivit_shapes, frames=lambda c: c.num_frames, size=lambda c: c.image_size,
            mean=(0.75, 0.75, 0.75), std=(0.25, 0.25, 0.25),
            stats_note="ViViT processor defaults: x / 127.5 - 1, then mean 0.5, std 0.5",
            frame_multiple=lambda c: int(c.tubelet_size[0]), rescale_offset=True,
        ),
        VideoFamily(
            "vjepa2", "V-JEPA 2",
            {"VJEPA2ForVideoClassification": "VJEPA2ForVideoClassification", "VJEPA2Model": "VJEPA2Model"},
            _vjepa2_layers, _vjepa2_shapes, frames=lambda c: c.frames_per_clip, size=lambda c: c.crop_size,
            stats_note="VJEPA2VideoProcessor defaults (ImageNet)", fixed_num_frames=False,
            input_name="pixel_values_videos", frame_multiple=lambda c: int(c.tubelet_size),
            forward_kwargs=lambda m: {} if _is_classifier(m) else {"skip_predictor": True},
        ),
        VideoFamily(
            "videoprism_vision_model", "VideoPrism",
            {"VideoPrismForVideoClassification": "VideoPrismForVideoClassification",
             "VideoPrismVisionModel": "VideoPrismVisionModel"},
            _videoprism_layers, _videoprism_shapes, frames=lambda c: c.num_frames, size=lambda c: c.image_size,
            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
            stats_note="VideoPrism reads [0, 1] pixels (no normalisation)", input_name="pixel_values_videos",
            frame_multiple=lambda c: int(c.tubelet_size[0]),
        ),
        VideoFamily(
            "xclip", "X-CLIP (video tower)", {"XCLIPModel": "XCLIPModel"},
            _xclip_layers, _xclip_shapes, frames=lambda c: c.vision_config.num_frames,
            size=lambda c: c.vision_config.image_size, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD,
            stats_note="CLIPImageProcessor defaults (OpenAI CLIP)",
        ),
        VideoFamily(
            "xclip_vision_model", "X-CLIP vision tower", {"XCLIPVisionModel": "XCLIPVisionModel"},
            _xclip_layers, _xclip_shapes, frames=lambda c: c.num_frames, size=lambda c: c.image_size,
            mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, stats_note="CLIPImageProcessor defaults (OpenAI CLIP)",
        ),
        VideoFamily(
            "pe_video", "PE-video (video tower)", {"PeVideoModel": "PeVideoModel"},
            _pe_layers, _pe_shapes, frames=lambda c: 8, size=_pe_size,
            mean=IMAGENET_STANDARD_MEAN, std=IMAGENET_STANDARD_STD, stats_note="PE-core defaults (mean 0.5, std 0.5)",
            fixed_num_frames=False, input_name="pixel_values_videos", requires="timm",
        ),
        VideoFamily(
            "pe_video_encoder", "PE-video encoder", {"PeVideoEncoder": "PeVideoEncoder"},
            _pe_layers, _pe_shapes, frames=lambda c: 8, size=_pe_size,
            mean=IMAGENET_STANDARD_MEAN, std=IMAGENET_STANDARD_STD, stats_note="PE-core defaults (mean 0.5, std 0.5)",
            fixed_num_frames=False, input_name="pixel_values_videos", requires="timm",
        ),
    )
}  # fmt: skip

#: Families hf_stadyn wraps with its own classes (names only; see hf_stadyn.models.registry).
_OWN_FAMILY_NAMES = {
    "videomae": "VideoMAE", "timesformer": "TimeSformer", "avos": "AVOS (two-stream)",
    VIS_MODEL_TYPES[0]: "VidEoMT (VIS)",
}  # fmt: skip
_FORWARD_MIXINS: dict[str, type] = {
    "xclip": _XCLIPVideoForward, "xclip_vision_model": _XCLIPVideoForward,
    "pe_video": _PeVideoForward,
}  # fmt: skip


def generic_model_types() -> tuple[str, ...]:
    """Model types probed through :class:`UpstreamVideoProbingMixin` (the keys of :data:`FAMILIES`)."""
    return tuple(FAMILIES)


def family_for(model_type: str) -> VideoFamily | None:
    """The :class:`VideoFamily` of ``model_type``, or None."""
    return FAMILIES.get(model_type)


def model_family(model: Any) -> str:
    """The family's name of a model for reports: ``"ViViT"``, ``"VideoMAE"``, ...; else its class name."""
    fam = getattr(model, "stadyn_family", None)
    if isinstance(fam, VideoFamily):
        return fam.name
    config = getattr(model, "config", None) or getattr(getattr(model, "model", None), "config", None)  # adapters
    model_type = str(getattr(config, "model_type", "") or "")
    key = model_type.removeprefix("stadyn_")
    return _OWN_FAMILY_NAMES.get(key, type(model).__name__)


# ------------------------------------------------------------------------------------------ the mixin
class UpstreamVideoProbingMixin(BiasProbingMixin):
    """The probe adapter of an upstream transformers video model; its :attr:`stadyn_family` says how.

    Probe layers, layouts and the expected shapes come from the config (:class:`VideoFamily`); inputs
    from the checkpoint's processor settings (``load_model``) or the family's processor-class defaults
    (docs/method.md §1.1). The clips ``(B, T, 3, H, W)`` go to the forward as ``family.input_name``.
    """

    stadyn_family: ClassVar[VideoFamily]
    stadyn_upstream_class: ClassVar[str] = ""

    def _probe_prefix(self) -> str:
        prefix = getattr(self, "base_model_prefix", "") or ""
        return f"{prefix}." if prefix and isinstance(getattr(self, prefix, None), nn.Module) else ""

    def probe_layer_specs(self) -> dict[str, LayerSpec]:
        """``{layer: LayerSpec}`` of the family (see the module docstring), in forward order."""
        return self.stadyn_family.layers(self, self._probe_prefix())  # type: ignore[arg-type]

    def _resolve_probe_input(self, settings: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
        from hf_stadyn.models.processor import SAMPLING_RATE_KEYS, resolve_input_spec

        fam, cfg = self.stadyn_family, self.config  # type: ignore[attr-defined]
        view = SimpleNamespace(
            num_frames=int(fam.frames(cfg)), image_size=fam.size(cfg), stadyn=getattr(cfg, "stadyn", None)
        )
        for key in SAMPLING_RATE_KEYS:
            setattr(view, key, getattr(cfg, key, None))
        notes: list[str] = []
        if settings and fam.rescale_offset and settings.get("offset", True) and settings.get("do_rescale") is not False:
            # x * rescale_factor - 1, then (p - mean) / std  ==  (x * rescale_factor - (1 + mean)) / std
            mean = settings.get("image_mean") or [0.5, 0.5, 0.5]
            mean = [float(v) + 1.0 for v in (mean if isinstance(mean, (list, tuple)) else [mean] * 3)]
            settings = {**settings, "image_mean": mean}
            notes.append("the processor subtracts 1 after rescaling (offset): folded into mean")
        values, warns = resolve_input_spec(
            settings, config=view, default_mean=fam.mean, default_std=fam.std,
            default_stats_source=f"class defaults ({fam.stats_note})" if fam.stats_note else "class defaults",
            fixed_num_frames=fam.fixed_num_frames, fixed_image_size=fam.fixed_image_size,
            model_name=type(self).__name__,
        )  # fmt: skip
        values["processor"]["notes"] = [*values["processor"]["notes"], *notes]
        t, multiple = values["num_frames"], int(fam.frame_multiple(cfg))
        if t is not None and t % multiple:
            raise ValueError(
                f"{type(self).__name__}: {t} frames is not a multiple of the tubelet depth {multiple}; fix the "
                "processor's num_frames or the config."
            )
        return values, warns

    def probe_inputs(self, batch: Mapping[str, Any], device: str | torch.device | None = None) -> dict[str, Any]:
        """A batch of B clip pairs -> ``{family.input_name: (2B, T, 3, H, W), **family.forward_kwargs}``."""
        inputs = super().probe_inputs(batch, device)
        return {self.stadyn_family.input_name: next(iter(inputs.values())), **self.stadyn_family.forward_kwargs(self)}  # type: ignore[arg-type]

    def pooled_features(self, pixel_values: torch.Tensor, layers: Any = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Pooled features of the probe layers for ``(B, T, 3, H, W)`` clips, in ONE forward pass."""
        from ..probing.hooks import extract_features

        self._check_pixel_values(pixel_values)
        specs = self._select_layer_specs(layers)
        inputs = {self.stadyn_family.input_name: pixel_values, **self.stadyn_family.forward_kwargs(self)}  # type: ignore[arg-type]
        return extract_features(self, inputs, specs, **kwargs)  # type: ignore[arg-type]

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        """Upstream's ``save_pretrained``; ``config.json`` names the upstream class in ``architectures``, so
        plain transformers (pipelines included) reads the folder as an upstream checkpoint."""
        out = super().save_pretrained(save_directory, *args, **kwargs)  # type: ignore[misc]
        self.config.architectures = [self.stadyn_upstream_class]  # type: ignore[attr-defined]
        if kwargs.get("is_main_process", True):
            self.config.save_pretrained(save_directory)  # type: ignore[attr-defined]
        return out

    def probe_family(self) -> dict[str, Any]:
        """JSON-ready ``{"family", "model_type", "class", "layouts"}`` for reports."""
        fam = self.stadyn_family
        return {
            "family": fam.name,
            "model_type": fam.model_type,
            "class": self.stadyn_upstream_class,
            "layouts": {name: str(spec.layout) for name, spec in self.probe_layer_specs().items()},
        }

    def check_probe_layers(self, batch_size: int = 1) -> dict[str, tuple[int, ...]]:
        """Run ONE forward on zero clips and check every probed tensor's shape against the config's.

        Returns:
            ``{layer: shape}`` as seen in the forward.

        Raises:
            ValueError: a layer's tensor differs from what the config says (the config and the module
                disagree, e.g. a transformers version that changed the layout); names every layer.
        """
        spec = self.probe_input_spec()
        t, (h, w) = spec["num_frames"], _as_hw(spec["image_size"])
        want = self.stadyn_family.shapes(self, batch_size, t, h, w)  # type: ignore[arg-type]
        specs = self.probe_layer_specs()
        seen: dict[str, tuple[int, ...]] = {}
        modules = dict(self.named_modules())  # type: ignore[attr-defined]
        handles = []

        def recorder(name: str, s: LayerSpec) -> Callable[..., None]:
            def hook(module: nn.Module, args: Any, output: Any = None) -> None:
                value = args if s.capture == "input" else output
                seen[name] = tuple((s.select or first_tensor)(value).shape)

            return hook

        for name, s in specs.items():
            mod = modules[s.module]
            if s.capture == "input":
                handles.append(mod.register_forward_pre_hook(recorder(name, s)))
            else:
                handles.append(mod.register_forward_hook(recorder(name, s)))
        try:
            param = next(self.parameters())  # type: ignore[attr-defined]
            x = torch.zeros(batch_size, t, 3, h, w, dtype=param.dtype, device=param.device)
            with eval_mode(self), torch.inference_mode():  # type: ignore[arg-type]
                self(**{self.stadyn_family.input_name: x, **self.stadyn_family.forward_kwargs(self)})  # type: ignore[operator,arg-type]
        finally:
            for hd in handles:
                hd.remove()
        bad = [
            f"{n}: config says {want.get(n)}, forward gave {seen.get(n)}" for n in specs if seen.get(n) != want.get(n)
        ]
        if bad:
            raise ValueError(
                f"{type(self).__name__} ({self.stadyn_family.name}): probed shapes differ from the config's; "
                + "; ".join(bad)
                + ". Report it with the transformers version, or probe with --model_factory and explicit layouts."
            )
        return seen


_PROBE_CLASSES: dict[str, type] = {}


def probe_class_for(config: Any) -> type | None:
    """The probing class (upstream class + :class:`UpstreamVideoProbingMixin`) for a config, or None.

    The class follows ``config.architectures`` (a bare encoder's checkpoint gives the bare encoder, a
    classifier's the classifier), else the family's first class. Classes are made once per process and
    live in this module (``hf_stadyn.models.generic.StadynVivitForVideoClassification``).

    Raises:
        ValueError: the family needs a package that is not installed (PE-video: timm).
    """
    fam = family_for(str(getattr(config, "model_type", "")))
    if fam is None:
        return None
    if fam.requires is not None:
        import importlib.util

        if importlib.util.find_spec(fam.requires) is None:
            raise ValueError(
                f"{fam.name} models need the {fam.requires!r} package (their frame encoder is a {fam.requires} model); "
                f"install it: pip install {fam.requires}"
            )
    named = [str(a).removeprefix("Stadyn") for a in (getattr(config, "architectures", None) or [])]
    archs = [a for a in named if a in fam.classes]
    upstream_name = fam.classes[archs[0]] if archs else next(iter(fam.classes.values()))
    name = f"Stadyn{upstream_name}"
    cls = _PROBE_CLASSES.get(name)
    if cls is None:
        import transformers

        upstream = getattr(transformers, upstream_name)
        bases: tuple[type, ...] = (UpstreamVideoProbingMixin, upstream)
        if fam.model_type in _FORWARD_MIXINS:
            bases = (UpstreamVideoProbingMixin, _FORWARD_MIXINS[fam.model_type], upstream)
        attrs = {
            "__module__": __name__, "__qualname__": name, "stadyn_family": fam,
            "stadyn_upstream_class": upstream_name, "main_input_name": fam.input_name,
            "__doc__": f"``transformers.{upstream_name}`` with hf_stadyn probing ({fam.name}; hf_stadyn.models.generic).",
        }  # fmt: skip
        cls = type(name, bases, attrs)
        _PROBE_CLASSES[name] = cls
        setattr(sys.modules[__name__], name, cls)
    return cls


def __getattr__(name: str) -> Any:
    if name in _PROBE_CLASSES:
        return _PROBE_CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_probe_processor(name_or_path: Any, *, revision: str | None = None) -> dict[str, Any] | None:
    """:func:`hf_stadyn.models.processor.read_processor_config` plus the keys a family needs beyond it
    (``offset``: ViViT's processors subtract 1 after rescaling, default True)."""
    import json

    from transformers.utils import cached_file

    from .processor import read_processor_config

    settings = read_processor_config(name_or_path, revision=revision)
    if settings is None:
        return None
    path = cached_file(
        str(name_or_path), settings["file"], revision=revision,
        _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
    )  # fmt: skip
    if path:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        if "offset" in raw:
            settings["offset"] = bool(raw["offset"])
    return settings


# ------------------------------------------------------------------------------------------ tiny configs
def _tiny_kwargs(num_labels: int) -> dict[str, dict[str, Any]]:
    vit = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    vivit = dict(image_size=32, num_frames=4, tubelet_size=[2, 8, 8], num_hidden_layers=2, **vit)
    vjepa2 = dict(
        crop_size=32, frames_per_clip=4, tubelet_size=2, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_pooler_layers=1, pred_hidden_size=32, pred_num_attention_heads=2,
        pred_num_hidden_layers=1,
    )  # fmt: skip
    prism = dict(
        image_size=32, num_frames=4, tubelet_size=[1, 8, 8], num_spatial_layers=2, num_temporal_layers=2, **vit
    )
    xvis = dict(image_size=32, patch_size=8, num_frames=4, num_hidden_layers=2, **vit)
    xmit = dict(mit_hidden_size=32, mit_intermediate_size=64, mit_num_hidden_layers=1, mit_num_attention_heads=2)
    text = dict(vocab_size=64, num_hidden_layers=1, max_position_embeddings=16, **vit)
    labels = {"num_labels": num_labels}
    return {
        "vivit": {"type": "VivitConfig", **vivit, **labels},
        "vivit_encoder": {"type": "VivitConfig", **vivit, "architectures": ["VivitModel"]},
        "vjepa2": {"type": "VJEPA2Config", **vjepa2, **labels},
        "vjepa2_encoder": {"type": "VJEPA2Config", **vjepa2, "architectures": ["VJEPA2Model"]},
        "videoprism": {"type": "VideoPrismVisionConfig", **prism, **labels},
        "videoprism_encoder": {"type": "VideoPrismVisionConfig", **prism, "architectures": ["VideoPrismVisionModel"]},
        "xclip": {
            "type": "XCLIPConfig", "projection_dim": 32, "prompt_num_attention_heads": 2, "text_config": text,
            "vision_config": {**xvis, **xmit}, "architectures": ["XCLIPModel"],
        },
        "xclip_vision": {"type": "XCLIPVisionConfig", **xvis, **xmit, "architectures": ["XCLIPVisionModel"]},
    }  # fmt: skip


def tiny_upstream_names() -> tuple[str, ...]:
    """Names :func:`tiny_upstream_config` knows (one per architecture and class: ``"vivit"``, ``"vivit_encoder"``...)."""
    return tuple(_tiny_kwargs(2))


def tiny_upstream_config(name: str, num_labels: int = 3) -> Any:
    """A tiny random-init config of an upstream family (32 px, 4 frames, hidden 32, 2 blocks) for tests,
    benchmarks and examples: builds and runs in milliseconds on a CPU, offline.

    Raises:
        ValueError: an unknown name (see :func:`tiny_upstream_names`).
    """
    import transformers

    table = _tiny_kwargs(num_labels)
    if name not in table:
        raise ValueError(f"unknown tiny config {name!r}; use one of {sorted(table)}.")
    kwargs = dict(table[name])
    return getattr(transformers, kwargs.pop("type"))(**kwargs)
