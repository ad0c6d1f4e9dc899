"""StaticDropout: semantically guided channel dropout toward dynamics (docs/method.md §6).

A bounded set of *static* channels of one layer (by default the top-k channels by
``rho_S - rho_D`` measured with :class:`~hf_stadyn.metric.StaticDynamicEstimator` on a fixed set of
probe pairs) is dropped during training: every static channel is zeroed with probability ``p``
independently per sample, with the same mask over all tokens/positions of that sample, and kept
static channels are scaled by ``1 / (1 - p)``. Other channels pass unchanged (or get ordinary
element-wise dropout ``p_other``). In eval mode the module is the identity, so a StaticDropout-trained
checkpoint computes exactly what a plain ``transformers`` model of the same architecture computes.

Three pieces live here:

* :class:`StaticDropout`, the ``nn.Module`` (a registered buffer of static channel indices, so the set
  saves and loads with the module);
* :class:`StaticDropoutConfig` and :func:`select_static_channels` (which channels, from estimator
  output), defined in :mod:`hf_stadyn.debias.config` and re-exported here;
* :func:`apply_static_dropout` / :func:`static_dropout_from_config`, the plumbing that installs the
  module in a video classifier (``feature_dropout`` slot before the classifier, or a forward hook on
  an intermediate block) and records the settings and the static set in the model config under
  ``stadyn["static_dropout"]`` (hf_stadyn configs; ``static_dropout`` on other configs), so they
  end up in ``config.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from .config import (
    CONFIG_KEY,
    PRE_CLASSIFIER,
    SELECTIONS,
    StaticDropoutConfig,
    select_static_channels,
    set_config_entry,
)

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = [
    "PRE_CLASSIFIER",
    "SELECTIONS",
    "StaticDropout",
    "StaticDropoutConfig",
    "apply_static_dropout",
    "get_static_dropout",
    "remove_static_dropout",
    "select_static_channels",
    "set_static_channels",
    "static_dropout_from_config",
]

logger = logging.getLogger(__name__)


class StaticDropout(nn.Module):
    """Drop a fixed set of channels per sample (docs/method.md §6); identity in eval mode.

    Args:
        num_channels: C, the channel count of the layer.
        p: probability of zeroing each static channel of a sample, in [0, 1).
        static_channels: indices of the static channels (any order, no repeats), or None for none
            yet (the module then only applies ``p_other``).
        p_other: ordinary element-wise dropout on the *other* channels (0 leaves them untouched).
        channel_dim: the channel axis of the input; -1 for ``(B, C)`` / ``(B, N, C)`` tokens, 1 for
            ``(B, C, T, H, W)`` maps.
        generator: optional ``torch.Generator`` for the masks (default: torch's global generator,
            which accelerate's ``set_seed`` seeds and ``save_state`` saves).

    Shapes:
        input ``(B, ..., C, ...)`` with C on ``channel_dim``; output the same shape. The mask of a
        sample is ``(C,)`` and is broadcast over every other axis (tokens, positions, frames).

    Example:
        >>> sd = StaticDropout(8, p=0.5, static_channels=[0, 3])
        >>> sd.eval()(torch.ones(2, 5, 8)).equal(torch.ones(2, 5, 8))
        True
    """

    static_channels: torch.Tensor

    def __init__(
        self,
        num_channels: int,
        p: float = 0.5,
        static_channels: Sequence[int] | np.ndarray | torch.Tensor | None = None,
        *,
        p_other: float = 0.0,
        channel_dim: int = -1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_channels, bool) or not isinstance(num_channels, (int, np.integer)) or num_channels < 1:
            raise ValueError(f"StaticDropout: num_channels must be a positive int, got {num_channels!r}.")
        self.num_channels = int(num_channels)
        self.p = _check_rate(p, "p")
        self.p_other = _check_rate(p_other, "p_other")
        self.channel_dim = int(channel_dim)
        self.generator = generator
        self.register_buffer("static_channels", torch.zeros(0, dtype=torch.long), persistent=True)
        self.set_static_channels(static_channels if static_channels is not None else [])

    # ------------------------------------------------------------------ the static set
    def set_static_channels(self, channels: Sequence[int] | np.ndarray | torch.Tensor) -> None:
        """Replace the static set. Raises ``ValueError`` for out-of-range or repeated indices."""
        idx = _as_index_tensor(channels, self.num_channels)
        self.static_channels = idx.to(self.static_channels.device)

    @property
    def num_static(self) -> int:
        return int(self.static_channels.numel())

    def static_mask(self) -> torch.Tensor:
        """Boolean ``(C,)`` mask of the static channels."""
        m = torch.zeros(self.num_channels, dtype=torch.bool, device=self.static_channels.device)
        m[self.static_channels] = True
        return m

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # The static set changes size between refreshes: resize the buffer to the saved one first.
        key = prefix + "static_channels"
        if key in state_dict:
            saved = state_dict[key]
            self.static_channels = torch.empty_like(saved, dtype=torch.long, device=self.static_channels.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the per-sample static-channel mask (training) or return ``x`` unchanged (eval)."""
        if not self.training:
            return x
        k = self.static_channels.numel()
        if (k == 0 or self.p == 0.0) and self.p_other == 0.0:
            return x
        cd = self.channel_dim % x.ndim
        if cd == 0 or x.shape[cd] != self.num_channels:
            raise ValueError(
                f"StaticDropout expects C = {self.num_channels} channels on axis {self.channel_dim} of a "
                f"batched input, got shape {tuple(x.shape)}."
            )
        out = x
        if k > 0 and self.p > 0.0:
            b = x.shape[0]
            keep = torch.empty(b, k, dtype=x.dtype, device=x.device)
            keep.bernoulli_(1.0 - self.p, generator=self.generator).div_(1.0 - self.p)
            scale = torch.ones(b, self.num_channels, dtype=x.dtype, device=x.device)
            scale[:, self.static_channels] = keep
            shape = [1] * x.ndim
            shape[0], shape[cd] = b, self.num_channels
            out = out * scale.view(shape)
        if self.p_other > 0.0:
            other = torch.empty_like(x).bernoulli_(1.0 - self.p_other, generator=self.generator)
            other.div_(1.0 - self.p_other)
            if k > 0:
                other.index_fill_(cd, self.static_channels, 1.0)
            out = out * other
        return out

    def extra_repr(self) -> str:
        return (
            f"num_channels={self.num_channels}, p={self.p}, num_static={self.num_static}, "
            f"p_other={self.p_other}, channel_dim={self.channel_dim}"
        )


def _check_rate(p: Any, name: str) -> float:
    try:
        v = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"StaticDropout: {name} must be a number in [0, 1), got {p!r}.") from None
    if not (0.0 <= v < 1.0) or math.isnan(v):
        raise ValueError(f"StaticDropout: {name} must be in [0, 1) (1 would zero everything), got {p!r}.")
    return v


def _as_index_tensor(channels: Any, num_channels: int) -> torch.Tensor:
    if isinstance(channels, torch.Tensor):
        arr = channels.detach().cpu().numpy()
    else:
        arr = np.asarray(list(channels) if not isinstance(channels, np.ndarray) else channels)
    arr = arr.reshape(-1)
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.equal(np.mod(arr, 1), 0)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"static channel indices must be integers, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_channels):
        raise ValueError(
            f"static channel indices must lie in 0..{num_channels - 1}, got min {arr.min()} and max {arr.max()}."
        )
    if len(np.unique(arr)) != arr.size:
        raise ValueError("static channel indices contain repeats; give each channel once.")
    return torch.from_numpy(np.sort(arr))


# ====================================================================== model plumbing
def _hidden_size(model: nn.Module, layer: str) -> int:
    if layer == PRE_CLASSIFIER:
        clf = getattr(model, "classifier", None)
        if isinstance(clf, nn.Linear):
            return int(clf.in_features)
    cfg = getattr(model, "config", None)
    hs = getattr(cfg, "hidden_size", None)
    if isinstance(hs, int) and hs > 0:
        return hs
    raise ValueError(
        f"cannot tell the channel count of layer {layer!r} of {type(model).__name__}: it has no "
        "nn.Linear `classifier` and no config.hidden_size."
    )


def _resolve_block(model: nn.Module, layer: str) -> nn.Module:
    """The module whose output is layer ``layer`` (an encoder block), for the forward hook."""
    specs_fn = getattr(model, "probe_layer_specs", None)  # hf_stadyn models: "block_3", "embeddings"
    if callable(specs_fn):
        spec = specs_fn().get(layer)
        if spec is not None and getattr(spec, "capture", "output") == "output":
            return model.get_submodule(spec.module)
    candidates = [layer]
    # Probe-style names "layer_3" / "block_3" / "blocks.3" -> the encoder's block list.
    import re

    m = re.fullmatch(r"(?:layer|block|blocks|encoder\.layer)[._]?(\d+)", layer)
    if m:
        i = int(m.group(1))
        for base in ("videomae.encoder.layer", "timesformer.encoder.layer", "encoder.layer"):
            candidates.append(f"{base}.{i}")
    for name in candidates:
        try:
            return model.get_submodule(name)
        except AttributeError:
            continue
    raise ValueError(
        f"layer {layer!r} is not a module of {type(model).__name__}; use {PRE_CLASSIFIER!r}, a block name "
        "such as 'block_3', or a dotted module path from model.named_modules()."
    )


def get_static_dropout(model: nn.Module) -> StaticDropout | None:
    """The StaticDropout module installed in ``model`` (or None)."""
    sd = model.__dict__.get("_stadyn_static_dropout")
    return sd if isinstance(sd, StaticDropout) else None


def _config_entry(model: nn.Module) -> dict[str, Any] | None:
    """The recorded settings: ``config.stadyn["static_dropout"]`` (hf_stadyn configs) or
    ``config.static_dropout`` (any other config, e.g. a plain transformers one)."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    stadyn = getattr(config, "stadyn", None)
    if isinstance(stadyn, Mapping) and stadyn.get(CONFIG_KEY) is not None:
        return stadyn[CONFIG_KEY]
    entry = getattr(config, CONFIG_KEY, None)
    return entry if entry is not None else None


def _record_config(model: nn.Module, cfg: StaticDropoutConfig | None) -> None:
    set_config_entry(model, CONFIG_KEY, cfg.to_dict() if cfg is not None else None)


def remove_static_dropout(model: nn.Module) -> None:
    """Uninstall StaticDropout (hooks, module, config entry); the model computes as before it."""
    for h in getattr(model, "_stadyn_sd_handles", []):
        h.remove()
    _set_plain(model, "_stadyn_sd_handles", [])
    sd = get_static_dropout(model)
    if sd is not None:
        if getattr(model, "feature_dropout", None) is sd:
            model.feature_dropout = nn.Identity()
        if getattr(model, "static_dropout", None) is sd:
            del model.static_dropout
        key = getattr(model, "_stadyn_sd_key", None)
        if key is not None:
            for attr in ("_keys_to_ignore_on_save", "_keys_to_ignore_on_load_missing"):
                keys = getattr(model, attr, None)
                if isinstance(keys, set):
                    keys.discard(key if attr == "_keys_to_ignore_on_save" else _missing_pattern(key))
    object.__setattr__(model, "_stadyn_static_dropout", None)
    if _config_entry(model) is not None:
        _record_config(model, None)


def _set_plain(model: nn.Module, name: str, value: Any) -> None:
    """``model.<name> = value`` for a plain (non-tensor, non-module) attribute.

    Same call as the assignment (``nn.Module.__setattr__``); torch annotates its ``value`` as
    ``Tensor | Module`` only, although any value is accepted and stored as an ordinary attribute.
    """
    setattr(model, name, value)


def _missing_pattern(key: str) -> str:
    import re

    return "^" + re.escape(key) + "$"


def apply_static_dropout(
    model: nn.Module,
    config: StaticDropoutConfig | Mapping[str, Any] | None = None,
    static_channels: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> StaticDropout:
    """Install StaticDropout in a video classifier and record its settings in ``model.config``.

    At ``layer="pre_classifier"`` the module replaces ``model.feature_dropout`` (the hf_stadyn
    classifiers apply it to the pooled features right before ``model.classifier``); on a model
    without that slot (e.g. a plain transformers classifier) a forward pre-hook on
    ``model.classifier`` applies it. At an encoder block a forward hook applies it to the block
    output ``(B, N, C)`` (the same per-sample mask over all tokens) and the module is registered as
    ``model.static_dropout``.

    The static set (``static_channels`` argument, else ``config.static_channels``, else empty until
    the first refresh) lives in the module's ``static_channels`` buffer and in the config
    (``model.config.stadyn["static_dropout"]`` for hf_stadyn configs, else
    ``model.config.static_dropout``); ``save_pretrained`` therefore writes it into config.json and
    leaves the buffer out of the weights, so the checkpoint loads in plain transformers with no
    unexpected keys. Installing twice replaces the previous installation.

    Returns:
        The installed :class:`StaticDropout`.
    """
    if config is None:
        cfg = StaticDropoutConfig()
    elif isinstance(config, StaticDropoutConfig):
        cfg = dataclasses.replace(config)
    elif isinstance(config, Mapping):
        cfg = StaticDropoutConfig.from_dict(config)
    else:
        raise ValueError(f"config must be a StaticDropoutConfig or a dict, got {type(config).__name__}.")
    remove_static_dropout(model)
    c = _hidden_size(model, cfg.layer)
    channels = static_channels if static_channels is not None else (cfg.static_channels or [])
    sd = StaticDropout(c, p=cfg.p, static_channels=channels, p_other=cfg.p_other)
    ref = next((t for t in list(model.parameters()) + list(model.buffers())), None)
    if ref is not None:
        sd.to(ref.device)
    handles: list[Any] = []
    if cfg.layer == PRE_CLASSIFIER and isinstance(getattr(model, "feature_dropout", None), nn.Module):
        model.feature_dropout = sd
        key = "feature_dropout.static_channels"
    elif cfg.layer == PRE_CLASSIFIER:
        clf = getattr(model, "classifier", None)
        if not isinstance(clf, nn.Module):
            raise ValueError(
                f"{type(model).__name__} has neither a `feature_dropout` slot nor a `classifier` module; "
                "choose an encoder block as the StaticDropout layer."
            )
        model.static_dropout = sd
        handles.append(clf.register_forward_pre_hook(lambda mod, args: (sd(args[0]), *args[1:])))
        key = "static_dropout.static_channels"
    else:
        block = _resolve_block(model, cfg.layer)
        model.static_dropout = sd
        handles.append(block.register_forward_hook(_block_hook(sd)))
        key = "static_dropout.static_channels"
    sd.train(model.training)
    # plain attributes (not submodules): the module is registered once, under its slot name
    object.__setattr__(model, "_stadyn_static_dropout", sd)
    _set_plain(model, "_stadyn_sd_handles", handles)
    _set_plain(model, "_stadyn_sd_key", key)
    # Keep the buffer out of save_pretrained (config.json carries the set) and don't report it missing.
    save_keys = set(getattr(model, "_keys_to_ignore_on_save", None) or [])
    _set_plain(model, "_keys_to_ignore_on_save", save_keys | {key})
    missing = set(getattr(model, "_keys_to_ignore_on_load_missing", None) or [])
    _set_plain(model, "_keys_to_ignore_on_load_missing", missing | {_missing_pattern(key)})
    cfg.static_channels = [int(i) for i in sd.static_channels.tolist()]
    _record_config(model, cfg)
    logger.info("StaticDropout installed at %s: C=%d, p=%g, %d static channels", cfg.layer, c, cfg.p, sd.num_static)
    return sd


def _block_hook(sd: StaticDropout):
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return sd(output)
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (sd(output[0]), *output[1:])
        if isinstance(output, Mapping):  # ModelOutput-like
            first = next(iter(output))
            # ModelOutput (an OrderedDict) supports item assignment; a read-only mapping raises here as before
            cast("MutableMapping[Any, Any]", output)[first] = sd(output[first])
            return output
        raise ValueError(
            f"cannot apply StaticDropout to the output of {type(module).__name__} ({type(output).__name__})."
        )

    return hook


def set_static_channels(model: nn.Module, channels: Sequence[int] | np.ndarray | torch.Tensor) -> None:
    """Replace the static set of the installed StaticDropout and update ``model.config``."""
    sd = get_static_dropout(model)
    if sd is None:
        raise ValueError("the model has no StaticDropout installed; call apply_static_dropout(model, config) first.")
    sd.set_static_channels(channels)
    entry = _config_entry(model)
    if isinstance(entry, dict):
        entry["static_channels"] = [int(i) for i in sd.static_channels.tolist()]


def static_dropout_from_config(model: nn.Module) -> StaticDropout | None:
    """Install StaticDropout as the model config records it (None if it records none).

    Meant for model constructors and for loading: a checkpoint trained with StaticDropout records
    the settings and the static set in config.json, and this rebuilds the module from them.
    """
    entry = _config_entry(model)
    if not entry:
        return None
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"model.config.{CONFIG_KEY} must be a dict of StaticDropoutConfig fields, got {type(entry).__name__}."
        )
    return apply_static_dropout(model, StaticDropoutConfig.from_dict(entry))
