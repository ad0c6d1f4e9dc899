"""The sequential stopping rule (docs/method.md §5): its looks and quantile, the coverage of stopped intervals
(simulated chunk statistics, no model), and the engine stopping at a look with numbers equal to a plain run of
that many pairs, for any batch size and after an interruption and resume.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_stadyn.metric.stats import t_quantile
from hf_stadyn.metric.stopping import StoppingRule, simulate_stopping
from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config
from hf_stadyn.pairs import ProbePairs
from hf_stadyn.probing.engine import probe

torch.set_num_threads(1)

LAYERS = ["block_1", "pre_classifier"]


@pytest.fixture(autouse=True)
def _reset_accelerate():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_looks_are_a_fixed_geometric_grid_and_the_quantile_is_bonferroni_over_them():
    """Bugs caught: looks that depend on the data or the batch size, a last look short of max_pairs, the ordinary
    t quantile (a naive peek) instead of the one at 1 - alpha / L."""
    rule = StoppingRule(target_ci=1.0, max_pairs=3000)
    assert rule.looks() == [200, 300, 450, 680, 1020, 1520, 2280, 3000]
    assert rule.look_confidence == pytest.approx(1 - 0.05 / 8)
    assert rule.quantile(10) == pytest.approx(t_quantile(1 - 0.05 / 8, 9))
    assert rule.quantile(10) > 1.5 * t_quantile(0.95, 9)
    assert StoppingRule(target_ci=1.0, max_pairs=100).looks() == [100]  # fewer pairs than min_pairs: one look
    for bad in (0, -1, 100, float("nan")):
        with pytest.raises(ValueError, match="target_ci"):
            StoppingRule(target_ci=bad, max_pairs=3000)
    with pytest.raises(ValueError, match="growth"):
        StoppingRule(target_ci=1.0, max_pairs=3000, growth=1.0)


def test_stopped_intervals_cover_at_least_93_percent():
    """200 simulated runs (independent pairs, 8 channels with known scores) that mostly stop before their last
    look: the sequential interval reported at the stop holds the true share in >= 93 % of the cases (the union
    bound promises 95 %), and so does the ordinary 95 % interval of the pairs used.

    Bug caught: deciding with the ordinary quantile (the sequential interval is then the naive peek's, whose
    coverage falls below the nominal level) or with a quantile not inflated over the looks."""
    rule = StoppingRule(target_ci=4.0, max_pairs=900, min_pairs=60, growth=1.5)
    res = simulate_stopping(rule, replications=200, num_channels=6, seed=1)
    assert res["stopped_early"] >= 0.8, res  # the rule really stopped early (else this tests a fixed-n interval)
    assert res["mean_pairs"] < 900, res
    assert res["coverage_sequential"] >= 0.93, res
    assert res["coverage_ordinary"] >= 0.90, res


def _model(seed: int = 0) -> StadynVideoMAEForVideoClassification:
    torch.manual_seed(seed)
    return StadynVideoMAEForVideoClassification(tiny_videomae_config(3, num_frames=4, image_size=32))


def _pairs(num_pairs: int = 120) -> ProbePairs:
    clips = np.random.default_rng(0).integers(0, 255, size=(12, 4, 32, 32, 3), dtype=np.uint8)
    return ProbePairs(list(clips), num_pairs=num_pairs, seed=3)


class _Interrupt(torch.utils.data.Dataset):
    """The same pairs, but fetching item ``at`` raises KeyboardInterrupt (a Ctrl-C mid-run)."""

    def __init__(self, pairs, at: int):
        self.pairs, self.at = pairs, at

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        if i == self.at:
            raise KeyboardInterrupt
        return self.pairs[i]


def test_engine_stops_at_a_look_with_the_numbers_of_a_plain_run_and_resumes(tmp_path):
    """A target met at a middle look: the run stops there (the report says why and when), its readings equal a
    plain run of that many pairs bit for bit, for batch sizes that do not divide the looks, and an interrupted
    run resumes to the same stop; a resume with another target is refused.

    Bugs caught: a look taken mid-batch (another batch size stops elsewhere or reads other numbers), pairs past
    the stop counted, a resume that skips or redoes the look, a target not in the resume identity."""
    model, pairs = _model(), _pairs()
    rule = StoppingRule(target_ci=0.01, max_pairs=4, min_pairs=24, growth=1.5)  # never met: every look recorded
    kw = dict(batch_size=4, progress=False, cpu=True)
    full = probe(model, pairs, LAYERS, target_ci=rule, **kw)
    hist = full.settings["stopping"]["history"]
    assert [h["num_pairs"] for h in hist] == [30, 40, 60, 90, 120]
    assert full.settings["stopping"]["stopped"]["reason"] == "max pairs reached, target not met"
    widths = [max(h["model"]["half_widths"].values()) for h in hist]
    target = widths[2] * 1.0001
    expect = next(i for i, w in enumerate(widths) if w <= target)
    assert expect < len(hist) - 1
    rule = StoppingRule(target_ci=target, max_pairs=4, min_pairs=24, growth=1.5)

    stopped = probe(model, pairs, LAYERS, target_ci=rule, **{**kw, "batch_size": 7})
    n = hist[expect]["num_pairs"]
    info = stopped.settings["stopping"]
    assert info["stopped"] == {"reason": "target met", "look": expect, "num_pairs": n}
    assert stopped.num_pairs == n and stopped.settings["num_pairs"] == n
    assert info["target_ci"] == target and info["looks"] == [30, 40, 60, 90, 120]
    assert max(info["history"][-1]["model"]["half_widths"].values()) <= target
    plain = probe(model, pairs, LAYERS, num_pairs=n, **kw)
    for name in LAYERS:
        assert stopped.layers[name].to_dict() == plain.layers[name].to_dict(), name
        # the ordinary 95 % interval is narrower than the sequential one the rule checked
        lb = stopped.layers[name]
        assert lb.intervals["share_static"].high - lb.intervals["share_static"].estimate <= target
    assert stopped.settings["pair_fingerprint"] == plain.settings["pair_fingerprint"]
    assert plain.settings["stopping"] is None

    ckpt = tmp_path / "state"
    with pytest.raises(KeyboardInterrupt):
        probe(model, _Interrupt(pairs, n - 3), LAYERS, target_ci=rule, checkpoint_dir=ckpt, **kw)
    assert 0 < json.loads((ckpt / "probe_state_rank0.json").read_text())["done"] < n
    with pytest.raises(ValueError, match="stopping"):
        other = StoppingRule(target_ci=target * 2, max_pairs=4, min_pairs=24, growth=1.5)
        probe(model, pairs, LAYERS, target_ci=other, checkpoint_dir=ckpt, resume=True, **kw)
    resumed = probe(model, pairs, LAYERS, target_ci=rule, checkpoint_dir=ckpt, resume=True, **{**kw, "batch_size": 5})
    assert json.dumps(resumed.settings) == json.dumps(stopped.settings)
    for name in LAYERS:
        assert resumed.layers[name].to_dict() == stopped.layers[name].to_dict(), name
    # resuming the finished (stopped) state redoes the look at its pair count and stops again
    again = probe(model, pairs, LAYERS, target_ci=rule, checkpoint_dir=ckpt, resume=True, **kw)
    assert json.dumps(again.settings) == json.dumps(stopped.settings)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--target_ci", "0"], "--target_ci must be"), (["--target_ci", "150"], "--target_ci must be"),
     (["--stop_layers", "block_3"], "--stop_layers needs --target_ci")],
)  # fmt: skip
def test_stadyn_probe_refuses_bad_stopping_options_in_one_line(args, message, tmp_path, capsys):
    """Checked before any model or video is loaded: exit 2 and one line naming the option."""
    from hf_stadyn.cli import main

    assert main(["probe", *args, "--output_dir", str(tmp_path / "out"), "--disable_tqdm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()
