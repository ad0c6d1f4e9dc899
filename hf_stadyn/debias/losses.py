"""Static-pair debiasing losses: one shared shuffled forward, decorrelation and the shuffle-uniform penalty.

Each training clip is also forwarded once with its frames shuffled (a *static pair*: same appearance,
broken motion, docs/method.md §1.1). Two loss terms read that one extra forward
(:class:`ShuffledForward`), so using both still costs a single extra forward per batch:

* :class:`StaticPairDecorrelation` pushes the pooled features of a clip and of its shuffled copy apart
  at one layer (``"pre_classifier"`` or a probed block, pooled as docs/method.md §2), in one of three
  forms (:data:`~hf_stadyn.debias.config.DECORRELATION_FORMS`): the cosine similarity clamped at 0 per
  clip, the squared cosine, or the estimator's static score s_S of the batch's (clip, shuffled) pairs
  (docs/method.md §3), differentiable and clamped at 0. A loss that trains on s_S can no longer be judged
  by s_S alone: judge it by task behaviour on held-out clips (docs/debiasing.md).
* :class:`ShuffleUniformPenalty`: the shuffled clip's prediction is pushed to the uniform distribution
  (cross-entropy to uniform, minus its minimum log K so that it reads 0 at the optimum; same gradient).

The terms follow :class:`~hf_stadyn.training.StadynTrainer`'s loss-term hook ``term(model, inputs,
outputs) -> scalar`` and have a ``prepare(model, inputs, step)`` method the trainer calls before the
main forward (it arms the feature hooks, so the clip's own features come from the forward Trainer
already does). :func:`debias_loss_terms` builds the terms from settings, sharing one forward.

Example::

    from hf_stadyn.debias import DecorrelationConfig, debias_loss_terms
    terms = debias_loss_terms(DecorrelationConfig(weight=2.0), shuffle_uniform=0.0)
    trainer = StadynTrainer(model=model, args=args, train_dataset=train, loss_terms=terms)
"""

from __future__ import annotations

import contextlib
import logging
import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .config import PRE_CLASSIFIER, DecorrelationConfig

__all__ = [
    "ShuffleUniformPenalty",
    "ShuffledForward",
    "ShuffledOutputs",
    "StaticPairDecorrelation",
    "debias_loss_terms",
    "decorrelation_penalty",
    "static_pair_score",
]

logger = logging.getLogger(__name__)

#: A channel whose variance over the pair features is at most this share of its mean square counts as
#: zero variance (docs/method.md §3, the estimator's rule).
_DEAD_RTOL = 1e-10


# ====================================================================== penalties (pure functions)
def static_pair_score(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """The estimator's static score s_S of the pairs ``(z_a[n], z_b[n])`` (docs/method.md §3), differentiable.

    Every pair is a static pair, so ``Z`` (both members of every pair) gives the mean and the total
    variance ``V``; s_S = sum_c [mean(a b) - m^2] / V with m = (mean a + mean b) / 2. Zero-variance
    channels (the 1e-10 rule) do not count in V; V = 0 gives 0. Computed in float64.

    Args:
        z_a, z_b: ``(B, C)`` pooled features of the two members.

    Returns:
        A scalar float64 tensor (can be negative).
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(f"static_pair_score needs two (B, C) tensors of one shape, got {tuple(z_a.shape)} "
                         f"and {tuple(z_b.shape)}.")  # fmt: skip
    a, b = z_a.double(), z_b.double()
    z = torch.cat([a, b], dim=0)  # (2B, C)
    mu = z.mean(0)
    ez2 = (z * z).mean(0)
    var_c = (ez2 - mu * mu).clamp_min(0.0)
    var_c = torch.where(var_c <= _DEAD_RTOL * ez2, torch.zeros_like(var_c), var_c)
    v = var_c.sum()
    m = 0.5 * (a.mean(0) + b.mean(0))
    cov = (a * b).mean(0) - m * m
    if float(v.detach()) <= 0.0:
        return cov.sum() * 0.0
    return cov.sum() / v


def decorrelation_penalty(z_a: torch.Tensor, z_b: torch.Tensor, form: str = "cosine") -> torch.Tensor:
    """The decorrelation penalty between features of clips ``z_a`` and their shuffled copies ``z_b``.

    Args:
        z_a, z_b: ``(B, C)`` pooled features.
        form: ``"cosine"`` (mean of max(0, cos) over the clips), ``"cosine_squared"`` (mean of cos^2) or
            ``"cross_cov"`` (max(0, s_S), :func:`static_pair_score`).

    Returns:
        A scalar float32 tensor >= 0.
    """
    if form == "cross_cov":
        return static_pair_score(z_a, z_b).clamp_min(0.0).float()
    cos = nn.functional.cosine_similarity(z_a.float(), z_b.float(), dim=-1, eps=1e-8)  # (B,)
    if form == "cosine":
        return cos.clamp_min(0.0).mean()
    if form == "cosine_squared":
        return (cos * cos).mean()
    raise ValueError(f"decorrelation form must be 'cosine', 'cosine_squared' or 'cross_cov', got {form!r}.")


# ====================================================================== the shared shuffled forward
@dataclass
class ShuffledOutputs:
    """What one extra forward of the shuffled clips gives its consumers.

    Attributes:
        clip: ``{layer: (B, C) float32}`` pooled features of the clips (from the main forward).
        shuffled: ``{layer: (B, C) float32}`` the same for the shuffled clips.
        shuffled_logits: ``(B, K)`` logits of the shuffled clips.
        permutations: ``(B, T)`` int64: frame ``t`` of shuffled clip ``n`` is frame ``permutations[n, t]``.
    """

    clip: dict[str, torch.Tensor]
    shuffled: dict[str, torch.Tensor]
    shuffled_logits: torch.Tensor | None
    permutations: torch.Tensor


def _unwrap(model: nn.Module) -> nn.Module:
    """The module under DDP / accelerate / torch.compile wrappers (where the hooks go)."""
    seen = 0
    while seen < 8:
        inner = getattr(model, "module", None)
        if isinstance(inner, nn.Module):
            model = inner
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = cast(nn.Module, model._orig_mod)
        else:
            break
        seen += 1
    return model


def _layer_spec(model: nn.Module, layer: str) -> Any:
    """The :class:`~hf_stadyn.probing.hooks.LayerSpec` of ``layer`` (probed models), else a fallback."""
    from hf_stadyn.probing.hooks import LayerSpec

    specs_fn = getattr(model, "probe_layer_specs", None)
    specs = dict(specs_fn()) if callable(specs_fn) else {}
    if layer in specs:
        return specs[layer]
    if layer == PRE_CLASSIFIER and isinstance(getattr(model, "classifier", None), nn.Module):
        return LayerSpec(module="classifier", layout="vector", capture="input")
    from .static_dropout import _resolve_block

    try:
        block = _resolve_block(model, layer)
    except ValueError:
        known = ", ".join(specs) if specs else f"{PRE_CLASSIFIER!r} or a block such as 'block_3'"
        raise ValueError(
            f"decorrelation layer {layer!r} is not a layer of {type(model).__name__}; use one of: {known}."
        ) from None
    name = next(n for n, m in model.named_modules() if m is block)
    return LayerSpec(module=name, layout="tokens")


class ShuffledForward:
    """One extra forward per batch of the batch's clips with their frames shuffled, shared by loss terms.

    Consumers declare what they need with :meth:`require` (a layer's pooled features, the logits, and
    whether gradients must flow through the shuffled branch); the forward runs with gradients only if
    some consumer needs them. The clip's own features at those layers are captured by forward hooks
    during the main forward (armed by :meth:`prepare`, which StadynTrainer calls before it), so no
    second forward of the original clips is made.

    Permutations: one uniformly random non-identity permutation of the T frames per clip (rejection
    sampling, as the estimator's static pairs), drawn from
    ``numpy.random.SeedSequence(seed, spawn_key=(step, micro_batch))``; deterministic in the seed and
    the optimizer step, so a resumed run sees the same permutations.

    Args:
        seed: seed of the permutations.
        time_dim: the frame axis of ``pixel_values`` (1 for ``(B, T, 3, H, W)``).
        input_key: the input holding the clips.

    Attributes:
        extra_forwards: number of shuffled forwards run so far (one per training batch).
    """

    def __init__(self, seed: int = 0, *, time_dim: int = 1, input_key: str = "pixel_values") -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"ShuffledForward: seed must be a non-negative int, got {seed!r}.")
        self.seed = int(seed)
        self.time_dim = int(time_dim)
        self.input_key = input_key
        self.layers: dict[str, bool] = {}  # layer -> gradients needed through the shuffled branch
        self.logits_grad: bool | None = None  # None: logits not needed
        self.extra_forwards = 0
        self._hooks: dict[str, tuple[nn.Module, Any, Any]] = {}  # layer -> (module, handle, spec)
        self._model_ref: Any = None
        self._slot: str | None = None
        self._captured: dict[str, dict[str, torch.Tensor]] = {"clip": {}, "shuffled": {}}
        self._batch_ref: Any = None
        self._result: ShuffledOutputs | None = None
        self._step: int | None = None
        self._micro = 0
        self._batches = 0

    # ------------------------------------------------------------------ declarations
    def require(self, layer: str | None = None, *, logits: bool = False, grad: bool = True) -> None:
        """Declare a consumer's need: ``layer``'s features and/or the ``logits``; ``grad`` through them."""
        if layer is not None:
            self.layers[layer] = self.layers.get(layer, False) or bool(grad)
        if logits:
            self.logits_grad = bool(self.logits_grad) or bool(grad)

    @property
    def needs_grad(self) -> bool:
        return any(self.layers.values()) or bool(self.logits_grad)

    # ------------------------------------------------------------------ hooks
    def _attach(self, model: nn.Module) -> None:
        if self._model_ref is not None and self._model_ref() is not model:
            self.remove()
        self._model_ref = weakref.ref(model)
        for layer in self.layers:
            spec = _layer_spec(model, layer)
            module = model.get_submodule(spec.module)
            have = self._hooks.get(layer)
            if have is not None and have[0] is module:
                continue
            if have is not None:  # the module was replaced (e.g. StaticDropout into feature_dropout)
                have[1].remove()
            if spec.capture == "input":
                handle = module.register_forward_pre_hook(self._input_hook(layer, spec))
            else:
                handle = module.register_forward_hook(self._output_hook(layer, spec))
            self._hooks[layer] = (module, handle, spec)

    def remove(self) -> None:
        """Remove the feature hooks (they are re-made on the next :meth:`prepare`)."""
        for _, handle, _ in self._hooks.values():
            handle.remove()
        self._hooks.clear()
        self._model_ref = None
        self._slot = None

    def _record(self, layer: str, spec: Any, value: Any) -> None:
        if self._slot is None:
            return
        from hf_stadyn.probing.layouts import first_tensor, pool

        x = (spec.select or first_tensor)(value)
        self._captured[self._slot][layer] = pool(x, spec.layout, spec.num_frames)

    def _input_hook(self, layer: str, spec: Any):
        def hook(module: nn.Module, args: Any) -> None:
            self._record(layer, spec, args)

        return hook

    def _output_hook(self, layer: str, spec: Any):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._record(layer, spec, output)

        return hook

    # ------------------------------------------------------------------ per batch
    def prepare(self, model: nn.Module, inputs: Mapping[str, Any], step: int | None = None) -> None:
        """Arm the hooks before the main forward of a training batch (idempotent per batch).

        ``step``: the optimizer step (seeds the permutations); None counts batches instead.
        """
        pixel_values = self._pixel_values(inputs)
        if self._batch_ref is not None and self._batch_ref() is pixel_values:
            return
        self._attach(_unwrap(model))
        self._batch_ref = weakref.ref(pixel_values)
        self._result = None
        self._captured = {"clip": {}, "shuffled": {}}
        if step is None:
            step, self._micro = self._batches, 0
        elif step == self._step:
            self._micro += 1
        else:
            self._micro = 0
        self._step = int(step)
        self._batches += 1
        self._slot = "clip"

    def permutations(self, batch: int, num_frames: int) -> torch.Tensor:
        """``(batch, num_frames)`` int64 non-identity permutations of the current (step, micro-batch)."""
        if num_frames < 2:
            raise ValueError(f"shuffling frames needs clips of >= 2 frames, got {num_frames}.")
        step = 0 if self._step is None else self._step
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(step, self._micro)))
        ident = np.arange(num_frames)
        rows = []
        for _ in range(batch):
            p = rng.permutation(num_frames)
            while np.array_equal(p, ident):
                p = rng.permutation(num_frames)
            rows.append(p)
        return torch.from_numpy(np.stack(rows).astype(np.int64))

    def _pixel_values(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        x = inputs.get(self.input_key) if isinstance(inputs, Mapping) else None
        if not isinstance(x, torch.Tensor) or x.ndim <= self.time_dim:
            raise ValueError(
                f"the static-pair losses need the clips as inputs[{self.input_key!r}], a tensor with frames on "
                f"axis {self.time_dim}; got {type(x).__name__}."
            )
        return x

    def __call__(self, model: nn.Module, inputs: Mapping[str, Any], outputs: Any = None) -> ShuffledOutputs:
        """Run (once per batch) the shuffled forward and return :class:`ShuffledOutputs`."""
        pixel_values = self._pixel_values(inputs)
        current = self._batch_ref is not None and self._batch_ref() is pixel_values
        if current and self._result is not None:
            return self._result
        missing = [layer for layer in self.layers if layer not in self._captured["clip"]]
        if not current or missing:
            raise ValueError(
                "the static-pair losses did not see this batch's main forward (features of "
                f"{missing or list(self.layers)} missing); use them through StadynTrainer(loss_terms=...), which "
                "calls term.prepare(model, inputs, step) before the forward, or call it yourself."
            )
        if self.time_dim != 1:
            raise ValueError(f"ShuffledForward supports time_dim=1 (B, T, ...) clips, got time_dim={self.time_dim}.")
        b, t = pixel_values.shape[0], pixel_values.shape[self.time_dim]
        perm = self.permutations(b, t).to(pixel_values.device)
        index = perm.view(b, t, *([1] * (pixel_values.ndim - 2)))
        shuffled = torch.take_along_dim(pixel_values, index.expand(b, t, *pixel_values.shape[2:]), dim=1)
        kwargs = {k: v for k, v in inputs.items() if k not in (self.input_key, "labels")}
        self._slot = "shuffled"
        try:
            with contextlib.nullcontext() if self.needs_grad else torch.no_grad():
                out = model(**{self.input_key: shuffled}, **kwargs)
        finally:
            self._slot = None
        self.extra_forwards += 1
        logits = getattr(out, "logits", None)
        if logits is None and isinstance(out, (tuple, list)) and out:
            logits = out[0]
        self._result = ShuffledOutputs(
            clip=dict(self._captured["clip"]), shuffled=dict(self._captured["shuffled"]),
            shuffled_logits=logits, permutations=perm,
        )  # fmt: skip
        self._captured = {"clip": {}, "shuffled": {}}
        return self._result


# ====================================================================== the loss terms
class StaticPairDecorrelation:
    """Loss term: ``weight * decorrelation_penalty(z(clip), z(shuffled clip), form)`` at ``layer``.

    A :class:`~hf_stadyn.training.StadynTrainer` loss term (logged as ``loss_decorrelation``); see
    :class:`~hf_stadyn.debias.DecorrelationConfig` for the settings. ``forward`` is the shared
    :class:`ShuffledForward` (a new one seeded with ``config.seed`` if None).
    """

    name = "decorrelation"

    def __init__(
        self, config: DecorrelationConfig | Mapping[str, Any] | None = None, forward: ShuffledForward | None = None
    ) -> None:
        if config is None:
            config = DecorrelationConfig()
        elif isinstance(config, Mapping):
            config = DecorrelationConfig.from_dict(config)
        elif not isinstance(config, DecorrelationConfig):
            raise ValueError(f"config must be a DecorrelationConfig or a dict, got {type(config).__name__}.")
        self.config = config
        self.forward = forward if forward is not None else ShuffledForward(seed=config.seed)
        self.forward.require(config.layer, grad=config.shuffled_grad)

    def check(self, model: nn.Module) -> None:
        """Raise ``ValueError`` (one line, naming the known layers) if ``model`` has no layer ``config.layer``."""
        _layer_spec(_unwrap(model), self.config.layer)

    def prepare(self, model: nn.Module, inputs: Mapping[str, Any], step: int | None = None) -> None:
        self.forward.prepare(model, inputs, step)

    def __call__(self, model: nn.Module, inputs: Mapping[str, Any], outputs: Any = None) -> torch.Tensor:
        out = self.forward(model, inputs, outputs)
        z_a, z_b = out.clip[self.config.layer], out.shuffled[self.config.layer]
        if not self.config.shuffled_grad:
            z_b = z_b.detach()
        return self.config.weight * decorrelation_penalty(z_a, z_b, self.config.form)


class ShuffleUniformPenalty:
    """Loss term: ``weight * (CE(softmax(shuffled logits), uniform) - log K)``, logged as ``loss_shuffle_uniform``.

    Pushes the prediction on each shuffled clip toward the uniform distribution over the K classes (as
    in temporal-debiasing work). ``- log K`` (the minimum) only shifts the logged value to 0 at the
    optimum; the gradient is that of the cross-entropy.
    """

    name = "shuffle_uniform"

    def __init__(self, weight: float = 1.0, forward: ShuffledForward | None = None, *, seed: int = 0) -> None:
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (weight > 0 and math.isfinite(weight))
        ):
            raise ValueError(f"ShuffleUniformPenalty: weight must be a positive number, got {weight!r}.")
        self.weight = float(weight)
        self.forward = forward if forward is not None else ShuffledForward(seed=seed)
        self.forward.require(logits=True, grad=True)

    def prepare(self, model: nn.Module, inputs: Mapping[str, Any], step: int | None = None) -> None:
        self.forward.prepare(model, inputs, step)

    def __call__(self, model: nn.Module, inputs: Mapping[str, Any], outputs: Any = None) -> torch.Tensor:
        logits = self.forward(model, inputs, outputs).shuffled_logits
        if logits is None:
            raise ValueError("ShuffleUniformPenalty: the model's output has no logits.")
        lg = logits.float()
        k = lg.shape[-1]
        ce = torch.logsumexp(lg, dim=-1) - lg.mean(dim=-1)  # CE(p, uniform) per clip
        return self.weight * (ce.mean() - math.log(k))


def debias_loss_terms(
    decorrelation: DecorrelationConfig | Mapping[str, Any] | None = None,
    shuffle_uniform: float = 0.0,
    *,
    seed: int | None = None,
) -> list[Any]:
    """The loss terms of the static-pair methods, sharing one :class:`ShuffledForward` (one extra forward).

    Args:
        decorrelation: :class:`DecorrelationConfig` (or its dict), None = off.
        shuffle_uniform: weight of the shuffle-uniform penalty, 0 = off.
        seed: seed of the frame permutations (default: ``decorrelation.seed``, else 0).

    Returns:
        ``[]``, ``[StaticPairDecorrelation]``, ``[ShuffleUniformPenalty]`` or both, for
        ``StadynTrainer(loss_terms=...)`` / ``run_classification(loss_terms=...)``.
    """
    if isinstance(decorrelation, Mapping):
        decorrelation = DecorrelationConfig.from_dict(decorrelation)
    if (
        isinstance(shuffle_uniform, bool)
        or not isinstance(shuffle_uniform, (int, float))
        or not (shuffle_uniform >= 0 and math.isfinite(shuffle_uniform))
    ):
        raise ValueError(f"shuffle_uniform must be a number >= 0 (the penalty's weight), got {shuffle_uniform!r}.")
    if decorrelation is None and shuffle_uniform == 0:
        return []
    if seed is None:
        seed = decorrelation.seed if decorrelation is not None else 0
    shared = ShuffledForward(seed=seed)
    terms: list[Any] = []
    if decorrelation is not None:
        terms.append(StaticPairDecorrelation(decorrelation, forward=shared))
    if shuffle_uniform > 0:
        terms.append(ShuffleUniformPenalty(float(shuffle_uniform), forward=shared))
    return terms
