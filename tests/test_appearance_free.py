"""Appearance-free dynamic pairs: the rendering keeps a clip's motion and drops its appearance."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hf_stadyn.pairs import DYNAMIC, STATIC, PairDataset, ProbePairs
from hf_stadyn.pairs.appearance_free import APPEARANCE_FREE, AppearanceFreePairs, render_appearance_free
from hf_stadyn.video import compute_flow


def moving_square_clip(seed: int, t: int = 8, size: int = 64, speed: tuple[int, int] = (2, 1)) -> np.ndarray:
    """A still background (a gradient between two random colours, with a few dark blobs) and a striped
    square moving by ``speed`` px/frame."""
    rng = np.random.default_rng(seed)
    c0, c1 = rng.uniform(40, 215, (2, 3))
    ramp = np.linspace(0, 1, size)[None, :, None]
    bg = np.repeat(c0 + (c1 - c0) * ramp, size, axis=0)
    for _ in range(3):
        cv2.circle(bg, tuple(int(v) for v in rng.integers(0, size, 2)), size // 10, (20.0, 20.0, 20.0), -1)
    bg = bg.astype(np.uint8)
    colour = rng.integers(0, 256, 3)
    frames = []
    for k in range(t):
        f = bg.copy()
        side = 18 * size // 64
        x0, y0 = 12 * size // 64 + speed[0] * k, 16 * size // 64 + speed[1] * k
        patch = np.zeros((side, side, 3), np.uint8) + colour.astype(np.uint8)
        patch[::4] = 255 - patch[::4]  # stripes, so the motion is visible inside the square
        patch[:, ::5] //= 2
        f[y0 : y0 + side, x0 : x0 + side] = patch
        frames.append(f)
    return np.stack(frames)


def epe(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.hypot(*(a - b)[mask].T).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rendering_keeps_the_motion(seed):
    """The flow of the rendering is close to the clip's flow, far closer than a shuffled clip's.

    Fails if the texture is warped the wrong way (forward flow used as a backward map: motion reversed)
    or not warped at all (a still texture), as each gives an error as large as a shuffle's.
    """
    clip = moving_square_clip(seed)
    af = render_appearance_free(clip, seed=seed)
    ref = compute_flow(clip)
    moving = np.hypot(ref[..., 0], ref[..., 1]) > 0.5
    assert moving.mean() > 0.03
    perm = np.array([3, 0, 6, 1, 7, 2, 5, 4])
    err_af = epe(compute_flow(af), ref, moving)
    err_shuffled = epe(compute_flow(clip[perm]), ref, moving)
    err_still = epe(np.zeros_like(ref), ref, moving)
    # measured: 0.55-0.65 of the shuffled clip's error, about 0.6 of a still texture's (DIS recovers about
    # half the speed of the carried texture on 64x64 clips, so the flows are close, not equal)
    assert err_af < 0.75 * err_shuffled
    assert err_af < 0.75 * err_still
    # the mean motion of the moving region has the clip's direction
    v_clip, v_af = ref[moving].mean(0), compute_flow(af)[moving].mean(0)
    assert float(v_clip @ v_af) / (np.linalg.norm(v_clip) * np.linalg.norm(v_af)) > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rendering_has_unrelated_appearance(seed):
    """Pixel values and colour histograms of the rendering do not follow the clip's (fails if the
    rendering blends in or recolours the clip)."""
    clip = moving_square_clip(seed)
    af = render_appearance_free(clip, seed=seed + 10)
    assert af.shape == clip.shape and af.dtype == np.uint8
    for c in range(3):
        r = np.corrcoef(clip[..., c].ravel().astype(float), af[..., c].ravel().astype(float))[0, 1]
        assert abs(r) < 0.15, (c, r)

    # colour histograms (8 bins a channel): the clip's sits on its few colours, the noise's is spread
    # (measured correlation 0.02-0.32), and the rendering's does not depend on the clip
    def hist(x: np.ndarray) -> np.ndarray:
        return np.histogramdd(x.reshape(-1, 3), bins=8, range=[(0, 256)] * 3)[0].ravel()

    other_clip = moving_square_clip(seed + 5)
    other = render_appearance_free(other_clip, seed=seed + 10)
    assert np.corrcoef(hist(clip), hist(af))[0, 1] < 0.4
    assert np.corrcoef(hist(af), hist(other))[0, 1] > 0.9
    # no frame shows the object: the first frame is pure noise, whatever the clip
    np.testing.assert_array_equal(af[0], other[0])


def test_rendering_is_deterministic_and_validates():
    clip = moving_square_clip(0, size=32)
    a = render_appearance_free(clip, seed=(3, 4))
    np.testing.assert_array_equal(a, render_appearance_free(torch.from_numpy(clip), seed=(3, 4)))
    assert not np.array_equal(a, render_appearance_free(clip, seed=(3, 5)))
    with pytest.raises(ValueError, match="uint8"):
        render_appearance_free(clip.astype(np.float32))
    with pytest.raises(ValueError, match="flow method"):
        render_appearance_free(clip, method="nope")


def _clips(n: int = 6) -> list[np.ndarray]:
    return [moving_square_clip(s, size=32, speed=(2, 0)) for s in range(n)]


@pytest.mark.parametrize("kind", ["pair_dataset", "probe_pairs"])
def test_wrapper_replaces_dynamic_clip_b_only(kind):
    """Static pairs are returned byte for byte; dynamic pairs keep clip_a and get the seeded rendering of it."""
    clips = _clips()
    if kind == "pair_dataset":
        base = PairDataset(clips, num_frames=8, size=None, window=8, seed=1, num_pairs=12)
    else:
        base = ProbePairs(clips, num_pairs=12, seed=1)
    wrapped = AppearanceFreePairs(base, seed=5)
    assert len(wrapped) == len(base) and wrapped.dynamic_pairs == APPEARANCE_FREE
    assert wrapped.settings["dynamic_pairs"] == APPEARANCE_FREE
    factors = set()
    for i in range(len(base)):
        b, w = base[i], wrapped[i]
        factors.add(int(b["factor"]))
        assert torch.equal(w["clip_a"], b["clip_a"])
        if int(b["factor"]) == STATIC:
            assert torch.equal(w["clip_b"], b["clip_b"])
            assert w.get("style_b") == b.get("style_b")
        else:
            expected = render_appearance_free(b["clip_a"].numpy(), seed=(5, i, 0xAF))
            assert w["clip_b"].dtype == torch.uint8 and tuple(w["clip_b"].shape) == tuple(b["clip_a"].shape)
            np.testing.assert_array_equal(w["clip_b"].numpy(), expected)
            assert not torch.equal(w["clip_b"], b["clip_b"])
            if "style_b" in b:
                assert w["style_b"] == APPEARANCE_FREE
    assert factors == {DYNAMIC, STATIC}
    again = AppearanceFreePairs(base, seed=5)
    for i in range(len(base)):
        assert torch.equal(again[i]["clip_b"], wrapped[i]["clip_b"])
    assert wrapped.num_pairs == base.num_pairs  # attributes of the wrapped dataset stay readable


def test_wrapper_both_members():
    """members="both": both members are renderings of the original clip_a with independent textures."""
    base = PairDataset(_clips(), num_frames=8, size=None, window=8, seed=2, num_pairs=8)
    wrapped = AppearanceFreePairs(base, seed=5, members="both")
    assert wrapped.settings["members"] == "both"
    seen = set()
    for i in range(len(base)):
        b, w = base[i], wrapped[i]
        seen.add(int(b["factor"]))
        if int(b["factor"]) == STATIC:
            assert torch.equal(w["clip_a"], b["clip_a"]) and torch.equal(w["clip_b"], b["clip_b"])
            continue
        a = b["clip_a"].numpy()
        np.testing.assert_array_equal(w["clip_a"].numpy(), render_appearance_free(a, seed=(5, i, 0xAF, 1)))
        np.testing.assert_array_equal(w["clip_b"].numpy(), render_appearance_free(a, seed=(5, i, 0xAF, 2)))
        assert not torch.equal(w["clip_a"], w["clip_b"])
        assert w["style_a"] == w["style_b"] == APPEARANCE_FREE
    assert seen == {DYNAMIC, STATIC}
    with pytest.raises(ValueError, match="members"):
        AppearanceFreePairs(base, members="a")


def test_wrapper_rejects_bad_input():
    with pytest.raises(ValueError, match="seed"):
        AppearanceFreePairs(_clips(), seed=-1)
    with pytest.raises(ValueError, match="map-style"):
        AppearanceFreePairs(iter([]))
    two_stream = [{"rgb_a": 0, "flow_a": 0, "rgb_b": 0, "flow_b": 0, "factor": 0, "index": 0}]
    with pytest.raises(ValueError, match="two-stream"):
        AppearanceFreePairs(two_stream)[0]


def test_probe_cli_option_reads_appearance_free_dynamic_pairs(tmp_path):
    """`stadyn probe --dynamic_pairs appearance-free` wraps the pairs: the report records it, static pairs read
    the same as with the paper's pairs and dynamic pairs do not (the bug it catches: the option ignored)."""
    import json

    from hf_stadyn.cli import main

    common = ["probe", "--num_pairs", "48", "--batch_size", "16", "--disable_tqdm", "--no_reference",
              "--synth_clips", "12", "--layers", "block_3"]  # fmt: skip
    assert main([*common, "--output_dir", str(tmp_path / "styles")]) == 0
    assert main([*common, "--dynamic_pairs", "appearance-free", "--output_dir", str(tmp_path / "af")]) == 0
    a = json.loads((tmp_path / "styles" / "report.json").read_text())
    b = json.loads((tmp_path / "af" / "report.json").read_text())
    assert a["pair_settings"]["dynamic_pairs"] == "styles"
    assert b["pair_settings"]["dynamic_pairs"]["dynamic_pairs"] == "appearance_free"
    la, lb = a["layers"][0], b["layers"][0]
    assert la["num_pairs"] == lb["num_pairs"]  # same factors drawn
    # static pairs untouched: their per-channel scores (normalised within the factor) are equal; s_S itself
    # moves a little, as the total variance V of docs/method.md §3 includes the dynamic pairs
    np.testing.assert_allclose(la["rho_static"], lb["rho_static"], rtol=1e-9, atol=1e-12)
    assert not np.allclose(la["rho_dynamic"], lb["rho_dynamic"], atol=1e-3)  # dynamic pairs changed
