"""Debiasing settings: StaticDropout, the choice of its static set, static-pair decorrelation.

:class:`StaticDropoutConfig` holds every StaticDropout setting (stored in the model config, so in
config.json); :func:`select_static_channels` picks the static channels of a layer from the estimator's
per-channel scores (:class:`~hf_stadyn.metric.LayerBias`) (docs/method.md §6).
:class:`DecorrelationConfig` holds the settings of the static-pair decorrelation loss
(:class:`~hf_stadyn.debias.StaticPairDecorrelation`, docs/debiasing.md); :func:`record_debias_config` /
:func:`get_debias_config` write and read the debiasing settings in the model config (``stadyn["debias"]``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from hf_stadyn.metric import LayerBias

__all__ = [
    "CONFIG_KEY",
    "DEBIAS_CONFIG_KEY",
    "DECORRELATION_FORMS",
    "PRE_CLASSIFIER",
    "SELECTIONS",
    "DecorrelationConfig",
    "StaticDropoutConfig",
    "get_debias_config",
    "record_debias_config",
    "select_static_channels",
]

#: Name of the default layer: the pooled features right before ``model.classifier``.
PRE_CLASSIFIER = "pre_classifier"
#: How the static set is chosen: top-k by rho_S - rho_D, every "static"-category channel, the same
#: number of random channels (the control), or none (with ``p_other``: ordinary dropout at the layer).
SELECTIONS = ("top_k", "category", "random", "none")
#: Key of the settings in ``model.config``.
CONFIG_KEY = "static_dropout"
#: Key of the other debiasing settings (decorrelation, shuffle-uniform, StillMix) in ``model.config``.
DEBIAS_CONFIG_KEY = "debias"
#: Forms of the static-pair decorrelation penalty (docs/debiasing.md).
DECORRELATION_FORMS = ("cosine", "cosine_squared", "cross_cov")


@dataclass
class StaticDropoutConfig:
    """StaticDropout settings, stored in the model config (and so in config.json).

    Attributes:
        p: drop probability of each static channel per sample, in [0, 1).
        layer: where to apply it: ``"pre_classifier"`` (the pooled features feeding
            ``model.classifier``, the default) or the name of an encoder block (a probeable layer
            name such as ``"block_3"`` or a dotted module path); at a block, a forward
            hook applies the same per-sample mask to all tokens of the block output.
        selection: ``"top_k"`` (channels with the largest ``rho_S - rho_D``), ``"category"`` (every
            channel of category "static" at ``threshold``; capped at ``num_static`` if given) or
            ``"random"`` (the same number of channels as ``top_k`` would take, drawn at random: the
            control) or ``"none"`` (an empty set; with ``p_other`` this is ordinary dropout at the
            layer, the same-rate control at any layer).
        top_k_fraction: size of the static set as a fraction of C for ``top_k``/``random``.
        num_static: absolute size of the static set; overrides ``top_k_fraction`` when set.
        threshold: category threshold for ``selection="category"`` (docs/method.md §4; ``tau`` in the
            paper). The old field name ``tau`` is accepted for one release (deprecated).
        p_other: ordinary element-wise dropout on the other channels (0 = untouched).
        refresh_every: optimizer steps between re-measurements of the static set (0 = measure once,
            before training).
        refresh_until: last optimizer step at which a refresh may happen (None = all of training;
            biases settle in the first half, so e.g. half the steps).
        num_probe_pairs: number of fixed probe pairs used for every measurement.
        probe_batch_size: pairs per forward pass when measuring.
        seed: seed of the probe pairs and of the random selection.
        static_channels: the current static set (sorted indices), written by training.
    """

    p: float = 0.5
    layer: str = PRE_CLASSIFIER
    selection: str = "top_k"
    top_k_fraction: float = 0.25
    num_static: int | None = None
    threshold: float = 0.5
    p_other: float = 0.0
    refresh_every: int = 0
    refresh_until: int | None = None
    num_probe_pairs: int = 512
    probe_batch_size: int = 32
    seed: int = 0
    static_channels: list[int] | None = None
    tau: dataclasses.InitVar[float | None] = None  # deprecated name of ``threshold``

    def __post_init__(self, tau: float | None) -> None:
        if tau is not None:
            warnings.warn(
                "StaticDropoutConfig(tau=...) is deprecated and will be removed in 0.3; use threshold=...",
                DeprecationWarning,
                stacklevel=3,
            )
            self.threshold = tau
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field; called on construction."""

        def bad(msg: str) -> None:
            raise ValueError(f"StaticDropoutConfig: {msg}")

        for name in ("p", "p_other"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v < 1.0):
                bad(f"{name} must be a number in [0, 1), got {v!r}")
        if not isinstance(self.layer, str) or not self.layer.strip():
            bad(f"layer must be a non-empty layer name (e.g. {PRE_CLASSIFIER!r}), got {self.layer!r}")
        if self.selection not in SELECTIONS:
            bad(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        f = self.top_k_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not (0.0 < f <= 1.0):
            bad(f"top_k_fraction must be in (0, 1], got {f!r}")
        if self.num_static is not None and (
            isinstance(self.num_static, bool) or not isinstance(self.num_static, int) or self.num_static < 1
        ):
            bad(f"num_static must be a positive int or None, got {self.num_static!r}")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (-1.0 <= t <= 1.0):
            bad(f"threshold must be a number in [-1, 1], got {t!r}")
        for name in ("refresh_every", "num_probe_pairs", "probe_batch_size", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                bad(f"{name} must be a non-negative int, got {v!r}")
        if self.num_probe_pairs < 4:
            bad(f"num_probe_pairs must be >= 4 (the estimate needs >= 2 pairs per factor), got {self.num_probe_pairs}")
        if self.probe_batch_size < 1:
            bad(f"probe_batch_size must be >= 1, got {self.probe_batch_size}")
        if self.refresh_until is not None and (
            isinstance(self.refresh_until, bool) or not isinstance(self.refresh_until, int) or self.refresh_until < 0
        ):
            bad(f"refresh_until must be a non-negative int (an optimizer step) or None, got {self.refresh_until!r}")
        if self.static_channels is not None:
            try:
                self.static_channels = [int(c) for c in self.static_channels]
            except (TypeError, ValueError):
                bad(f"static_channels must be a list of ints, got {self.static_channels!r}")

    def num_selected(self, num_channels: int) -> int:
        """Size of the static set for ``top_k``/``random`` at a layer of ``num_channels`` channels."""
        if self.num_static is not None:
            return min(self.num_static, num_channels)
        return max(1, min(num_channels, int(round(self.top_k_fraction * num_channels))))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StaticDropoutConfig:
        names = {f.name for f in dataclasses.fields(cls)} | {"tau"}  # tau: deprecated name of threshold
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"StaticDropoutConfig: unknown field(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(d))


def select_static_channels(
    bias: LayerBias,
    config: StaticDropoutConfig | None = None,
    *,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Pick the static set of one layer from an estimator result (docs/method.md §6).

    Args:
        bias: the :class:`~hf_stadyn.metric.LayerBias` of the layer (per-channel ``rho_static`` and
            ``rho_dynamic``).
        config: selection settings (default :class:`StaticDropoutConfig()`: top 25 %).
        rng: generator for ``selection="random"`` (default ``np.random.default_rng(config.seed)``).

    Returns:
        Sorted int64 channel indices. ``top_k``: the ``k`` channels with the largest
        ``rho_S - rho_D`` (ties broken by the lower index); ``category``: channels with
        ``rho_S > threshold`` and ``rho_D < threshold`` (the ``num_static`` largest by ``rho_S - rho_D`` if
        capped); ``random``: ``k`` channels drawn uniformly without replacement; ``none``: no channel.
    """
    cfg = config or StaticDropoutConfig()
    rho_s = np.asarray(bias.rho_static, dtype=np.float64).reshape(-1)
    rho_d = np.asarray(bias.rho_dynamic, dtype=np.float64).reshape(-1)
    c = rho_s.size
    if c == 0 or rho_d.size != c:
        raise ValueError(
            f"layer {getattr(bias, 'layer', '?')!r} has no per-channel scores (rho_static {rho_s.size}, "
            f"rho_dynamic {rho_d.size}); compute the estimate with channel scores included."
        )
    score = rho_s - rho_d
    order = np.lexsort((np.arange(c), -score))  # by score descending, then index ascending
    if cfg.selection == "top_k":
        chosen = order[: cfg.num_selected(c)]
    elif cfg.selection == "category":
        is_static = (rho_s > cfg.threshold) & (rho_d < cfg.threshold)
        chosen = np.array([i for i in order if is_static[i]], dtype=np.int64)
        if cfg.num_static is not None:
            chosen = chosen[: cfg.num_static]
    elif cfg.selection == "none":
        chosen = np.zeros(0, dtype=np.int64)
    else:  # random
        g = rng if rng is not None else np.random.default_rng(cfg.seed)
        chosen = g.choice(c, size=cfg.num_selected(c), replace=False)
    return np.sort(np.asarray(chosen, dtype=np.int64))


@dataclass
class DecorrelationConfig:
    """Settings of the static-pair decorrelation loss (:class:`~hf_stadyn.debias.StaticPairDecorrelation`).

    Each training clip is also forwarded with its frames shuffled (a static pair: same appearance,
    broken motion, docs/method.md §1.1) and the penalty pushes the pooled features of the clip and of
    its shuffled copy apart at ``layer``.

    Attributes:
        weight: lambda, the weight of the penalty in the training loss (> 0).
        form: ``"cosine"``: mean over the batch of ``max(0, cos(z, z_shuffled))`` (clamped per clip, so
            the copies are never pushed to anti-align); ``"cosine_squared"``: mean of ``cos^2`` (zero only
            at orthogonal copies); ``"cross_cov"``: the estimator's static score s_S (docs/method.md §3) of
            the batch's (clip, shuffled clip) pairs, differentiable, clamped at 0.
        layer: ``"pre_classifier"`` (the pooled classifier input) or any probed block (``"block_3"``),
            mean-pooled over its tokens as docs/method.md §2.
        shuffled_grad: whether gradients flow through the shuffled branch (False: its features are
            constants, so only the clip's own features move).
        seed: seed of the frame permutations (one non-identity permutation per clip and step).
    """

    weight: float = 1.0
    form: str = "cosine"
    layer: str = PRE_CLASSIFIER
    shuffled_grad: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field; called on construction."""

        def bad(msg: str) -> None:
            raise ValueError(f"DecorrelationConfig: {msg}")

        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not (w > 0 and np.isfinite(w)):
            bad(f"weight must be a positive number (lambda), got {w!r}")
        self.weight = float(w)
        if self.form not in DECORRELATION_FORMS:
            bad(f"form must be one of {', '.join(DECORRELATION_FORMS)}, got {self.form!r}")
        if not isinstance(self.layer, str) or not self.layer.strip():
            bad(f"layer must be a layer name ({PRE_CLASSIFIER!r} or a block such as 'block_3'), got {self.layer!r}")
        if not isinstance(self.shuffled_grad, (bool, np.bool_)):
            bad(f"shuffled_grad must be True or False, got {self.shuffled_grad!r}")
        self.shuffled_grad = bool(self.shuffled_grad)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            bad(f"seed must be a non-negative int, got {self.seed!r}")
        self.seed = int(self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DecorrelationConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"DecorrelationConfig: unknown field(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(d))


# ====================================================================== checkpoint config
def set_config_entry(model: Any, key: str, value: Any) -> None:
    """Write ``value`` (None removes it) as our entry ``key`` of ``model.config``.

    hf_stadyn configs hold our settings in their ``stadyn`` dict field (``config.stadyn[key]``); any other
    config gets an attribute ``config.<key>``, which ``save_pretrained`` writes and plain transformers ignores.
    """
    config = getattr(model, "config", None)
    if config is None:
        return
    if hasattr(config, "stadyn"):
        stadyn = dict(config.stadyn or {})
        if value is None:
            stadyn.pop(key, None)
        else:
            stadyn[key] = value
        config.stadyn = stadyn or None
    elif value is not None:
        setattr(config, key, value)
    elif hasattr(config, key):
        try:
            delattr(config, key)
        except AttributeError:  # pragma: no cover
            setattr(config, key, None)


def record_debias_config(model: Any, settings: Mapping[str, Any] | None) -> None:
    """Record the debiasing settings in ``model.config`` so that ``save_pretrained`` writes them.

    hf_stadyn configs: ``config.stadyn["debias"]``; any other config: ``config.debias``. ``None`` (or
    ``{}``) removes them. Plain transformers ignores the entry when it loads the checkpoint.
    """
    set_config_entry(model, DEBIAS_CONFIG_KEY, _plain(dict(settings)) if settings else None)


def get_debias_config(model_or_config: Any) -> dict[str, Any] | None:
    """The debiasing settings recorded by :func:`record_debias_config` (a model or its config), or None."""
    config = getattr(model_or_config, "config", model_or_config)
    stadyn = getattr(config, "stadyn", None)
    if isinstance(stadyn, Mapping) and stadyn.get(DEBIAS_CONFIG_KEY) is not None:
        return dict(stadyn[DEBIAS_CONFIG_KEY])
    entry = getattr(config, DEBIAS_CONFIG_KEY, None)
    return dict(entry) if isinstance(entry, Mapping) else None


def _plain(value: Any) -> Any:
    """JSON-ready copy (dataclasses to dicts, numpy scalars to Python)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
