"""Rendering one StaDyn-Synth clip: a static procedural background and moving textured objects.

Everything is evaluated analytically on the pixel grid, vectorised over frames with numpy: shapes are
signed-distance functions (anti-aliased edges, so sub-pixel motion shows), textures and background
layouts are periodic or sums-of-cosines functions of position. Camouflage evaluates the background's
own layout function, shifted, inside the object.

Every random number of a clip is drawn from the ``numpy.random.Generator`` passed in, in a fixed order
and count that does not depend on the motion or appearance class. So two calls with generators in the
same state and different ``appearance`` give the *same* trajectories, colours of untied attributes and
noise; only the tied attributes differ (the aligned and conflicting test variants of a clip are paired).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import (
    BACKGROUNDS,
    COLOR_NAMES,
    COLORS,
    CUE_ATTRIBUTES,
    CUES,
    MOTIONS,
    SHAPES,
    TEXTURES,
    SynthConfig,
)

__all__ = ["SynthClip", "render_clip"]

_CLIP_DRAWS = 32  # uniforms per clip (background)
_OBJECT_DRAWS = 32  # uniforms per object
_N_BLOB_WAVES = 4
_N_NOISE_WAVES = 3
_TWO_PI = 2.0 * math.pi
_EXTENT = 1.15  # shapes reach at most 1.15 object radii from their centre (bars, triangle vertices)


@dataclass
class SynthClip:
    """One rendered clip.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB frames.
        masks: ``(T, H, W)`` bool, True where an object covers at least half of the pixel.
        meta: JSON-serialisable description: classes, attribute names, per-object trajectories.
        background: ``(H, W, 3)`` uint8, the static background without noise or objects.
        instances: ``(T, H, W)`` uint8 instance map: 0 background, ``k + 1`` where object ``k`` covers at
            least half of the pixel and no later-drawn object does (later objects are drawn on top, so
            occluded parts belong to the occluder). ``instances > 0`` equals ``masks``.
    """

    frames: np.ndarray
    masks: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    background: np.ndarray | None = None
    instances: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------- shapes
def _box(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    """Exact signed distance to an axis-aligned box of half-sizes ``a, b`` (rounded outside corners)."""
    du, dv = np.abs(u) - a, np.abs(v) - b
    return np.hypot(np.maximum(du, 0.0), np.maximum(dv, 0.0)) + np.minimum(np.maximum(du, dv), 0.0)


def _triangle(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Exact signed distance to an upward equilateral triangle of half side ``r``, centroid at the origin."""
    k = math.sqrt(3.0)
    px, py = np.abs(u) - r, -v + r / k
    fold = px + k * py > 0
    px, py = np.where(fold, (px - k * py) / 2, px), np.where(fold, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2 * r, 0.0)
    return -np.hypot(px, py) * np.sign(py)


def _sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of ``shape`` of radius about 1 at normalised coords ``u, v``."""
    if shape == "square":
        return _box(u, v, 0.85, 0.85)
    if shape == "disc":
        return np.sqrt(u * u + v * v) - 1.0
    if shape == "triangle":  # equilateral, pointing up on screen (y grows downwards), circumradius 1.15
        return _triangle(u, v, 1.0)
    if shape == "diamond":  # a square turned by 45 degrees, vertices at distance 1.1
        c = 1.0 / math.sqrt(2.0)
        return _box((u + v) * c, (v - u) * c, 1.1 * c, 1.1 * c)
    if shape == "cross":
        return np.minimum(_box(u, v, 1.0, 0.36), _box(u, v, 0.36, 1.0))
    if shape == "ring":
        return np.abs(np.sqrt(u * u + v * v) - 0.72) - 0.3
    if shape == "hbar":
        return _box(u, v, 1.15, 0.45)
    if shape == "vbar":
        return _box(u, v, 0.45, 1.15)
    if shape == "ell":
        return np.minimum(_box(u + 0.55, v, 0.4, 1.0), _box(u, v - 0.6, 0.95, 0.4))
    raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


# -------------------------------------------------------------------------------------------- patterns
def _soft(x: np.ndarray, gain: float = 1.5) -> np.ndarray:
    """Map a cosine-like signal in [-1, 1] to a nearly binary pattern in [0, 1]."""
    return np.clip(0.5 + gain * x, 0.0, 1.0)


def _waves(x: np.ndarray, y: np.ndarray, waves: np.ndarray) -> np.ndarray:
    """Sum of cosines ``cos(k . (x, y) + phase)`` for ``waves`` rows (kx, ky, phase), scaled to ~[-1, 1]."""
    out = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=np.float32)
    for kx, ky, ph in waves:
        out += np.cos(kx * x + ky * y + ph)
    return out * (1.0 / math.sqrt(len(waves) / 2.0))


def _texture(name: str, u: np.ndarray, v: np.ndarray, noise_waves: np.ndarray) -> np.ndarray:
    """Object texture in [0, 1] at normalised object coordinates (period about 0.9 object radii)."""
    w = _TWO_PI / 0.9
    if name == "solid":
        return np.ones(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    if name == "hstripes":
        return _soft(np.cos(w * v))
    if name == "vstripes":
        return _soft(np.cos(w * u))
    if name == "checker":
        return _soft(np.cos(w * u) * np.cos(w * v), 3.0)
    if name == "dots":
        return _soft(np.cos(w * u) * np.cos(w * v) - 0.35, 3.0)
    if name == "diagonal":
        return _soft(np.cos(w / math.sqrt(2.0) * (u + v)))
    if name == "rings":
        return _soft(np.cos(_TWO_PI / 0.6 * np.sqrt(u * u + v * v)))
    if name == "gradient":
        return np.clip(0.5 + 0.5 * u, 0.0, 1.0)
    if name == "noise":
        return _soft(_waves(u, v, noise_waves), 0.8)
    raise ValueError(f"unknown texture {name!r}; choose from {', '.join(TEXTURES)}")


def _background_pattern(family: str, x: np.ndarray, y: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    """Background layout in [0, 1] at pixel coordinates ``x, y`` (any broadcastable shapes)."""
    period, px, py = p["period"], p["phase_x"], p["phase_y"]
    w = _TWO_PI / period
    if family == "blobs":
        return np.clip(0.5 + 0.5 * np.tanh(1.5 * _waves(x, y, p["blob_waves"])), 0.0, 1.0)
    if family == "hstripes":
        return _soft(np.cos(w * (y + py)))
    if family == "vstripes":
        return _soft(np.cos(w * (x + px)))
    if family == "checker":
        return _soft(np.cos(w * (x + px)) * np.cos(w * (y + py)), 3.0)
    if family == "diagonal":
        return _soft(np.cos(w / math.sqrt(2.0) * (x + px - y - py)))
    if family == "rings":
        cx, cy = p["center"]
        return _soft(np.cos(w * np.sqrt((x - cx) ** 2 + (y - cy) ** 2)))
    if family == "gradient":
        a = p["angle"]
        ramp = ((x - p["size"] / 2) * math.cos(a) + (y - p["size"] / 2) * math.sin(a)) / p["size"]
        return np.clip(0.5 + 1.2 * ramp, 0.0, 1.0)
    if family == "grid":
        gx = np.abs(((x + px) % period) - period / 2)
        gy = np.abs(((y + py) % period) - period / 2)
        return np.clip(np.maximum(gx, gy) - (period / 2 - 1.5), 0.0, 1.0)
    if family == "dots":
        return _soft(np.cos(w * (x + px)) * np.cos(w * (y + py)) - 0.4, 3.0)
    raise ValueError(f"unknown background family {family!r}; choose from {', '.join(BACKGROUNDS)}")


def _muted_color(u: np.ndarray) -> np.ndarray:
    """A desaturated colour from 4 uniforms (grey level + per-channel tint)."""
    return np.clip(0.2 + 0.45 * u[0] + 0.18 * (u[1:4] - 0.5), 0.0, 1.0).astype(np.float32)


def _wave_params(u: np.ndarray, n: int, wl_lo: float, wl_hi: float) -> np.ndarray:
    """``n`` cosine waves (kx, ky, phase) from ``3 n`` uniforms: direction, wavelength in [lo, hi], phase."""
    u = u.reshape(n, 3)
    ang = _TWO_PI * u[:, 0]
    k = _TWO_PI / (wl_lo + (wl_hi - wl_lo) * u[:, 1])
    return np.stack([k * np.cos(ang), k * np.sin(ang), _TWO_PI * u[:, 2]], axis=1).astype(np.float32)


# ----------------------------------------------------------------------------------------- trajectories
def _trajectory(motion: str, u: np.ndarray, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre ``x, y`` and scale ``s`` per frame, each ``(T,)``, for one object from its uniforms ``u``."""
    T, size = cfg.num_frames, float(cfg.size)
    R = _EXTENT * cfg.radius  # the farthest any shape reaches from its centre, at scale 1
    t = np.arange(T, dtype=np.float64)
    speed = cfg.speed * (1.0 + cfg.speed_jitter * (2.0 * u[3] - 1.0))
    lo, hi = R + 0.5, size - 1.5 - R  # centre range that keeps the whole object in the frame
    scale = np.ones(T)
    if motion in ("left", "right", "up", "down"):
        travel = speed * (T - 1)
        along = lo + (hi - lo - travel) * u[4]  # start of the movement along its axis (increasing side)
        across = lo + (hi - lo) * u[5]
        pos = along + speed * t
        if motion in ("left", "up"):
            pos = pos[::-1].copy()
        x, y = (pos, np.full(T, across)) if motion in ("left", "right") else (np.full(T, across), pos)
    elif motion in ("clockwise", "counterclockwise"):
        r = cfg.orbit_radius * size
        omega = _TWO_PI * cfg.orbit_turns / (T - 1) * (speed / cfg.speed)  # rad/frame, jittered like speed
        cx = lo + r + (hi - lo - 2 * r) * u[4]
        cy = lo + r + (hi - lo - 2 * r) * u[5]
        sign = 1.0 if motion == "clockwise" else -1.0  # y grows downwards: increasing angle is clockwise
        start = -math.pi / 2 + math.radians(cfg.orbit_start_spread) * (u[7] - 0.5)  # near the top
        theta = start + sign * omega * t
        x, y = cx + r * np.cos(theta), cy + r * np.sin(theta)
    elif motion in ("approach", "recede"):
        s_lo, s_hi = cfg.scale_range
        scale = s_lo * (s_hi / s_lo) ** (t / (T - 1))
        if motion == "recede":
            scale = scale[::-1].copy()
        lo_s, hi_s = R * s_hi + 0.5, size - 1.5 - R * s_hi
        x = np.full(T, lo_s + (hi_s - lo_s) * u[4])
        y = np.full(T, lo_s + (hi_s - lo_s) * u[5])
    elif motion == "oscillate":
        axis = math.pi * u[8]
        period = cfg.oscillation_period * (0.85 + 0.3 * u[9])
        amp = cfg.oscillation_amplitude * size * (speed / cfg.speed)  # jittered like the speed
        d = amp * np.sin(_TWO_PI * t / period + _TWO_PI * u[10])
        lo_o, hi_o = lo + amp, hi - amp
        cx = lo_o + (hi_o - lo_o) * u[4]
        cy = lo_o + (hi_o - lo_o) * u[5]
        x, y = cx + d * math.cos(axis), cy + d * math.sin(axis)
    else:  # pragma: no cover - SynthConfig validates motion names
        raise ValueError(f"unknown motion {motion!r}; choose from {', '.join(MOTIONS)}")
    return x, y, scale


# ----------------------------------------------------------------------------------------------- render
def render_clip(
    config: SynthConfig,
    motion: int,
    appearance: int,
    rng: np.random.Generator,
    *,
    cue: str = "both",
) -> SynthClip:
    """Render one clip of motion class ``motion`` whose ``cue`` attributes show appearance class ``appearance``.

    Args:
        config: the scene settings.
        motion: index into ``config.motions``.
        appearance: appearance class in ``0 .. config.num_appearances - 1``.
        rng: the only source of randomness (background phases and colours, untied attributes, start
            positions, speeds, noise). The number of draws is fixed by ``config`` alone.
        cue: which attributes follow ``appearance`` ("invariant": shape + background family,
            "sensitive": object colour + texture, "both": all four); the others are random.

    Returns:
        :class:`SynthClip` with frames ``(T, H, W, 3)`` uint8, masks ``(T, H, W)`` bool and the instance
        map ``(T, H, W)`` uint8.
    """
    if not isinstance(config, SynthConfig):
        raise ValueError(f"config must be a SynthConfig, got {type(config).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), got {rng!r}")
    if not 0 <= int(motion) < config.num_motions:
        raise ValueError(f"motion {motion} out of range 0..{config.num_motions - 1} ({', '.join(config.motions)})")
    if not 0 <= int(appearance) < config.num_appearances:
        raise ValueError(f"appearance {appearance} out of range 0..{config.num_appearances - 1}")
    if cue not in CUE_ATTRIBUTES:
        raise ValueError(f"unknown cue {cue!r}; choose from {', '.join(CUES)}")
    motion, appearance = int(motion), int(appearance)
    tied = CUE_ATTRIBUTES[cue]
    T, S, A, R = config.num_frames, config.size, config.num_appearances, config.radius

    # --- all random draws, fixed order and count
    cu = rng.random(_CLIP_DRAWS)
    ous = rng.random((config.num_objects, _OBJECT_DRAWS))
    noise = rng.standard_normal((T, S, S, 3), dtype=np.float32) if config.noise > 0 else None

    def pick(attr: str, u: float) -> int:
        return appearance if attr in tied else min(int(u * A), A - 1)

    # --- background
    bg_family = BACKGROUNDS[pick("background", cu[0])]
    c1 = _muted_color(cu[1:5])
    g2 = c1.mean() + (0.18 + 0.2 * cu[5]) * (1.0 if c1.mean() < 0.45 else -1.0)
    c2 = np.clip(c1 - c1.mean() + g2 + 0.2 * (cu[6:9] - 0.5), 0.0, 1.0).astype(np.float32)
    bgp: dict[str, Any] = {
        "size": float(S),
        "period": S / 4.0 * (0.85 + 0.3 * cu[9]),
        "phase_x": float(cu[10] * S),
        "phase_y": float(cu[11] * S),
        "center": (float(cu[12] * S), float(cu[13] * S)),
        "angle": float(_TWO_PI * cu[14]),
        "blob_waves": _wave_params(cu[15 : 15 + 3 * _N_BLOB_WAVES], _N_BLOB_WAVES, 0.45 * S, 1.1 * S),
    }
    coords = np.arange(S, dtype=np.float32)
    X, Y = coords[None, :], coords[:, None]  # (1, W), (H, 1)
    p_bg = _background_pattern(bg_family, X, Y, bgp)  # (H, W)
    background = c1 + (c2 - c1) * p_bg[..., None]  # (H, W, 3)

    frames = np.broadcast_to(background, (T, S, S, 3)).copy()
    union = np.zeros((T, S, S), dtype=bool)
    instances = np.zeros((T, S, S), dtype=np.uint8)
    objects = []
    for k, ou in enumerate(ous):
        shape = SHAPES[pick("shape", ou[0])]
        color_idx = pick("color", ou[1])
        texture = TEXTURES[pick("texture", ou[2])]
        x, y, s = _trajectory(config.motions[motion], ou, config)
        rs = (R * s).astype(np.float32)[:, None, None]  # (T, 1, 1) radius in px per frame
        dx = X[None] - x.astype(np.float32)[:, None, None]  # (T, 1, W)
        dy = Y[None] - y.astype(np.float32)[:, None, None]  # (T, H, 1)
        un, vn = dx / rs, dy / rs  # normalised object coordinates
        alpha = np.clip(0.5 - _sdf(shape, un, vn) * rs, 0.0, 1.0)  # (T, H, W)
        camouflaged = config.camouflage or bool(ou[25] < config.camouflage_share)  # ou[25]: no other use
        if camouflaged:
            off_x, off_y = float((ou[14] - 0.5) * S), float((ou[15] - 0.5) * S)
            p_obj = _background_pattern(bg_family, un * R + off_x, vn * R + off_y, bgp)
            obj_rgb = c1 + (c2 - c1) * p_obj[..., None]
        else:
            col = np.asarray(COLORS[color_idx], dtype=np.float32)
            col = np.clip(col * (1.0 + config.color_jitter * math.sqrt(3.0) * (2.0 * ou[11:14] - 1.0)), 0.0, 1.0)
            noise_waves = _wave_params(ou[16 : 16 + 3 * _N_NOISE_WAVES], _N_NOISE_WAVES, 0.5, 0.9)
            p_tex = _texture(texture, un, vn, noise_waves)
            dark = 0.3 * col
            obj_rgb = dark + (col - dark) * p_tex[..., None].astype(np.float32)
        frames += alpha[..., None] * (obj_rgb - frames)
        covered = alpha >= 0.5
        union |= covered
        instances[covered] = k + 1
        obj = {
            "shape": shape,
            "color": COLOR_NAMES[color_idx],
            "texture": texture,
            "centers": np.round(np.stack([x, y], axis=1), 3).tolist(),
            "scales": np.round(s, 4).tolist(),
        }
        if config.camouflage_share:  # only then: metadata of earlier settings keeps its bytes
            obj["camouflaged"] = camouflaged
        objects.append(obj)

    if noise is not None:
        frames += config.noise * noise
    frames_u8 = np.clip(frames * 255.0 + 0.5, 0, 255).astype(np.uint8)
    bg_u8 = np.clip(background * 255.0 + 0.5, 0, 255).astype(np.uint8)
    meta = {
        "motion": motion,
        "motion_name": config.motions[motion],
        "appearance": appearance,
        "cue": cue,
        "tied": list(tied),
        "background": bg_family,
        "camouflage": config.camouflage,
        "objects": objects,
    }
    return SynthClip(frames=frames_u8, masks=union, meta=meta, background=bg_u8, instances=instances)
