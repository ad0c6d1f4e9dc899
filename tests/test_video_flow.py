"""Optical flow, its colour coding and the flow-image jitter of static two-stream pairs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hf_stadyn.video import (
    FLOW_METHODS,
    apply_flow_jitter,
    compute_flow,
    flow_images,
    flow_to_color,
    jitter_flow_image,
    jitter_flow_images,
)
from hf_stadyn.video.flow import JITTER_ORDERS, draw_flow_jitter, greyscale


def translating_texture(dx: int, dy: int, t: int = 5, size: int = 64, seed: int = 0) -> np.ndarray:
    """A blurred random texture whose content moves by (dx, dy) pixels per frame."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.integers(0, 256, (size + 64, size + 64, 3), dtype=np.uint8), (0, 0), 1.5)
    frames = [big[32 - dy * k : 32 - dy * k + size, 32 - dx * k : 32 - dx * k + size] for k in range(t)]
    return np.ascontiguousarray(np.stack(frames))


@pytest.mark.parametrize("method", FLOW_METHODS)
@pytest.mark.parametrize("dx,dy", [(2, 0), (-1, 2)])
def test_flow_measures_the_motion(method, dx, dy):
    frames = translating_texture(dx, dy)
    flow = compute_flow(frames, method)
    assert flow.shape == (4, 64, 64, 2) and flow.dtype == np.float32
    inner = flow[:, 12:-12, 12:-12]
    np.testing.assert_allclose(np.median(inner[..., 0]), dx, atol=0.25)
    np.testing.assert_allclose(np.median(inner[..., 1]), dy, atol=0.25)


def test_flow_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 frames"):
        compute_flow(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown flow method"):
        compute_flow(np.zeros((2, 8, 8, 3), np.uint8), "tvl1")
    with pytest.raises(ValueError, match="uint8"):
        compute_flow(np.zeros((2, 8, 8, 3), np.float32))


def _hsv(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(np.int32)


def _hue_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a - b) % 256
    return np.minimum(d, 256 - d)


def test_flow_colour_wheel():
    # eight directions at magnitude 2 plus zero motion, in one field
    angles = np.arange(8) * np.pi / 4
    field = np.zeros((1, 9, 2), np.float32)
    field[0, :8, 0], field[0, :8, 1] = 2 * np.cos(angles), 2 * np.sin(angles)
    img = flow_to_color(field)
    assert img.shape == (1, 9, 3) and img.dtype == np.uint8
    hsv = _hsv(img)[0]
    expected_hue = np.round(angles / (2 * np.pi) * 256).astype(int) % 256
    assert (_hue_dist(hsv[:8, 0], expected_hue) <= 2).all()  # hue = direction
    assert (hsv[:8, 1] >= 250).all() and (hsv[:, 2] >= 250).all()  # largest magnitude fully saturated
    np.testing.assert_array_equal(img[0, 8], [255, 255, 255])  # no motion is white
    np.testing.assert_array_equal(img[0, 0], [255, 0, 0])  # rightward is red


def test_flow_colour_saturation_follows_magnitude_and_scale():
    mags = np.array([0.0, 0.5, 1.0, 2.0, 4.0], np.float32)
    field = np.stack([mags, np.zeros_like(mags)], -1)[None]  # (1, 5, 2), all rightward
    sat = _hsv(flow_to_color(field))[0, :, 1]
    assert (np.diff(sat) > 0).all()
    fixed = _hsv(flow_to_color(field, max_magnitude=2.0))[0, :, 1]
    assert fixed[3] >= 250 and fixed[4] >= 250  # clipped at max_magnitude
    assert abs(fixed[2] - 128) <= 3
    # batch dimensions are kept; each field normalised by its own maximum when max_magnitude is None
    batch = np.stack([field, 3 * field])  # (2, 1, 5, 2)
    out = flow_to_color(batch)
    assert out.shape == (2, 1, 5, 3)
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.array_equal(flow_to_color(batch, max_magnitude=4.0)[0], flow_to_color(batch, max_magnitude=4.0)[1])
    with pytest.raises(ValueError, match="max_magnitude"):
        flow_to_color(field, max_magnitude=0)
    with pytest.raises(ValueError, match="H, W, 2"):
        flow_to_color(np.zeros((4, 4, 3)))


def test_flow_images_one_per_frame():
    frames = translating_texture(2, 0, t=4)
    imgs = flow_images(frames)
    assert imgs.shape == frames.shape and imgs.dtype == np.uint8
    np.testing.assert_array_equal(imgs[:3], flow_to_color(compute_flow(frames)))
    np.testing.assert_array_equal(imgs[3], imgs[2])
    assert (flow_images(frames[:1]) == 255).all()


def _wheel_image() -> np.ndarray:
    yy, xx = np.mgrid[-16:16, -16:16].astype(np.float32)
    return flow_to_color(np.stack([xx, yy], -1), max_magnitude=16.0)


def _circular_mean_hue_shift(out: np.ndarray, base: np.ndarray, where: np.ndarray) -> float:
    """Median hue difference out - base in turns, in [-0.5, 0.5)."""
    d = ((out[..., 0] - base[..., 0] + 128) % 256 - 128)[where]
    return float(np.median(d)) / 256


@pytest.mark.parametrize("factor", [0.0, 0.2, 0.55, 0.9, 1.0, 1.3, 1.75, 2.0])
def test_saturation_blend_equals_pil_image_enhance_color(factor):
    """The saturation factor is PIL's ImageEnhance.Color: grey + factor * (img - grey), clipped.

    Fails on the old semantics (HSV saturation scaled by the factor, which differs from a greyscale
    blend by many grey levels, and cannot exceed full saturation for factors > 1).
    """
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(int(factor * 100))
    for _ in range(3):
        img = rng.integers(0, 256, (24, 31, 3), dtype=np.uint8)
        ref = np.asarray(ImageEnhance.Color(Image.fromarray(img)).enhance(factor)).astype(int)
        for order in JITTER_ORDERS:
            out = apply_flow_jitter(img, 0.0, factor, order=order).astype(int)
            assert np.abs(out - ref).max() <= 1, (factor, order)
    flow_img = _wheel_image()
    ref = np.asarray(ImageEnhance.Color(Image.fromarray(flow_img)).enhance(factor)).astype(int)
    assert np.abs(apply_flow_jitter(flow_img, 0.0, factor).astype(int) - ref).max() <= 1


def test_greyscale_is_pil_L_conversion():
    from PIL import Image

    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(greyscale(img), np.asarray(Image.fromarray(img).convert("L")))
    # ITU-R 601-2 luma weights
    assert greyscale(np.array([[255, 0, 0]], np.uint8))[0] == round(255 * 0.299)
    assert greyscale(np.array([[0, 255, 0]], np.uint8))[0] == round(255 * 0.587)


@pytest.mark.parametrize("shift", [-0.4, -0.1, 0.1, 0.25, 0.5])
def test_hue_shift_rotates_the_wheel_both_ways(shift):
    """A negative shift rotates the hue backwards (the old code only knew positive shifts)."""
    img = _wheel_image()
    base = _hsv(img)
    strong = base[..., 1] > 150  # where the hue is well defined
    out = _hsv(apply_flow_jitter(img, shift, 1.0))
    measured = _circular_mean_hue_shift(out, base, strong)
    expected = (shift + 0.5) % 1.0 - 0.5
    assert abs(measured - expected) < 0.01 or (abs(abs(measured) - 0.5) < 0.01 and abs(abs(expected) - 0.5) < 0.01)
    # saturation and value of a pure hue rotation are unchanged
    assert np.abs(out[..., 1][strong] - base[..., 1][strong]).max() <= 2


def test_jitter_draw_distribution_is_two_level():
    """Range first, then value: h ~ U(0.1, 0.5), shift ~ U(-h, h) => E|shift| = E[h] / 2 = 0.15, |shift| < 0.5;
    s ~ U(0.1, 1), factor ~ U(max(0, 1 - s), 1 + s) => factor in [0, 2], above 1 half the time; the order is
    a fair coin. Fails on a one-level draw (shift = h: E|shift| = 0.3, never negative; factor = s <= 1)."""
    rng = np.random.default_rng(12345)
    draws = [draw_flow_jitter(rng) for _ in range(20000)]
    h = np.array([d.hue_shift for d in draws])
    f = np.array([d.saturation_scale for d in draws])
    hr = np.array([d.hue_range_drawn for d in draws])
    sr = np.array([d.saturation_range_drawn for d in draws])
    assert (h < 0).mean() > 0.45 and (h > 0).mean() > 0.45
    assert abs(h.mean()) < 0.005
    assert abs(np.abs(h).mean() - 0.15) < 0.005
    assert np.abs(h).max() <= 0.5 and (np.abs(h) <= hr).all()
    assert (hr >= 0.1).all() and (hr <= 0.5).all() and (sr >= 0.1).all() and (sr <= 1.0).all()
    assert f.min() >= 0.0 and f.max() <= 2.0
    assert ((f >= 1 - sr - 1e-12) & (f <= 1 + sr + 1e-12)).all()
    assert abs((f > 1).mean() - 0.5) < 0.02
    assert abs(f.mean() - 1.0) < 0.01
    # strong desaturation (factor < 0.5) needs s > 0.5: P = E[max(0, s - 0.5) / (2 s)] = (1 - ln 2) / 3.6 = 0.085
    assert abs((f < 0.5).mean() - (1 - np.log(2)) / 3.6) < 0.01
    orders = np.array([d.order for d in draws])
    assert set(orders) == set(JITTER_ORDERS)
    assert abs((orders == "hue,saturation").mean() - 0.5) < 0.02


def test_jitter_applies_its_draw_and_order_matters():
    img = _wheel_image()
    for seed in range(10):
        j = draw_flow_jitter(np.random.default_rng(seed))
        out = jitter_flow_image(img, np.random.default_rng(seed))
        np.testing.assert_array_equal(out, apply_flow_jitter(img, j.hue_shift, j.saturation_scale, order=j.order))
        assert out.shape == img.shape and out.dtype == np.uint8
    # the order changes the result when the factor saturates (clipping) and the hue moves
    a = apply_flow_jitter(img, 0.3, 1.8, order="hue,saturation").astype(int)
    b = apply_flow_jitter(img, 0.3, 1.8, order="saturation,hue").astype(int)
    assert np.abs(a - b).max() > 5
    # zero motion (white) stays white: only direction/magnitude information changes
    white = np.full((4, 4, 3), 255, np.uint8)
    for seed in range(5):
        np.testing.assert_array_equal(jitter_flow_image(white, np.random.default_rng(seed)), white)


def test_jitter_is_seeded_and_redrawn_per_frame():
    img = _wheel_image()
    a = jitter_flow_image(img, np.random.default_rng(3))
    b = jitter_flow_image(img, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert draw_flow_jitter(np.random.default_rng(3)) == draw_flow_jitter(np.random.default_rng(3))
    assert not np.array_equal(a, jitter_flow_image(img, np.random.default_rng(4)))
    frames = np.stack([img] * 6)
    out = jitter_flow_images(frames, np.random.default_rng(0))
    assert out.shape == frames.shape
    assert len({o.tobytes() for o in out}) == 6  # a new jitter for every frame
    np.testing.assert_array_equal(apply_flow_jitter(img, 0.0, 1.0), img)
    np.testing.assert_array_equal(apply_flow_jitter(img, 0.0, 1.0, order="saturation,hue"), img)
    with pytest.raises(ValueError, match="hue_range"):
        jitter_flow_image(img, np.random.default_rng(0), hue_range=(0.5, 0.1))
    with pytest.raises(ValueError, match="hue_range"):
        jitter_flow_image(img, np.random.default_rng(0), hue_range=(0.1, 0.8))
    with pytest.raises(ValueError, match="sat_range"):
        jitter_flow_image(img, np.random.default_rng(0), sat_range=(-0.1, 0.5))
    with pytest.raises(ValueError, match="order"):
        apply_flow_jitter(img, 0.1, 0.5, order="hue")
    with pytest.raises(ValueError, match="saturation_scale"):
        apply_flow_jitter(img, 0.1, -0.5)
