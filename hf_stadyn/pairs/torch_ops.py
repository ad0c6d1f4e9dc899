"""Styles and frame shuffles as batched torch ops on any device (docs/method.md §1.1).

The CPU path renders each pair with OpenCV in a DataLoader worker (:mod:`hf_stadyn.pairs.styles`). On an
accelerator the same renders can run on the model's device, batched over the pairs of a forward batch:
the style parameters are still drawn on the CPU from the pair's seeded generator (the same draws, in
the same order), only the pixel work moves. :func:`stylize_batch` and :func:`shuffle_batch` do that work;
:meth:`hf_stadyn.pairs.PairDataset.render_batch` calls them for a dataset made with
``render_on="device"``.

Equality with the CPU path (tested on CPU, tests/test_data_path.py, on random and synthetic-video clips):

=============== ============================================================================================
``palette``     exact: OpenCV's fixed-point grey level (``(9798 R + 19235 G + 3735 B + 2^14) >> 15``), then
                the same look-up table
``tone_curve``  exact: a channel permutation and a look-up table
``cartoon``     exact: 3x3 median (replicated border), the look-up table, the grey level, OpenCV's bit-exact
                Gaussian (11 taps of a Q8 kernel, rounded once) and Laplacian (ksize 3, reflect-101 border),
                all in integers held by float32 (below 2^24, so no rounding)
``color_mix``   exact: OpenCV's fixed-point route of ``cv2.transform`` for 3-channel uint8 (Q10 coefficients)
``randconv``    within 1 grey level: the same exact colour mixing, then the filter summed in float32, where
                OpenCV's order of summation may round a value within float32 error of a .5 tie the other way
                (about 1 pixel in 100,000 in our tests)
shuffles        exact (a gather along time)
=============== ============================================================================================

Every sum is written as elementwise multiply-adds of shifted slices, not ``conv2d`` or ``matmul``, so no
TF32 or reduced-precision kernel on a GPU changes the results; under ``torch.autocast`` the ops still run
in float32 (autocast does not touch elementwise ops). A style without a torch version here (``texture``,
``stylization``, user styles) is rendered with its own ``apply`` on the CPU and moved to the device, unless
it defines ``apply_torch(clips, params_list) -> clips`` itself (``(B, T, H, W, 3)`` uint8 tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .styles import Cartoon, ColorMix, Palette, RandConv, ToneCurve, _style_name

__all__ = ["has_torch_version", "render_pairs", "shuffle_batch", "stylize_batch"]

#: OpenCV's fixed-point RGB -> grey coefficients (Q15) for uint8 images, and its rounding.
_GREY_Q15 = (9798, 19235, 3735)
#: cartoon's Gaussian (sigma 1.5 on uint8: OpenCV takes ksize 11 and a Q8 kernel, rounded once at the end)
_GAUSS_Q8 = np.round(cv2.getGaussianKernel(11, 1.5, cv2.CV_64F).ravel() * 256.0)
#: cartoon's Laplacian (ksize 3): OpenCV's [[2, 0, 2], [0, -8, 0], [2, 0, 2]]
_LAPLACIAN3 = ((2.0, 0.0, 2.0), (0.0, -8.0, 0.0), (2.0, 0.0, 2.0))


def _check_clips(clips: torch.Tensor) -> torch.Tensor:
    if not isinstance(clips, torch.Tensor) or clips.dtype != torch.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
        got = f"{tuple(clips.shape)} {clips.dtype}" if isinstance(clips, torch.Tensor) else type(clips).__name__
        raise ValueError(f"clips must be a (B, T, H, W, 3) uint8 tensor, got {got}")
    return clips


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``saturate_cast<uchar>`` of float32: round half to even, clamp to [0, 255]."""
    return torch.round(x).clamp_(0, 255).to(torch.uint8)


def _stack(params: Sequence[Mapping[str, Any]], key: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    arr = np.stack([np.asarray(p[key]) for p in params])
    return torch.as_tensor(arr, device=device).to(dtype)


def _affine_uint8(x: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """``cv2.transform`` of uint8 ``x`` ``(B, T, H, W, 3)`` by float32 3x4 ``affine`` ``(B, 3, 4)``: OpenCV's
    fixed-point route for 3-channel uint8 (coefficients in Q10, offsets ``round((b + 0.5) * 1024)``,
    ``>> 10``, saturated), which it takes when every |coefficient| < 32 and |offset| < 8192 (true of the
    built-in styles' draws). Exact on the pixels OpenCV's SIMD loop covers; the last few pixels of an
    image whose pixel count is not a multiple of the vector width go through its float route there
    (within 1 grey level)."""
    scale = 1 << 10
    coef = np.clip(np.round(affine[:, :, :3].astype(np.float32) * scale), -32768, 32767).astype(np.int32)
    off = np.round((affine[:, :, 3].astype(np.float32) + np.float32(0.5)) * scale).astype(np.int32)
    c = torch.as_tensor(coef, device=x.device)[:, None, None, None]  # (B, 1, 1, 1, 3, 3)
    o = torch.as_tensor(off, device=x.device)[:, None, None, None]  # (B, 1, 1, 1, 3)
    xi = x.to(torch.int32)
    chans = [(xi[..., 0] * c[..., d, 0] + xi[..., 1] * c[..., d, 1] + xi[..., 2] * c[..., d, 2] + o[..., d]) >> 10
             for d in range(3)]  # fmt: skip
    return torch.stack(chans, dim=-1).clamp_(0, 255).to(torch.uint8)


def _affine_of(params: Sequence[Mapping[str, Any]], matrix_key: str) -> np.ndarray:
    """The float32 3x4 affines ``(B, 3, 4)`` the CPU path builds: ``[M | 128 + b - M 128]`` (float64 first)."""
    rows = []
    for p in params:
        m = np.asarray(p[matrix_key], np.float64)
        rows.append(np.hstack([m, (128.0 + np.asarray(p["offset"]) - m @ np.full(3, 128.0))[:, None]]))
    return np.stack(rows).astype(np.float32)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``COLOR_RGB2GRAY`` of uint8 ``(..., 3)``: int64 ``(...)``, exact."""
    xi = x.to(torch.int64)
    r, g, b = _GREY_Q15
    return (xi[..., 0] * r + xi[..., 1] * g + xi[..., 2] * b + (1 << 14)) >> 15


def _lut(x: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Per-item, per-channel look-up: ``x`` ``(B, T, H, W, 3)`` integer indices, ``lut`` ``(B, 256, 3)``."""
    bsz = x.shape[0]
    flat = lut.reshape(bsz, 256 * 3)
    idx = x.to(torch.int64) * 3 + torch.arange(3, device=x.device)
    return torch.gather(flat, 1, idx.reshape(bsz, -1)).reshape(x.shape)


def _frames_nchw(x: torch.Tensor) -> torch.Tensor:
    """``(B, T, H, W, C)`` -> ``(B*T, C, H, W)`` float32."""
    b, t, h, w, c = x.shape
    return x.reshape(b * t, h, w, c).permute(0, 3, 1, 2).to(torch.float32)


def _correlate(xp: torch.Tensor, kernel: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Correlation of a padded ``(N, C, H + k - 1, W + k - 1)`` float32 image with per-image ``kernel``
    ``(N, k, k)``, as a sum of shifted slices in row-major tap order (no conv2d: no TF32 on GPUs)."""
    k = kernel.shape[-1]
    out = torch.zeros(xp.shape[0], xp.shape[1], h, w, dtype=torch.float32, device=xp.device)
    for i in range(k):
        for j in range(k):
            out += xp[:, :, i : i + h, j : j + w] * kernel[:, i, j][:, None, None, None]
    return out


# ------------------------------------------------------------------------------------------ styles
def _color_mix(clips: torch.Tensor, params: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    return _affine_uint8(clips, _affine_of(params, "matrix"))


def _palette(clips: torch.Tensor, params: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    grey = _grey(clips)[..., None].expand(clips.shape)
    return _lut(grey, _stack(params, "lut", clips.device, torch.uint8))


def _tone_curve(clips: torch.Tensor, params: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    perm = _stack(params, "perm", clips.device, torch.int64)  # (B, 3): output channel c = input channel perm[c]
    idx = perm[:, None, None, None, :].expand(clips.shape)
    permuted = torch.gather(clips, -1, idx)
    return _lut(permuted, _stack(params, "lut", clips.device, torch.uint8).reshape(-1, 256, 3))


def _randconv(clips: torch.Tensor, params: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    b, t, h, w, _ = clips.shape
    mixed = _affine_uint8(clips, _affine_of(params, "mix"))
    kernels = np.zeros((b, 5, 5), np.float32)  # 3x3 kernels centred in 5x5 zeros: the same sum, same border
    deltas = np.empty(b, np.float32)
    for k, p in enumerate(params):
        kern = np.asarray(p["kernel"], np.float32)
        off = (5 - kern.shape[0]) // 2
        kernels[k, off : off + kern.shape[0], off : off + kern.shape[1]] = kern
        deltas[k] = 128.0 * (1.0 - float(kern.sum()))
    kern_t = torch.as_tensor(kernels, device=clips.device).repeat_interleave(t, dim=0)
    delta_t = torch.as_tensor(deltas, device=clips.device).repeat_interleave(t)
    xp = F.pad(_frames_nchw(mixed), (2, 2, 2, 2), mode="reflect")  # torch's "reflect" is OpenCV's REFLECT_101
    out = _correlate(xp, kern_t, h, w) + delta_t[:, None, None, None]
    return _to_uint8(out).permute(0, 2, 3, 1).reshape(clips.shape)


def _cartoon(clips: torch.Tensor, params: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    b, t, h, w, _ = clips.shape
    dev = clips.device
    frames = _frames_nchw(clips)  # (B*T, 3, H, W)
    rep = F.pad(frames, (1, 1, 1, 1), mode="replicate")  # medianBlur replicates the border
    taps = torch.stack([rep[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)], dim=0)
    smooth = taps.median(dim=0).values.to(torch.uint8).permute(0, 2, 3, 1).reshape(clips.shape)
    out = _lut(smooth, _stack(params, "lut", dev, torch.uint8).reshape(b, 256, 3))
    grey = _grey(clips).reshape(b * t, 1, h, w).to(torch.float32)
    g = torch.as_tensor(_GAUSS_Q8, dtype=torch.float32, device=dev)
    gp = F.pad(grey, (5, 5, 5, 5), mode="reflect")
    horiz = torch.stack([gp[:, :, :, j : j + w] * g[j] for j in range(11)]).sum(0)  # integers < 2^24: exact
    both = torch.stack([horiz[:, :, i : i + h, :] * g[i] for i in range(11)]).sum(0)
    blurred = torch.floor((both + 32768.0) / 65536.0)
    lap = _correlate(
        F.pad(blurred, (1, 1, 1, 1), mode="reflect"),
        torch.tensor(_LAPLACIAN3, dtype=torch.float32, device=dev).expand(b * t, 3, 3),
        h,
        w,
    )
    strength = lap.abs().clamp_(max=255.0).reshape(b, t, h, w)
    threshold = torch.as_tensor([float(p["threshold"]) for p in params], dtype=torch.float32, device=dev)
    edges = strength > threshold[:, None, None, None]
    ink = _stack(params, "edge_colour", dev, torch.uint8)[:, None, None, None, :].expand(clips.shape)
    return torch.where(edges[..., None], ink, out)


_BUILTIN: dict[type, Callable[[torch.Tensor, Sequence[Mapping[str, Any]]], torch.Tensor]] = {
    ColorMix: _color_mix,
    Palette: _palette,
    RandConv: _randconv,
    Cartoon: _cartoon,
    ToneCurve: _tone_curve,
}


def _torch_version(style: Any) -> Callable[[torch.Tensor, Sequence[Any]], torch.Tensor] | None:
    own = getattr(style, "apply_torch", None)
    if callable(own):
        return own
    return _BUILTIN.get(type(style))


def has_torch_version(style: Any) -> bool:
    """Whether ``style`` (a stylizer object) renders as a torch op (else :func:`stylize_batch` falls back to
    its CPU ``apply``)."""
    return _torch_version(style) is not None


def stylize_batch(clips: torch.Tensor, styles: Sequence[Any], params: Sequence[Any]) -> torch.Tensor:
    """Render clip ``b`` of ``clips`` in ``styles[b]`` with ``params[b]``, on the clips' device.

    Args:
        clips: ``(B, T, H, W, 3)`` uint8 tensor (any device).
        styles: ``B`` stylizer objects (e.g. ``PairDataset.styles`` entries); items of one style are rendered
            together in one batched op.
        params: ``B`` parameter sets, as the stylizers' ``sample_params`` drew them.

    Returns:
        ``(B, T, H, W, 3)`` uint8 on the same device; equal to ``styles[b].apply(clip_b, params[b])`` within
        the module's table of tolerances.
    """
    clips = _check_clips(clips)
    if not (len(styles) == len(params) == clips.shape[0]):
        raise ValueError(f"got {clips.shape[0]} clips, {len(styles)} styles and {len(params)} parameter sets")
    out = torch.empty_like(clips)
    groups: dict[int, list[int]] = {}
    for k, s in enumerate(styles):
        groups.setdefault(id(s), []).append(k)
    for members in groups.values():
        style = styles[members[0]]
        fn = _torch_version(style)
        idx = torch.as_tensor(members, device=clips.device)
        sub = clips.index_select(0, idx)
        if fn is not None:
            rendered = fn(sub, [params[k] for k in members])
        else:  # no torch version: the style's own CPU apply, moved back
            cpu = sub.cpu().numpy()
            rendered = torch.from_numpy(np.stack([np.asarray(style.apply(c, params[k])) for c, k in zip(cpu, members)]))
            rendered = rendered.to(clips.device)
        if rendered.shape != sub.shape or rendered.dtype != torch.uint8:
            raise ValueError(
                f"style {_style_name(style)!r} rendered {tuple(rendered.shape)} {rendered.dtype} for "
                f"{tuple(sub.shape)} uint8 clips; a stylizer must keep the shape and return uint8"
            )
        out.index_copy_(0, idx, rendered)
    return out


def shuffle_batch(clips: torch.Tensor, permutations: torch.Tensor) -> torch.Tensor:
    """Reorder the frames of each clip: ``out[b] = clips[b][permutations[b]]``.

    Args:
        clips: ``(B, T, ...)`` tensor.
        permutations: ``(B, T)`` int64 frame orders (any device; moved to the clips').
    """
    perm = torch.as_tensor(permutations, device=clips.device).to(torch.int64)
    if perm.shape != clips.shape[:2]:
        raise ValueError(f"permutations must be (B, T) = {tuple(clips.shape[:2])}, got {tuple(perm.shape)}")
    idx = perm.reshape(*perm.shape, *([1] * (clips.ndim - 2))).expand(clips.shape)
    return torch.gather(clips, 1, idx)


def render_pairs(batch: Mapping[str, Any], styles: Sequence[Any], device: Any = None) -> dict[str, Any]:
    """Render a collated batch of undrawn pairs (``PairDataset(render_on="device")`` items) on ``device``.

    Args:
        batch: ``clip`` ``(B, T, H, W, 3)`` uint8, ``factor``, ``style_a``/``style_b`` (names),
            ``params_a``/``params_b`` (drawn parameters; ``params_b`` None for static pairs) and
            ``permutation`` ``(B, T)``, as :func:`hf_stadyn.probing.collate_pairs` stacks them.
        styles: the dataset's stylizer objects (names are looked up among them).
        device: where to render (None: where ``clip`` is).

    Returns:
        the batch with ``clip_a``/``clip_b`` ``(B, T, H, W, 3)`` uint8 on ``device`` instead of ``clip`` and the
        parameters: member A is ``style_a`` of the clip; member B is member A reordered by ``permutation``
        (static) or ``style_b`` of the clip (dynamic), as :func:`hf_stadyn.pairs.make_pair` makes them.
    """
    by_name = {_style_name(s): s for s in styles}
    clips = batch["clip"]
    clips = clips.to(device, non_blocking=True) if device is not None else clips
    a = stylize_batch(clips, [by_name[n] for n in batch["style_a"]], list(batch["params_a"]))
    b = torch.empty_like(a)
    static = [k for k, f in enumerate(batch["factor"]) if int(f) == 1]
    dynamic = [k for k, f in enumerate(batch["factor"]) if int(f) != 1]
    if static:
        s_idx = torch.as_tensor(static, device=clips.device)
        perms = torch.as_tensor(batch["permutation"])[static]
        b.index_copy_(0, s_idx, shuffle_batch(a.index_select(0, s_idx), perms))
    if dynamic:
        d_idx = torch.as_tensor(dynamic, device=clips.device)
        styles_b = [by_name[batch["style_b"][k]] for k in dynamic]
        b.index_copy_(0, d_idx, stylize_batch(clips.index_select(0, d_idx), styles_b,
                                              [batch["params_b"][k] for k in dynamic]))  # fmt: skip
    out = {k: v for k, v in batch.items() if k not in ("clip", "params_a", "params_b")}
    out["clip_a"], out["clip_b"] = a, b
    return out
