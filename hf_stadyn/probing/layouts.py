"""Feature layouts and the one pooling function per layout (docs/method.md §2).

Every probed activation is reduced to one vector per sample, ``(B, C)``, as soon as it is produced:

=============  =====================  ===============================================================
layout         activation shape       pooled ``(B, C)``
=============  =====================  ===============================================================
``cthw``       ``(B, C, T, H, W)``    mean over T, H, W (3D CNN stage outputs)
``thwc``       ``(B, T, H, W, C)``    mean over T, H, W (channels-last video maps)
``tokens``     ``(B, N, C)``          mean over all N tokens (transformer blocks without CLS)
``tokens_cls`` ``(B, 1 + N, C)``      mean over all 1 + N tokens, CLS included (same pooling as
                                      ``tokens``; the layout records that token 0 is a CLS token,
                                      which matters for uses such as reshaping tokens to grids)
``frames``     ``(B * T, C, H, W)``   per-frame maps of a clip model, pooled per clip: mean over
                                      T, H, W (needs ``num_frames=T``)
``frame_tokens`` ``(B * T, N, C)``    per-frame token sequences of a clip model (a frame ViT run on
                                      the T frames stacked along the batch, e.g. X-CLIP's vision
                                      tower, VideoPrism's spatial blocks), pooled per clip: mean
                                      over T and the N tokens, CLS tokens included (needs
                                      ``num_frames=T``)
``chw``        ``(B, C, H, W)``       per-frame maps of a two-stream model, pooled per frame: mean
                                      over H, W
``vector``     ``(B, C)``             already pooled (e.g. the classifier input); returned as is
=============  =====================  ===============================================================

Pooled features are float32 whatever the activation dtype (bf16/fp16 activations under autocast are
averaged with a float32 accumulator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any

import torch

__all__ = ["Layout", "Selector", "first_tensor", "parse_layout", "pool"]

#: A function that picks the tensor to pool out of a module's output (or forward inputs).
Selector = Callable[[Any], torch.Tensor]


class Layout(str, Enum):
    """How a probed activation is laid out; see the module docstring for the pooling of each."""

    CTHW = "cthw"
    THWC = "thwc"
    TOKENS = "tokens"
    TOKENS_CLS = "tokens_cls"
    FRAMES = "frames"
    FRAME_TOKENS = "frame_tokens"
    CHW = "chw"
    VECTOR = "vector"

    def __str__(self) -> str:  # "cthw", not "Layout.CTHW", in messages and JSON
        return self.value


_NDIM = {
    Layout.CTHW: 5,
    Layout.THWC: 5,
    Layout.TOKENS: 3,
    Layout.TOKENS_CLS: 3,
    Layout.FRAMES: 4,
    Layout.FRAME_TOKENS: 3,
    Layout.CHW: 4,
    Layout.VECTOR: 2,
}
_SHAPE_TEXT = {
    Layout.CTHW: "(B, C, T, H, W)",
    Layout.THWC: "(B, T, H, W, C)",
    Layout.TOKENS: "(B, N, C)",
    Layout.TOKENS_CLS: "(B, 1 + N, C)",
    Layout.FRAMES: "(B * T, C, H, W)",
    Layout.FRAME_TOKENS: "(B * T, N, C)",
    Layout.CHW: "(B, C, H, W)",
    Layout.VECTOR: "(B, C)",
}


def parse_layout(layout: Layout | str, *, name: str = "layout") -> Layout:
    """Return ``layout`` as a :class:`Layout`; raise ``ValueError`` naming the valid layouts otherwise."""
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, str):
        try:
            return Layout(layout.strip().lower())
        except ValueError:
            pass
    valid = ", ".join(f"{lay.value!r} {_SHAPE_TEXT[lay]}" for lay in Layout)
    raise ValueError(f"{name}={layout!r} is not a known layout; use one of: {valid}.")


def pool(x: torch.Tensor, layout: Layout | str, num_frames: int | None = None) -> torch.Tensor:
    """Pool one activation to ``(B, C)`` float32 according to its ``layout`` (docs/method.md §2).

    Args:
        x: the activation, shaped as ``layout`` says (see the module docstring).
        layout: a :class:`Layout` or its string value.
        num_frames: frames per clip ``T``; required by ``"frames"`` and ``"frame_tokens"``
            (``x.shape[0]`` must be a multiple of it), ignored otherwise.

    Returns:
        ``(B, C)`` float32 tensor on ``x``'s device (``B`` is the number of clips, or of frames for
        ``"chw"``).

    Raises:
        ValueError: ``x`` is not a floating tensor of the layout's rank, or ``num_frames`` is missing
            or does not divide the batch for ``"frames"``.

    Example:
        >>> pool(torch.ones(2, 4, 3, 5, 5), "cthw").shape
        torch.Size([2, 4])
    """
    layout = parse_layout(layout)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"pool() needs a torch.Tensor for layout {layout.value!r}, got {type(x).__name__}.")
    want = _NDIM[layout]
    if x.ndim != want:
        raise ValueError(
            f"layout {layout.value!r} expects a {want}-D activation {_SHAPE_TEXT[layout]}, got shape "
            f"{tuple(x.shape)}; pick the layout that matches this module's output."
        )
    if not (x.is_floating_point() or x.is_complex()):
        x = x.float()
    if layout in (Layout.CTHW,):
        return x.mean(dim=(2, 3, 4), dtype=torch.float32)
    if layout is Layout.THWC:
        return x.mean(dim=(1, 2, 3), dtype=torch.float32)
    if layout in (Layout.TOKENS, Layout.TOKENS_CLS):
        return x.mean(dim=1, dtype=torch.float32)
    if layout is Layout.CHW:
        return x.mean(dim=(2, 3), dtype=torch.float32)
    if layout is Layout.VECTOR:
        # always a fresh tensor: x may be a view (e.g. the CLS token of a (B, N, C) sequence) whose
        # storage would otherwise stay alive with the pooled features
        return x.to(torch.float32, copy=True)
    # FRAMES: (B * T, C, H, W) -> (B, T, C, H, W) -> mean over T, H, W
    # FRAME_TOKENS: (B * T, N, C) -> (B, T * N, C) -> mean over T and N (rows b * T + t belong to clip b)
    if num_frames is None or int(num_frames) < 1:
        raise ValueError(
            f"layout {layout.value!r} {_SHAPE_TEXT[layout]} needs num_frames=T (frames per clip) to pool per clip; "
            f"got num_frames={num_frames!r}."
        )
    t = int(num_frames)
    if x.shape[0] % t:
        raise ValueError(
            f"layout {layout.value!r} got {x.shape[0]} frames, not a multiple of num_frames={t}; the module must "
            "see whole clips of T frames stacked along the batch axis (B * T)."
        )
    if layout is Layout.FRAME_TOKENS:
        return x.reshape(x.shape[0] // t, t * x.shape[1], x.shape[2]).mean(dim=1, dtype=torch.float32)
    return x.reshape(x.shape[0] // t, t, *x.shape[1:]).mean(dim=(1, 3, 4), dtype=torch.float32)


def first_tensor(output: Any) -> torch.Tensor:
    """The default :data:`Selector`: the first tensor in a module's output.

    A tensor is returned as is; for a tuple or list the first element that holds a tensor is used, and
    for a mapping (``ModelOutput``, dict) the first value that holds one, searched depth first. This
    matches transformers blocks, which return ``(hidden_states, attentions...)`` tuples or
    ``ModelOutput``s whose first field is the hidden state. Pass your own selector to
    :class:`~hf_stadyn.probing.FeatureProbe` when the first tensor is not the one to probe.

    Raises:
        ValueError: the output holds no tensor.
    """
    found = _find_tensor(output)
    if found is None:
        raise ValueError(
            f"the module output of type {type(output).__name__} holds no tensor to probe; pass select= "
            "a function that returns the tensor to pool."
        )
    return found


def _find_tensor(obj: Any, depth: int = 0) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if depth > 4:
        return None
    values: Iterable[Any]
    if isinstance(obj, Mapping):
        values = obj.values()
    elif isinstance(obj, (tuple, list)):
        values = obj
    else:
        return None
    for value in values:
        found = _find_tensor(value, depth + 1)
        if found is not None:
            return found
    return None
