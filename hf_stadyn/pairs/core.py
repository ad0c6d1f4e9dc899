"""Static and dynamic pairs (docs/method.md §1).

- Dynamic pair: the same clip (same frames, same order) in two different styles.
- Static pair: a stylized clip and the same stylized clip with its frames shuffled by a permutation
  that is never the identity; the pathways of a multi-pathway input are shuffled independently.
- Two-stream pairs (RGB frame + colour-coded flow image): dynamic = the frame in two styles with the
  identical flow image; static = the same stylized frame with the original and a jittered flow image.

Every random choice is drawn from the ``numpy.random.Generator`` passed in, in a fixed order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ..metric.factors import DYNAMIC, FACTORS, STATIC, parse_factors
from ..video.flow import apply_flow_jitter, draw_flow_jitter
from .styles import StyleLike, _check_clip, _style_name, resolve_styles

__all__ = [
    "DYNAMIC",
    "FACTOR_NAMES",
    "STATIC",
    "Pair",
    "TwoStreamPair",
    "draw_pair",
    "make_pair",
    "make_two_stream_pair",
    "parse_factor",
    "shuffle_frames",
    "shuffle_pathways",
]

#: The factor vocabulary lives in one module, :mod:`hf_stadyn.metric.factors`; these are its names.
FACTOR_NAMES = FACTORS

Clip = np.ndarray
Clips = Union[np.ndarray, Sequence[np.ndarray]]


def parse_factor(factor: int | str) -> int:
    """``0``/``"dynamic"`` -> 0, ``1``/``"static"`` -> 1 (one label; :func:`hf_stadyn.metric.parse_factors`)."""
    if isinstance(factor, bool) or not isinstance(factor, (str, int, np.integer)):
        raise ValueError(f"factor must be 0/'dynamic' or 1/'static', got {factor!r}")
    return int(parse_factors([factor], 1, name="factor")[0])


@dataclass
class Pair:
    """Two inputs that share one factor.

    Attributes:
        clip_a, clip_b: ``(T, H, W, 3)`` uint8, or lists of them (one per pathway).
        factor: 0 = dynamic (same motion, different appearance), 1 = static (same appearance, shuffled).
        style_a, style_b: style names of the two members (equal for static pairs).
        permutation: for static pairs the frame order of ``clip_b`` (``clip_b = clip_a[permutation]``),
            a list of them for pathways; None for dynamic pairs.
    """

    clip_a: Clips
    clip_b: Clips
    factor: int
    style_a: str
    style_b: str
    permutation: np.ndarray | list[np.ndarray] | None = None

    @property
    def factor_name(self) -> str:
        return FACTOR_NAMES[self.factor]


@dataclass
class TwoStreamPair:
    """A two-stream (RGB + flow image) pair for one frame; images are ``(H, W, 3)`` uint8.

    Attributes:
        hue_shift, saturation_scale, jitter_order: the jitter applied to ``flow_b`` (static pairs), else
            None: the drawn hue shift in turns (symmetric, U(-h, h)), the drawn saturation factor (a blend
            with greyscale, U(max(0, 1 - s), 1 + s)) and which was applied first (``"hue,saturation"`` or
            ``"saturation,hue"``); see :func:`hf_stadyn.video.flow.draw_flow_jitter` and docs/method.md §1.2.
    """

    rgb_a: np.ndarray
    flow_a: np.ndarray
    rgb_b: np.ndarray
    flow_b: np.ndarray
    factor: int
    style_a: str
    style_b: str
    hue_shift: float | None = None
    saturation_scale: float | None = None
    jitter_order: str | None = None

    @property
    def factor_name(self) -> str:
        return FACTOR_NAMES[self.factor]


def _non_identity_permutation(t: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of ``t`` items other than the identity (rejection sampling)."""
    identity = np.arange(t)
    while True:
        perm = rng.permutation(t)
        if not np.array_equal(perm, identity):
            return perm


def shuffle_frames(clip: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the frames of ``clip`` ``(T, ...)`` with a random permutation that is never the identity.

    Returns:
        ``(shuffled, permutation)`` with ``shuffled = clip[permutation]``; permutation is ``(T,)`` int64.

    Raises:
        ValueError: T < 2 (a single frame cannot be reordered).
    """
    clip = np.asarray(clip)
    if clip.ndim < 1 or clip.shape[0] < 2:
        raise ValueError(
            f"shuffling needs at least 2 frames, got a clip of shape {clip.shape}; sample more frames (num_frames >= 2)"
        )
    perm = _non_identity_permutation(clip.shape[0], rng).astype(np.int64)
    return clip[perm], perm


def shuffle_pathways(
    pathways: Sequence[np.ndarray], rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Shuffle each pathway of a multi-pathway input (e.g. SlowFast slow/fast) independently."""
    shuffled, perms = [], []
    for p in pathways:
        s, perm = shuffle_frames(p, rng)
        shuffled.append(s)
        perms.append(perm)
    return shuffled, perms


def _is_pathways(clip: Any) -> bool:
    return isinstance(clip, (list, tuple))


def _apply_style(stylizer: Any, clips: Clips, params: Any) -> Clips:
    def one(c: np.ndarray) -> np.ndarray:
        c = _check_clip(c)
        out = np.asarray(stylizer.apply(c, params))
        if out.shape != c.shape or out.dtype != np.uint8:
            raise ValueError(
                f"style {_style_name(stylizer)!r} returned {out.shape} {out.dtype} for a {c.shape} uint8 clip; "
                "a stylizer must keep the shape and return uint8"
            )
        return out

    return [one(c) for c in clips] if _is_pathways(clips) else one(clips)


def _pick_styles(styles: Sequence[StyleLike] | None, factor: int, rng: np.random.Generator) -> tuple[Any, Any]:
    resolved = resolve_styles(styles)
    if factor == STATIC:
        s = resolved[int(rng.integers(len(resolved)))]
        return s, s
    if len(resolved) < 2:
        raise ValueError(
            f"a dynamic pair needs two different styles, got {[_style_name(s) for s in resolved]}; give at least two"
        )
    i, j = rng.choice(len(resolved), size=2, replace=False)
    return resolved[int(i)], resolved[int(j)]


def draw_pair(
    num_frames: int, factor: int | str, rng: np.random.Generator, styles: Sequence[StyleLike] | None = None
) -> tuple[Any, Any, Any, Any, np.ndarray | None]:
    """Every random choice of :func:`make_pair` for a single clip of ``num_frames`` frames, without rendering.

    The draws come from ``rng`` in :func:`make_pair`'s order (styles, style A's parameters, then the
    permutation of a static pair or style B's parameters of a dynamic one), so rendering them (on the CPU
    with ``style.apply`` or on a device with :func:`hf_stadyn.pairs.torch_ops.stylize_batch`) gives
    :func:`make_pair`'s pair.

    Returns:
        ``(style_a, style_b, params_a, params_b, permutation)``: stylizer objects, their parameters
        (``params_b`` None for a static pair, whose member B is member A reordered) and the ``(T,)`` int64
        frame order of a static pair's member B (None for a dynamic pair).
    """
    factor = parse_factor(factor)
    if int(num_frames) < 2 and factor == STATIC:
        raise ValueError(f"shuffling needs at least 2 frames, got {num_frames}; sample more frames (num_frames >= 2)")
    style_a, style_b = _pick_styles(styles, factor, rng)
    params_a = style_a.sample_params(rng)
    if factor == STATIC:
        perm = _non_identity_permutation(int(num_frames), rng).astype(np.int64)
        return style_a, style_a, params_a, None, perm
    return style_a, style_b, params_a, style_b.sample_params(rng), None


def make_pair(
    clip: Clips,
    factor: int | str,
    rng: np.random.Generator,
    styles: Sequence[StyleLike] | None = None,
) -> Pair:
    """Make a static or dynamic pair from a clip (docs/method.md §1.1).

    Args:
        clip: ``(T, H, W, 3)`` uint8, or a list of such clips, one per pathway of a multi-pathway model
            (all pathways get the same style parameters; a static pair shuffles each one independently).
        factor: 0/"dynamic" or 1/"static".
        rng: the generator every choice is drawn from (style, style parameters, permutation).
        styles: names or stylizers to choose from; None = :data:`~hf_stadyn.pairs.DEFAULT_STYLES`.

    Returns:
        A :class:`Pair`. Static: ``(X(clip), X(clip)[perm])``, same style X. Dynamic: ``(X(clip), Y(clip))``
        with X != Y, frames in the same order.
    """
    factor = parse_factor(factor)
    if _is_pathways(clip):
        if not clip:
            raise ValueError("clip is an empty list of pathways")
        for c in clip:
            _check_clip(c)
    else:
        clip = _check_clip(clip)
    style_a, style_b = _pick_styles(styles, factor, rng)
    params_a = style_a.sample_params(rng)
    a = _apply_style(style_a, clip, params_a)
    if factor == STATIC:
        if _is_pathways(a):
            b, perm = shuffle_pathways(a, rng)
        else:
            b, perm = shuffle_frames(a, rng)
        return Pair(a, b, STATIC, _style_name(style_a), _style_name(style_a), perm)
    b = _apply_style(style_b, clip, style_b.sample_params(rng))
    return Pair(a, b, DYNAMIC, _style_name(style_a), _style_name(style_b), None)


def make_two_stream_pair(
    frames: np.ndarray,
    flow_images: np.ndarray,
    index: int,
    factor: int | str,
    rng: np.random.Generator,
    styles: Sequence[StyleLike] | None = None,
    *,
    hue_range: tuple[float, float] = (0.1, 0.5),
    sat_range: tuple[float, float] = (0.1, 1.0),
) -> TwoStreamPair:
    """Make a two-stream pair for frame ``index`` of a sequence (docs/method.md §1.2).

    Args:
        frames: ``(T, H, W, 3)`` uint8 original (unstylized) frames.
        flow_images: ``(T, H, W, 3)`` uint8 colour-coded flow computed on the original frames
            (see :func:`hf_stadyn.video.flow_images`).
        index: the frame, ``0 <= index < T``.
        factor: 0/"dynamic" or 1/"static".
        rng: the generator every choice is drawn from.
        styles: names or stylizers; None = the default styles.
        hue_range, sat_range: the ranges of the two-level flow jitter of static pairs (docs/method.md
            §1.2): h ~ U(hue_range), s ~ U(sat_range), then hue shift ~ U(-h, h) and saturation factor
            ~ U(max(0, 1 - s), 1 + s), applied in random order.

    Returns:
        A :class:`TwoStreamPair`. Dynamic: the frame in styles X != Y, both with the original flow image.
        Static: the frame in style X twice, with the original and a jittered flow image.
    """
    factor = parse_factor(factor)
    frames = _check_clip(frames)
    flow_images = np.asarray(flow_images)
    if flow_images.shape != frames.shape or flow_images.dtype != np.uint8:
        raise ValueError(
            f"flow_images must match frames {frames.shape} uint8, got {flow_images.shape} {flow_images.dtype}; "
            "use hf_stadyn.video.flow_images(frames)"
        )
    if not 0 <= int(index) < frames.shape[0]:
        raise ValueError(f"index {index} is outside the {frames.shape[0]} frames")
    index = int(index)
    frame = frames[index : index + 1]
    flow = flow_images[index]
    style_a, style_b = _pick_styles(styles, factor, rng)
    rgb_a = _apply_style(style_a, frame, style_a.sample_params(rng))[0]
    if factor == STATIC:
        j = draw_flow_jitter(rng, hue_range, sat_range)
        flow_b = apply_flow_jitter(flow, j.hue_shift, j.saturation_scale, order=j.order)
        name = _style_name(style_a)
        return TwoStreamPair(
            rgb_a, flow, rgb_a.copy(), flow_b, STATIC, name, name, j.hue_shift, j.saturation_scale, j.order
        )
    rgb_b = _apply_style(style_b, frame, style_b.sample_params(rng))[0]
    return TwoStreamPair(rgb_a, flow, rgb_b, flow.copy(), DYNAMIC, _style_name(style_a), _style_name(style_b))
