"""Paired comparisons (docs/method.md §5): BiasReport.compare, paired reference deltas, `stadyn compare`.

Two readings of the same pairs move together with the pairs, so the interval of their difference is a
jackknife of the difference over the same chunks, much narrower than two independent standard errors.
The readings here come from the real estimator on simulated pairs that reuse videos (pairs of a video
share a video-level effect, as `stadyn probe` reuses clips), chunked by source video.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from hf_stadyn.cli import main
from hf_stadyn.metric import StaticDynamicEstimator
from hf_stadyn.report import SCHEMA_VERSION, BiasReport, PairSetMismatchError
from hf_stadyn.report.compare import QUANTITIES

LAYERS = ("block_0", "block_1")
NUM_VIDEOS, PAIRS_PER_VIDEO, C, K = 40, 6, 12, 8
FP = "ab" * 32


def simulate_pairs(seed: int = 0):
    """Features of model A and a correlated model B (A plus small noise) on one set of pairs.

    Returns ``(groups (N,), factors (N,), {layer: (za_A, zb_A, za_B, zb_B)})``. Every video has its own
    shared fraction, so readings move with the videos that a chunk leaves out.
    """
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(NUM_VIDEOS), PAIRS_PER_VIDEO)
    n = len(groups)
    factors = rng.permutation(np.arange(n) % 2)
    video_share = rng.uniform(0.1, 0.9, size=NUM_VIDEOS)[groups]
    feats = {}
    for i, layer in enumerate(LAYERS):
        shared = np.where(factors == 0, video_share, 1 - video_share)[:, None] ** 0.5
        base = rng.normal(size=(n, C)) * (1 + i)
        za = shared * base + (1 - shared**2) ** 0.5 * rng.normal(size=(n, C))
        zb = shared * base + (1 - shared**2) ** 0.5 * rng.normal(size=(n, C))
        feats[layer] = (za, zb, za + 0.3 * rng.normal(size=(n, C)), zb + 0.3 * rng.normal(size=(n, C)))
    return groups, factors, feats


def read(groups, factors, feats, which: int, keep=None):
    """The estimator's reading of model A (which=0) or B (which=1), optionally on a subset of pairs."""
    est = StaticDynamicEstimator(num_chunks=K)
    m = np.ones(len(groups), bool) if keep is None else keep
    for layer, f in feats.items():
        za, zb = f[2 * which], f[2 * which + 1]
        est.update(za[m], zb[m], factors[m], layer=layer, groups=groups[m])
    return est.compute()


@pytest.fixture(scope="module")
def sim():
    return simulate_pairs(0)


@pytest.fixture(scope="module")
def reports(sim):
    groups, factors, feats = sim
    a = BiasReport.from_results(read(groups, factors, feats, 0), model_id="A", pair_settings={"fingerprint": FP})
    b = BiasReport.from_results(read(groups, factors, feats, 1), model_id="B", pair_settings={"fingerprint": FP})
    return a, b


def _value(results, layer, q):
    lb = results[layer]
    return 100 * lb.share[q.removeprefix("share_")] if q.startswith("share_") else getattr(lb, q)


def test_paired_interval_is_the_jackknife_of_the_difference(sim, reports):
    """Equal to a leave-one-chunk-out jackknife of A - B computed by hand from re-estimates without each chunk.

    A bug that pairs replicates of different chunks, uses the normal quantile, or divides by two
    independent errors fails here.
    """
    groups, factors, feats = sim
    a, b = reports
    comp = a.compare(b)
    assert comp.method == "paired" and comp.notes == [] and comp.only_in_a == comp.only_in_b == []
    chunks = groups % K
    loo = [
        (read(groups, factors, feats, 0, chunks != k), read(groups, factors, feats, 1, chunks != k)) for k in range(K)
    ]
    for layer in LAYERS:
        for q in QUANTITIES:
            d = np.array([_value(ra, layer, q) - _value(rb, layer, q) for ra, rb in loo])
            se = math.sqrt((K - 1) / K * ((d - d.mean()) ** 2).sum())
            est = _value(a.layers, layer, q) - _value(b.layers, layer, q)
            half = student_t.ppf(0.975, K - 1) * se
            iv = comp.layers[layer][q]
            assert iv.estimate == pytest.approx(est, rel=1e-12, abs=1e-12)
            assert iv.stderr == pytest.approx(se, rel=1e-9, abs=1e-12), (layer, q)
            assert (iv.low, iv.high) == pytest.approx((est - half, est + half), rel=1e-9, abs=1e-12)


def test_paired_interval_is_narrower_than_the_independent_one(reports):
    """Positively correlated readings of the same pairs: the paired interval is several times narrower."""
    a, b = reports
    paired = a.compare(b)
    b_other = BiasReport.from_dict({**b.to_dict(), "pair_settings": {"fingerprint": "cd" * 32}})
    indep = a.compare(b_other, independent=True)
    assert indep.method == "independent" and "differ" in indep.notes[0]
    for layer in LAYERS:
        for q in ("share_dynamic", "share_static", "s_dynamic", "s_static"):
            p, i = paired.layers[layer][q], indep.layers[layer][q]
            assert p.estimate == pytest.approx(i.estimate)
            assert (p.high - p.low) < 0.5 * (i.high - i.low), (layer, q)
            # independent errors: sqrt(se_A^2 + se_B^2)
            key = "percent_" + q.removeprefix("share_") if q.startswith("share_") else q
            se = math.hypot(a.layers[layer].intervals[key].stderr, b.layers[layer].intervals[key].stderr)
            assert i.stderr == pytest.approx(se)


def test_different_or_missing_fingerprints_are_refused(reports):
    a, b = reports
    other = BiasReport.from_dict({**b.to_dict(), "pair_settings": {"fingerprint": "cd" * 32}})
    with pytest.raises(PairSetMismatchError, match="pair sets differ.*--independent"):
        a.compare(other)
    bare = BiasReport.from_dict({**b.to_dict(), "pair_settings": {}})
    with pytest.raises(ValueError, match="report B has no pair-set fingerprint"):
        a.compare(bare)
    assert a.compare(bare, independent=True).method == "independent"
    with pytest.raises(ValueError, match="another BiasReport"):
        a.compare(b.to_dict())


def test_layers_are_matched_by_name(sim, reports):
    groups, factors, feats = sim
    a, _ = reports
    b_res = read(groups, factors, {"block_1": feats["block_1"]}, 1)
    b = BiasReport.from_results(b_res, model_id="B", pair_settings={"fingerprint": FP})
    comp = a.compare(b)
    assert list(comp.layers) == ["block_1"] and comp.only_in_a == ["block_0"] and comp.only_in_b == []
    assert any("only in A (not compared): block_0" in line for line in comp.table_lines())


def test_reference_deltas_are_paired_on_the_same_pairs(reports):
    """Model minus reference: paired when the reference carries the model's fingerprint, else independent."""
    a, b = reports
    comp = a.compare(b)
    rep = BiasReport.from_results(a.layers, model_id="A", pair_settings={"fingerprint": FP}, reference=b)
    assert rep.reference_info["pair_fingerprint"] == FP and rep.reference_pairing() == (True, "same pairs")
    deltas = rep.reference_deltas()
    for layer in LAYERS:
        d = deltas[layer]
        assert d["paired"] == 1.0
        for q in QUANTITIES:
            assert d[q] == pytest.approx(comp.layers[layer][q].estimate)
            assert (d[f"{q}_low"], d[f"{q}_high"]) == pytest.approx(
                (comp.layers[layer][q].low, comp.layers[layer][q].high)
            )
        assert d["z_s_dynamic"] == pytest.approx(d["s_dynamic"] / d["s_dynamic_stderr"])
    md = rep.to_markdown()
    assert "jackknife of the difference over the same chunks (paired)" in md
    # without a recorded reference fingerprint: independent errors, and the markdown says so
    unpaired = BiasReport.from_results(a.layers, model_id="A", pair_settings={"fingerprint": FP}, reference=b.layers)
    paired_flag, why = unpaired.reference_pairing()
    assert not paired_flag and "no pair-set fingerprint recorded for the reference" in why
    u = unpaired.reference_deltas()["block_1"]
    assert u["paired"] == 0.0
    assert (u["share_dynamic_high"] - u["share_dynamic_low"]) > 2 * (
        deltas["block_1"]["share_dynamic_high"] - deltas["block_1"]["share_dynamic_low"]
    )
    assert "independent standard errors (no pair-set fingerprint recorded for the reference)" in unpaired.to_markdown()


def test_comparison_json_is_deterministic_and_complete(reports):
    a, b = reports
    comp = a.compare(b)
    doc = json.loads(comp.to_json())
    assert comp.to_json() == a.compare(b).to_json()
    assert doc["schema"] == "hf-stadyn/bias-comparison" and doc["method"] == "paired"
    assert doc["a"] == {"model": "A", "fingerprint": FP} and doc["b"]["model"] == "B"
    row = {x["layer"]: x for x in doc["layers"]}["block_1"]
    iv = comp.layers["block_1"]["share_static"]
    assert row["share_static"] == {"delta": iv.estimate, "low": iv.low, "high": iv.high, "stderr": iv.stderr}


def test_old_reports_without_replicates_load_and_compare_independently(reports):
    """A schema-1 report (no replicates, no fingerprint, percent_* interval keys only) still loads."""
    a, b = reports
    old = b.to_dict()
    old["schema_version"] = 1
    old["pair_settings"] = {}
    for lb in old["layers"]:
        lb.pop("replicates", None)
        lb.pop("num_chunks_used", None)
        lb["intervals"] = {k: v for k, v in lb["intervals"].items() if not k.startswith("share_")}
    old_report = BiasReport.from_dict(old)
    assert old_report.schema_version == 1 and SCHEMA_VERSION >= 2
    comp = a.compare(old_report, independent=True)
    assert comp.method == "independent"
    assert math.isfinite(comp.layers["block_1"]["share_dynamic"].low)
    # even with the same fingerprint, a reading without replicates cannot be paired: it falls back and says so
    old["pair_settings"] = {"fingerprint": FP}
    comp = a.compare(BiasReport.from_dict(old))
    assert comp.layers["block_1"]["method"] == "independent" and "no jackknife replicates" in comp.notes[0]


# -- the CLI -------------------------------------------------------------------------------------------


@pytest.fixture()
def saved(tmp_path, reports):
    a, b = reports
    a.save(tmp_path / "a", figures=False)
    b.save(tmp_path / "b", figures=False)
    other = BiasReport.from_dict({**b.to_dict(), "pair_settings": {"fingerprint": "cd" * 32}})
    other.save(tmp_path / "other", figures=False)
    return tmp_path


def test_cli_compare_prints_paired_deltas_and_writes_json(saved, reports, capsys):
    a, b = reports
    out = saved / "cmp.json"
    rc = main(["compare", str(saved / "a"), str(saved / "b" / "report.json"), "--output", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "paired (jackknife of the difference over the same chunks)" in text
    iv = a.compare(b).layers["block_1"]["share_dynamic"]
    assert f"{iv.estimate:+.1f} [{iv.low:+.1f}, {iv.high:+.1f}]" in text
    assert json.loads(out.read_text()) == json.loads(a.compare(b).to_json())


def test_cli_compare_different_pairs_exit_2_unless_independent(saved, capsys):
    rc = main(["compare", str(saved / "a"), str(saved / "other")])
    err = capsys.readouterr().err
    assert rc == 2 and "pair sets differ" in err and "--independent" in err and len(err.strip().splitlines()) == 1
    rc = main(["compare", str(saved / "a"), str(saved / "other"), "--independent"])
    text = capsys.readouterr().out
    assert rc == 0 and "independent errors" in text and "note: the pair sets differ" in text


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "does not exist"),
        ("not_report", "not a hf-stadyn bias report"),
        ("bad_json", "not valid JSON"),
        ("output_dir", "is a folder"),
    ],
)
def test_cli_compare_bad_inputs_exit_2(saved, capsys, case, message):
    args = ["compare", str(saved / "a"), str(saved / "b")]
    if case == "missing":
        args[2] = str(saved / "nope.json")
    elif case == "not_report":
        (saved / "x.json").write_text(json.dumps({"schema": "something-else"}))
        args[2] = str(saved / "x.json")
    elif case == "bad_json":
        (saved / "y.json").write_text("{not json")
        args[2] = str(saved / "y.json")
    else:
        args += ["--output", str(saved)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
