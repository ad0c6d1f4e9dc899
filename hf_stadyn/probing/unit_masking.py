"""Unit masking: zero the most dynamic (or static) channels of one layer and measure the metric drop.

docs/method.md §7: "zero the top-K % channels of one category at one layer and measure the metric drop,
against masking the same number of random channels". Channels are ranked from the estimator's
per-channel scores (docs/method.md §4) of that layer:

=============  ==================================
category       ranking score (highest first)
=============  ==================================
``dynamic``    ``rho_D - rho_S``
``static``     ``rho_S - rho_D``
``joint``      ``min(rho_D, rho_S)``
``none``       ``-max(rho_D, rho_S)``
=============  ==================================

The control masks the same number of channels drawn uniformly at random (without replacement) from
all channels of the layer, ``num_random`` times from a seeded generator. A category's channels matter
more than chance when its drop exceeds the random drops.

Masking uses a forward hook on the module whose output is the layer (for
:class:`~hf_stadyn.models.modeling_avos.AVOSModel`, the tap ``model.get_probe_module(name)``), so it
works on any ``torch.nn.Module`` whose output is ``(B, C, ...)``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "RANKING_CATEGORIES",
    "UnitMaskingResult",
    "channel_scores",
    "mask_channels",
    "random_channels",
    "resolve_layer_module",
    "select_channels",
    "unit_masking",
]

logger = logging.getLogger(__name__)

RANKING_CATEGORIES = ("dynamic", "static", "joint", "none")


def _rho(layer_bias: Any) -> tuple[np.ndarray, np.ndarray]:
    rd = np.asarray(getattr(layer_bias, "rho_dynamic", None), dtype=np.float64).reshape(-1)
    rs = np.asarray(getattr(layer_bias, "rho_static", None), dtype=np.float64).reshape(-1)
    if rd.size == 0 or rd.shape != rs.shape:
        raise ValueError(
            "layer_bias must carry per-channel rho_dynamic and rho_static of the same length (a "
            "hf_stadyn.metric.LayerBias computed with channels)."
        )
    return rd, rs


def channel_scores(layer_bias: Any, category: str) -> np.ndarray:
    """Per-channel ranking score ``(C,)`` for ``category`` (see the module docstring); higher = more."""
    if category not in RANKING_CATEGORIES:
        raise ValueError(f"category must be one of {RANKING_CATEGORIES}, got {category!r}.")
    rd, rs = _rho(layer_bias)
    if category == "dynamic":
        return rd - rs
    if category == "static":
        return rs - rd
    if category == "joint":
        return np.minimum(rd, rs)
    return -np.maximum(rd, rs)


def select_channels(
    layer_bias: Any, category: str, fraction: float = 0.1, *, within_category: bool = False
) -> np.ndarray:
    """Indices of the top ``fraction`` of channels for ``category`` (best first).

    Args:
        layer_bias: the layer's :class:`~hf_stadyn.metric.LayerBias`.
        category: "dynamic", "static", "joint" or "none".
        fraction: share of the layer's C channels, K = max(1, round(fraction * C)).
        within_category: keep only channels whose docs/method.md §4 category is ``category`` (then fewer
            than K may be returned, possibly none).

    Ties are broken by channel index (stable sort), so the selection is deterministic.
    """
    if not (0.0 < float(fraction) <= 1.0):
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r} (e.g. 0.1 for the top 10 %).")
    score = channel_scores(layer_bias, category)
    c = score.size
    k = max(1, int(round(float(fraction) * c)))
    order = np.argsort(-score, kind="stable")
    if within_category:
        cats = np.asarray(getattr(layer_bias, "categories", []), dtype=object).reshape(-1)
        if cats.size != c:
            raise ValueError("within_category=True needs layer_bias.categories with one entry per channel.")
        order = order[cats[order] == category]
    return order[:k].astype(np.int64)


def random_channels(num_channels: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct channel indices drawn uniformly from ``range(num_channels)``."""
    if not (1 <= k <= num_channels):
        raise ValueError(f"cannot draw {k} distinct channels out of {num_channels}.")
    return np.sort(rng.choice(num_channels, size=k, replace=False)).astype(np.int64)


@contextlib.contextmanager
def mask_channels(module: torch.nn.Module, channels: Sequence[int], dim: int = 1) -> Iterator[None]:
    """Within the block, ``module``'s output has ``channels`` (along ``dim``) set to zero.

    The output tensor is replaced (never edited in place), so modules whose output aliases their input
    (``nn.Identity``) are safe.

    Example:
        >>> layer = torch.nn.Identity()
        >>> with mask_channels(layer, [1]):
        ...     layer(torch.ones(1, 3, 2, 2))[0, :, 0, 0]
        tensor([1., 0., 1.])
    """
    idx = torch.as_tensor(np.asarray(channels, dtype=np.int64).reshape(-1))

    def hook(mod: torch.nn.Module, inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            raise ValueError(
                f"mask_channels: {type(mod).__name__} returned {type(output).__name__}, not a tensor; hook a "
                "module whose output is the (B, C, ...) feature map."
            )
        c = output.shape[dim]
        if idx.numel() and (int(idx.max()) >= c or int(idx.min()) < 0):
            raise ValueError(f"mask_channels: channel index out of range for an output with {c} channels.")
        keep = torch.ones(c, dtype=output.dtype, device=output.device)
        keep[idx.to(output.device)] = 0
        shape = [1] * output.ndim
        shape[dim] = c
        return output * keep.view(shape)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def resolve_layer_module(model: torch.nn.Module, layer: str) -> torch.nn.Module:
    """The module whose output is ``layer``: the model's probe tap if it has one, else ``get_submodule``."""
    getter = getattr(model, "get_probe_module", None)
    if callable(getter):
        return getter(layer)
    try:
        return model.get_submodule(layer)
    except AttributeError:
        raise ValueError(f"{type(model).__name__} has no layer or submodule named {layer!r}.") from None


@dataclass
class UnitMaskingResult:
    """Metric with the selected channels zeroed, against as many random channels.

    Attributes:
        layer, category, fraction: what was masked.
        channels: the masked channel indices (best first).
        baseline: metric of the unmasked model.
        masked: metric with ``channels`` zeroed.
        random_scores: metric with ``len(channels)`` random channels zeroed, one per draw.
        drop: ``baseline - masked``.
        random_drop_mean, random_drop_std: mean and std (ddof=0) of ``baseline - random_scores``.
        seed: seed of the random draws.
    """

    layer: str
    category: str
    fraction: float
    channels: list[int]
    baseline: float
    masked: float
    random_scores: list[float]
    drop: float
    random_drop_mean: float
    random_drop_std: float
    seed: int
    random_channels: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "category": self.category,
            "fraction": self.fraction,
            "num_channels_masked": len(self.channels),
            "channels": list(self.channels),
            "baseline": self.baseline,
            "masked": self.masked,
            "drop": self.drop,
            "random_scores": list(self.random_scores),
            "random_drop_mean": self.random_drop_mean,
            "random_drop_std": self.random_drop_std,
            "seed": self.seed,
        }


def unit_masking(
    model: torch.nn.Module,
    layer: str,
    layer_bias: Any,
    evaluate_fn: Callable[[torch.nn.Module], float],
    *,
    category: str = "dynamic",
    fraction: float = 0.1,
    num_random: int = 5,
    seed: int = 0,
    within_category: bool = False,
    baseline: float | None = None,
    module: torch.nn.Module | None = None,
) -> UnitMaskingResult:
    """Zero the top ``fraction`` of ``category`` channels of ``layer`` and compare with random channels.

    Args:
        model: the model (passed to ``evaluate_fn``).
        layer: layer name (an AVOS probe name such as ``"fusion2"``, or a submodule path).
        layer_bias: that layer's :class:`~hf_stadyn.metric.LayerBias` (per-channel rho).
        evaluate_fn: ``model -> float`` metric where higher is better (e.g. J on held-out clips); it
            must be deterministic for a fair comparison (eval mode, fixed data).
        category, fraction, within_category: see :func:`select_channels`.
        num_random: random draws for the control (>= 1).
        seed: seed of the random draws (``numpy.random.default_rng(seed)``).
        baseline: the unmasked metric if already known (saves one evaluation).
        module: the module to hook (default :func:`resolve_layer_module`).

    Returns:
        :class:`UnitMaskingResult`.
    """
    if int(num_random) < 1:
        raise ValueError(f"num_random must be >= 1, got {num_random!r}.")
    target = module if module is not None else resolve_layer_module(model, layer)
    channels = select_channels(layer_bias, category, fraction, within_category=within_category)
    c = int(np.asarray(layer_bias.rho_dynamic).size)
    if channels.size == 0:
        raise ValueError(
            f"layer {layer!r} has no channel of category {category!r}; use within_category=False to rank all channels."
        )
    if baseline is None:
        baseline = float(evaluate_fn(model))
    with mask_channels(target, channels):
        masked = float(evaluate_fn(model))
    rng = np.random.default_rng(seed)
    rand_scores, rand_sets = [], []
    for _ in range(int(num_random)):
        chans = random_channels(c, int(channels.size), rng)
        with mask_channels(target, chans):
            rand_scores.append(float(evaluate_fn(model)))
        rand_sets.append([int(i) for i in chans])
    rdrops = baseline - np.asarray(rand_scores)
    res = UnitMaskingResult(
        layer=layer,
        category=category,
        fraction=float(fraction),
        channels=[int(i) for i in channels],
        baseline=float(baseline),
        masked=masked,
        random_scores=rand_scores,
        drop=float(baseline - masked),
        random_drop_mean=float(rdrops.mean()),
        random_drop_std=float(rdrops.std()),
        seed=int(seed),
        random_channels=rand_sets,
    )
    logger.info(
        "unit masking %s %s top %.0f%% (%d ch): drop %.4f vs random %.4f +- %.4f",
        layer,
        category,
        100 * fraction,
        channels.size,
        res.drop,
        res.random_drop_mean,
        res.random_drop_std,
    )
    return res
