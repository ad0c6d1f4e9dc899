"""Configuration of hf-stadyn's TimeSformer video classifier (upstream-compatible, see ``_upstream``)."""

# No ``from __future__ import annotations`` here: the strict dataclass validators need real types.
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import TimesformerConfig

from ._upstream import UpstreamCompatibleConfigMixin

__all__ = ["StadynTimesformerConfig", "tiny_timesformer_config"]


@strict
class StadynTimesformerConfig(UpstreamCompatibleConfigMixin, TimesformerConfig):
    """``TimesformerConfig`` for :class:`~hf_stadyn.models.StadynTimesformerForVideoClassification`.

    Every ``TimesformerConfig`` field applies unchanged. ``attention_type`` must be
    ``"divided_space_time"`` (default) or ``"joint_space_time"``: upstream ``"space_only"`` gives
    per-frame hidden states and per-frame logits ``(B * T, num_labels)``, so it is rejected with a
    ValueError. Fields added by hf-stadyn:

    - ``save_as_upstream`` (bool, default True): write ``config.json`` as an upstream TimeSformer
      config (``model_type="timesformer"``, ``architectures=["TimesformerForVideoClassification"]``) so
      the checkpoint loads with plain ``transformers.AutoModelForVideoClassification.from_pretrained``
      without hf-stadyn and without ``trust_remote_code``; the extra fields are still written and read
      back by our class. False writes ``model_type="stadyn_timesformer"`` (loading then needs
      ``import hf_stadyn``). The key is only written when False.
    - ``stadyn`` (dict or None, default None): hf-stadyn settings carried by the checkpoint, e.g.
      ``{"static_dropout": {...}}``; ignored by upstream transformers.
    - ``time_embed_init_std`` (float or None, default None): when set, the time embeddings are drawn
      from N(0, std^2) at initialisation instead of upstream's zeros (only affects freshly initialised
      weights; loaded checkpoints keep theirs). With zeros and the default ``initializer_range`` a
      TimeSformer trained from scratch on small data may never learn motion (docs/method.md §10).

    Loading: our class reads ``"timesformer"`` and ``"stadyn_timesformer"`` configs and rejects any
    other ``model_type`` with a ValueError.
    """

    model_type = "stadyn_timesformer"
    upstream_model_type: ClassVar[str] = "timesformer"
    upstream_architectures: ClassVar[dict[str, str]] = {
        "StadynTimesformerForVideoClassification": "TimesformerForVideoClassification",
    }

    save_as_upstream: bool = True
    stadyn: dict[str, Any] | None = None
    time_embed_init_std: float | int | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.validate_stadyn()

    def validate_stadyn(self) -> None:
        """Check hf-stadyn's constraints; ``ValueError`` naming the field. A ``@strict`` class validator too,
        so ``config.validate()`` checks again after edits."""
        if self.attention_type == "space_only":
            raise ValueError(
                "attention_type='space_only' is not supported: upstream TimeSformer then returns per-frame logits "
                "(B * T, num_labels) and per-frame hidden states. Use 'divided_space_time' (default) or "
                "'joint_space_time'."
            )
        if self.attention_type not in ("divided_space_time", "joint_space_time"):
            raise ValueError(f"attention_type={self.attention_type!r}; use 'divided_space_time' or 'joint_space_time'.")
        if self.time_embed_init_std is not None and not self.time_embed_init_std >= 0:
            raise ValueError(f"time_embed_init_std={self.time_embed_init_std} must be >= 0 (or None for zeros).")
        for size in _pair(self.image_size):
            for patch in _pair(self.patch_size):
                if size % patch:
                    raise ValueError(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}.")


def _pair(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def tiny_timesformer_config(
    num_labels: int,
    num_frames: int = 8,
    image_size: int = 32,
    *,
    patch_size: int = 8,
    hidden_size: int = 64,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 4,
    intermediate_size: int = 128,
    initializer_range: float = 0.1,
    time_embed_init_std: float | None = 0.5,
    **kwargs: Any,
) -> StadynTimesformerConfig:
    """A CPU-sized TimeSformer classifier config (hidden 64, 4 layers, patch 8, divided space-time).

    ``initializer_range=0.1`` and time embeddings drawn with std 0.5 are what let this size learn
    motion from scratch in docs/method.md §10 (with upstream's zero time embeddings it stayed at
    chance). Extra keyword arguments go to :class:`StadynTimesformerConfig`.
    """
    if num_labels < 1:
        raise ValueError(f"num_labels={num_labels} must be >= 1.")
    # num_labels is a PreTrainedConfig property, not a field: the strict dataclass __init__ hands it on
    # to __post_init__ (as transformers' own configs take it), which mypy's dataclass signature omits
    return StadynTimesformerConfig(  # type: ignore[call-arg]
        num_labels=num_labels,
        num_frames=num_frames,
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        initializer_range=initializer_range,
        time_embed_init_std=time_embed_init_std,
        **kwargs,
    )
