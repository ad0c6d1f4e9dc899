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


def test_jitter_shifts_hue_and_scales_saturation_within_range():
    img = _wheel_image()
    base = _hsv(img)
    strong = base[..., 1] > 150  # where the hue is well defined
    for seed in range(20):
        rng = np.random.default_rng(seed)
        h_expect = np.random.default_rng(seed).uniform(0.1, 0.5)  # the first draw is the hue shift
        out = jitter_flow_image(img, rng)
        assert out.shape == img.shape and out.dtype == np.uint8
        hsv = _hsv(out)
        shift = np.median(((hsv[..., 0] - base[..., 0]) % 256)[strong]) / 256
        assert 0.1 - 0.01 <= shift <= 0.5 + 0.01
        assert abs(shift - h_expect) < 0.01
        ratio = np.median(hsv[..., 1][strong] / base[..., 1][strong])
        assert 0.1 - 0.02 <= ratio <= 1.0 + 0.01
    # zero motion (white) stays white: only direction/magnitude information changes
    white = np.full((4, 4, 3), 255, np.uint8)
    np.testing.assert_array_equal(jitter_flow_image(white, np.random.default_rng(0)), white)


def test_jitter_is_seeded_and_redrawn_per_frame():
    img = _wheel_image()
    a = jitter_flow_image(img, np.random.default_rng(3))
    b = jitter_flow_image(img, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, jitter_flow_image(img, np.random.default_rng(4)))
    frames = np.stack([img] * 6)
    out = jitter_flow_images(frames, np.random.default_rng(0))
    assert out.shape == frames.shape
    assert len({o.tobytes() for o in out}) == 6  # a new (h, s) for every frame
    np.testing.assert_array_equal(apply_flow_jitter(img, 0.0, 1.0), img)
    with pytest.raises(ValueError, match="hue_range"):
        jitter_flow_image(img, np.random.default_rng(0), hue_range=(0.5, 0.1))
    with pytest.raises(ValueError, match="sat_range"):
        jitter_flow_image(img, np.random.default_rng(0), sat_range=(0.0, 2.0))
