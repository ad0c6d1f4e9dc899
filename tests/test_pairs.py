"""Stylizers, shuffles, static/dynamic pairs and two-stream pairs (docs/method.md §1)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from hf_stadyn.metric import DYNAMIC as METRIC_DYNAMIC
from hf_stadyn.metric import STATIC as METRIC_STATIC
from hf_stadyn.pairs import (
    DEFAULT_STYLES,
    DYNAMIC,
    STATIC,
    Stylizer,
    get_style,
    list_styles,
    make_pair,
    make_two_stream_pair,
    parse_factor,
    register_style,
    shuffle_frames,
    shuffle_pathways,
    stylize,
    unregister_style,
)
from hf_stadyn.video import apply_flow_jitter, compute_flow, flow_images


def scene(seed: int = 0, t: int = 8, size: int = 64) -> np.ndarray:
    """A textured background panning right 1 px/frame with a textured object moving (2, 1) px/frame
    (the object wraps around inside the frame on long clips)."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 256, (size + 40, size + 40 + t, 3), dtype=np.uint8), (0, 0), 1.2)
    obj_size = min(20, size // 2)
    obj = cv2.GaussianBlur(rng.integers(0, 256, (obj_size, obj_size, 3), dtype=np.uint8), (0, 0), 1.0)
    frames = []
    room = size - obj_size
    for k in range(t):
        f = bg[10 : 10 + size, 20 + t - k : 20 + t - k + size].copy()
        y, x = (size // 6 + k) % room, (size // 5 + 2 * k) % room
        f[y : y + obj_size, x : x + obj_size] = obj
        frames.append(f)
    return np.stack(frames)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return scene()


def rel_flow_error(a: np.ndarray, b: np.ndarray, reference_flow: np.ndarray) -> float:
    """Mean end-point error between the flows of a and b, relative to the mean reference flow magnitude."""
    return float(
        np.linalg.norm(compute_flow(a) - compute_flow(b), axis=-1).mean()
        / np.linalg.norm(reference_flow, axis=-1).mean()
    )


def frame_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame mean absolute RGB difference, (T,)."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=(1, 2, 3))


def test_factor_labels_match_the_estimator():
    assert (DYNAMIC, STATIC) == (METRIC_DYNAMIC, METRIC_STATIC) == (0, 1)
    assert parse_factor("static") == STATIC and parse_factor("Dynamic") == DYNAMIC and parse_factor(1) == STATIC
    for bad in ["both", 2, True, None]:
        with pytest.raises(ValueError, match="factor"):
            parse_factor(bad)


# ------------------------------------------------------------------------------------------------
# Shuffles
# ------------------------------------------------------------------------------------------------


def _fixed_points_expected(t: int) -> float:
    """E[#fixed points] of a uniform draw among the t! - 1 non-identity permutations of t items.

    Over all t! permutations the fixed points total t! (each of the t positions is fixed by (t-1)!
    of them); removing the identity removes t of them: (t! - t) / (t! - 1).
    """
    return (math.factorial(t) - t) / (math.factorial(t) - 1)


def test_shuffle_is_never_the_identity_and_keeps_the_frames():
    """docs/method.md §1.1: the static-pair shuffle is a uniformly random permutation that is not the
    identity, and ``shuffled == clip[perm]`` keeps every frame once. Checked against expectations worked
    out independently, for T = 2..16 and 300 seeds each, on clips whose frames are all different.

    Bugs caught: no rejection of the identity (P = 1/2 at T = 2, 1/6 at T = 3: hundreds of hits here);
    a derangement instead (no fixed points: the mean number of fixed points is (T! - T)/(T! - 1) ~ 1,
    checked to within 0.25, i.e. > 4 standard errors); a fixed or cyclic shift (too few distinct orders,
    fixed points 0); frames drawn with replacement (multiset changes); ``clip[argsort(perm)]`` returned
    with ``perm`` (the two differ for every non-involution); a non-uniform draw over the 5 orders of
    T = 3 or the 23 of T = 4 (chi-square against uniform).
    """
    seeds = range(300)
    for t in range(2, 17):
        rng_frames = np.random.default_rng(1000 + t)
        frames = rng_frames.integers(0, 256, size=(t, 4, 5, 3), dtype=np.uint8)
        frames[:, 0, 0, 0] = np.arange(t)  # every frame different
        identity = tuple(range(t))
        counts: dict[tuple[int, ...], int] = {}
        fixed = 0
        for seed in seeds:
            shuffled, perm = shuffle_frames(frames, np.random.default_rng(seed))
            assert perm.dtype == np.int64 and perm.shape == (t,)
            key = tuple(int(i) for i in perm)
            assert key != identity, f"T={t} seed {seed}: the identity"
            assert sorted(key) == list(range(t)), f"T={t} seed {seed}: not a permutation {key}"
            # shuffled[k] is source frame perm[k], located independently by its marker pixel
            assert [int(f[0, 0, 0]) for f in shuffled] == list(key)
            for k in range(t):
                np.testing.assert_array_equal(shuffled[k], frames[key[k]])
            assert sorted(f.tobytes() for f in shuffled) == sorted(f.tobytes() for f in frames)
            counts[key] = counts.get(key, 0) + 1
            fixed += sum(int(key[k] == k) for k in range(t))
        n = len(seeds)
        num_orders = math.factorial(t) - 1
        if t <= 4:
            # every non-identity order appears, at uniform rates: chi-square, df = 5 - 1 or 23 - 1;
            # the bounds (18.5, 48.3) are the 0.999 quantiles, so a correct draw fails with p < 0.001.
            assert len(counts) == num_orders, (t, sorted(counts))
            expected = n / num_orders
            chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
            assert chi2 < {2: 1e-9, 3: 18.5, 4: 48.3}[t], (t, chi2, counts)
        else:
            # n uniform draws among M orders hit M (1 - (1 - 1/M)^n) distinct ones on average (about 110
            # at T = 5, 245 at T = 6, ~300 beyond); a shift or any small family of orders hits far fewer
            distinct = num_orders * (1 - (1 - 1 / num_orders) ** n)
            assert len(counts) >= 0.9 * distinct, (t, len(counts), distinct)
        mean_fixed = fixed / n
        assert abs(mean_fixed - _fixed_points_expected(t)) < 0.25, (t, mean_fixed, _fixed_points_expected(t))
    clip = scene()
    a, pa = shuffle_frames(clip, np.random.default_rng(7))
    b, pb = shuffle_frames(clip, np.random.default_rng(7))
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="at least 2 frames"):
        shuffle_frames(clip[:1], np.random.default_rng(0))


def test_pathways_are_shuffled_independently(clip):
    slow, fast = clip[::2], clip
    consistent, by_slow = 0, {}
    for seed in range(40):
        (s, f), (ps, pf) = shuffle_pathways([slow, fast], np.random.default_rng(seed))
        np.testing.assert_array_equal(s, slow[ps])
        np.testing.assert_array_equal(f, fast[pf])
        consistent += np.array_equal(f[::2], s)  # what "shuffle once, then subsample" would give
        by_slow.setdefault(tuple(ps), set()).add(tuple(pf))
    assert consistent <= 2
    assert any(len(v) > 1 for v in by_slow.values())  # the slow order does not fix the fast order


# ------------------------------------------------------------------------------------------------
# Styles
# ------------------------------------------------------------------------------------------------


def test_registry_has_at_least_four_fast_defaults():
    assert len(DEFAULT_STYLES) >= 4
    assert set(DEFAULT_STYLES) <= set(list_styles())
    with pytest.raises(ValueError, match="unknown style 'nope'.*color_mix"):
        get_style("nope")


@pytest.mark.parametrize("name", sorted(set(list_styles()) - {"stylization"}) + ["stylization"])
def test_styles_are_temporally_consistent_and_seeded(name, clip):
    style = get_style(name)
    small = clip[:4, :32, :32] if name == "stylization" else clip
    params = style.sample_params(np.random.default_rng(1))
    out = style.apply(small, params)
    assert out.shape == small.shape and out.dtype == np.uint8
    # one set of parameters for every frame: stylizing frame by frame gives the same frames
    for t in range(small.shape[0]):
        np.testing.assert_array_equal(style.apply(small[t : t + 1], params)[0], out[t])
    np.testing.assert_array_equal(stylize(small, name, np.random.default_rng(1)), out)
    assert not np.array_equal(stylize(small, name, np.random.default_rng(2)), out)


@pytest.mark.parametrize("name", DEFAULT_STYLES)
def test_default_styles_keep_dynamics_and_change_statics(name):
    for scene_seed in range(2):
        clip = scene(scene_seed)
        flow = compute_flow(clip)
        shuffled = shuffle_frames(clip, np.random.default_rng(0))[0]
        shuffled_error = rel_flow_error(shuffled, clip, flow)
        assert shuffled_error > 1.5  # what losing the dynamics looks like on this scene
        motion_change = frame_distance(clip[1:], clip[:-1]).mean()
        for seed in range(6):
            styled = stylize(clip, name, np.random.default_rng(seed))
            error = rel_flow_error(styled, clip, flow)
            assert error < 0.3, f"{name} seed {seed}: flow changed by {error:.2f} of its magnitude"
            dist = frame_distance(styled, clip)
            assert dist.min() > 12, f"{name} seed {seed}: appearance barely changed ({dist.min():.1f})"
            assert dist.mean() > 1.3 * motion_change


def test_custom_styles_plug_in(clip):
    class Invert(Stylizer):
        def sample_params(self, rng):
            return {"gain": float(rng.uniform(0.5, 1.0))}

        def apply(self, clip, params):
            return (255 - clip * params["gain"]).astype(np.uint8)

    try:
        register_style("test_invert")(Invert)
        assert "test_invert" in list_styles() and get_style("test_invert").name == "test_invert"
        out = stylize(clip, "test_invert", np.random.default_rng(0))
        gain = np.random.default_rng(0).uniform(0.5, 1.0)
        np.testing.assert_array_equal(out, (255 - clip * gain).astype(np.uint8))
        with pytest.raises(ValueError, match="already registered"):
            register_style("test_invert", Invert())
        register_style("test_invert", Invert(), overwrite=True)
        # pairs use it when asked
        pair = make_pair(clip, "dynamic", np.random.default_rng(0), styles=["test_invert", "color_mix"])
        assert {pair.style_a, pair.style_b} == {"test_invert", "color_mix"}
    finally:
        unregister_style("test_invert")
    assert "test_invert" not in list_styles()

    class NoApply:
        def sample_params(self, rng):
            return None

    with pytest.raises(ValueError, match="apply"):
        register_style("broken", NoApply())

    class WrongShape(Stylizer):
        def sample_params(self, rng):
            return None

        def apply(self, clip, params):
            return clip[:, ::2]

    with pytest.raises(ValueError, match="keep the shape"):
        stylize(clip, WrongShape(), np.random.default_rng(0))


# ------------------------------------------------------------------------------------------------
# Pairs
# ------------------------------------------------------------------------------------------------


def test_static_pair_is_one_styled_clip_shuffled(clip):
    for seed in range(10):
        pair = make_pair(clip, STATIC, np.random.default_rng(seed))
        assert pair.factor == STATIC and pair.factor_name == "static"
        assert pair.style_a == pair.style_b and pair.style_a in DEFAULT_STYLES
        assert not np.array_equal(pair.permutation, np.arange(len(clip)))
        np.testing.assert_array_equal(pair.clip_b, pair.clip_a[pair.permutation])
        # clip_a is the clip in that style, frames in order
        assert frame_distance(pair.clip_a, clip).min() > 10
        assert rel_flow_error(pair.clip_a, clip, compute_flow(clip)) < 0.3


def test_dynamic_pair_is_the_clip_in_two_styles(clip):
    flow = compute_flow(clip)
    styles_seen = set()
    for seed in range(10):
        pair = make_pair(clip, "dynamic", np.random.default_rng(seed))
        assert pair.factor == DYNAMIC and pair.permutation is None
        assert pair.style_a != pair.style_b
        styles_seen |= {pair.style_a, pair.style_b}
        assert rel_flow_error(pair.clip_a, pair.clip_b, flow) < 0.35  # same motion
        assert frame_distance(pair.clip_a, pair.clip_b).min() > 12  # different appearance
    assert styles_seen == set(DEFAULT_STYLES)
    a = make_pair(clip, "dynamic", np.random.default_rng(3))
    b = make_pair(clip, "dynamic", np.random.default_rng(3))
    np.testing.assert_array_equal(a.clip_a, b.clip_a)
    np.testing.assert_array_equal(a.clip_b, b.clip_b)
    with pytest.raises(ValueError, match="two different styles"):
        make_pair(clip, "dynamic", np.random.default_rng(0), styles=["palette"])
    with pytest.raises(ValueError, match="repeated"):
        make_pair(clip, "dynamic", np.random.default_rng(0), styles=["palette", "palette"])
    with pytest.raises(ValueError, match="uint8"):
        make_pair(clip.astype(np.float32), "dynamic", np.random.default_rng(0))


def test_pathway_pairs(clip):
    slow, fast = clip[::4], clip
    pair = make_pair([slow, fast], STATIC, np.random.default_rng(1))
    a_slow, a_fast = pair.clip_a
    # same style parameters on both pathways: the slow pathway is the fast one subsampled
    np.testing.assert_array_equal(a_slow, a_fast[::4])
    ps, pf = pair.permutation
    np.testing.assert_array_equal(pair.clip_b[0], a_slow[ps])
    np.testing.assert_array_equal(pair.clip_b[1], a_fast[pf])
    dyn = make_pair([slow, fast], DYNAMIC, np.random.default_rng(1))
    np.testing.assert_array_equal(dyn.clip_b[0], dyn.clip_b[1][::4])


def test_two_stream_pairs(clip):
    flows = flow_images(clip)
    for seed in range(8):
        t = seed % len(clip)
        st = make_two_stream_pair(clip, flows, t, STATIC, np.random.default_rng(seed))
        assert st.style_a == st.style_b
        np.testing.assert_array_equal(st.rgb_a, st.rgb_b)
        np.testing.assert_array_equal(st.flow_a, flows[t])
        assert abs(st.hue_shift) <= 0.5 and 0.0 <= st.saturation_scale <= 2.0
        assert st.jitter_order in ("hue,saturation", "saturation,hue")
        np.testing.assert_array_equal(
            st.flow_b, apply_flow_jitter(flows[t], st.hue_shift, st.saturation_scale, order=st.jitter_order)
        )
        assert not np.array_equal(st.flow_b, st.flow_a)
        assert np.abs(st.rgb_a.astype(int) - clip[t]).mean() > 10  # the frame is stylized

        dy = make_two_stream_pair(clip, flows, t, DYNAMIC, np.random.default_rng(seed))
        assert dy.style_a != dy.style_b and dy.hue_shift is None and dy.jitter_order is None
        np.testing.assert_array_equal(dy.flow_a, flows[t])
        np.testing.assert_array_equal(dy.flow_b, flows[t])
        assert np.abs(dy.rgb_a.astype(int) - dy.rgb_b).mean() > 10
    again = make_two_stream_pair(clip, flows, 2, STATIC, np.random.default_rng(2))
    np.testing.assert_array_equal(
        again.flow_b, make_two_stream_pair(clip, flows, 2, STATIC, np.random.default_rng(2)).flow_b
    )
    with pytest.raises(ValueError, match="index"):
        make_two_stream_pair(clip, flows, len(clip), STATIC, np.random.default_rng(0))
    with pytest.raises(ValueError, match="flow_images"):
        make_two_stream_pair(clip, flows[:-1], 0, STATIC, np.random.default_rng(0))


def test_two_stream_static_jitter_is_the_two_level_draw(clip):
    """The recorded jitter of static pairs follows docs/method.md §1.2: symmetric hue shift with
    E|shift| = 0.15 and |shift| <= 0.5, saturation factor in [0, 2] above 1 about half the time, both
    orders. Fails on the old one-level draw (shift = h in [0.1, 0.5], factor = s in [0.1, 1])."""
    flows = flow_images(clip)
    shifts, factors, orders = [], [], []
    for seed in range(600):
        st = make_two_stream_pair(clip[:2], flows[:2], 0, STATIC, np.random.default_rng(seed), styles=["palette"])
        shifts.append(st.hue_shift)
        factors.append(st.saturation_scale)
        orders.append(st.jitter_order)
    h, f = np.array(shifts), np.array(factors)
    assert (h < 0).sum() > 200 and (h > 0).sum() > 200
    assert abs(h.mean()) < 0.03 and abs(np.abs(h).mean() - 0.15) < 0.015 and np.abs(h).max() <= 0.5
    assert f.min() >= 0.0 and f.max() <= 2.0 and 0.4 < (f > 1).mean() < 0.6
    assert set(orders) == {"hue,saturation", "saturation,hue"}
    # seeded: the same generator state gives the same pair
    a = make_two_stream_pair(clip, flows, 1, STATIC, np.random.default_rng(7))
    b = make_two_stream_pair(clip, flows, 1, STATIC, np.random.default_rng(7))
    assert (a.hue_shift, a.saturation_scale, a.jitter_order) == (b.hue_shift, b.saturation_scale, b.jitter_order)
    np.testing.assert_array_equal(a.flow_b, b.flow_b)
