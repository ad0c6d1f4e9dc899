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
    """s_F = 0 at C = 2048 must read 21.2 % per factor through the estimator, not only in the formula.

    Fails if e.g. the residual score were 0 instead of 1 (33.3 %), the shares were not a softmax, or the
    dims were rounded instead of floored.
    """
    pi_d, pi_s, pi_r = shares_from_scores(0.0, 0.0)
    assert pi_d == pytest.approx(1 / (2 + math.e))
    # dims use floor; at C = 2048 (a ResNet-50 stage) that is 21.2 % each
    assert round(100 * math.floor(pi_d * 2048) / 2048, 1) == 21.2
    assert round(100 * pi_d, 1) == 21.2
    za, zb, f = _zero_score_pairs(2048)
    est = StaticDynamicEstimator()
    for s in range(0, 200, 64):
        est.update(za[s : s + 64], zb[s : s + 64], f[s : s + 64], layer="stage4")
    for res in (est.compute()["stage4"], static_dynamic_bias(za, zb, f)):
        assert abs(res.s_dynamic) < 1e-9 and abs(res.s_static) < 1e-9
        assert res.share["dynamic"] == pytest.approx(1 / (2 + math.e), rel=1e-9)
        assert res.share["residual"] == pytest.approx(math.e / (2 + math.e), rel=1e-9)
        assert res.dims == {"dynamic": 434, "static": 434, "residual": 2048 - 868}  # floor(2048 / (2 + e)) = 434
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


def test_intervals_cover_and_shrink():
    za, zb, f, *_ = linear_mixing(2000, 16, seed=2)
    small = compute_from_arrays(za[:400], zb[:400], f[:400])
    big = compute_from_arrays(za, zb, f)
    for key in ("s_dynamic", "s_static", "percent_dynamic", "percent_static"):
        assert small.intervals[key].low < small.intervals[key].estimate < small.intervals[key].high
        assert big.intervals[key].stderr < small.intervals[key].stderr
    assert big.intervals["s_static"].estimate == pytest.approx(big.s_static)
    assert big.intervals["percent_dynamic"].estimate == pytest.approx(100 * big.share["dynamic"])


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
