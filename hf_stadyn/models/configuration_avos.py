"""Configuration of the two-stream AVOS segmenter (docs/method.md §7).

This file is self-contained (it imports only ``transformers``) so that a saved checkpoint folder can
ship it as remote code: ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` then works for
users who do not have hf_stadyn installed. Registration with the Auto classes is done by
:mod:`hf_stadyn.models.registry`, not here.
"""

# No ``from __future__ import annotations`` here: the strict dataclass validators need real types.
from typing import cast

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

__all__ = ["CROSS_CONNECTION_TYPES", "FUSION_TYPES", "SOFT_LOSS_TYPES", "AVOSConfig", "tiny_avos_config"]

FUSION_TYPES = ("concat", "gated", "convex")
CROSS_CONNECTION_TYPES = ("none", "motion_to_appearance", "bidirectional", "gated_bidirectional")
SOFT_LOSS_TYPES = ("iou", "dice", "none")
_DEFAULT_STAGES = ["stem", "stage1", "stage2", "stage3", "stage4"]


@strict
class AVOSConfig(PreTrainedConfig):
    r"""Configuration of :class:`~hf_stadyn.models.modeling_avos.AVOSModel`.

    A two-stream segmenter: an appearance stream on the RGB frame and a motion stream on the
    colour-coded optical flow, each a backbone built with ``transformers.AutoBackbone``; the streams
    are fused after every backbone level, optionally exchange information through cross-connections
    at the later levels, and a top-down decoder turns the fused features into per-frame mask logits.

    Levels are numbered from 1 in the order of the backbone's ``stage_names``: for a ResNet, level 1
    is the stem (``"stem"``) and levels 2-5 are ``"stage1"`` ... ``"stage4"``, so the 5 fusion layers
    match the paper's conv1-conv5 fusion layers. Probed layer names follow the levels:
    ``"app_stage{i}"``, ``"mot_stage{i}"`` and ``"fusion{i}"``.

    Args:
        backbone_config (`dict` or `PreTrainedConfig`, *optional*):
            Configuration of each stream's backbone (both streams share the architecture, not the
            weights). Defaults to a ResNet-50 layout with ``out_features`` = stem, stage1..stage4. Any
            transformers backbone whose model exposes its stem (``embedder`` or ``embeddings``) and
            ``encoder.stages`` can be used (ResNet, RegNet, ConvNeXt, ...). Fusion happens at every
            level named in ``out_features``.
        backbone (`str`, *optional*):
            Hub id or local folder of pretrained backbone weights (e.g. ``"microsoft/resnet-18"``); used
            only when ``use_pretrained_backbone`` is true.
        use_pretrained_backbone (`bool`, *optional*, defaults to `False`):
            Initialise both streams from ``backbone``'s weights when the model is built. The flag is
            switched off on the built model's config, so a saved checkpoint (which holds the weights)
            never downloads the backbone again.
        fusion (`str`, *optional*, defaults to `"concat"`):
            Fusion after each level: ``"concat"`` (concatenate + 1x1 conv; FusionSeg-like), ``"gated"``
            (channel gate x spatial gate x global scalar gate, plus a residual; MATNet-like) or
            ``"convex"`` (alpha * app + (1 - alpha) * mot with channel and spatial alphas; RTNet-like).
        cross_connection (`str`, *optional*, defaults to `"none"`):
            Cross-connections between the streams: ``"none"``, ``"motion_to_appearance"`` (motion gates
            appearance, app' = app * sigmoid(W mot) + app), ``"bidirectional"`` (reciprocal additive
            exchange, app' = app + W_ma mot and mot' = mot + W_am app) or ``"gated_bidirectional"``
            ([g_app; g_mot] = sigmoid(W [app; mot]), x' = x * g + x for both streams).
        cross_stages (`list[int]`, *optional*, defaults to `[3, 4, 5]`):
            Levels (1-based, see above) after which the cross-connections act; the exchanged features
            feed both the next level of each stream and that level's fusion.
        decoder_hidden_size (`int`, *optional*, defaults to 64):
            Channels of the top-down decoder.
        soft_loss (`str`, *optional*, defaults to `"iou"`):
            The region term added to binary cross-entropy: ``"iou"`` (soft Jaccard), ``"dice"`` or
            ``"none"``.
        bce_weight (`float`, *optional*, defaults to 1.0): weight of the BCE term of the loss.
        soft_loss_weight (`float`, *optional*, defaults to 1.0): weight of the soft IoU/Dice term.
        image_mean, image_std (`list[float]`, *optional*): per-channel normalisation of both input
            images (uint8 / 255), ImageNet statistics by default.
        initializer_range (`float`, *optional*, defaults to 0.02): std of the normal init of linear
            layers of the fusion and gate modules.
        image_size (`int`, *optional*): the frame side (pixels) the model was trained on. Probing makes
            its pairs at this size (``probe_input_spec()["image_size"]``); ``None`` (default, and what
            checkpoints saved before this field read as) keeps the source frames' size.

    Validation: the config is a strict dataclass (``huggingface_hub.dataclasses.strict``, as upstream
    transformers configs): a field of the wrong type raises ``StrictDataclassFieldValidationError`` at
    construction and on assignment; values outside the accepted choices raise ``ValueError`` at
    construction (:meth:`validate_avos`, which ``config.validate()`` runs again after edits).
    """

    model_type = "stadyn_avos"
    sub_configs_defaults = {  # noqa: RUF012 (transformers' class-level sub-config table)
        "backbone_config": SubConfigSpec(
            config_class=AutoConfig, model_type="resnet", init_kwargs={"out_features": list(_DEFAULT_STAGES)}
        ),
    }

    backbone_config: dict | PreTrainedConfig | None = None
    backbone: str | None = None
    use_pretrained_backbone: bool = False
    fusion: str = "concat"
    cross_connection: str = "none"
    cross_stages: list[int] | tuple[int, ...] | None = None
    decoder_hidden_size: int = 64
    soft_loss: str = "iou"
    bce_weight: float | int = 1.0
    soft_loss_weight: float | int = 1.0
    image_mean: list[float | int] | tuple[float | int, ...] | None = None
    image_std: list[float | int] | tuple[float | int, ...] | None = None
    initializer_range: float | int = 0.02
    image_size: int | None = None

    def __post_init__(self, **kwargs):
        # lists, as config.json writes them (tuples are accepted as input)
        self.cross_stages = [3, 4, 5] if self.cross_stages is None else list(self.cross_stages)
        self.image_mean = [0.485, 0.456, 0.406] if self.image_mean is None else list(self.image_mean)
        self.image_std = [0.229, 0.224, 0.225] if self.image_std is None else list(self.image_std)
        super().__post_init__(**kwargs)
        self.validate_avos()

    def validate_avos(self) -> None:
        """Check the AVOS fields; raise ``ValueError`` naming the bad field and the accepted values."""
        if self.fusion not in FUSION_TYPES:
            raise ValueError(f"AVOSConfig.fusion = {self.fusion!r} is not supported; choose one of {FUSION_TYPES}.")
        if self.cross_connection not in CROSS_CONNECTION_TYPES:
            raise ValueError(
                f"AVOSConfig.cross_connection = {self.cross_connection!r} is not supported; choose one of "
                f"{CROSS_CONNECTION_TYPES}."
            )
        if self.soft_loss not in SOFT_LOSS_TYPES:
            raise ValueError(
                f"AVOSConfig.soft_loss = {self.soft_loss!r} is not supported; choose one of {SOFT_LOSS_TYPES}."
            )
        if int(self.decoder_hidden_size) < 1:
            raise ValueError(f"AVOSConfig.decoder_hidden_size must be >= 1, got {self.decoder_hidden_size!r}.")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"AVOSConfig.image_size must be >= 1 pixels (or None), got {self.image_size!r}.")
        if float(self.bce_weight) < 0 or float(self.soft_loss_weight) < 0:
            raise ValueError("AVOSConfig.bce_weight and soft_loss_weight must be >= 0.")
        for name in ("image_mean", "image_std"):
            v = getattr(self, name)
            if len(v) != 3 or (name == "image_std" and any(float(s) <= 0 for s in v)):
                raise ValueError(f"AVOSConfig.{name} must hold 3 values (std > 0), got {v!r}.")
        if self.use_pretrained_backbone and not self.backbone:
            raise ValueError(
                "AVOSConfig.use_pretrained_backbone is true but no `backbone` (Hub id or folder of "
                "pretrained weights, e.g. 'microsoft/resnet-18') was given."
            )
        stage_names = getattr(self.backbone_config, "stage_names", None)
        if stage_names is None:
            raise ValueError(
                f"AVOSConfig.backbone_config ({type(self.backbone_config).__name__}) is not a backbone "
                "configuration (no stage_names); use e.g. transformers.ResNetConfig."
            )
        out = list(getattr(self.backbone_config, "out_features", None) or [])
        if not out:
            raise ValueError("AVOSConfig.backbone_config.out_features is empty; list the levels to fuse.")
        levels = {stage_names.index(s) + 1 for s in out}
        cross_stages = cast("list[int] | tuple[int, ...]", self.cross_stages)  # a list since __post_init__
        bad = [s for s in cross_stages if int(s) not in levels]
        if self.cross_connection != "none" and bad:
            raise ValueError(
                f"AVOSConfig.cross_stages {bad} are not fused levels; the fused levels (1-based, from "
                f"out_features {out}) are {sorted(levels)}."
            )

    @property
    def fused_levels(self) -> list[int]:
        """1-based levels (positions in ``backbone_config.stage_names``) that are fused, in order."""
        # a backbone config object since __post_init__ (sub_configs_defaults turns a dict into one)
        backbone_config = cast(PreTrainedConfig, self.backbone_config)
        names = list(backbone_config.stage_names)
        return [names.index(s) + 1 for s in backbone_config.out_features]


def tiny_avos_config(
    fusion: str = "concat",
    cross_connection: str = "none",
    hidden_sizes: tuple[int, ...] = (8, 16, 24, 32),
    embedding_size: int = 8,
    decoder_hidden_size: int = 16,
    **kwargs,
) -> AVOSConfig:
    """A CPU-sized configuration: ResNet "basic" streams with small widths, depth 1 per stage.

    Works with 64x64 inputs (levels at strides 4, 4, 8, 16, 32). About 80-90 k parameters.
    """
    from transformers import ResNetConfig

    # out_features is not a ResNetConfig field: the strict dataclass __init__ hands it on to __post_init__
    # (BackboneConfigMixin reads it there), which mypy's dataclass signature omits
    backbone = ResNetConfig(  # type: ignore[call-arg]
        embedding_size=embedding_size,
        hidden_sizes=list(hidden_sizes),
        depths=[1] * len(hidden_sizes),
        layer_type="basic",
        out_features=["stem"] + [f"stage{i}" for i in range(1, len(hidden_sizes) + 1)],
    )
    return AVOSConfig(
        backbone_config=backbone,
        fusion=fusion,
        cross_connection=cross_connection,
        decoder_hidden_size=decoder_hidden_size,
        **kwargs,
    )
