"""Checkpoints that upstream transformers can load: the shared config behaviour of our wrappers.

Our config classes have their own ``model_type`` (``"stadyn_videomae"``, ``"stadyn_timesformer"``) so
that they are registered with the transformers Auto classes, but by default they *serialise* as the
upstream model: ``config.json`` gets the upstream ``model_type`` and ``architectures``, while every
extra field (``stadyn``, ``time_embed_init_std``, settings added later) is written next to the
upstream ones. So a checkpoint saved by an hf_stadyn model loads with plain
``transformers.AutoModelForVideoClassification.from_pretrained(path)`` -- no hf_stadyn import, no
``trust_remote_code`` -- into the vanilla class with identical weights and logits (extra fields become
plain attributes of the upstream config), and our classes read the same folder back with every
field. ``save_as_upstream=False`` writes our own ``model_type`` instead (loading it then needs
``import hf_stadyn``, which registers the classes).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

__all__ = ["UpstreamCompatibleConfigMixin", "register_upstream_weight_conversions"]

logger = logging.getLogger(__name__)


class UpstreamCompatibleConfigMixin:
    """Config behaviour shared by our wrappers; mix in *before* the upstream config class.

    A concrete class sets ``model_type`` (ours), ``upstream_model_type`` and
    ``upstream_architectures`` (our model class name -> upstream class name) and declares the field
    ``save_as_upstream: bool = True``.
    """

    upstream_model_type: ClassVar[str] = ""
    upstream_architectures: ClassVar[dict[str, str]] = {}

    # -- reading: accept both our model_type and the upstream one, reject anything else
    def __post_init__(self, **kwargs: Any) -> None:
        found = kwargs.pop("model_type", None)
        if found is not None:
            self._check_model_type(found)
        super().__post_init__(**kwargs)  # type: ignore[misc]

    @classmethod
    def _check_model_type(cls, found: str, source: str = "the config") -> None:
        ours = cls.model_type  # type: ignore[attr-defined]
        if found not in (ours, cls.upstream_model_type):
            raise ValueError(
                f"{source} has model_type {found!r} but {cls.__name__} reads {cls.upstream_model_type!r} or "
                f"{ours!r} checkpoints; load it with the matching class (hf_stadyn.models.auto.load_model "
                "picks one) or probe it with hf_stadyn.probing.FeatureProbe."
            )

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> tuple[dict, dict]:
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)  # type: ignore[misc]
        found = config_dict.get("model_type")
        if found is not None:
            cls._check_model_type(found, source=f"{pretrained_model_name_or_path}")
            # an upstream checkpoint is a valid input for our class: no "model type mismatch" warning
            config_dict = {**config_dict, "model_type": cls.model_type}  # type: ignore[attr-defined]
        return config_dict, kwargs

    # -- writing: upstream model_type and architectures unless save_as_upstream=False
    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()  # type: ignore[misc]
        if output.get("save_as_upstream", True):
            output.pop("save_as_upstream", None)
            output["model_type"] = self.upstream_model_type
            archs = output.get("architectures")
            if archs:
                output["architectures"] = [self.upstream_architectures.get(a, a) for a in archs]
        return output


def register_upstream_weight_conversions(model_type: str, upstream_model_type: str) -> None:
    """Give ``model_type`` the checkpoint key renamings transformers applies to ``upstream_model_type``.

    transformers looks the renamings up by ``config.model_type`` (e.g. VideoMAE maps the original
    ``q_bias``/``v_bias`` keys to ``query.bias``/``value.bias`` on load and back on save). Without this,
    our classes would save and load different keys than the upstream class.
    """
    try:
        from transformers.conversion_mapping import (
            get_checkpoint_conversion_mapping,
            register_checkpoint_conversion_mapping,
        )
    except ImportError:  # older transformers: no conversion registry, nothing to mirror
        return
    mapping = get_checkpoint_conversion_mapping(upstream_model_type)
    if mapping is None:
        return
    register_checkpoint_conversion_mapping(model_type, mapping, overwrite=True)
