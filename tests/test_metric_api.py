"""The estimator's torchmetrics-shaped API in one process: update forms, functional form, state, merge, devices."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import hf_stadyn.metric as metric
from hf_stadyn.metric import (
    DYNAMIC,
    FACTORS,
    STATIC,
    StaticDynamicEstimator,
    compute_from_arrays,
    functional,
    parse_factors,
)
from hf_stadyn.metric.functional import static_dynamic_bias
from hf_stadyn.metric.state import _accumulate_index_add, _accumulate_matmul, assign_chunks


def _pairs(n: int, c: int, seed: int):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, c))
    za = 2.0 + shared + rng.normal(size=(n, c))
    zb = 2.0 + rng.uniform(0.2, 1.0, size=c) * shared + rng.normal(size=(n, c))
    return za, zb, list(rng.choice(["dynamic", "static"], size=n))


def _dicts(est: StaticDynamicEstimator) -> dict:
    return {k: v.to_dict() for k, v in est.compute().items()}


def test_mapping_form_warns_and_equals_update_layers():
    za, zb, f = _pairs(150, 9, seed=1)
    za2, zb2, _ = _pairs(150, 5, seed=2)
    old, new = StaticDynamicEstimator(), StaticDynamicEstimator()
    for s in range(0, 150, 50):
        sl = slice(s, s + 50)
        with pytest.warns(DeprecationWarning, match="update_layers"):
            old.update({"a": (za[sl], zb[sl]), "b": (za2[sl], zb2[sl])}, f[sl])
        new.update_layers({"a": (za[sl], zb[sl]), "b": (za2[sl], zb2[sl])}, f[sl])
    assert _dicts(old) == _dicts(new)
    sd_old, sd_new = old.state_dict(), new.state_dict()
    for name in ("a", "b"):
        assert torch.equal(sd_old["layers"][name]["stats"], sd_new["layers"][name]["stats"])
        assert sd_old["layers"][name]["next_pair_id"] == sd_new["layers"][name]["next_pair_id"] == 150
    # and the single-layer form does not warn
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        StaticDynamicEstimator().update(za, zb, f, layer="a")


def test_update_layers_checks_every_layer_before_adding():
    """A bad second layer must not leave the first one updated (a half-applied batch)."""
    za, zb, f = _pairs(20, 4, seed=3)
    est = StaticDynamicEstimator()
    with pytest.raises(ValueError, match="non-finite"):
        est.update_layers({"a": (za, zb), "b": (np.full_like(za, np.nan), zb)}, f)
    assert est.layers == {} and est.num_pairs == {}
    with pytest.raises(ValueError, match="mapping"):
        est.update_layers((za, zb), f)


@pytest.mark.parametrize("num_chunks", [1, 7, 10])
def test_functional_equals_streaming(num_chunks):
    za, zb, f = _pairs(333, 16, seed=4)
    ids = np.random.default_rng(0).permutation(333)
    one_shot = static_dynamic_bias(za, zb, f, num_chunks=num_chunks, pair_ids=ids, threshold=0.3, layer="x")
    est = StaticDynamicEstimator(threshold=0.3, num_chunks=num_chunks)
    est.update(za, zb, f, layer="x", pair_ids=ids)
    assert one_shot.to_dict() == est.compute()["x"].to_dict()  # same pairs, same order: the same bits
    streamed = StaticDynamicEstimator(threshold=0.3, num_chunks=num_chunks)
    for s in range(0, 333, 40):
        streamed.update(
            torch.from_numpy(za[s : s + 40]).float(), zb[s : s + 40], f[s : s + 40], pair_ids=ids[s : s + 40]
        )
    got = streamed.compute()["layer"]
    ref = static_dynamic_bias(za.astype(np.float32), zb, f, num_chunks=num_chunks, pair_ids=ids, threshold=0.3)
    assert got.s_static == pytest.approx(ref.s_static, rel=1e-12)
    assert got.percent == ref.percent and list(got.categories) == list(ref.categories)
    for key, iv in ref.intervals.items():
        assert got.intervals[key].stderr == pytest.approx(iv.stderr, rel=1e-10)
    assert compute_from_arrays is static_dynamic_bias
    assert functional.shares_from_scores is metric.shares_from_scores


def test_state_dict_round_trip(tmp_path):
    za, zb, f = _pairs(120, 6, seed=5)
    est = StaticDynamicEstimator(threshold=0.4, num_chunks=4, confidence=0.9)
    est.update_layers({"a": (za, zb), "b": (zb, za)}, f, pair_ids=np.arange(100, 220))
    torch.save(est.state_dict(), tmp_path / "state.pt")
    back = StaticDynamicEstimator()
    back.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert (back.threshold, back.num_chunks, back.confidence) == (0.4, 4, 0.9)
    assert _dicts(back) == _dicts(est)
    sd, sd_back = est.state_dict(), back.state_dict()
    assert sd["version"] == sd_back["version"] == metric.STATE_VERSION
    for name in ("a", "b"):
        assert sd_back["layers"][name]["next_pair_id"] == 220
        for key in ("n", "stats"):
            assert torch.equal(sd["layers"][name][key], sd_back["layers"][name][key])
            assert sd["layers"][name][key].device.type == "cpu"
    with pytest.raises(ValueError, match="version"):
        back.load_state_dict({**sd, "version": 99})


def test_merge_keeps_the_pair_id_counter_as_max():
    """merge() used to add the counters: shards with ids 0..99 and 100..199 gave 300, not 200."""
    za, zb, f = _pairs(200, 5, seed=6)
    lo, hi = StaticDynamicEstimator(num_chunks=7), StaticDynamicEstimator(num_chunks=7)
    lo.update(za[:100], zb[:100], f[:100], layer="l", pair_ids=np.arange(100))
    hi.update(za[100:], zb[100:], f[100:], layer="l", pair_ids=np.arange(100, 200))
    merged = StaticDynamicEstimator(num_chunks=7).merge(lo).merge(hi)
    assert merged.state_dict()["layers"]["l"]["next_pair_id"] == 200
    assert StaticDynamicEstimator.reductions == {"n": "sum", "stats": "sum", "next_pair_id": "max"}
    whole = StaticDynamicEstimator(num_chunks=7)
    whole.update(za, zb, f, layer="l")
    assert merged.compute()["l"].to_dict()["num_pairs"] == whole.compute()["l"].num_pairs
    # the next default ids continue at 200 (chunk 200 % 7 = 4, a sum would start at 300 % 7 = 6)
    merged.update(za[:10], zb[:10], f[:10], layer="l")
    whole.update(za[:10], zb[:10], f[:10], layer="l")
    assert torch.equal(merged.layers["l"].n, whole.layers["l"].n)


def test_state_made_in_inference_mode_can_be_updated_and_merged_outside():
    """The probe runner updates under torch.inference_mode(); the state must not become inference tensors."""
    za, zb, f = _pairs(40, 3, seed=7)
    est = StaticDynamicEstimator()
    with torch.inference_mode():
        est.update(torch.from_numpy(za), torch.from_numpy(zb), f, layer="l")
    est.update(za, zb, f, layer="l")
    est.merge(StaticDynamicEstimator().merge(est))
    assert est.num_pairs["l"]["dynamic"] + est.num_pairs["l"]["static"] == 160


def test_one_hot_accumulation_matches_index_add():
    """The off-CPU (deterministic) accumulation gives the sums of the CPU one."""
    rng = np.random.default_rng(8)
    per_pair = torch.from_numpy(rng.normal(size=(57, 4, 11)))
    slot = torch.from_numpy(rng.integers(0, 6, size=57))
    flat_a, n_a = torch.zeros(6, 4, 11, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    flat_b, n_b = flat_a.clone(), n_a.clone()
    _accumulate_index_add(flat_a, n_a, slot, per_pair)
    _accumulate_matmul(flat_b, n_b, slot, per_pair)
    assert torch.equal(n_a, n_b)
    torch.testing.assert_close(flat_a, flat_b, rtol=1e-13, atol=1e-13)


def test_state_follows_the_features_device_and_sync_is_a_noop_alone():
    za, zb, f = _pairs(30, 4, seed=9)
    est = StaticDynamicEstimator()
    est.update(torch.from_numpy(za), torch.from_numpy(zb), f, layer="l")
    assert est.layers["l"].n.device.type == "cpu" and est.layers["l"].stats.dtype == torch.float64
    before = _dicts(est)
    assert est.sync() is est and est.sync() is est and not est.is_synced
    assert _dicts(est) == before
    est.update(za, zb, f, layer="l")  # not synced in one process: updating goes on
    assert est.to("cpu") is est
    assert est.unsync() is est


def test_chunks_come_from_pair_ids():
    assert assign_chunks(np.array([0, 9, 10, 23]), 10).tolist() == [0, 9, 0, 3]
    assert assign_chunks(np.array([5]), 1).tolist() == [0]


def test_one_factor_vocabulary():
    from hf_stadyn.metric import factors

    assert (DYNAMIC, STATIC) == (0, 1) and FACTORS == ("dynamic", "static")
    assert factors.FACTORS[DYNAMIC] == "dynamic" and factors.factor_name(STATIC) == "static"
    assert parse_factors(["d", "Static", 0, True, np.int64(1)], 5).tolist() == [0, 1, 0, 1, 1]
    assert parse_factors(torch.tensor([1, 0]), 2).tolist() == [1, 0]
    with pytest.raises(ValueError, match="not a known factor"):
        parse_factors(["motion"], 1)
    with pytest.raises(ValueError, match="factor must be"):
        factors.factor_name(2)
