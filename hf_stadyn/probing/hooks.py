"""Forward hooks that pool features as they are produced, for any ``torch.nn.Module``.

:class:`FeatureProbe` attaches one hook per probed module. Each hook picks the tensor to probe from
the module's output (by default the first tensor of a tuple / ``ModelOutput``, see
:func:`~hf_stadyn.probing.layouts.first_tensor`), pools it to ``(B, C)`` float32 with
:func:`~hf_stadyn.probing.layouts.pool` and drops the activation: full activations are never kept,
so every layer of a model is probed in one forward pass for the memory of ``L * B * C`` floats.

:func:`extract_features` is the one code path that runs a forward pass for probing: inference mode,
eval mode for the duration of the call, optional bf16/fp16 autocast.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from .layouts import Layout, Selector, first_tensor, parse_layout, pool

__all__ = ["FeatureProbe", "LayerSpec", "eval_mode", "extract_features", "parse_autocast_dtype"]

logger = logging.getLogger(__name__)

Capture = Literal["output", "input"]


@dataclass(frozen=True)
class LayerSpec:
    """What to probe in a model: a module, which of its tensors, and how to pool it.

    Attributes:
        module: dotted module name as in ``model.named_modules()`` (``""`` is the model itself).
        layout: layout of the probed tensor (:class:`~hf_stadyn.probing.Layout` or its string).
        num_frames: frames per clip, needed by the ``"frames"`` layout; ``None`` uses the probe's.
        select: picks the tensor from the module's output (or, with ``capture="input"``, from its
            positional inputs tuple); ``None`` takes the first tensor.
        capture: ``"output"`` (default) hooks what the module returns; ``"input"`` hooks what it
            receives, e.g. the pooled features entering a classifier.
    """

    module: str
    layout: Layout | str
    num_frames: int | None = None
    select: Selector | None = None
    capture: Capture = "output"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", parse_layout(self.layout, name=f"layout of module {self.module!r}"))
        if self.capture not in ("output", "input"):
            raise ValueError(f"capture={self.capture!r} for module {self.module!r}; use 'output' or 'input'.")
        if self.num_frames is not None and int(self.num_frames) < 1:
            raise ValueError(f"num_frames={self.num_frames!r} for module {self.module!r} must be a positive int.")


LayersArg = Mapping[str, "Layout | str | LayerSpec"] | Sequence[str]


def _probe_specs_of(model: nn.Module) -> dict[str, LayerSpec]:
    """The named probe layers of a model that has them (``BiasProbingMixin``), else ``{}``."""
    fn = getattr(model, "probe_layer_specs", None)
    if callable(fn):
        return dict(fn())
    return {}


def _resolve_layers(
    model: nn.Module,
    layers: LayersArg,
    *,
    layout: Layout | str | None,
    num_frames: int | None,
    select: Selector | None,
) -> dict[str, LayerSpec]:
    """Turn the user's ``layers`` argument into ``{output name: LayerSpec}`` and validate it."""
    if isinstance(layers, (str, bytes)):
        raise ValueError(f"layers={layers!r} is a single string; give a list of names or a mapping {{name: layout}}.")
    named = _probe_specs_of(model)
    modules = dict(model.named_modules())
    specs: dict[str, LayerSpec] = {}

    def module_spec(name: str, lay: Layout | str) -> LayerSpec:
        if name in named:  # a probe-layer name of the model with an explicit layout
            return replace(named[name], layout=parse_layout(lay, name=f"layout of layer {name!r}"))
        return LayerSpec(module=name, layout=parse_layout(lay, name=f"layout of layer {name!r}"))

    if isinstance(layers, Mapping):
        for name, value in layers.items():
            if not isinstance(name, str):
                raise ValueError(f"layer names must be strings, got {name!r}.")
            specs[name] = value if isinstance(value, LayerSpec) else module_spec(name, value)
    else:
        for name in layers:
            if not isinstance(name, str):
                raise ValueError(f"layer names must be strings, got {name!r}.")
            if name in named:
                specs[name] = named[name] if layout is None else module_spec(name, layout)
            elif layout is not None:
                specs[name] = LayerSpec(module=name, layout=layout)
            elif name in modules:
                raise ValueError(
                    f"layer {name!r} is a module of {type(model).__name__} but its layout is unknown; pass a "
                    f"mapping {{{name!r}: layout}} or layout=... (one of {', '.join(v.value for v in Layout)})."
                )
            else:
                specs[name] = LayerSpec(module=name, layout=Layout.VECTOR)  # rejected below with a hint
    if not specs:
        raise ValueError("layers is empty; name at least one module to probe.")

    out: dict[str, LayerSpec] = {}
    for name, spec in specs.items():
        mod_name = _find_module_name(modules, spec.module)
        if mod_name is None:
            candidates = list(named) + [m for m in modules if m]
            close = difflib.get_close_matches(spec.module, candidates, n=5, cutoff=0.5)
            hint = f" Close matches: {', '.join(map(repr, close))}." if close else ""
            known = f" Named probe layers: {', '.join(named)}." if named else ""
            raise ValueError(
                f"layer {name!r}: {type(model).__name__} has no module {spec.module!r}.{hint}{known} "
                "Module names are those of model.named_modules()."
            )
        frames = spec.num_frames if spec.num_frames is not None else num_frames
        if spec.layout in (Layout.FRAMES, Layout.FRAME_TOKENS) and frames is None:
            raise ValueError(
                f"layer {name!r} has the per-frame layout {Layout(spec.layout).value!r} but no num_frames; pass num_frames=T "
                "so per-frame features can be pooled per clip."
            )
        out[name] = replace(
            spec,
            module=mod_name,
            num_frames=frames,
            select=spec.select if spec.select is not None else select,
        )
    return out


def _find_module_name(modules: Mapping[str, nn.Module], name: str) -> str | None:
    if name in modules:
        return name
    wrapped = f"module.{name}" if name else "module"  # DistributedDataParallel / DataParallel wrappers
    return wrapped if wrapped in modules else None


class FeatureProbe:
    """Pool chosen layers of any model during its forward pass; a context manager.

    Args:
        model: any ``torch.nn.Module`` (a transformers model, a 3D CNN, a two-stream network...).
        layers: either a mapping ``{name: layout}`` where ``name`` is a module name of
            ``model.named_modules()`` (or a probe-layer name of a ``BiasProbingMixin`` model) and
            ``layout`` a :class:`~hf_stadyn.probing.Layout` / string / :class:`LayerSpec` (then
            ``name`` is only the output key and the spec names the module); or a sequence of
            probe-layer names of a ``BiasProbingMixin`` model, or of module names when ``layout=``
            is given.
        layout: layout for every name of a sequence ``layers`` (overrides the model's own layouts).
        num_frames: frames per clip ``T`` for ``"frames"`` layers without their own.
        select: default selector for the probed tensor; ``None`` takes the first tensor of the
            module's output (tuple, list, ``ModelOutput`` or dict, searched depth first).
        device: where pooled features are stored (e.g. ``"cpu"``); ``None`` keeps the model's device.

    Each call of a hooked module appends its pooled ``(B, C)`` rows; :meth:`pop` concatenates them in
    call order and clears the store. Run exactly one forward pass per :meth:`pop` unless a module is
    meant to be called several times (then its rows come out stacked in call order).

    Example:
        >>> with FeatureProbe(cnn, {"layer3": "cthw", "layer4": "cthw"}) as probe:   # doctest: +SKIP
        ...     cnn(video)                                  # video: (B, 3, T, H, W)
        ...     feats = probe.pop()                         # {"layer3": (B, C3), "layer4": (B, C4)}
    """

    def __init__(
        self,
        model: nn.Module,
        layers: LayersArg,
        *,
        layout: Layout | str | None = None,
        num_frames: int | None = None,
        select: Selector | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"FeatureProbe needs a torch.nn.Module, got {type(model).__name__}.")
        if num_frames is not None and (not isinstance(num_frames, int) or num_frames < 1):
            raise ValueError(f"num_frames={num_frames!r} must be a positive int (frames per clip).")
        self.model = model
        self.specs: dict[str, LayerSpec] = _resolve_layers(
            model, layers, layout=layout, num_frames=num_frames, select=select
        )
        self.device = torch.device(device) if device is not None else None
        self._store: dict[str, list[torch.Tensor]] = {name: [] for name in self.specs}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    # ------------------------------------------------------------------ hooks
    @property
    def layers(self) -> dict[str, Layout]:
        """``{name: layout}`` of the probed layers, in probing order."""
        return {name: spec.layout for name, spec in self.specs.items()}  # type: ignore[misc]

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> FeatureProbe:
        """Register the hooks (idempotent)."""
        if self._handles:
            return self
        modules = dict(self.model.named_modules())
        for name, spec in self.specs.items():
            module = modules[spec.module]
            if spec.capture == "output":
                handle = module.register_forward_hook(self._make_output_hook(name, spec))
            else:
                handle = module.register_forward_pre_hook(self._make_input_hook(name, spec))
            self._handles.append(handle)
        return self

    def remove(self) -> None:
        """Remove the hooks and drop any features not yet popped."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.clear()

    def clear(self) -> None:
        for rows in self._store.values():
            rows.clear()

    def __enter__(self) -> FeatureProbe:
        return self.attach()

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def _record(self, name: str, spec: LayerSpec, value: Any) -> None:
        select = spec.select or first_tensor
        try:
            x = select(value)
            if not isinstance(x, torch.Tensor):
                raise ValueError(f"the selector returned {type(x).__name__}, not a tensor")
            z = pool(x, spec.layout, spec.num_frames).detach()
        except ValueError as e:
            raise ValueError(f"probing layer {name!r} (module {spec.module!r}, {spec.capture}): {e}") from e
        if self.device is not None:
            z = z.to(self.device)
        self._store[name].append(z)

    def _make_output_hook(self, name: str, spec: LayerSpec):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._record(name, spec, output)

        return hook

    def _make_input_hook(self, name: str, spec: LayerSpec):
        def hook(module: nn.Module, args: Any) -> None:
            self._record(name, spec, args)

        return hook

    # -------------------------------------------------------------- results
    def pop(self) -> dict[str, torch.Tensor]:
        """Return ``{layer: (B, C) float32}`` for the forward pass(es) since the last pop, and clear.

        Raises:
            RuntimeError: no forward pass ran since the last pop, or some probed modules were never
                called (they are named, so the mapping can be fixed).
        """
        seen = {name: rows for name, rows in self._store.items() if rows}
        if not seen:
            raise RuntimeError(
                "no probed module ran since the last pop(); run the model's forward inside the probe "
                "(with FeatureProbe(model, layers) as probe: model(x); probe.pop())."
            )
        missing = [name for name in self._store if name not in seen]
        if missing:
            self.clear()
            raise RuntimeError(
                f"probed layers {missing} produced no output in this forward pass (their modules were not "
                "called); probe modules on the forward path of the model."
            )
        out = {name: rows[0] if len(rows) == 1 else torch.cat(rows, dim=0) for name, rows in seen.items()}
        self.clear()
        return out


def parse_autocast_dtype(value: str | torch.dtype | None) -> torch.dtype | None:
    """``None``/``"fp32"`` -> ``None`` (no autocast); ``"bf16"``/``"fp16"`` (or torch dtypes) -> that dtype."""
    if value is None:
        return None
    if isinstance(value, torch.dtype):
        key = str(value).removeprefix("torch.")
    elif isinstance(value, str):
        key = value.strip().lower()
    else:
        key = repr(value)
    table = {
        "fp32": None, "float32": None, "float": None, "no": None, "none": None,
        "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
        "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    }  # fmt: skip
    if key not in table:
        raise ValueError(f"autocast dtype {value!r} is not supported; use None/'fp32', 'bf16' or 'fp16'.")
    return table[key]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the block and restore each one's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _model_float_dtype(model: nn.Module) -> torch.dtype | None:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def extract_features(
    model: nn.Module,
    inputs: torch.Tensor | Mapping[str, Any] | Sequence[Any],
    layers: LayersArg,
    *,
    layout: Layout | str | None = None,
    num_frames: int | None = None,
    select: Selector | None = None,
    autocast_dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Run ONE forward pass of ``model`` and return the pooled features of ``layers``.

    The pass runs under ``torch.inference_mode()`` with every submodule in eval mode (restored
    afterwards), and under ``torch.autocast`` when ``autocast_dtype`` is ``"bf16"``/``"fp16"`` (meant
    for GPUs; the default is full float32). Floating inputs are moved to the model's device and, when
    not autocasting, cast to its parameter dtype.

    Args:
        model: any module.
        inputs: a tensor (passed positionally), a sequence of positional arguments, or a mapping of
            keyword arguments (e.g. ``{"pixel_values": x}``).
        layers, layout, num_frames, select: as for :class:`FeatureProbe`.
        autocast_dtype: ``None``/``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: where to put the pooled features; ``None`` keeps the model's device.

    Returns:
        ``{layer: (B, C) float32 tensor}``.
    """
    dtype = parse_autocast_dtype(autocast_dtype)
    probe = FeatureProbe(model, layers, layout=layout, num_frames=num_frames, select=select, device=device)
    target = _model_device(model)
    cast = None if dtype is not None else _model_float_dtype(model)

    def move(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            if x.is_floating_point():
                return x.to(device=target, dtype=cast or x.dtype)
            return x.to(device=target)
        return x

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    if isinstance(inputs, torch.Tensor):
        args, kwargs = (move(inputs),), {}
    elif isinstance(inputs, Mapping):
        args, kwargs = (), {k: move(v) for k, v in inputs.items()}
    elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
        args, kwargs = tuple(move(v) for v in inputs), {}
    else:
        raise ValueError(
            f"inputs must be a tensor, a sequence of positional arguments or a mapping of keyword arguments, "
            f"got {type(inputs).__name__}."
        )
    autocast = torch.autocast(device_type=target.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with eval_mode(model), torch.inference_mode(), autocast, probe:
        model(*args, **kwargs)
        return probe.pop()
