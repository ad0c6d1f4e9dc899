"""Configuration of hf-stadyn's VideoMAE video classifier (upstream-compatible, see ``_upstream``)."""

# No ``from __future__ import annotations`` here: the strict dataclass validators need real types.
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import VideoMAEConfig

from ._upstream import UpstreamCompatibleConfigMixin

__all__ = ["StadynVideoMAEConfig", "tiny_videomae_config"]


@strict
class StadynVideoMAEConfig(UpstreamCompatibleConfigMixin, VideoMAEConfig):
    """``VideoMAEConfig`` for :class:`~hf_stadyn.models.StadynVideoMAEForVideoClassification`.

    Every ``VideoMAEConfig`` field applies unchanged (``num_frames``, ``image_size``, ``patch_size``,
    ``tubelet_size``, ``hidden_size``, ...). Fields added by hf-stadyn:

    - ``save_as_upstream`` (bool, default True): write ``config.json`` as an upstream VideoMAE config
      (``model_type="videomae"``, ``architectures=["VideoMAEForVideoClassification"]``) so the
      checkpoint loads with plain ``transformers.AutoModelForVideoClassification.from_pretrained``
      without hf-stadyn and without ``trust_remote_code``; the extra fields below are still written
      and are read back by our class. False writes ``model_type="stadyn_videomae"`` (loading then
      needs ``import hf_stadyn``, which registers the class with the Auto classes). The key is only
      written when False.
    - ``stadyn`` (dict or None, default None): hf-stadyn settings carried by the checkpoint, e.g.
      ``{"static_dropout": {...}}``; ignored by upstream transformers.

    Loading: our class reads ``"videomae"`` and ``"stadyn_videomae"`` configs and rejects any other
    ``model_type`` with a ValueError. Validation: ``num_frames`` must be a multiple of
    ``tubelet_size`` and ``image_size`` of ``patch_size``.
    """

    model_type = "stadyn_videomae"
    upstream_model_type: ClassVar[str] = "videomae"
    upstream_architectures: ClassVar[dict[str, str]] = {
        "StadynVideoMAEForVideoClassification": "VideoMAEForVideoClassification",
    }

    save_as_upstream: bool = True
    stadyn: dict[str, Any] | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.validate_stadyn()

    def validate_stadyn(self) -> None:
        """Check hf-stadyn's constraints; ``ValueError`` naming the field. A ``@strict`` class validator too,
        so ``config.validate()`` checks again after edits."""
        if self.num_frames % self.tubelet_size:
            raise ValueError(
                f"num_frames={self.num_frames} is not a multiple of tubelet_size={self.tubelet_size}; VideoMAE "
                "patches the clip in tubelets of tubelet_size frames."
            )
        for size in _pair(self.image_size):
            for patch in _pair(self.patch_size):
                if size % patch:
                    raise ValueError(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}.")


def _pair(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def tiny_videomae_config(
    num_labels: int,
    num_frames: int = 8,
    image_size: int = 32,
    *,
    patch_size: int = 8,
    tubelet_size: int = 2,
    hidden_size: int = 64,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 4,
    intermediate_size: int = 128,
    **kwargs: Any,
) -> StadynVideoMAEConfig:
    """A CPU-sized VideoMAE classifier config (hidden 64, 4 layers, patch 8, tubelet 2; ~0.2 M params).

    The size used in docs/method.md §10: it learns StaDyn-Synth motion classes from scratch in a
    few CPU minutes. Extra keyword arguments go to :class:`StadynVideoMAEConfig`.
    """
    if num_labels < 1:
        raise ValueError(f"num_labels={num_labels} must be >= 1.")
    # num_labels is a PreTrainedConfig property, not a field: the strict dataclass __init__ hands it on
    # to __post_init__ (as transformers' own configs take it), which mypy's dataclass signature omits
    return StadynVideoMAEConfig(  # type: ignore[call-arg]
        num_labels=num_labels,
        num_frames=num_frames,
        image_size=image_size,
        patch_size=patch_size,
        tubelet_size=tubelet_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        **kwargs,
    )
