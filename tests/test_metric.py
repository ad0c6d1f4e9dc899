"""Exactness, ground-truth and input-validation tests of the streaming estimator (docs/method.md §3-5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_stadyn.metric import (
    LayerBias,
    StaticDynamicEstimator,
    compute_from_arrays,
    scores_from_shares,
    shares_from_scores,
)
from hf_stadyn.metric.functional import static_dynamic_bias

RTOL = 1e-9


# --------------------------------------------------------------------------------------------------
# A direct one-shot NumPy implementation of docs/method.md §3 and §4, written from the formulas.
def reference(za: np.ndarray, zb: np.ndarray, factors: list[str], tau: float = 0.5) -> dict:
    factors = np.asarray(factors)
    Z = np.concatenate([za, zb], axis=0)
    mu = Z.mean(0)
    V = ((Z - mu) ** 2).mean(0).sum()
    out = {}
    for f in ("dynamic", "static"):
        a, b = za[factors == f], zb[factors == f]
        m = 0.5 * (a.mean(0) + b.mean(0))
        cov = ((a - m) * (b - m)).mean(0)
        np.seterr(divide="ignore", invalid="ignore")
        var = np.concatenate([a, b]).var(0)
        out[f"s_{f}"] = cov.sum() / V
        out[f"rho_{f}"] = cov / var
    s = np.array([out["s_dynamic"], out["s_static"], 1.0])
    pi = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    C = za.shape[1]
    dd, ds = math.floor(pi[0] * C), math.floor(pi[1] * C)
    out["percent"] = {
        "dynamic": round(100 * dd / C, 1),
        "static": round(100 * ds / C, 1),
        "residual": round(100 * (C - dd - ds) / C, 1),
    }
    rd, rs = out["rho_dynamic"], out["rho_static"]
    cats = np.full(C, "none", dtype=object)
    cats[(rd > tau) & (rs < tau)] = "dynamic"
    cats[(rs > tau) & (rd < tau)] = "static"
    cats[(rd > tau) & (rs > tau)] = "joint"
    out["categories"] = cats
    out["pi"] = pi
    return out


def random_pairs(n: int, c: int, seed: int, offset: float = 3.0):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, c)) * rng.uniform(0.5, 2.0, size=c)
    za = offset + shared + rng.normal(size=(n, c))
    zb = offset + 0.7 * shared + rng.normal(size=(n, c)) * 1.3
    factors = list(rng.choice(["dynamic", "static"], size=n))
    # make the static pairs share more than the dynamic ones so both scores differ
    idx = np.array(factors) == "static"
    zb[idx] = za[idx] * 0.9 + 0.3 * rng.normal(size=(idx.sum(), c))
    return za, zb, factors


def assert_matches(res: LayerBias, ref: dict) -> None:
    assert res.s_dynamic == pytest.approx(ref["s_dynamic"], rel=RTOL)
    assert res.s_static == pytest.approx(ref["s_static"], rel=RTOL)
    np.testing.assert_allclose(res.rho_dynamic, ref["rho_dynamic"], rtol=RTOL)
    np.testing.assert_allclose(res.rho_static, ref["rho_static"], rtol=RTOL)
    assert res.percent == ref["percent"]
    assert list(res.categories) == list(ref["categories"])
    assert res.share["dynamic"] == pytest.approx(ref["pi"][0], rel=RTOL)


def test_one_shot_matches_reference():
    za, zb, f = random_pairs(500, 37, seed=1)
    assert_matches(compute_from_arrays(za, zb, f), reference(za, zb, f))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_batch_split_and_order_matches(seed):
    za, zb, f = random_pairs(401, 24, seed=seed)
    ref = reference(za, zb, f)
    rng = np.random.default_rng(100 + seed)
    order = rng.permutation(len(f))
    cuts = np.sort(rng.choice(np.arange(1, len(f)), size=7, replace=False))
    est = StaticDynamicEstimator()
    for chunk in np.split(order, cuts):
        est.update(torch.tensor(za[chunk], dtype=torch.float64), zb[chunk], [f[i] for i in chunk], layer="l")
    assert_matches(est.compute()["l"], ref)


def test_merge_of_partial_states_and_resume_match(tmp_path):
    za, zb, f = random_pairs(300, 16, seed=5)
    ref = reference(za, zb, f)
    parts = [StaticDynamicEstimator() for _ in range(3)]
    for k, est in enumerate(parts):
        sl = slice(k * 100, (k + 1) * 100)
        est.update(za[sl], zb[sl], f[sl], layer="l", pair_ids=np.arange(sl.start, sl.stop))
    merged = StaticDynamicEstimator().merge(parts[2]).merge(parts[0]).merge(parts[1])
    assert_matches(merged.compute()["l"], ref)

    # save after 150 pairs, reload into a fresh estimator (as a resumed run would), continue
    first = StaticDynamicEstimator()
    first.update(za[:150], zb[:150], f[:150], layer="l")
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = StaticDynamicEstimator()
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    resumed.update(za[150:], zb[150:], f[150:], layer="l")
    res = resumed.compute()["l"]
    assert_matches(res, ref)
    # the resumed run is identical to an uninterrupted one, intervals included
    whole = StaticDynamicEstimator()
    whole.update(za, zb, f, layer="l")
    assert res.to_dict() == whole.compute()["l"].to_dict()
    # and the 3-way merge with global pair ids gives the same chunks, hence the same intervals
    for key, iv in whole.compute()["l"].intervals.items():
        got = merged.compute()["l"].intervals[key]
        assert got.stderr == pytest.approx(iv.stderr, rel=RTOL)
        assert got.low == pytest.approx(iv.low, rel=RTOL)


def test_multi_layer_mapping_update():
    za, zb, f = random_pairs(120, 8, seed=3)
    za2, zb2, _ = random_pairs(120, 5, seed=4)
    est = StaticDynamicEstimator()
    with pytest.warns(DeprecationWarning, match="update_layers"):  # the mapping form, kept for one release
        est.update({"a": (za, zb), "b": (za2, zb2)}, factors=f)
    out = est.compute()
    assert list(out) == ["a", "b"]
    assert_matches(out["a"], reference(za, zb, f))
    assert_matches(out["b"], reference(za2, zb2, f))


def test_memory_is_independent_of_pairs():
    est = StaticDynamicEstimator(num_chunks=10)
    za, zb, f = random_pairs(64, 32, seed=0)
    est.update(za, zb, f, layer="l")
    before = sum(t.numel() for t in est.state_dict()["layers"]["l"].values() if torch.is_tensor(t))
    for _ in range(20):
        est.update(za, zb, f, layer="l")
    after = sum(t.numel() for t in est.state_dict()["layers"]["l"].values() if torch.is_tensor(t))
    assert before == after == 2 * 10 + 2 * 10 * 4 * 32


# --------------------------------------------------------------------------------------------------
# Ground truth: linear mixing of a static part, a dynamic part and noise with known variances.
def linear_mixing(n: int, c: int, seed: int):
    rng = np.random.default_rng(seed)
    ws = rng.uniform(0.0, 2.0, size=c)
    wd = rng.uniform(0.0, 2.0, size=c)
    wn = rng.uniform(0.2, 1.0, size=c)
    factors = np.where(rng.random(n) < 0.5, "static", "dynamic")
    S = rng.normal(size=(n, c))
    D = rng.normal(size=(n, c))
    S2, D2 = rng.normal(size=(n, c)), rng.normal(size=(n, c))
    st = (factors == "static")[:, None]
    za = ws * S + wd * D + wn * rng.normal(size=(n, c))
    # static pairs share S (fresh D), dynamic pairs share D (fresh S)
    zb = ws * np.where(st, S, S2) + wd * np.where(st, D2, D) + wn * rng.normal(size=(n, c))
    total = ws**2 + wd**2 + wn**2
    return za, zb, list(factors), ws**2 / total, wd**2 / total


def test_ground_truth_linear_mixing():
    za, zb, f, rho_s_true, rho_d_true = linear_mixing(20_000, 64, seed=7)
    res = compute_from_arrays(za, zb, f, threshold=0.5)
    err = np.concatenate([np.abs(res.rho_static - rho_s_true), np.abs(res.rho_dynamic - rho_d_true)])
    assert err.mean() <= 0.01
    assert err.max() <= 0.05
    tau = 0.5
    true_cat = np.full(64, "none", dtype=object)
    true_cat[(rho_d_true > tau) & (rho_s_true < tau)] = "dynamic"
    true_cat[(rho_s_true > tau) & (rho_d_true < tau)] = "static"
    true_cat[(rho_d_true > tau) & (rho_s_true > tau)] = "joint"
    clear = (np.abs(rho_s_true - tau) > 0.05) & (np.abs(rho_d_true - tau) > 0.05)
    assert clear.sum() > 30
    assert list(res.categories[clear]) == list(true_cat[clear])
    # the layer scores are the variance-weighted averages of the channel truths
    tot = (np.concatenate([za, zb]).var(0)).sum()
    assert res.s_static == pytest.approx((rho_s_true * np.concatenate([za, zb]).var(0)).sum() / tot, abs=0.02)


def _zero_score_pairs(c: int = 2048):
    """Features with s_D = s_S = 0: mirrored pairs (x, y), (x, -y) cancel every cross product."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, c))
    y = rng.normal(size=(50, c))
    x, y = x - x.mean(0), y - y.mean(0)
    return np.concatenate([x, x, y, y]), np.concatenate([y, -y, x, -x]), ["dynamic"] * 100 + ["static"] * 100


def test_zero_scores_give_21_2_percent():
    """s_D = s_S = 0 at C = 2048 read through the estimator, against hand values of docs/method.md §3.

    By hand: pi_F = e^0 / (e^0 + e^0 + e^1) = 1 / (2 + e) = 0.21194155761708547 for F = D, S and
    e / (2 + e) = 0.5761168847658291 for the residual; d_F = floor(0.2119... * 2048) = floor(434.06) = 434,
    d_R = 2048 - 868 = 1180; % = round(100 * 434 / 2048, 1) = round(21.19, 1) = 21.2 and
    round(100 * 1180 / 2048, 1) = round(57.62, 1) = 57.6. The library computes none of these constants.

    Bugs caught: a residual score of 0 instead of 1 (pi = 1/3: 682 dims, 33.3 %), shares that are not a
    softmax (e.g. s_F / sum s), a residual floored on its own (floor(0.5761 * 2048) = 1179, not C - d_D - d_S),
    dims of ceil (435), a streaming, functional or one-shot path that disagrees with the others. (Rounding
    instead of flooring gives the same 434 here; test_one_shot_matches_reference covers it.)
    """
    pi_d, pi_s, pi_r = shares_from_scores(0.0, 0.0)
    assert (pi_d, pi_s) == (pytest.approx(0.21194155761708547, rel=1e-12),) * 2
    assert pi_r == pytest.approx(0.5761168847658291, rel=1e-12)
    za, zb, f = _zero_score_pairs(2048)
    est = StaticDynamicEstimator()
    for s in range(0, 200, 64):
        est.update(za[s : s + 64], zb[s : s + 64], f[s : s + 64], layer="stage4")
    for res in (est.compute()["stage4"], static_dynamic_bias(za, zb, f), compute_from_arrays(za, zb, f)):
        assert abs(res.s_dynamic) < 1e-9 and abs(res.s_static) < 1e-9
        assert res.share["dynamic"] == pytest.approx(0.21194155761708547, rel=1e-9)
        assert res.share["static"] == pytest.approx(0.21194155761708547, rel=1e-9)
        assert res.share["residual"] == pytest.approx(0.5761168847658291, rel=1e-9)
        assert res.dims == {"dynamic": 434, "static": 434, "residual": 1180}
        assert res.percent == {"dynamic": 21.2, "static": 21.2, "residual": 57.6}


def test_zero_scores_through_the_estimator():
    # pairs whose members are uncorrelated around the factor mean have s_F = 0 exactly when the
    # cross products cancel: use +x / -x mirrored pairs.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2048))
    y = rng.normal(size=(50, 2048))
    x, y = x - x.mean(0), y - y.mean(0)
    za = np.concatenate([x, x, y, y])
    zb = np.concatenate([y, -y, x, -x])
    f = ["dynamic"] * 100 + ["static"] * 100
    res = compute_from_arrays(za, zb, f)
    assert abs(res.s_dynamic) < 1e-9 and abs(res.s_static) < 1e-9
    assert res.percent["dynamic"] == res.percent["static"] == 21.2


def test_scores_from_shares_inverts():
    for s in [(0.3, 0.9), (-0.5, 0.0), (1.2, 0.4)]:
        np.testing.assert_allclose(scores_from_shares(*shares_from_scores(*s)[:2]), s, rtol=1e-12, atol=1e-12)


def test_dead_channels_never_nan():
    za, zb, f = random_pairs(200, 10, seed=9)
    za[:, 3] = 5.0
    zb[:, 3] = 5.0
    za[:, 7] = 0.0
    zb[:, 7] = 0.0
    res = compute_from_arrays(za, zb, f)
    assert res.dead_channels == 2
    assert np.isfinite(res.rho_static).all() and np.isfinite(res.rho_dynamic).all()
    assert res.categories[3] == "none" and res.categories[7] == "none"
    assert np.isfinite(res.s_static) and np.isfinite(res.s_dynamic)
    # live channels still match the reference
    ref = reference(za, zb, f)
    live = [i for i in range(10) if i not in (3, 7)]
    np.testing.assert_allclose(res.rho_static[live], ref["rho_static"][live], rtol=RTOL)
    assert sum(res.category_counts.values()) == 10


def test_categories_strict_and_threshold():
    za, zb, f = linear_mixing(4000, 32, seed=1)[:3]
    for tau in (0.2, 0.5, 0.8):
        res = compute_from_arrays(za, zb, f, threshold=tau)
        ref = reference(za, zb, f, tau)
        assert list(res.categories) == list(ref["categories"])
        assert sum(res.category_counts.values()) == 32
        assert res.category_percent["static"] == round(100 * res.category_counts["static"] / 32, 1)


# Planted truth for the intervals: fixed channel weights, fresh data per replicate (independent pairs).
_IV_C = 16
_IV_W = np.random.default_rng(2024)
_IV_WS, _IV_WD, _IV_WN = _IV_W.uniform(0.3, 1.5, _IV_C), _IV_W.uniform(0.3, 1.5, _IV_C), _IV_W.uniform(0.5, 1.0, _IV_C)


def _planted_truth() -> dict[str, float]:
    """Population values of the linear mixing below (docs/method.md §3): every member has per-channel
    variance ws^2 + wd^2 + wn^2 and mean 0, a static pair shares ws^2 of it, a dynamic pair wd^2."""
    total = (_IV_WS**2 + _IV_WD**2 + _IV_WN**2).sum()
    s_d, s_s = (_IV_WD**2).sum() / total, (_IV_WS**2).sum() / total
    e = np.exp([s_d, s_s, 1.0])
    return {"s_dynamic": s_d, "s_static": s_s, "percent_dynamic": 100 * e[0] / e.sum(),
            "percent_static": 100 * e[1] / e.sum()}  # fmt: skip


def _planted_pairs(n: int, rng: np.random.Generator):
    st = rng.random(n) < 0.5
    s, d, s2, d2 = (rng.normal(size=(n, _IV_C)) for _ in range(4))
    za = _IV_WS * s + _IV_WD * d + _IV_WN * rng.normal(size=(n, _IV_C))
    zb = _IV_WS * np.where(st[:, None], s, s2) + _IV_WD * np.where(st[:, None], d2, d)
    zb = zb + _IV_WN * rng.normal(size=(n, _IV_C))
    return za, zb, list(np.where(st, "static", "dynamic"))


T_975_9 = 2.2621571627982  # Student t, 0.975 quantile, 9 degrees of freedom (tables; K = 10 chunks)


def test_intervals_cover_and_shrink():
    """95 % jackknife intervals (docs/method.md §5) against a planted truth, 200 replicates at n = 400 and 1600.

    Coverage bound: if an interval covers with probability 0.95, the hits of 200 independent replicates are
    Binomial(200, 0.95) (mean 190, sd 3.1) and P(hits < 170) = 2.5e-8, so ">= 85 %" fails a correct
    estimator with negligible probability; a 90 % real coverage still passes with p = 0.99 (the bound is
    about gross under-coverage). Measured (this seed): 93-97.5 % at both sizes.
    Width: 4x the pairs must give half the width (measured ratio 0.49-0.51; accepted 0.4-0.6), and the
    mean reported stderr must match the spread of the estimates over replicates (measured 0.85-1.02;
    accepted 0.75-1.33). The half-width is exactly t_{0.975, 9} stderr.

    Bugs caught: a jackknife variance without the (G - 1) factor (intervals 3x too narrow, ~55 % coverage),
    with 1/G instead of (G - 1)/G, or summed instead of averaged (widths off by sqrt(G)); a normal quantile
    (1.96) or the wrong degrees of freedom; widths that do not shrink with n (e.g. the spread of the chunk
    values, not of the leave-one-out means) or that shrink as 1/n; intervals centred on something else
    than the truth's estimate (a biased replicate mean).
    """
    truth = _planted_truth()
    mean_width = {}
    for n in (400, 1600):
        rng = np.random.default_rng(n)
        hits = dict.fromkeys(truth, 0)
        widths = {k: [] for k in truth}
        stderr = {k: [] for k in truth}
        estimates = {k: [] for k in truth}
        for _ in range(200):
            za, zb, f = _planted_pairs(n, rng)
            res = compute_from_arrays(za, zb, f)
            assert res.num_chunks_used == 10
            for key, value in truth.items():
                iv = res.intervals[key]
                hits[key] += iv.low <= value <= iv.high
                widths[key].append(iv.high - iv.low)
                stderr[key].append(iv.stderr)
                estimates[key].append(iv.estimate)
                assert (iv.high - iv.estimate) == pytest.approx(T_975_9 * iv.stderr, rel=1e-9)
                assert (iv.estimate - iv.low) == pytest.approx(T_975_9 * iv.stderr, rel=1e-9)
            assert res.intervals["s_static"].estimate == pytest.approx(res.s_static, rel=1e-12)
            assert res.intervals["percent_dynamic"].estimate == pytest.approx(100 * res.share["dynamic"], rel=1e-12)
        for key in truth:
            assert hits[key] >= 170, (n, key, hits)
            calibration = np.mean(stderr[key]) / np.std(estimates[key])
            assert 0.75 <= calibration <= 1.33, (n, key, calibration)
        mean_width[n] = {k: float(np.mean(w)) for k, w in widths.items()}
    for key in truth:
        ratio = mean_width[1600][key] / mean_width[400][key]
        assert 0.4 <= ratio <= 0.6, (key, ratio)


def test_result_dict_round_trip():
    za, zb, f = random_pairs(100, 6, seed=11)
    res = compute_from_arrays(za, zb, f)
    back = LayerBias.from_dict(res.to_dict())
    assert back.to_dict() == res.to_dict()


def test_distributed_sum_through_gloo(tmp_path):
    """Two processes each see half the pairs; after sync() both hold the full-data result."""
    import torch.multiprocessing as mp

    za, zb, f = random_pairs(200, 12, seed=13)
    np.savez(tmp_path / "data.npz", za=za, zb=zb, f=np.array(f))
    mp.spawn(_gloo_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    whole = StaticDynamicEstimator()
    whole.update(za, zb, f, layer="l")
    expected = whole.compute()["l"].to_dict()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert got["s_static"] == pytest.approx(expected["s_static"], rel=RTOL)
        assert got["percent"] == expected["percent"]
        assert got["intervals"]["s_dynamic"]["stderr"] == pytest.approx(
            expected["intervals"]["s_dynamic"]["stderr"], rel=1e-9
        )


def _gloo_worker(rank: int, world: int, folder: str) -> None:
    import os

    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        d = np.load(f"{folder}/data.npz")
        idx = np.arange(rank, len(d["f"]), world)
        est = StaticDynamicEstimator()
        est.update(d["za"][idx], d["zb"][idx], list(d["f"][idx]), layer="l", pair_ids=idx)
        est.sync()
        torch.save(est.compute()["l"].to_dict(), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------------
# Bad input
@pytest.mark.parametrize(
    "za, zb, factors, match",
    [
        (np.zeros((4, 3)), np.zeros((4, 2)), ["static"] * 4, "same .B, C. shape"),
        (np.zeros((4, 3)), np.zeros((5, 3)), ["static"] * 4, "same .B, C. shape"),
        (np.full((4, 3), np.nan), np.zeros((4, 3)), ["static"] * 4, "non-finite"),
        (np.full((4, 3), np.inf), np.zeros((4, 3)), ["static"] * 4, "non-finite"),
        (np.zeros((4, 0)), np.zeros((4, 0)), ["static"] * 4, "C = 0"),
        (np.zeros((4, 3)), np.zeros((4, 3)), ["static", "motion", "static", "static"], "not a known factor"),
        (np.zeros((4, 3)), np.zeros((4, 3)), ["static"] * 3, "one factor label per pair"),
        (np.zeros((4, 3), dtype=np.int64), np.zeros((4, 3)), ["static"] * 4, "floating point"),
        (np.zeros((4, 3), dtype=bool), np.zeros((4, 3)), ["static"] * 4, "floating point"),
        (np.zeros(4), np.zeros(4), ["static"] * 4, "expected .B, C."),
    ],
)
def test_bad_input_rejected(za, zb, factors, match):
    with pytest.raises(ValueError, match=match):
        StaticDynamicEstimator().update(za, zb, factors, layer="l")


def test_too_few_pairs_of_a_factor():
    est = StaticDynamicEstimator()
    est.update(np.random.rand(5, 3), np.random.rand(5, 3), ["static"] * 4 + ["dynamic"], layer="l")
    with pytest.raises(ValueError, match="at least 2 pairs of each factor"):
        est.compute()


def test_channel_count_must_stay_and_options_checked():
    est = StaticDynamicEstimator()
    est.update(np.random.rand(4, 3), np.random.rand(4, 3), "static", layer="l")
    with pytest.raises(ValueError, match="keep its channel count"):
        est.update(np.random.rand(4, 5), np.random.rand(4, 5), "static", layer="l")
    with pytest.raises(ValueError, match="threshold"):
        StaticDynamicEstimator(threshold=2.0)
    with pytest.raises(ValueError, match="num_chunks"):
        StaticDynamicEstimator(num_chunks=0)
    with pytest.raises(ValueError, match="seen no pairs"):
        StaticDynamicEstimator().compute()
