"""One data pass for a model and its reference (docs/scaling.md "Reference in one pass"): probe_models sends every
batch of pairs through all models, each reading equals a separate probe() on the same pairs bit for bit, the pairs
are made once, and an interrupted run resumes to the same bits.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config
from hf_stadyn.pairs import ProbePairs
from hf_stadyn.probing.engine import probe, probe_models

torch.set_num_threads(1)

LAYERS = ["block_0", "pre_classifier"]


@pytest.fixture(autouse=True)
def _reset_accelerate():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _model(seed: int) -> StadynVideoMAEForVideoClassification:
    torch.manual_seed(seed)
    return StadynVideoMAEForVideoClassification(tiny_videomae_config(3, num_frames=4, image_size=32))


class _Counting(torch.utils.data.Dataset):
    """Pairs that count how often each is made (decode + style + shuffle in a real run); item ``stop_at``
    raises KeyboardInterrupt once."""

    def __init__(self, pairs, stop_at: int | None = None):
        self.pairs, self.stop_at, self.made = pairs, stop_at, 0

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        if i == self.stop_at:
            self.stop_at = None
            raise KeyboardInterrupt
        self.made += 1
        return self.pairs[i]


@pytest.fixture(scope="module")
def pairs() -> ProbePairs:
    clips = np.random.default_rng(1).integers(0, 255, size=(10, 4, 32, 32, 3), dtype=np.uint8)
    return ProbePairs(list(clips), num_pairs=40, seed=2)


def _same(a, b) -> None:
    assert list(a.layers) == list(b.layers)
    for name in a.layers:
        assert a.layers[name].to_dict() == b.layers[name].to_dict(), name


def test_one_pass_equals_separate_passes_and_makes_each_pair_once(pairs, tmp_path):
    """Bugs caught: the second model reading the first model's features (hooks left on, features dict shared),
    the reference fed another batch or another order, each model making its own pairs (twice the data work),
    settings or fingerprints of one model copied to the other."""
    model, reference, third = _model(0), _model(1), _model(2)
    kw = dict(batch_size=6, progress=False, cpu=True)
    counting = _Counting(pairs)
    both = probe_models({"model": model, "reference": reference, "third": third}, counting, LAYERS, **kw)
    assert counting.made == len(pairs)  # one data pass for three models
    assert list(both) == ["model", "reference", "third"]
    for name, m in (("model", model), ("reference", reference), ("third", third)):
        alone = probe(m, pairs, LAYERS, **kw)
        _same(both[name], alone)
        assert json.dumps({**both[name].settings}) == json.dumps(alone.settings)
    assert both["model"].settings["model_fingerprint"] != both["reference"].settings["model_fingerprint"]
    fps = {r.settings["pair_fingerprint"] for r in both.values()}
    assert len(fps) == 1  # the same pairs: the deltas pair by chunk


def test_one_pass_resumes_after_an_interruption(pairs, tmp_path):
    """Ctrl-C mid-run saves every model's state at one pair count (checkpoint_dir/<name>/); the resumed run gives
    the uninterrupted bits. Bug caught: one model saved after the batch and the other before (a resume then
    double-counts a batch for one of them), or a model's state written over another's."""
    model, reference = _model(0), _model(1)
    kw = dict(batch_size=4, progress=False, cpu=True)
    whole = probe_models({"model": model, "reference": reference}, pairs, LAYERS, **kw)
    ckpt = tmp_path / "state"
    with pytest.raises(KeyboardInterrupt):
        probe_models({"model": model, "reference": reference}, _Counting(pairs, stop_at=21), LAYERS,
                     checkpoint_dir=ckpt, **kw)  # fmt: skip
    done = {json.loads((ckpt / n / "probe_state_rank0.json").read_text())["done"] for n in ("model", "reference")}
    assert done == {20}
    resumed = probe_models({"model": model, "reference": reference}, pairs, LAYERS, checkpoint_dir=ckpt,
                           resume=True, **{**kw, "batch_size": 3})  # fmt: skip
    for name in whole:
        _same(resumed[name], whole[name])
        assert json.dumps(resumed[name].settings) == json.dumps(whole[name].settings)
