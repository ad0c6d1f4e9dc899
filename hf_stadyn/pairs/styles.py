"""Weight-free, temporally consistent stylizers and the style registry.

A stylizer re-renders a clip's appearance and leaves its motion alone: :meth:`Stylizer.sample_params`
draws one set of style parameters from a seeded generator, and :meth:`Stylizer.apply` renders every
frame of the clip with that same set, frame by frame, so nothing new moves and nothing that moved stops.

Built-in styles (all fast: a few ms for a 16x224x224 clip on one core):

=============== ==================================================================================
``color_mix``   random colour-space rotation and scaling plus an offset (an affine 3x3 colour transform)
``palette``     gradient map: luminance looked up in a random palette of 3-5 colours
``randconv``    random convolution re-texturing (RandConv): colour mixing + a random 3x3/5x5 filter
``cartoon``     median smoothing, per-channel colour quantisation to a random palette, dark outlines
``tone_curve``  channel permutation, per-channel gamma and inversion
``texture``     a random procedural texture blended multiplicatively (not a default: the texture is
                fixed to the image, so it adds static structure)
``stylization`` OpenCV's edge-preserving ``cv2.stylization`` (not a default: about 20 ms per frame)
=============== ==================================================================================

The colour styles are drawn so that luminance keeps most of its contrast (a transform that turns
all grey-level variation into pure chroma would hide the motion from anything that looks at
luminance, optical flow included). docs/benchmarks_pairs.md measures, on real footage, how little
each style moves the optical flow compared with a frame shuffle.

Plug in your own (e.g. a neural style network) with :func:`register_style`::

    @register_style("my_style")
    class MyStyle(Stylizer):
        def sample_params(self, rng):
            return {"strength": rng.uniform(0.5, 1.0)}
        def apply(self, clip, params):      # (T, H, W, 3) uint8 -> (T, H, W, 3) uint8
            ...
"""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Union

import cv2
import numpy as np

__all__ = [
    "DEFAULT_STYLES",
    "StyleLike",
    "Stylizer",
    "get_style",
    "list_styles",
    "register_style",
    "resolve_styles",
    "stylize",
    "unregister_style",
]

#: Styles used by pairs and datasets when ``styles=None``.
DEFAULT_STYLES: tuple[str, ...] = ("color_mix", "palette", "randconv", "cartoon", "tone_curve")


class Stylizer(abc.ABC):
    """Base class of stylizers. Subclasses implement :meth:`sample_params` and :meth:`apply`.

    ``apply`` must use one set of parameters for every frame (temporal consistency) and must not draw
    random numbers itself: all randomness belongs in ``sample_params(rng)``, so a seed fixes the result.
    """

    #: Registry name; set by :func:`register_style`.
    name: str = ""

    @abc.abstractmethod
    def sample_params(self, rng: np.random.Generator) -> Any:
        """Draw one set of style parameters from ``rng``."""

    @abc.abstractmethod
    def apply(self, clip: np.ndarray, params: Any) -> np.ndarray:
        """Render ``clip`` ``(T, H, W, 3)`` uint8 with ``params``; returns ``(T, H, W, 3)`` uint8."""

    def __call__(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(clip, self.sample_params(rng))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


#: A style given by registry name or as a stylizer object.
StyleLike = Union[str, Stylizer]

_REGISTRY: dict[str, Any] = {}
_LOCK = threading.Lock()


def register_style(name: str, stylizer: Any = None, *, overwrite: bool = False) -> Callable[[Any], Any] | Any:
    """Register a stylizer under ``name``; use as a class decorator or call with an instance.

    The object (or an instance of the class, built without arguments) must have
    ``sample_params(rng)`` and ``apply(clip, params)``.

    Example:
        >>> @register_style("my_style")            # doctest: +SKIP
        ... class MyStyle(Stylizer): ...
        >>> register_style("styled_net", NeuralStylizer(weights="net.safetensors"))  # doctest: +SKIP
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"style name must be a non-empty string, got {name!r}")

    def _register(obj: Any) -> Any:
        instance = obj() if isinstance(obj, type) else obj
        for method in ("sample_params", "apply"):
            if not callable(getattr(instance, method, None)):
                raise ValueError(
                    f"cannot register style {name!r}: {type(instance).__name__} has no {method}() method; "
                    "subclass hf_stadyn.pairs.Stylizer"
                )
        with _LOCK:
            if name in _REGISTRY and not overwrite:
                raise ValueError(f"style {name!r} is already registered; pass overwrite=True to replace it")
            with contextlib.suppress(AttributeError):
                instance.name = name
            _REGISTRY[name] = instance
        return obj

    return _register(stylizer) if stylizer is not None else _register


def unregister_style(name: str) -> None:
    """Remove a registered style (no error if it is absent)."""
    with _LOCK:
        _REGISTRY.pop(name, None)


def get_style(name: str) -> Any:
    """The stylizer registered under ``name``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown style {name!r}; registered styles: {', '.join(list_styles())}") from None


def list_styles() -> list[str]:
    """Names of all registered styles, sorted."""
    return sorted(_REGISTRY)


def _style_name(style: Any) -> str:
    return getattr(style, "name", None) or type(style).__name__


def resolve_styles(styles: Sequence[StyleLike] | StyleLike | None = None) -> list[Any]:
    """Stylizer objects for ``styles`` (names and/or objects; None = :data:`DEFAULT_STYLES`)."""
    if styles is None:
        styles = DEFAULT_STYLES
    if isinstance(styles, (str, Stylizer)):
        styles = [styles]
    out = []
    for s in styles:
        if isinstance(s, str):
            out.append(get_style(s))
        elif callable(getattr(s, "sample_params", None)) and callable(getattr(s, "apply", None)):
            out.append(s)
        else:
            raise ValueError(f"a style must be a registered name or a stylizer object, got {s!r}")
    if not out:
        raise ValueError("styles is empty; give at least one style (two for dynamic pairs)")
    names = [_style_name(s) for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"styles are repeated: {names}; give each style once")
    return out


def _check_clip(clip: np.ndarray) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"clip must be (T, H, W, 3) uint8, got {clip.shape} {clip.dtype}")
    return clip


def stylize(clip: np.ndarray, style: StyleLike, rng: np.random.Generator) -> np.ndarray:
    """Render ``clip`` ``(T, H, W, 3)`` uint8 in ``style`` (a name or stylizer) with parameters drawn from ``rng``."""
    clip = _check_clip(clip)
    stylizer = get_style(style) if isinstance(style, str) else resolve_styles([style])[0]
    out = np.asarray(stylizer.apply(clip, stylizer.sample_params(rng)))
    if out.shape != clip.shape or out.dtype != np.uint8:
        raise ValueError(
            f"style {_style_name(stylizer)!r} returned {out.shape} {out.dtype} for a {clip.shape} uint8 clip; "
            "a stylizer must keep the shape and return uint8"
        )
    return out


# --------------------------------------------------------------------------------------------------
# Built-in styles
# --------------------------------------------------------------------------------------------------

_LUMA = np.array([0.299, 0.587, 0.114])


def _flat(clip: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) -> (T*H, W, 3) view for OpenCV's per-pixel functions."""
    t, h, w, c = clip.shape
    return np.ascontiguousarray(clip).reshape(t * h, w, c)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _grey_gain(matrix: np.ndarray) -> float:
    """How much a colour matrix keeps luminance contrast along the grey axis (1 = unchanged).

    Natural footage varies mostly along the grey axis; a transform that turns that variation into
    pure chroma leaves a flat luminance image, in which motion is hard to see (and to measure).
    """
    return float(abs(_LUMA @ matrix @ np.ones(3)))


def _colour_matrix(rng: np.random.Generator, scale: tuple[float, float]) -> np.ndarray:
    """A random rotation of colour space (reflections included) with per-axis scales, far from the
    identity and keeping at least 60 % of the grey-axis luminance contrast (rejection sampling)."""
    while True:
        m = _random_rotation(rng) @ np.diag(rng.uniform(*scale, size=3))
        if np.linalg.norm(m - np.eye(3)) >= 1.0 and _grey_gain(m) >= 0.6:
            return m


@register_style("color_mix")
class ColorMix(Stylizer):
    """Affine colour transform ``y = M (x - 128) + 128 + b``: M a random rotation of colour space
    (reflections included) with per-axis scales in [0.8, 1.4] that keeps at least 60 % of the
    luminance contrast along the grey axis, b an offset in [-30, 30]."""

    def sample_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        m = _colour_matrix(rng, (0.8, 1.4))
        b = rng.uniform(-30.0, 30.0, size=3)
        return {"matrix": m, "offset": b}

    def apply(self, clip: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        m = np.asarray(params["matrix"], np.float64)
        affine = np.hstack([m, (128.0 + np.asarray(params["offset"]) - m @ np.full(3, 128.0))[:, None]])
        return cv2.transform(_flat(clip), affine.astype(np.float32)).reshape(clip.shape)


@register_style("palette")
class Palette(Stylizer):
    """Gradient map: each pixel's luminance indexes a random palette of 3-5 colours. The colours are
    placed along the map in proportion to their own luminance, which spans at least 150 of 255: the
    map's luminance is then linear (slope >= 0.59, rising or falling), so every edge keeps its place
    and most of its contrast while the colours change."""

    def sample_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        k = int(rng.integers(3, 6))
        while True:
            # colours of chosen luminance: grey level L plus a random chroma offset of zero luminance
            target = np.sort(np.concatenate([[rng.uniform(0, 50), rng.uniform(205, 255)], rng.uniform(0, 255, k - 2)]))
            chroma = rng.normal(size=(k, 3))
            chroma -= np.outer(chroma @ _LUMA, _LUMA) / (_LUMA @ _LUMA)
            chroma *= rng.uniform(30, 120, size=(k, 1)) / np.linalg.norm(chroma, axis=1, keepdims=True)
            colours = np.clip(target[:, None] + chroma, 0, 255)
            luma = colours @ _LUMA
            if luma.max() - luma.min() >= 150:  # clipping can shrink the range: rarely redrawn
                break
        order = np.argsort(luma)
        colours, luma = colours[order], luma[order]
        stops = 255.0 * (luma - luma[0]) / (luma[-1] - luma[0])
        stops = np.maximum.accumulate(stops + 1e-3 * np.arange(k)) * (255.0 / (255.0 + 1e-3 * (k - 1)))
        if rng.random() < 0.5:  # falling instead of rising luminance
            colours, stops = colours[::-1], 255.0 - stops[::-1]
        levels = np.arange(256)
        lut = np.stack([np.interp(levels, stops, colours[:, c]) for c in range(3)], axis=1)
        return {"lut": np.clip(np.round(lut), 0, 255).astype(np.uint8)}  # (256, 3)

    def apply(self, clip: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        lut = params["lut"]
        gray = cv2.cvtColor(_flat(clip), cv2.COLOR_RGB2GRAY)
        out = cv2.merge([cv2.LUT(gray, np.ascontiguousarray(lut[:, c])) for c in range(3)])
        return out.reshape(clip.shape)


@register_style("randconv")
class RandConv(Stylizer):
    """Random convolution re-texturing (RandConv, Xu et al. 2021): a random colour mixing followed by a
    random 3x3 or 5x5 filter blended with the identity, re-centred on mid-grey. One filter for the clip."""

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        k = int(rng.choice([3, 5]))
        kernel = rng.normal(size=(k, k))
        kernel -= kernel.mean()  # zero-sum part: re-textures, keeps edges
        kernel *= rng.uniform(1.0, 2.5) / np.abs(kernel).sum()
        alpha = rng.uniform(0.25, 0.6)  # weight of the identity (keeps the shapes readable)
        kernel[k // 2, k // 2] += alpha
        mix = _colour_matrix(rng, (0.8, 1.3))
        offset = rng.uniform(-40.0, 40.0, size=3)
        return {"kernel": kernel.astype(np.float32), "mix": mix, "offset": offset}

    def apply(self, clip: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        kernel = np.asarray(params["kernel"], np.float32)
        mix = np.asarray(params["mix"], np.float64)
        # y = mix (x - 128) + 128 + offset, then z = kernel * y re-centred on mid-grey; all in uint8
        affine = np.hstack([mix, (128.0 + np.asarray(params["offset"]) - mix @ np.full(3, 128.0))[:, None]])
        mixed = cv2.transform(_flat(clip), affine.astype(np.float32)).reshape(clip.shape)
        delta = 128.0 * (1.0 - float(kernel.sum()))
        out = np.empty_like(clip)
        for i in range(clip.shape[0]):  # per frame: the filter must not reach across frame borders
            cv2.filter2D(mixed[i], -1, kernel, dst=out[i], delta=delta, borderType=cv2.BORDER_REFLECT_101)
        return out


@register_style("cartoon")
class Cartoon(Stylizer):
    """Cartoon: 3x3 median smoothing, each channel quantised to 4-8 levels painted with random colours
    (monotone per channel, in either direction), and dark outlines where the smoothed luminance
    (Gaussian, sigma 1.5) has a strong Laplacian; the smoothing keeps outlines from flickering."""

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        levels = int(rng.integers(4, 9))
        lut = np.empty((256, 1, 3), np.uint8)
        bins = np.minimum(np.arange(256) * levels // 256, levels - 1)
        for c in range(3):
            lo, hi = rng.uniform(0, 60), rng.uniform(195, 255)
            steps = np.cumsum(np.concatenate([[0.0], rng.uniform(0.3, 1.0, size=levels - 1)]))
            values = lo + (hi - lo) * steps / steps[-1]
            if rng.random() < 0.5:
                values = values[::-1]
            lut[:, 0, c] = np.clip(np.round(values[bins]), 0, 255)
        edge_colour = rng.uniform(0, 60, size=3)
        threshold = float(rng.uniform(20, 40))
        return {"lut": lut, "edge_colour": edge_colour.astype(np.uint8), "threshold": threshold}

    def apply(self, clip: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        lut, threshold = params["lut"], params["threshold"]
        t, h, w, _ = clip.shape
        smooth = np.empty_like(clip)
        for i, frame in enumerate(clip):  # per frame: filters must not reach across frame borders
            cv2.medianBlur(np.ascontiguousarray(frame), 3, dst=smooth[i])
        out = cv2.LUT(_flat(smooth), lut).reshape(clip.shape)
        gray = cv2.cvtColor(_flat(clip), cv2.COLOR_RGB2GRAY).reshape(t, h, w)
        ink = np.empty((h, w, 3), np.uint8)
        ink[:] = params["edge_colour"]
        for i in range(t):
            blurred = cv2.GaussianBlur(gray[i], (0, 0), 1.5)
            strength = cv2.convertScaleAbs(cv2.Laplacian(blurred, cv2.CV_16S, ksize=3))
            _, edges = cv2.threshold(strength, threshold, 255, cv2.THRESH_BINARY)
            cv2.copyTo(ink, edges, out[i])
        return out


@register_style("tone_curve")
class ToneCurve(Stylizer):
    """Channel permutation, then a per-channel gamma in [0.4, 2.5] and inversion (p = 0.5 per channel).
    Never the identity (at least one channel is inverted or moved), and the inversions keep at least
    60 % of the luminance contrast of grey (e.g. not green alone)."""

    def sample_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        while True:
            perm = rng.permutation(3)
            invert = rng.random(3) < 0.5
            grey_gain = abs(float(_LUMA @ np.where(invert, -1.0, 1.0)))  # luminance contrast kept
            if (invert.any() or (perm != np.arange(3)).any()) and grey_gain >= 0.6:
                break
        gamma = np.exp(rng.uniform(np.log(0.4), np.log(2.5), size=3))
        x = np.arange(256) / 255.0
        lut = np.empty((256, 1, 3), np.uint8)
        for c in range(3):
            y = x ** gamma[c]
            lut[:, 0, c] = np.round(255 * (1 - y if invert[c] else y))
        return {"perm": perm, "lut": lut}

    def apply(self, clip: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        select = np.eye(3, dtype=np.float32)[params["perm"]]  # output channel c = input channel perm[c]
        permuted = cv2.transform(_flat(clip), select)
        return cv2.LUT(permuted, params["lut"]).reshape(clip.shape)


@register_style("texture")
class TextureOverlay(Stylizer):
    """A random procedural texture (blurred coloured noise or stripes) multiplied into every frame at
    strength 0.25-0.45. Not a default style: the texture is fixed to the image, not to the scene."""

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        tile = 64
        if rng.random() < 0.5:
            noise = rng.uniform(0, 1, size=(tile, tile, 3)).astype(np.float32)
            sigma, pad = float(rng.uniform(1.0, 3.0)), 12
            wrapped = np.pad(noise, ((pad, pad), (pad, pad), (0, 0)), mode="wrap")  # seamless tiles
            tex = cv2.GaussianBlur(wrapped, (0, 0), sigma)[pad:-pad, pad:-pad]
        else:
            yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float32)
            angle = rng.uniform(0, np.pi)
            period = tile / int(rng.integers(2, 9))
            wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
            tex = wave[..., None] * rng.uniform(0.3, 1.0, size=3).astype(np.float32)
        tex = (tex - tex.min()) / max(float(tex.max() - tex.min()), 1e-6)
        return {"texture": tex.astype(np.float32), "strength": float(rng.uniform(0.25, 0.45))}

    def apply(self, clip: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        tex, strength = params["texture"], params["strength"]
        h, w = clip.shape[1:3]
        reps = (-(-h // tex.shape[0]), -(-w // tex.shape[1]), 1)
        gain = (1.0 - strength) + strength * 2.0 * np.tile(tex, reps)[:h, :w]  # mean gain about 1
        return np.clip(clip.astype(np.float32) * gain, 0, 255).astype(np.uint8)


@register_style("stylization")
class OpenCVStylization(Stylizer):
    """OpenCV's edge-preserving ``cv2.stylization`` (watercolour look). Slow: not a default."""

    def sample_params(self, rng: np.random.Generator) -> dict[str, float]:
        return {"sigma_s": float(rng.uniform(20, 80)), "sigma_r": float(rng.uniform(0.2, 0.6))}

    def apply(self, clip: np.ndarray, params: dict[str, float]) -> np.ndarray:
        return np.stack(
            [
                cv2.stylization(np.ascontiguousarray(f), sigma_s=params["sigma_s"], sigma_r=params["sigma_r"])
                for f in clip
            ]
        )
