"""The one model registry: every model type hf_stadyn knows, its classes and its Auto classes.

Each entry is one model class (its config class is ``model_class.config_class``); from the entries
come

- the transformers Auto registration (:func:`register_auto_classes`): ``AutoConfig`` for the entry's
  ``model_type``, and every Auto model class named in ``auto_classes``;
- :func:`hf_stadyn.models.auto.load_model`'s ``model_type -> class`` table (:func:`model_class_for`),
  where the upstream model type of an upstream-compatible config (``config_class.upstream_model_type``,
  e.g. ``"videomae"``) maps to our wrapper class as well;
- the list of supported types (:func:`supported_model_types`, ``hf_stadyn.models.auto.SUPPORTED_MODEL_TYPES``).

A model type string lives in exactly one place: the config class's ``model_type`` attribute.

``AutoModel`` resolution: for every hf_stadyn config, ``AutoModel`` gives the full hf_stadyn model (the
class with the probing adapter), i.e. ``AutoModel.from_config(StadynVideoMAEConfig())`` is a
:class:`~hf_stadyn.models.StadynVideoMAEForVideoClassification`, as ``AutoModel`` gives
:class:`~hf_stadyn.models.AVOSModel` for the AVOS config. hf_stadyn has no bare-encoder classes: the
probe layers include the classifier input (``"pre_classifier"``), which only the full model has. A
checkpoint saved as upstream (the default, ``save_as_upstream=True``) carries the upstream
``model_type``, so plain ``AutoModel.from_pretrained`` on it gives upstream's bare ``VideoMAEModel``;
use :func:`~hf_stadyn.models.auto.load_model` or ``AutoModelForVideoClassification`` for our class.

New architectures (third-party or later hf_stadyn families) register with :func:`register_model`, as a
decorator or a call, timm-style::

    @register_model(auto_classes=("AutoModel",))
    class MyModel(BiasProbingMixin, PreTrainedModel):
        config_class = MyConfig
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .modeling_avos import AVOSModel
from .modeling_timesformer import StadynTimesformerForVideoClassification
from .modeling_videomae import StadynVideoMAEForVideoClassification

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel

__all__ = [
    "AUTO_MODEL_CLASSES",
    "ModelRegistration",
    "auto_classes_registered",
    "is_registered",
    "model_class_for",
    "register_auto_classes",
    "register_model",
    "registered_models",
    "supported_model_types",
]

logger = logging.getLogger(__name__)

M = TypeVar("M", bound="type[PreTrainedModel]")

#: Auto model classes an entry may name (attributes of ``transformers``).
AUTO_MODEL_CLASSES = ("AutoModel", "AutoModelForVideoClassification", "AutoBackbone")


@dataclass(frozen=True)
class ModelRegistration:
    """One registered model family.

    Attributes:
        model_class: the ``PreTrainedModel`` subclass; its ``config_class`` is the family's config.
        auto_classes: names of the transformers Auto model classes that resolve the config to
            ``model_class`` (``"AutoModel"``, ``"AutoModelForVideoClassification"``).
        remote_code: the model's files are self-contained enough to be shipped next to a checkpoint
            (``save_pretrained`` copies them and writes ``auto_map``), so users without hf_stadyn load it
            with ``trust_remote_code=True``.
    """

    model_class: type[PreTrainedModel]
    auto_classes: tuple[str, ...] = ("AutoModel",)
    remote_code: bool = False

    @property
    def config_class(self) -> type[PreTrainedConfig]:
        # register_model only accepts classes whose config_class is set (with a model_type)
        return cast("type[PreTrainedConfig]", self.model_class.config_class)

    @property
    def model_type(self) -> str:
        """Our model type (``config_class.model_type``)."""
        return str(self.config_class.model_type)

    @property
    def model_types(self) -> tuple[str, ...]:
        """Every ``model_type`` this class loads: ours, then the upstream one if the config has one."""
        upstream = getattr(self.config_class, "upstream_model_type", "") or ""
        return (self.model_type, upstream) if upstream else (self.model_type,)


_REGISTRY: dict[str, ModelRegistration] = {}
_AUTO_REGISTERED = False


def register_model(
    model_class: M | None = None,
    *,
    auto_classes: Iterable[str] = ("AutoModel",),
    remote_code: bool = False,
    exist_ok: bool = False,
) -> M | Callable[[M], M]:
    """Register a model class (decorator or call); returns the class unchanged.

    Args:
        model_class: a ``PreTrainedModel`` subclass with ``config_class`` set.
        auto_classes: Auto model classes that give ``model_class`` for its config (see
            :data:`AUTO_MODEL_CLASSES`).
        remote_code: see :class:`ModelRegistration`.
        exist_ok: replace an entry with the same model type instead of raising.

    Raises:
        ValueError: no ``config_class``/``model_type``, an unknown Auto class name, or a model type
            already registered by another class (without ``exist_ok``).
    """

    def wrap(cls: M) -> M:
        config_class = getattr(cls, "config_class", None)
        model_type = getattr(config_class, "model_type", "") if config_class is not None else ""
        if not model_type:
            raise ValueError(
                f"register_model({cls.__name__}): the class needs a config_class with a model_type "
                "(e.g. config_class = MyConfig with MyConfig.model_type = 'my_model')."
            )
        autos = tuple(auto_classes)
        bad = [a for a in autos if a not in AUTO_MODEL_CLASSES]
        if bad:
            raise ValueError(f"register_model({cls.__name__}): unknown Auto classes {bad}; use {AUTO_MODEL_CLASSES}.")
        entry = ModelRegistration(cls, auto_classes=autos, remote_code=remote_code)
        taken = {t: e for e in _REGISTRY.values() for t in e.model_types if e.model_class is not cls}
        clash = [t for t in entry.model_types if t in taken]
        if clash and not exist_ok:
            raise ValueError(
                f"register_model({cls.__name__}): model type {clash[0]!r} is already registered by "
                f"{taken[clash[0]].model_class.__name__}; pass exist_ok=True to replace it."
            )
        for t in clash:
            _REGISTRY.pop(taken[t].model_type, None)
        _REGISTRY[entry.model_type] = entry
        if _AUTO_REGISTERED:
            _register_entry(entry)
        return cls

    return wrap(model_class) if model_class is not None else wrap


def registered_models() -> dict[str, ModelRegistration]:
    """``{our model_type: entry}`` in registration order (a copy)."""
    return dict(_REGISTRY)


def supported_model_types() -> tuple[str, ...]:
    """Every ``model_type`` of hf_stadyn's own classes (ours and the upstream ones they read).

    :func:`~hf_stadyn.models.auto.load_model` accepts these and, through :mod:`hf_stadyn.models.generic`,
    the other upstream video architectures: :func:`hf_stadyn.models.auto.loadable_model_types` lists all.
    """
    return tuple(t for e in _REGISTRY.values() for t in e.model_types)


def is_registered(model_type: str) -> bool:
    """Whether ``model_type`` (ours or an upstream one) maps to a registered class."""
    return model_type in supported_model_types()


def model_class_for(model_type: str) -> Any | None:
    """The class that loads checkpoints of ``model_type`` (``"videomae"`` gives our wrapper), or None."""
    for e in _REGISTRY.values():
        if model_type in e.model_types:
            return e.model_class
    return None


def _register_entry(entry: ModelRegistration) -> None:
    import transformers

    transformers.AutoConfig.register(entry.model_type, entry.config_class, exist_ok=True)
    for name in entry.auto_classes:
        getattr(transformers, name).register(entry.config_class, entry.model_class, exist_ok=True)
    if entry.remote_code:
        entry.config_class.register_for_auto_class()
        entry.model_class.register_for_auto_class(entry.auto_classes[0] if entry.auto_classes else "AutoModel")


def register_auto_classes() -> None:
    """Register every entry with ``AutoConfig`` and its Auto model classes; safe to call again.

    Runs when :mod:`hf_stadyn.models` is imported, and (through :mod:`hf_stadyn._autoregister`) as soon
    as transformers is imported in a process that imported hf_stadyn.
    """
    global _AUTO_REGISTERED
    for entry in _REGISTRY.values():
        _register_entry(entry)
    _AUTO_REGISTERED = True
    hook = sys.modules.get("hf_stadyn._autoregister")
    if hook is not None:  # the import hook has nothing left to do
        hook._remove_finder()
    logger.debug("registered %s with the transformers Auto classes", sorted(_REGISTRY))


def auto_classes_registered() -> bool:
    """Whether :func:`register_auto_classes` has run in this process."""
    return _AUTO_REGISTERED


# -- hf_stadyn's own families --------------------------------------------------------------------
register_model(StadynVideoMAEForVideoClassification, auto_classes=("AutoModel", "AutoModelForVideoClassification"))
register_model(StadynTimesformerForVideoClassification, auto_classes=("AutoModel", "AutoModelForVideoClassification"))
register_model(AVOSModel, auto_classes=("AutoModel",), remote_code=True)
