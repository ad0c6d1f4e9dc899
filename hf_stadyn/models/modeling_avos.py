"""Two-stream AVOS segmenter (docs/method.md §7) as a transformers ``PreTrainedModel``.

An appearance stream reads the RGB frame, a motion stream the colour-coded optical flow; both are
transformers backbones (``AutoBackbone``, ResNet by default) run level by level so that the streams can
exchange information (cross-connections) and be fused after every level. A top-down decoder turns the
fused features into per-frame mask logits ``(B, 1, H, W)``.

Variants (``AVOSConfig.fusion`` x ``AVOSConfig.cross_connection``):

* fusion ``"concat"``: ``f = ReLU(BN(W [app; mot]))`` (FusionSeg-like).
* fusion ``"gated"``: ``f = ReLU(BN(W [app; mot]))``, ``out = f + f * g_channel * g_spatial * g_global``
  (MATNet-like).
* fusion ``"convex"``: ``alpha = sigmoid(a_channel + a_spatial)``, ``out = alpha * app + (1 - alpha) * mot``
  (RTNet-like); every output value lies between the two streams' values.
* cross ``"motion_to_appearance"``: ``app' = app * sigmoid(W mot) + app``.
* cross ``"bidirectional"``: ``app' = app + W_ma mot``, ``mot' = mot + W_am app``.
* cross ``"gated_bidirectional"``: ``[g_app; g_mot] = sigmoid(W [app; mot])``, ``x' = x * g + x``.

Every probed feature passes through a named ``nn.Identity`` tap (``model.taps[name]``), so hooks can
read it (probing) or change it (unit masking) without knowing the internals.

This file needs only torch and transformers (plus its sibling ``configuration_avos``), so it can be
shipped as remote code next to a checkpoint: the probe adapter (``TwoStreamProbingMixin``) is imported
from hf_stadyn when it is installed and left out otherwise. Registration with the Auto classes is done
by :mod:`hf_stadyn.models.registry`. For the same reason the file stays whole, a little over 500 lines.

HF conventions: ``output_hidden_states`` also fills the standard ``hidden_states`` tuple (the fused
features, one per fused level); gradient checkpointing (``model.gradient_checkpointing_enable()``)
goes through transformers' ``GradientCheckpointingLayer`` (:class:`AVOSCheckpointStep`, as upstream
layers do) and recomputes each level's stage + cross-connection calls (but the stem's, which read the
raw images: upstream embeddings are not checkpointed either) and each fusion in the backward pass,
with BatchNorm running statistics updated once per step, as without it; ``_no_split_modules`` keeps
the fusion, cross-connection and decoder modules (and the backbones' own units) on one device each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoBackbone, AutoConfig, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

try:  # the probe adapter; absent when this file runs as remote code without hf_stadyn installed
    from hf_stadyn.probing.two_stream import TwoStreamProbingMixin
except ImportError:  # pragma: no cover - exercised by the remote-code test in a separate process

    class TwoStreamProbingMixin:  # type: ignore[no-redef]
        """Stand-in without probing (hf_stadyn is not installed)."""


from .configuration_avos import AVOSConfig, tiny_avos_config  # noqa: F401 (re-exported)

__all__ = [
    "AVOSCheckpointStep",
    "AVOSModel",
    "AVOSPreTrainedModel",
    "AVOSSegmentationOutput",
    "BidirectionalCross",
    "ConcatFusion",
    "ConvexFusion",
    "GatedBidirectionalCross",
    "GatedFusion",
    "MotionToAppearance",
    "avos_loss",
]


# --------------------------------------------------------------------------------------------------
# loss


def avos_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft_loss: str = "iou",
    bce_weight: float = 1.0,
    soft_loss_weight: float = 1.0,
    smooth: float = 1.0,
) -> torch.Tensor:
    """Binary cross-entropy plus a soft region term (soft IoU or Dice), averaged over the batch.

    Args:
        logits: mask logits ``(B, 1, H, W)``.
        labels: target masks ``(B, 1, H, W)`` or ``(B, H, W)``, values in [0, 1].
        soft_loss: ``"iou"`` (1 - soft Jaccard), ``"dice"`` (1 - soft Dice) or ``"none"``.
        smooth: additive smoothing of the soft term (keeps empty masks finite).

    Returns:
        a scalar tensor.
    """
    if labels.ndim == 3:
        labels = labels.unsqueeze(1)
    if labels.shape != logits.shape:
        raise ValueError(
            f"labels have shape {tuple(labels.shape)} but the logits have {tuple(logits.shape)}; give one "
            "(H, W) mask per frame at the input resolution."
        )
    labels = labels.to(logits.dtype)
    loss = bce_weight * F.binary_cross_entropy_with_logits(logits, labels)
    if soft_loss != "none" and soft_loss_weight > 0:
        p = torch.sigmoid(logits).flatten(1)
        y = labels.flatten(1)
        inter = (p * y).sum(1)
        if soft_loss == "iou":
            union = (p + y - p * y).sum(1)
            soft = 1.0 - (inter + smooth) / (union + smooth)
        elif soft_loss == "dice":
            soft = 1.0 - (2.0 * inter + smooth) / (p.sum(1) + y.sum(1) + smooth)
        else:
            raise ValueError(f"soft_loss must be 'iou', 'dice' or 'none', got {soft_loss!r}.")
        loss = loss + soft_loss_weight * soft.mean()
    return loss


# --------------------------------------------------------------------------------------------------
# building blocks


def _conv_bn_relu(c_in: int, c_out: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


def _gate_conv(c_in: int, c_out: int, k: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    conv._avos_gate = True  # small normal init (see AVOSPreTrainedModel._init_weights)
    return conv


class ConcatFusion(nn.Module):
    """FusionSeg-like fusion: ``ReLU(BN(W [app; mot]))``. Inputs and output ``(B, C, H, W)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = _conv_bn_relu(2 * channels, channels)

    def forward(self, app: torch.Tensor, mot: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([app, mot], dim=1))


class GatedFusion(nn.Module):
    """MATNet-like gated fusion with a residual. Inputs and output ``(B, C, H, W)``.

    ``f = ReLU(BN(W [app; mot]))``; gates: channel ``(B, C, 1, 1)`` from a squeeze-excitation MLP,
    spatial ``(B, 1, H, W)`` from a 3x3 conv, global scalar ``(B, 1, 1, 1)`` from a linear layer on the
    pooled features; ``out = f + f * g_channel * g_spatial * g_global``.
    """

    def __init__(self, channels: int):
        super().__init__()
        hidden = max(channels // 4, 4)
        self.proj = _conv_bn_relu(2 * channels, channels)
        self.channel_gate = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )
        self.spatial_gate = _gate_conv(channels, 1, 3)
        self.global_gate = nn.Linear(channels, 1)

    def gates(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = f.mean(dim=(2, 3))  # (B, C)
        g_c = torch.sigmoid(self.channel_gate(pooled))[:, :, None, None]
        g_s = torch.sigmoid(self.spatial_gate(f))
        g_g = torch.sigmoid(self.global_gate(pooled))[:, :, None, None]
        return g_c, g_s, g_g

    def forward(self, app: torch.Tensor, mot: torch.Tensor) -> torch.Tensor:
        f = self.proj(torch.cat([app, mot], dim=1))
        g_c, g_s, g_g = self.gates(f)
        return f + f * (g_c * g_s * g_g)


class ConvexFusion(nn.Module):
    """RTNet-like convex gated fusion: ``alpha * app + (1 - alpha) * mot``. Shapes ``(B, C, H, W)``.

    ``alpha = sigmoid(a_channel + a_spatial)`` with ``a_channel (B, C, 1, 1)`` from a linear layer on the
    pooled ``[app; mot]`` and ``a_spatial (B, 1, H, W)`` from a 3x3 conv on ``[app; mot]``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channel_alpha = nn.Linear(2 * channels, channels)
        self.spatial_alpha = _gate_conv(2 * channels, 1, 3)

    def alpha(self, app: torch.Tensor, mot: torch.Tensor) -> torch.Tensor:
        x = torch.cat([app, mot], dim=1)
        a_c = self.channel_alpha(x.mean(dim=(2, 3)))[:, :, None, None]
        return torch.sigmoid(a_c + self.spatial_alpha(x))

    def forward(self, app: torch.Tensor, mot: torch.Tensor) -> torch.Tensor:
        a = self.alpha(app, mot)
        return a * app + (1.0 - a) * mot


class MotionToAppearance(nn.Module):
    """Motion gates appearance: ``app' = app * sigmoid(W mot) + app``; motion passes unchanged."""

    def __init__(self, channels: int):
        super().__init__()
        self.gate = _gate_conv(channels, channels)

    def forward(self, app: torch.Tensor, mot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return app * torch.sigmoid(self.gate(mot)) + app, mot


class BidirectionalCross(nn.Module):
    """Reciprocal additive exchange: ``app' = app + W_ma mot``, ``mot' = mot + W_am app``."""

    def __init__(self, channels: int):
        super().__init__()
        self.mot_to_app = _gate_conv(channels, channels)
        self.app_to_mot = _gate_conv(channels, channels)

    def forward(self, app: torch.Tensor, mot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return app + self.mot_to_app(mot), mot + self.app_to_mot(app)


class GatedBidirectionalCross(nn.Module):
    """Gated bidirectional cross-connection: ``[g_app; g_mot] = sigmoid(W [app; mot])``, ``x' = x * g + x``."""

    def __init__(self, channels: int):
        super().__init__()
        self.gate = _gate_conv(2 * channels, 2 * channels)

    def forward(self, app: torch.Tensor, mot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g_app, g_mot = torch.sigmoid(self.gate(torch.cat([app, mot], dim=1))).chunk(2, dim=1)
        return app * g_app + app, mot * g_mot + mot


_FUSIONS = {"concat": ConcatFusion, "gated": GatedFusion, "convex": ConvexFusion}
_CROSS = {
    "motion_to_appearance": MotionToAppearance,
    "bidirectional": BidirectionalCross,
    "gated_bidirectional": GatedBidirectionalCross,
}


class AVOSDecoder(nn.Module):
    """Top-down (FPN-like) decoder: fused levels ``[(B, C_i, H_i, W_i)]`` (shallow first) -> ``(B, 1, h, w)``.

    The logits come out at the resolution of the shallowest level; the model upsamples them.
    """

    def __init__(self, in_channels: list[int], hidden: int):
        super().__init__()
        self.lateral = nn.ModuleList([nn.Conv2d(c, hidden, 1) for c in in_channels])
        self.smooth = nn.ModuleList([_conv_bn_relu(hidden, hidden, 3) for _ in in_channels[:-1]])
        self.head = nn.Sequential(_conv_bn_relu(hidden, hidden, 3), nn.Conv2d(hidden, 1, 1))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        y = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            y = F.interpolate(y, size=feats[i].shape[-2:], mode="bilinear", align_corners=False)
            y = self.smooth[i](y + self.lateral[i](feats[i]))
        return self.head(y)


# --------------------------------------------------------------------------------------------------
# model


@dataclass
class AVOSSegmentationOutput(ModelOutput):
    """Output of :class:`AVOSModel`.

    Attributes:
        loss: scalar BCE + soft IoU/Dice loss, when ``labels`` were given.
        logits: mask logits ``(B, 1, H, W)`` at the input resolution.
        appearance_hidden_states: per fused level, the appearance features ``(B, C_i, H_i, W_i)``
            (after cross-connections), when ``output_hidden_states``.
        motion_hidden_states: the same for the motion stream.
        fusion_hidden_states: per fused level, the fusion output ``(B, C_i, H_i, W_i)``.
        hidden_states: the standard transformers field: the same tensors as
            ``fusion_hidden_states`` (the joint representation the decoder reads), shallowest level
            first. Last field, so tuple outputs keep their earlier positions.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    appearance_hidden_states: tuple[torch.Tensor, ...] | None = None
    motion_hidden_states: tuple[torch.Tensor, ...] | None = None
    fusion_hidden_states: tuple[torch.Tensor, ...] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class AVOSPreTrainedModel(PreTrainedModel):
    config_class = AVOSConfig
    base_model_prefix = "avos"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    # modules that must sit on one device (device_map="auto"); the backbones add their own units
    _no_split_modules = [  # noqa: RUF012 (transformers' class-level table)
        "ConcatFusion",
        "GatedFusion",
        "ConvexFusion",
        "MotionToAppearance",
        "BidirectionalCross",
        "GatedBidirectionalCross",
        "AVOSDecoder",
    ]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        from transformers import initialization as init

        std = float(self.config.initializer_range)
        if isinstance(module, nn.Conv2d):
            if getattr(module, "_avos_gate", False):
                init.normal_(module.weight, mean=0.0, std=std)
            else:
                init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if module.running_mean is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
            if getattr(module, "num_batches_tracked", None) is not None:
                init.zeros_(module.num_batches_tracked)


def _load_pretrained_backbone(name: str, out_features: list[str]) -> nn.Module:
    """A transformers backbone with pretrained weights from a Hub id or a local folder."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING

    cfg = AutoConfig.from_pretrained(name)
    if type(cfg) not in MODEL_FOR_BACKBONE_MAPPING:
        raise ValueError(
            f"AVOSConfig.backbone {name!r} is a {type(cfg).__name__} checkpoint, which has no transformers "
            "backbone class; use e.g. a ResNet checkpoint such as 'microsoft/resnet-18'."
        )
    return MODEL_FOR_BACKBONE_MAPPING[type(cfg)].from_pretrained(name, out_features=out_features)


class _RecomputeWithoutStatsUpdate:
    """Wrap ``fn`` for activation checkpointing so BatchNorm running statistics update once per step.

    The first call is the forward pass; later calls are the backward-pass recomputation. A recomputation
    runs exactly the same operations (so the checkpoint sees the same saved tensors) on throwaway copies
    of the ``running_mean``/``running_var``/``num_batches_tracked`` buffers of the BatchNorm layers of
    ``modules``, then puts the buffers back: they are updated once, as without checkpointing, and the
    tensors the recomputed graph saved are never changed in place (a reentrant backward checks that).
    """

    def __init__(self, fn: Callable[..., Any], modules: list[nn.Module]):
        self.fn = fn
        self.norms = [m for mod in modules for m in mod.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            return self.fn(*args)
        names = ("running_mean", "running_var", "num_batches_tracked")
        kept = [(m, n, getattr(m, n)) for m in self.norms for n in names if getattr(m, n, None) is not None]
        for m, n, buffer in kept:
            setattr(m, n, buffer.detach().clone())
        try:
            return self.fn(*args)
        finally:  # also when the checkpoint stops the recomputation early
            for m, n, buffer in kept:
                setattr(m, n, buffer)


class AVOSCheckpointStep(GradientCheckpointingLayer):
    """One step of AVOS's forward that transformers' activation checkpointing recomputes: ``fn(*tensors)``.

    transformers checkpoints ``GradientCheckpointingLayer`` modules: once checkpointing is enabled (and
    the model trains with gradients), this forward runs under ``torch.utils.checkpoint`` and again in
    the backward pass. The step has no parameters: ``fn`` (a :class:`_RecomputeWithoutStatsUpdate`
    around the stages, cross-connection or fusion it runs) is passed per call, so the modules keep
    their places and state-dict keys.
    """

    def forward(self, *tensors: torch.Tensor, fn: Callable[..., Any]) -> Any:
        return fn(*tensors)


def _stage_modules(backbone: nn.Module) -> list[nn.Module]:
    """The stem and the stages of a transformers CNN backbone, in ``stage_names`` order."""
    stem = getattr(backbone, "embedder", None) or getattr(backbone, "embeddings", None)
    stages = getattr(getattr(backbone, "encoder", None), "stages", None)
    if stem is None or stages is None or len(stages) + 1 != len(backbone.stage_names):
        raise ValueError(
            f"{type(backbone).__name__} does not expose its stem and encoder.stages; AVOSModel runs the "
            "streams level by level and supports ResNet-like transformers backbones (e.g. ResNetConfig)."
        )
    return [stem, *stages]


class AVOSModel(TwoStreamProbingMixin, AVOSPreTrainedModel):
    """Two-stream video object segmenter (appearance + motion), see the module docstring.

    Example:
        >>> import torch
        >>> from hf_stadyn.models.configuration_avos import tiny_avos_config
        >>> model = AVOSModel(tiny_avos_config("gated", "gated_bidirectional")).eval()
        >>> rgb, flow = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
        >>> model(pixel_values=rgb, flow_values=flow).logits.shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(self, config: AVOSConfig):
        super().__init__(config)
        config.validate_avos()
        if config.use_pretrained_backbone:
            out_features = list(config.backbone_config.out_features)
            self.appearance_backbone = _load_pretrained_backbone(config.backbone, out_features)
            self.motion_backbone = _load_pretrained_backbone(config.backbone, out_features)
            # the weights now live in this model; a saved checkpoint must not fetch them again
            config.backbone_config = self.appearance_backbone.config
            config.use_pretrained_backbone = False
        else:
            self.appearance_backbone = AutoBackbone.from_config(config.backbone_config)
            self.motion_backbone = AutoBackbone.from_config(config.backbone_config)
        _stage_modules(self.appearance_backbone)  # fail early on unsupported backbones
        num_features = list(self.appearance_backbone.num_features)
        self.levels = list(config.fused_levels)  # 1-based
        channels = [num_features[i - 1] for i in self.levels]
        self.fusions = nn.ModuleList([_FUSIONS[config.fusion](c) for c in channels])
        cross = {}
        if config.cross_connection != "none":
            for lvl, c in zip(self.levels, channels):
                if lvl in config.cross_stages:
                    cross[str(lvl)] = _CROSS[config.cross_connection](c)
        self.cross = nn.ModuleDict(cross)
        names = [f"{p}{i}" for i in self.levels for p in ("app_stage", "mot_stage", "fusion")]
        self.taps = nn.ModuleDict({n: nn.Identity() for n in names})
        self.decoder = AVOSDecoder(channels, int(config.decoder_hidden_size))
        # what activation checkpointing recomputes: per fused level, the stages (+ cross) and the fusion
        # (not the stem's stages: they read the model inputs, as upstream embeddings, outside the checkpoints)
        self.level_steps = nn.ModuleDict({str(lvl): AVOSCheckpointStep() for lvl in self.levels if lvl > 1})
        self.fusion_steps = nn.ModuleList([AVOSCheckpointStep() for _ in self.levels])
        self.post_init()

    # -- forward ---------------------------------------------------------------------------------
    def forward(
        self,
        pixel_values: torch.Tensor,
        flow_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> AVOSSegmentationOutput | tuple:
        r"""Segment frames.

        Args:
            pixel_values: normalised RGB frames ``(B, 3, H, W)``.
            flow_values: normalised colour-coded flow images ``(B, 3, H, W)`` (same B, H, W).
            labels: optional target masks ``(B, 1, H, W)`` or ``(B, H, W)`` in [0, 1]; gives ``loss``.
            output_hidden_states: return the per-level stream and fusion features.

        Returns:
            :class:`AVOSSegmentationOutput` with ``logits (B, 1, H, W)``.
        """
        if pixel_values.ndim != 4 or flow_values.ndim != 4 or pixel_values.shape != flow_values.shape:
            raise ValueError(
                f"pixel_values {tuple(pixel_values.shape)} and flow_values {tuple(flow_values.shape)} must both "
                "be (B, 3, H, W) with the same shape (one RGB frame and its flow image per sample)."
            )
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        app, mot = pixel_values, flow_values
        app_stages = _stage_modules(self.appearance_backbone)
        mot_stages = _stage_modules(self.motion_backbone)
        app_hs, mot_hs, fus_hs = [], [], []
        for lvl, (app_stage, mot_stage) in enumerate(zip(app_stages, mot_stages), start=1):
            cross = self.cross[str(lvl)] if str(lvl) in self.cross else None  # noqa: SIM401 (ModuleDict has no get)

            def level(a, m, app_stage=app_stage, mot_stage=mot_stage, cross=cross):
                a, m = app_stage(a), mot_stage(m)
                return cross(a, m) if cross is not None else (a, m)

            if lvl not in self.levels:
                app, mot = app_stage(app), mot_stage(mot)
                continue
            k = self.levels.index(lvl)
            fusion = self.fusions[k]
            if str(lvl) in self.level_steps:
                parts = [app_stage, mot_stage] + ([cross] if cross is not None else [])
                step = self.level_steps[str(lvl)]
                app, mot = step(app, mot, fn=_RecomputeWithoutStatsUpdate(level, parts))
            else:  # the stem: a reentrant checkpoint of the raw images (no gradient) gives its weights none
                app, mot = level(app, mot)
            # the taps stay outside the checkpointed steps: their hooks (probing, unit masking) run once
            app = self.taps[f"app_stage{lvl}"](app)
            mot = self.taps[f"mot_stage{lvl}"](mot)
            fused = self.fusion_steps[k](app, mot, fn=_RecomputeWithoutStatsUpdate(fusion, [fusion]))
            fused = self.taps[f"fusion{lvl}"](fused)
            app_hs.append(app)
            mot_hs.append(mot)
            fus_hs.append(fused)
        logits = self.decoder(fus_hs)
        logits = F.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)

        loss = None
        if labels is not None:
            loss = avos_loss(
                logits,
                labels,
                soft_loss=self.config.soft_loss,
                bce_weight=float(self.config.bce_weight),
                soft_loss_weight=float(self.config.soft_loss_weight),
            )
        hs = (tuple(app_hs), tuple(mot_hs), tuple(fus_hs)) if output_hidden_states else (None, None, None)
        hidden_states = hs[2]
        if not return_dict:
            return tuple(v for v in (loss, logits, *hs, hidden_states) if v is not None)
        return AVOSSegmentationOutput(
            loss=loss,
            logits=logits,
            appearance_hidden_states=hs[0],
            motion_hidden_states=hs[1],
            fusion_hidden_states=hs[2],
            hidden_states=hidden_states,
        )
