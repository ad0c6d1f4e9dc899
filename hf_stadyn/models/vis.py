"""Probing video instance segmentation (VIS) models: a probe adapter for transformers' VidEoMT.

``VideomtForUniversalSegmentation`` (transformers ``models.videomt``) reads a clip
``pixel_values_videos`` ``(B, T, 3, H, W)`` as follows: the first ``L - K`` encoder layers
(``K = config.num_blocks``) run on every frame on its own (a batch of ``B * T`` frames, each
``1 + R + N`` tokens: CLS, ``R`` register tokens, ``N`` patches); then, frame after frame, ``Q`` query
tokens are put in front (the learnt queries at frame 0, ``query_updater(previous frame's queries) +
queries`` after) and the last ``K`` layers run once per frame (``Q + 1 + R + N`` tokens); the final
LayerNorm's query tokens give each query's class and mask. Its outputs are frame-major
(``(T * B, ...)``: frame 0 of every clip, then frame 1, ...).

:class:`VisProbeModel` wraps such a model for the probing engine (docs/method.md §2, "VIS models"):

- ``embeddings`` and ``block_0`` .. ``block_{L-1}``: the raw output of each, pooled over all tokens of
  every frame (CLS and registers included; in the last ``K`` blocks the query tokens too), i.e. the
  mean over the ``T`` per-frame token means (every frame has the same token count, so this is the
  mean over all ``T x tokens``). A block of the query stage runs ``T`` times per forward; the adapter
  pools each call per frame and the engine's hook averages the ``T`` frame vectors, so one forward
  gives one vector per clip.
- ``queries``: the per-query outputs (the final LayerNorm's query tokens, what the class and mask heads
  read), pooled over the ``Q`` queries and the ``T`` frames; with ``per_query=True`` (or a list of
  query indices) also ``query_{q}``: query ``q`` pooled over the frames only.

Inputs are prepared as the checkpoint's video processor says (docs/method.md §1.1; VidEoMT's
processor declares no frame count: ``num_frames`` comes from the adapter argument, the config's
``num_frames`` or :data:`DEFAULT_NUM_FRAMES`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hf_stadyn.probing.hooks import LayerSpec
from hf_stadyn.probing.layouts import Layout
from hf_stadyn.probing.mixin import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, ProbeInputSpec, clips_to_pixel_values

__all__ = ["DEFAULT_NUM_FRAMES", "VIS_MODEL_TYPES", "VisProbeModel", "load_vis_adapter"]

logger = logging.getLogger(__name__)

#: Frames per probed clip when neither the adapter argument nor the config nor the processor gives one.
DEFAULT_NUM_FRAMES = 8
#: ``model_type`` values :func:`load_vis_adapter` wraps.
VIS_MODEL_TYPES = ("videomt",)


def _flatten_queries(x: torch.Tensor) -> torch.Tensor:
    """``(B, T, Q, C)`` -> ``(B, T * Q, C)``: every query of every frame as one token."""
    return x.flatten(1, 2)


def _one_query(q: int, x: torch.Tensor) -> torch.Tensor:
    """``(B, T, Q, C)`` -> ``(B, T, C)``: query ``q`` of every frame."""
    return x[:, :, q]


class VisProbeModel(nn.Module):
    """A VidEoMT model with the probe-adapter protocol (:mod:`hf_stadyn.probing.adapter`).

    Args:
        model: a ``VideomtForUniversalSegmentation`` (or a model with the same structure:
            ``embeddings``, ``layers``, ``config.num_blocks``, ``config.num_queries``, a
            ``last_hidden_state`` output of shape ``(T * B, Q + tokens, C)``).
        num_frames: frames per probed clip; default the config's ``num_frames`` when it has one, else
            :data:`DEFAULT_NUM_FRAMES` (the model takes any count).
        per_query: also probe each query (``query_{q}``): ``True`` for all ``Q``, or a list of indices.

    ``forward(pixel_values_videos)`` returns the wrapped model's output unchanged. The wrapped model's
    parameters are this module's ``model.*``.
    """

    main_input_name = "pixel_values_videos"
    probe_family = "videomt"
    probe_processor: dict[str, Any] | None = None

    def __init__(self, model: nn.Module, *, num_frames: int | None = None, per_query: bool | Sequence[int] = False):
        super().__init__()
        config: Any = getattr(model, "config", None)
        missing = [a for a in ("num_hidden_layers", "num_blocks", "num_queries") if not hasattr(config, a)]
        if missing or not isinstance(getattr(model, "layers", None), nn.ModuleList):
            raise ValueError(
                f"{type(model).__name__} is not a VidEoMT-like model (needs .layers and config.{', '.join(missing)}); "
                "load a VideomtForUniversalSegmentation."
            )
        if num_frames is not None and (
            isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1
        ):
            raise ValueError(f"num_frames={num_frames!r} must be a positive int (frames per probed clip).")
        self.model = model
        self.num_frames = num_frames
        q_total = int(config.num_queries)
        if per_query is True:
            queries = list(range(q_total))
        elif per_query is False or per_query is None:
            queries = []
        else:
            queries = [int(q) for q in per_query]
            bad = [q for q in queries if not 0 <= q < q_total]
            if bad:
                raise ValueError(
                    f"per_query indices {bad} out of range: the model has {q_total} queries (0..{q_total - 1})."
                )
        self.per_query = queries
        self.num_layers = len(model.layers)  # type: ignore[arg-type]
        self.query_start = self.num_layers - int(config.num_blocks)
        names = ["embeddings", *(f"block_{i}" for i in range(self.num_layers)), "queries"]
        self.taps = nn.ModuleDict({n: nn.Identity() for n in names})

    @property
    def config(self) -> Any:
        return self.model.config

    # ------------------------------------------------------------------ forward
    @contextlib.contextmanager
    def _frame_pooling(self, rows: dict[str, list[torch.Tensor]]) -> Iterator[None]:
        """Hooks that pool every call of the embeddings and of each layer over its tokens, ``(n, C)`` fp32."""

        def hook(name: str):
            def fn(module: nn.Module, args: Any, output: Any) -> None:
                x = output[0] if isinstance(output, (tuple, list)) else output
                rows[name].append(x.mean(dim=1, dtype=torch.float32))

            return fn

        model: Any = self.model
        handles = [model.embeddings.register_forward_hook(hook("embeddings"))]
        handles += [layer.register_forward_hook(hook(f"block_{i}")) for i, layer in enumerate(model.layers)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward(self, pixel_values_videos: torch.Tensor, **kwargs: Any) -> Any:
        """Run the wrapped model and feed the probe taps (``(B, T, C)`` per layer, ``(B, T, Q, C)`` queries)."""
        if not isinstance(pixel_values_videos, torch.Tensor) or pixel_values_videos.ndim != 5:
            raise ValueError("pixel_values_videos must be a (B, T, 3, H, W) tensor.")
        b, t = pixel_values_videos.shape[:2]
        rows: dict[str, list[torch.Tensor]] = {n: [] for n in self.taps if n != "queries"}
        with self._frame_pooling(rows):
            out = self.model(pixel_values_videos=pixel_values_videos, **kwargs)
        for name, calls in rows.items():
            if len(calls) == 1 and calls[0].shape[0] == b * t:  # per-frame stage: (B * T, C), clip-major
                per_frame = calls[0].reshape(b, t, -1)
            elif len(calls) == t and all(c.shape[0] == b for c in calls):  # query stage: one call per frame
                per_frame = torch.stack(calls, dim=1)
            else:
                raise ValueError(
                    f"{name} of {type(self.model).__name__} ran {len(calls)} times with batches "
                    f"{[c.shape[0] for c in calls]}; expected once with B*T={b * t} frames or T={t} times with B={b}."
                )
            self.taps[name](per_frame)
        hidden = out.last_hidden_state  # (T * B, Q + tokens, C), frame-major
        q = int(self.config.num_queries)
        queries = hidden.reshape(t, b, hidden.shape[1], hidden.shape[2])[:, :, :q].transpose(0, 1)
        self.taps["queries"](queries)  # (B, T, Q, C)
        return out

    # ------------------------------------------------------ probe adapter protocol
    def probe_layer_specs(self) -> dict[str, LayerSpec]:
        """``embeddings``, ``block_0`` .. ``block_{L-1}``, ``queries`` and the ``query_{q}`` asked for."""
        specs = {n: LayerSpec(module=f"taps.{n}", layout=Layout.TOKENS) for n in self.taps if n != "queries"}
        specs["queries"] = LayerSpec(module="taps.queries", layout=Layout.TOKENS, select=_flatten_queries)
        for qi in self.per_query:
            specs[f"query_{qi}"] = LayerSpec(
                module="taps.queries", layout=Layout.TOKENS, select=functools.partial(_one_query, qi)
            )
        return specs

    def probe_layers(self) -> dict[str, Layout]:
        return {name: spec.layout for name, spec in self.probe_layer_specs().items()}  # type: ignore[misc]

    def set_probe_processor(self, settings: Mapping[str, Any] | None) -> None:
        """Prepare inputs as the checkpoint's processor says (:func:`hf_stadyn.models.processor.read_processor_config`)."""
        _, warnings = self._resolve(settings)
        for msg in warnings:
            logger.warning(msg)
        self.probe_processor = dict(settings) if settings else None

    def _resolve(self, settings: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
        from .processor import resolve_input_spec

        values, warns = resolve_input_spec(
            settings, config=self.config, default_mean=IMAGENET_DEFAULT_MEAN, default_std=IMAGENET_DEFAULT_STD,
            fixed_num_frames=False, fixed_image_size=True, model_name=type(self.model).__name__,
        )  # fmt: skip
        record = values["processor"]
        if self.num_frames is not None:
            values["num_frames"] = self.num_frames
            record["sources"]["num_frames"] = "load_vis_adapter(num_frames=...)"
        elif values["num_frames"] is None:
            values["num_frames"] = DEFAULT_NUM_FRAMES
            record["sources"]["num_frames"] = f"hf_stadyn default for VIS models ({DEFAULT_NUM_FRAMES})"
        record["num_frames"] = values["num_frames"]
        if values["window"] is None and record.get("sampling_rate") is not None:
            values["window"] = record["window"] = int(record["sampling_rate"]) * int(values["num_frames"])
        return values, warns

    def probe_input_spec(self) -> ProbeInputSpec:
        """``{"num_frames", "image_size", "mean", "std", "window", "processor"}`` (docs/method.md §1.1)."""
        values, _ = self._resolve(self.probe_processor)
        if values["image_size"] is None:
            raise ValueError(f"{type(self.model).__name__}.config has no image_size; set it in config.json.")
        return ProbeInputSpec(
            num_frames=int(values["num_frames"]),
            image_size=values["image_size"],
            mean=tuple(float(v) for v in values["mean"]),  # type: ignore[typeddict-item]
            std=tuple(float(v) for v in values["std"]),  # type: ignore[typeddict-item]
            window=values["window"],
            processor=values["processor"],
        )

    def prepare_pixel_values(self, clips: Any, device: str | torch.device | None = None) -> torch.Tensor:
        """uint8 clips ``(B, T, H, W, 3)`` -> normalised ``pixel_values_videos`` ``(B, T, 3, H, W)``."""
        spec = self.probe_input_spec()
        return clips_to_pixel_values(
            clips, spec["mean"], spec["std"], num_frames=spec["num_frames"], image_size=spec["image_size"],
            device=device,
        )  # fmt: skip

    def probe_inputs(self, batch: Mapping[str, Any], device: str | torch.device | None = None) -> dict[str, Any]:
        """A collated batch of B clip pairs -> ``{"pixel_values_videos": (2B, T, 3, H, W)}``, members a first."""
        from hf_stadyn.probing.adapter import clip_members

        if device is None:
            device = next(self.parameters()).device
        return {self.main_input_name: self.prepare_pixel_values(clip_members(batch, device), device=device)}

    def pairs_from_videos(self, videos: Any, **kwargs: Any) -> Any:
        """Clip pairs (docs/method.md §1.1) at this model's frame count and input size."""
        from hf_stadyn.probing.mixin import clip_pairs_for_spec

        return clip_pairs_for_spec(self.probe_input_spec(), videos, **kwargs)


def load_vis_adapter(
    model: nn.Module | str | os.PathLike,
    *,
    num_frames: int | None = None,
    per_query: bool | Sequence[int] = False,
    revision: str | None = None,
    processor: Mapping[str, Any] | None = None,
) -> VisProbeModel:
    """The probe adapter of a VIS model: a loaded VidEoMT, or a checkpoint folder / Hub id to load.

    Args:
        model: a ``VideomtForUniversalSegmentation`` (or an adapter, returned as is), or where to load
            one from (safetensors only, no remote code); its processor file is then read too.
        num_frames, per_query: as for :class:`VisProbeModel`.
        revision: Hub revision when ``model`` is an id.
        processor: :func:`hf_stadyn.models.processor.read_processor_config`'s settings for a model
            given as an object (``load_model`` passes them; None = the class defaults).

    Raises:
        ValueError: the checkpoint is not a VIS model hf_stadyn knows (``VIS_MODEL_TYPES``).
    """
    if isinstance(model, VisProbeModel):
        return model
    settings = processor
    if isinstance(model, (str, os.PathLike)):
        from transformers import AutoConfig

        src = str(model)
        config = AutoConfig.from_pretrained(src, revision=revision, trust_remote_code=False)
        if config.model_type not in VIS_MODEL_TYPES:
            raise ValueError(
                f"model {src!r} has model_type {config.model_type!r}; load_vis_adapter wraps {list(VIS_MODEL_TYPES)}."
            )
        from transformers import VideomtForUniversalSegmentation

        from .processor import read_processor_config

        model = VideomtForUniversalSegmentation.from_pretrained(src, revision=revision or "main", use_safetensors=True)
        if settings is None:
            settings = read_processor_config(src, revision=revision)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in VIS_MODEL_TYPES:
        raise ValueError(
            f"{type(model).__name__} has model_type {model_type!r}; load_vis_adapter wraps {list(VIS_MODEL_TYPES)}."
        )
    adapter = VisProbeModel(model, num_frames=num_frames, per_query=per_query)
    adapter.set_probe_processor(settings)
    return adapter.eval()
