"""Segmentation metrics against hand-checkable masks: J, F (DAVIS), mIoU, success curve and AUC."""

from __future__ import annotations

import numpy as np
import pytest

from hf_stadyn.training.seg_metrics import (
    DEFAULT_IOU_THRESHOLDS,
    SegmentationMetrics,
    boundary_f_measure,
    boundary_map,
    region_iou,
    success_auc,
    success_curve,
)


def _box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_region_iou_hand_values():
    a = _box(10, 10, 0, 4, 0, 4)  # 16 px
    assert region_iou(a, a) == 1.0
    assert region_iou(a, _box(10, 10, 6, 10, 6, 10)) == 0.0
    b = _box(10, 10, 0, 4, 2, 6)  # overlaps a in 8 px, union 24
    assert region_iou(a, b) == pytest.approx(8 / 24)
    empty = np.zeros((10, 10), bool)
    assert region_iou(empty, empty) == 1.0  # DAVIS: both empty is a perfect frame
    assert region_iou(a, empty) == 0.0
    # probabilities are binarised at the threshold
    assert region_iou(a * 0.6, a) == 1.0 and region_iou(a * 0.4, a) == 0.0
    assert region_iou(a * 0.4, a, threshold=0.3) == 1.0


def test_boundary_map_of_a_square():
    b = boundary_map(_box(8, 8, 2, 5, 2, 5))  # a 3x3 square
    # DAVIS seg2bmap marks the pixels that differ from their right / lower / lower-right neighbour:
    # 3 + 3 inside the square's right column and bottom row... computed by hand:
    want = np.zeros((8, 8), bool)
    want[1, 1:5] = True  # row above (its lower neighbours enter the square)
    want[1:5, 1] = True  # column left of the square
    want[2:5, 4] = True  # right column of the square
    want[4, 2:5] = True  # bottom row of the square
    assert np.array_equal(b, want)
    assert not boundary_map(np.zeros((5, 5), bool)).any() and not boundary_map(np.ones((5, 5), bool)).any()


def test_boundary_f_on_shifted_boundaries():
    gt = np.zeros((32, 32), bool)
    gt[:, :10] = True  # boundary: column 9
    pred = np.zeros((32, 32), bool)
    pred[:, :13] = True  # boundary: column 12, 3 px away
    assert boundary_f_measure(gt, gt) == 1.0
    assert boundary_f_measure(pred, gt, bound_th=3) == 1.0  # within tolerance
    assert boundary_f_measure(pred, gt, bound_th=2) == 0.0  # out of tolerance
    # 0.008 of the 45.25 px diagonal rounds up to 1 px
    near = np.zeros((32, 32), bool)
    near[:, :11] = True
    assert boundary_f_measure(near, gt) == 1.0 and boundary_f_measure(pred, gt) == 0.0
    # half of the predicted boundary matches: P = 1/2, R = 1 -> F = 2/3
    half = gt.copy()
    half[16:, 10:13] = True  # lower half shifted by 3 px
    f = boundary_f_measure(half, gt, bound_th=1)
    pb = boundary_map(half)
    gb = boundary_map(gt)
    import cv2

    k = np.ones((3, 3), np.uint8)
    k[0, 0] = k[0, 2] = k[2, 0] = k[2, 2] = 0  # the radius-1 disk
    p = (pb & (cv2.dilate(gb.astype(np.uint8), k) > 0)).sum() / pb.sum()
    r = (gb & (cv2.dilate(pb.astype(np.uint8), k) > 0)).sum() / gb.sum()
    assert 0 < p < 1 and 0 < r < 1
    assert f == pytest.approx(2 * p * r / (p + r))
    empty = np.zeros((32, 32), bool)
    assert boundary_f_measure(empty, empty) == 1.0 and boundary_f_measure(empty, gt) == 0.0


def test_success_curve_and_auc_by_hand():
    ious = [0.2, 0.5, 0.7, 0.9]
    curve = success_curve(ious)
    assert len(curve) == len(DEFAULT_IOU_THRESHOLDS) == 9
    # tau 0.5 -> 3/4, 0.55..0.7 -> 2/4, 0.75..0.9 -> 1/4
    assert list(curve) == [0.75, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    trapz = sum((curve[i] + curve[i + 1]) / 2 * 0.05 for i in range(8))
    assert success_auc(ious) == pytest.approx(trapz / 0.4)
    assert success_auc([1.0, 1.0]) == pytest.approx(1.0) and success_auc([0.3]) == 0.0
    # over the full range [0, 1] the area under the success curve tends to the mean IoU
    assert success_auc(ious, thresholds=np.linspace(0, 1, 2001)) == pytest.approx(np.mean(ious), abs=1e-3)
    with pytest.raises(ValueError):
        success_curve(ious, thresholds=[0.9, 0.5])


def test_streaming_metrics_average_per_clip():
    gt = _box(16, 16, 4, 12, 4, 12)
    m = SegmentationMetrics()
    m.update(np.stack([gt, gt]).astype(float), np.stack([gt, gt]), clip_ids=["a", "a"])
    m.update(np.zeros((1, 16, 16)), gt[None], clip_ids=["b"])
    s = m.compute()
    assert s.num_frames == 3 and s.num_clips == 2
    assert pytest.approx(0.5) == s.J  # clip a: 1, clip b: 0
    assert s.mIoU == pytest.approx(2 / 3)  # per frame
    assert pytest.approx(0.5) == s.F
    assert s.success[0.5] == pytest.approx(2 / 3) and s.auc == pytest.approx(2 / 3)
    assert set(s.to_dict()) >= {"J", "F", "mIoU", "success", "auc"}
    # (B, 1, H, W) inputs and one-clip-per-call default
    m2 = SegmentationMetrics()
    m2.update(gt[None, None], gt[None, None])
    m2.update(gt[None, None], gt[None, None])
    assert m2.compute().num_clips == 2


def test_metric_input_errors():
    m = SegmentationMetrics()
    with pytest.raises(ValueError, match="same size"):
        m.update(np.zeros((2, 8, 8)), np.zeros((2, 8, 9), bool))
    with pytest.raises(ValueError, match="clip_ids"):
        m.update(np.zeros((2, 8, 8)), np.zeros((2, 8, 8), bool), clip_ids=[0])
    with pytest.raises(ValueError, match="NaN"):
        m.update(np.full((1, 4, 4), np.nan), np.zeros((1, 4, 4), bool))
    with pytest.raises(ValueError, match="no frames"):
        m.compute()
    with pytest.raises(ValueError, match="threshold"):
        SegmentationMetrics(threshold=1.5)
