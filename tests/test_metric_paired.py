"""Intervals by source video, t quantile, replicates and paired differences (docs/method.md §5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_stadyn.metric import LayerBias, StaticDynamicEstimator, paired_difference
from hf_stadyn.metric.functional import static_dynamic_bias
from hf_stadyn.metric.stats import _t_quantile_exact, t_quantile


def _pairs(seed=0, n=200, c=6, videos=25):
    rng = np.random.default_rng(seed)
    video = np.arange(n) % videos
    u = rng.normal(size=(videos, c))
    base = u[video] + rng.normal(size=(n, c))
    f = rng.integers(0, 2, n)
    return base + 0.5 * rng.normal(size=(n, c)), base + 0.5 * rng.normal(size=(n, c)), f, video


def test_t_quantile_matches_scipy_and_its_exact_fallback():
    from scipy.stats import t

    for df in (1, 2, 3, 9, 24, 99):
        assert t_quantile(0.95, df) == pytest.approx(t.ppf(0.975, df), rel=1e-12)
        assert _t_quantile_exact(0.95, df) == pytest.approx(t.ppf(0.975, df), rel=1e-9)
    assert _t_quantile_exact(0.9, 7) == pytest.approx(t.ppf(0.95, 7), rel=1e-9)


def test_interval_is_jackknife_with_t_on_k_minus_1_and_aliases():
    za, zb, f, video = _pairs()
    res = static_dynamic_bias(za, zb, f, groups=video)
    reps = res.replicates["s_dynamic"]
    assert res.num_chunks_used == 10 and reps.shape == (10,)
    se = np.sqrt(9 / 10 * ((reps - reps.mean()) ** 2).sum())
    iv = res.intervals["s_dynamic"]
    assert iv.stderr == pytest.approx(se) and iv.high - iv.estimate == pytest.approx(t_quantile(0.95, 9) * se)
    assert res.intervals["share_dynamic"] == res.intervals["percent_dynamic"]
    assert res.intervals["share_dynamic"].estimate == pytest.approx(100 * res.share["dynamic"])
    back = LayerBias.from_dict(res.to_dict())
    np.testing.assert_array_equal(back.replicates["share_static"], res.replicates["share_static"])
    old = res.to_dict()
    for key in ("replicates", "num_chunks_used"):
        old.pop(key)
    old["intervals"] = {k: v for k, v in old["intervals"].items() if not k.startswith("share_")}
    legacy = LayerBias.from_dict(old)  # a report written before replicates: readable, aliases added
    assert legacy.replicates == {} and legacy.intervals["share_dynamic"] == legacy.intervals["percent_dynamic"]


def test_all_pairs_of_a_video_share_a_chunk():
    """Chunks by group: relabelling the pair ids changes nothing; moving one pair to another video does."""
    za, zb, f, video = _pairs()
    a = static_dynamic_bias(za, zb, f, groups=video)
    b = static_dynamic_bias(za, zb, f, groups=video, pair_ids=np.random.default_rng(1).permutation(200))
    np.testing.assert_array_equal(a.replicates["s_static"], b.replicates["s_static"])
    by_pair = static_dynamic_bias(za, zb, f)
    assert not np.allclose(a.replicates["s_static"], by_pair.replicates["s_static"])


def test_fewer_videos_than_chunks_warns_and_uses_them(caplog):
    za, zb, f, _ = _pairs(n=60)
    est = StaticDynamicEstimator(num_chunks=10)
    est.update(za, zb, f, layer="x", groups=np.arange(60) % 4)
    res = est.compute()["x"]
    assert res.num_chunks_used == 4 and len(res.replicates["s_dynamic"]) == 4
    assert "4 source video" in caplog.text and est.chunking()["x"]["num_videos"] == 4
    one = StaticDynamicEstimator()
    one.update(za, zb, f, layer="x", groups=np.zeros(60, dtype=np.int64))
    assert one.compute()["x"].intervals == {}


def test_state_with_groups_merges_and_resumes_exactly():
    za, zb, f, video = _pairs()
    full = StaticDynamicEstimator()
    full.update(za, zb, f, layer="x", groups=video)
    parts = [StaticDynamicEstimator() for _ in range(2)]
    for r, est in enumerate(parts):
        idx = np.arange(r, 200, 2)
        est.update(za[idx], zb[idx], f[idx], layer="x", pair_ids=idx, groups=video[idx])
    merged = parts[0].merge(parts[1])
    restored = StaticDynamicEstimator()
    restored.load_state_dict({k: v for k, v in torch.load(_save(merged.state_dict()), weights_only=False).items()})
    for est in (merged, restored):
        got, want = est.compute()["x"], full.compute()["x"]
        np.testing.assert_allclose(got.replicates["s_dynamic"], want.replicates["s_dynamic"], rtol=1e-12)
        assert est.chunking()["x"]["num_videos"] == 25
    with pytest.raises(ValueError, match="groups"):
        full.update(za[:4], zb[:4], f[:4], layer="x")  # a layer keeps one chunking


def _save(state):
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def test_paired_difference_uses_the_same_chunks():
    za, zb, f, video = _pairs()
    rng = np.random.default_rng(5)
    a = static_dynamic_bias(za, zb, f, groups=video)
    b = static_dynamic_bias(za + 0.3 * rng.normal(size=za.shape), zb, f, groups=video)
    d = paired_difference(a, b, "share_dynamic")
    diff = a.replicates["share_dynamic"] - b.replicates["share_dynamic"]
    assert d.estimate == pytest.approx(100 * (a.share["dynamic"] - b.share["dynamic"]))
    assert d.stderr == pytest.approx(np.sqrt(9 / 10 * ((diff - diff.mean()) ** 2).sum()))
    # pairing: far narrower than two independent errors for readings that move together
    indep = np.hypot(a.intervals["share_dynamic"].stderr, b.intervals["share_dynamic"].stderr)
    assert d.stderr < indep
    assert paired_difference(a, b, "percent_dynamic") == d
    short = static_dynamic_bias(za, zb, f, groups=video % 5)
    with pytest.raises(ValueError, match="same chunks"):
        paired_difference(a, short, "s_dynamic")
    with pytest.raises(ValueError, match="replicates"):
        paired_difference(a, LayerBias.from_dict({**a.to_dict(), "replicates": {}}), "s_static")
    with pytest.raises(ValueError, match="unknown quantity"):
        paired_difference(a, b, "dims")
