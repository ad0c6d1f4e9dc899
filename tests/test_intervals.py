"""Jackknife intervals resample the source video (docs/method.md §5): a simulation with known truth.

Pairs reuse videos as the default ``stadyn probe`` does (32 videos, 320 pairs, pair ``i`` from video
``i % 32``). Features: a per-video latent shared by every pair of the video (and by both members), a
per-video-and-factor latent shared by the video's pairs of that factor, per-pair and per-member noise,
so pairs of one video are correlated. The true s_F follows in closed form (checked against a very large
independent sample). Intervals chunked by video must cover the truth at about the nominal rate; chunked
by pair index (the old behaviour) they are too narrow, which is what makes this test able to fail.
"""

from __future__ import annotations

import numpy as np

from hf_stadyn.metric.functional import static_dynamic_bias
from hf_stadyn.metric.stats import shares_from_scores

C, V, P = 8, 32, 320  # 32 videos is not a multiple of K = 10: pair-index chunks mix videos
SIG_U = np.linspace(0.6, 1.4, C)  # per-video latent (shared by all pairs of a video)
SIG_G, SIG_H, SIG_E = 1.0, 0.3, 0.5  # per video-and-factor, per pair, per member
AMP = np.array([1.0, 0.5])  # dynamic, static


def _draw(rng: np.random.Generator, num_videos: int, num_pairs: int):
    video = np.arange(num_pairs) % num_videos
    factor = rng.integers(0, 2, num_pairs)
    u = rng.normal(size=(num_videos, C)) * SIG_U
    g = SIG_G * rng.normal(size=(num_videos, 2, C))
    h = SIG_H * rng.normal(size=(num_pairs, C))
    shared = u[video] + AMP[factor][:, None] * (g[video, factor] + h)
    z_a = shared + SIG_E * rng.normal(size=(num_pairs, C))
    z_b = shared + SIG_E * rng.normal(size=(num_pairs, C))
    return z_a, z_b, factor, video


def _truth() -> dict[str, float]:
    w = SIG_G**2 + SIG_H**2
    total = (SIG_U**2 + AMP.dot(AMP) / 2 * w + SIG_E**2).sum()
    s = [float((SIG_U**2 + a**2 * w).sum() / total) for a in AMP]
    pi = shares_from_scores(*s)
    return {"s_dynamic": s[0], "s_static": s[1], "share_dynamic": 100 * pi[0], "share_static": 100 * pi[1]}


def test_truth_matches_a_large_independent_sample():
    z_a, z_b, f, video = _draw(np.random.default_rng(123), 200_000, 200_000)  # one pair per video
    big = static_dynamic_bias(z_a, z_b, f, groups=video)
    truth = _truth()
    assert abs(big.s_dynamic - truth["s_dynamic"]) < 0.005 and abs(big.s_static - truth["s_static"]) < 0.005


def test_video_chunks_cover_and_pair_chunks_under_cover():
    truth = _truth()
    rng = np.random.default_rng(0)
    reps = 300
    hits = {"video": dict.fromkeys(truth, 0), "pair": dict.fromkeys(truth, 0)}
    widths = {"video": [], "pair": []}
    for _ in range(reps):
        z_a, z_b, f, video = _draw(rng, V, P)
        for mode, groups in (("video", video), ("pair", None)):
            res = static_dynamic_bias(z_a, z_b, f, groups=groups)
            assert res.num_chunks_used == 10
            widths[mode].append(res.intervals["s_dynamic"].high - res.intervals["s_dynamic"].low)
            for key, value in truth.items():
                iv = res.intervals[key]
                hits[mode][key] += iv.low <= value <= iv.high
    cover = {mode: {k: v / reps for k, v in h.items()} for mode, h in hits.items()}
    for key in truth:
        assert cover["video"][key] >= 0.93, cover
        assert cover["pair"][key] < 0.85, cover
    assert np.mean(widths["video"]) > 1.3 * np.mean(widths["pair"])
