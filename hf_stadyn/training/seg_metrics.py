"""Video object segmentation metrics: J, F (DAVIS), MoCA-style mIoU and success rates (docs/method.md §7).

* **J** (region similarity): intersection over union of the binary prediction and the ground truth;
  a frame where both are empty scores 1 (DAVIS convention). J is averaged per clip, then over clips.
* **F** (boundary F-measure, DAVIS): the one-pixel boundaries of prediction and ground truth are
  matched within a tolerance of ``ceil(bound_th * image diagonal)`` pixels (``bound_th = 0.008``, as
  in the DAVIS toolkit; a value >= 1 is taken as pixels); F is the harmonic mean of boundary precision
  and recall, averaged per clip, then over clips.
* **mIoU** (MoCA-style): the per-frame IoU averaged over all frames.
* **Success rate** at IoU threshold tau: the fraction of frames with IoU >= tau, for tau = 0.5, 0.55,
  ..., 0.9, and **AUC**: the area under that curve divided by the threshold range (so in [0, 1]).
  docs/method.md §7 asks for the sweep because single thresholds reorder the models.

Inputs are binary masks, or probabilities binarised at ``threshold`` (default 0.5).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

__all__ = [
    "DEFAULT_IOU_THRESHOLDS",
    "SegmentationMetrics",
    "SegmentationScores",
    "boundary_f_measure",
    "boundary_map",
    "region_iou",
    "success_auc",
    "success_curve",
]

#: IoU thresholds of the success curve: 0.5, 0.55, ..., 0.9.
DEFAULT_IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(9))


def _as_mask(x: Any, name: str, threshold: float = 0.5) -> np.ndarray:
    """A bool array from a bool/int/float mask (float values are binarised at ``threshold``)."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    a = np.asarray(x)
    if a.dtype == bool:
        return a
    if a.dtype.kind in "iu":
        return a > 0
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or inf; pass probabilities in [0, 1] or binary masks.")
        return a >= threshold
    raise ValueError(f"{name} has dtype {a.dtype}; pass bool masks, 0/1 integers or probabilities.")


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must be (H, W) masks of the same size.")


def region_iou(pred: Any, gt: Any, threshold: float = 0.5) -> float:
    """J of one frame: ``|pred & gt| / |pred | gt|``; 1.0 when both masks are empty.

    Args:
        pred, gt: ``(H, W)`` masks (bool, 0/1, or probabilities binarised at ``threshold``).
    """
    p, g = _as_mask(pred, "pred", threshold), _as_mask(gt, "gt", threshold)
    _check_pair(p, g)
    union = np.logical_or(p, g).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(p, g).sum() / union)


def boundary_map(mask: Any) -> np.ndarray:
    """One-pixel boundary of a binary ``(H, W)`` mask (DAVIS ``seg2bmap`` at the mask's resolution).

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour.
    """
    seg = _as_mask(mask, "mask")
    if seg.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {seg.shape}.")
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def _disk(radius: int) -> np.ndarray:
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (xx * xx + yy * yy <= r * r).astype(np.uint8)


def boundary_f_measure(pred: Any, gt: Any, bound_th: float = 0.008, threshold: float = 0.5) -> float:
    """F of one frame (DAVIS boundary F-measure).

    Args:
        pred, gt: ``(H, W)`` masks.
        bound_th: match tolerance: a fraction of the image diagonal (< 1) or pixels (>= 1).

    Returns:
        ``2 P R / (P + R)`` of boundary precision P and recall R (0 when both are 0); 1.0 when neither
        mask has a boundary.
    """
    p, g = _as_mask(pred, "pred", threshold), _as_mask(gt, "gt", threshold)
    _check_pair(p, g)
    if not (bound_th > 0 and math.isfinite(bound_th)):
        raise ValueError(f"bound_th must be a positive number, got {bound_th!r}.")
    bound_pix = int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*p.shape)))
    pb, gb = boundary_map(p), boundary_map(g)
    n_p, n_g = int(pb.sum()), int(gb.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    kernel = _disk(bound_pix)
    p_dil = cv2.dilate(pb.astype(np.uint8), kernel) > 0
    g_dil = cv2.dilate(gb.astype(np.uint8), kernel) > 0
    precision = float((pb & g_dil).sum()) / n_p
    recall = float((gb & p_dil).sum()) / n_g
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def _check_thresholds(thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.size < 2 or not np.all(np.diff(t) > 0) or t[0] < 0 or t[-1] > 1:
        raise ValueError(f"IoU thresholds must be >= 2 increasing values in [0, 1], got {list(np.round(t, 3))}.")
    return t


def success_curve(
    ious: Sequence[float] | np.ndarray, thresholds: Sequence[float] | np.ndarray = DEFAULT_IOU_THRESHOLDS
) -> np.ndarray:
    """Fraction of frames whose IoU is >= each threshold; shape ``(len(thresholds),)``."""
    t = _check_thresholds(thresholds)
    v = np.asarray(ious, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("success_curve needs at least one IoU value.")
    return (v[:, None] >= t[None, :] - 1e-12).mean(axis=0)


def success_auc(ious: Sequence[float], thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS) -> float:
    """Area under the success curve (trapezoid rule) divided by the threshold range; in [0, 1]."""
    t = _check_thresholds(thresholds)
    s = success_curve(ious, t)
    area = float(np.sum((s[1:] + s[:-1]) * np.diff(t)) / 2.0)
    return area / float(t[-1] - t[0])


@dataclass
class SegmentationScores:
    """Segmentation scores of a set of frames.

    Attributes:
        J: mean over clips of the per-clip mean IoU (DAVIS region similarity).
        F: mean over clips of the per-clip mean boundary F-measure.
        JF: the mean of J and F.
        mIoU: per-frame IoU averaged over all frames (MoCA-style).
        success: ``{threshold: fraction of frames with IoU >= threshold}``.
        auc: normalised area under the success curve.
        num_frames, num_clips: how much was evaluated.
        threshold: probability threshold used to binarise predictions.
    """

    J: float
    F: float
    JF: float
    mIoU: float
    success: dict[float, float]
    auc: float
    num_frames: int
    num_clips: int
    threshold: float = 0.5
    per_clip: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "J": self.J,
            "F": self.F,
            "JF": self.JF,
            "mIoU": self.mIoU,
            "success": {f"{k:.2f}": v for k, v in self.success.items()},
            "auc": self.auc,
            "num_frames": self.num_frames,
            "num_clips": self.num_clips,
            "threshold": self.threshold,
        }


class SegmentationMetrics:
    """Streaming J / F / mIoU / success accumulator (``update`` per batch, then ``compute``).

    Example:
        >>> import numpy as np
        >>> m = SegmentationMetrics()
        >>> gt = np.zeros((2, 8, 8), bool); gt[:, 2:6, 2:6] = True
        >>> m.update(gt.astype(float), gt, clip_ids=[0, 0])
        >>> m.compute().J
        1.0

    Args:
        threshold: probability threshold for float predictions.
        bound_th: boundary tolerance of F (fraction of the diagonal, or pixels if >= 1).
        iou_thresholds: thresholds of the success curve.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        bound_th: float = 0.008,
        iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    ):
        if not (0.0 < float(threshold) < 1.0):
            raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}.")
        self.threshold = float(threshold)
        self.bound_th = float(bound_th)
        self.iou_thresholds = tuple(float(t) for t in _check_thresholds(iou_thresholds))
        self.reset()

    def reset(self) -> None:
        self._iou: list[float] = []
        self._f: list[float] = []
        self._clip: list[str] = []
        self._next_clip = 0

    def update(self, pred: Any, gt: Any, clip_ids: Sequence[Any] | None = None) -> None:
        """Add frames.

        Args:
            pred: predictions ``(B, H, W)`` or ``(B, 1, H, W)``: bool/0-1 masks or probabilities.
            gt: ground-truth masks of the same shape.
            clip_ids: per frame, the clip it belongs to (J and F average per clip first); default:
                each call is one clip.
        """
        p = _as_mask(pred, "pred", self.threshold)
        g = _as_mask(gt, "gt", 0.5)
        if p.ndim == 4 and p.shape[1] == 1:
            p = p[:, 0]
        if g.ndim == 4 and g.shape[1] == 1:
            g = g[:, 0]
        if p.ndim != 3 or p.shape != g.shape:
            raise ValueError(
                f"pred {p.shape} and gt {g.shape} must both be (B, H, W) (or (B, 1, H, W)) masks of the same size."
            )
        if clip_ids is None:
            ids = [str(self._next_clip)] * p.shape[0]
            self._next_clip += 1
        else:
            ids = [str(c) for c in clip_ids]
            if len(ids) != p.shape[0]:
                raise ValueError(f"clip_ids has {len(ids)} entries for {p.shape[0]} frames; give one per frame.")
        for i in range(p.shape[0]):
            self._iou.append(region_iou(p[i], g[i]))
            self._f.append(boundary_f_measure(p[i], g[i], self.bound_th))
            self._clip.append(ids[i])

    def compute(self) -> SegmentationScores:
        if not self._iou:
            raise ValueError("SegmentationMetrics has no frames; call update() first.")
        per: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for c, j, f in zip(self._clip, self._iou, self._f):
            per[c].append((j, f))
        per_clip = {
            c: {"J": float(np.mean([v[0] for v in vs])), "F": float(np.mean([v[1] for v in vs]))}
            for c, vs in per.items()
        }
        J = float(np.mean([v["J"] for v in per_clip.values()]))
        Fm = float(np.mean([v["F"] for v in per_clip.values()]))
        curve = success_curve(self._iou, self.iou_thresholds)
        return SegmentationScores(
            J=J,
            F=Fm,
            JF=(J + Fm) / 2.0,
            mIoU=float(np.mean(self._iou)),
            success={t: float(s) for t, s in zip(self.iou_thresholds, curve)},
            auc=success_auc(self._iou, self.iou_thresholds),
            num_frames=len(self._iou),
            num_clips=len(per_clip),
            threshold=self.threshold,
            per_clip=per_clip,
        )
