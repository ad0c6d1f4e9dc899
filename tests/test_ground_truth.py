"""Ground truth: a motion-trained model reads more dynamic, an appearance-trained one more static.

Reduced version of scripts/ground_truth_validation.py (whose full table, with TimeSformer, is in the
README). The motion-trained tiny VideoMAE is the embedded default (trained by
scripts/train_default_model.py with the validation recipe: learning motion from scratch needs 6000 clips
x 8 epochs, too long for the suite); the appearance-trained one is trained here. Both are probed on the
same pairs, with the output-level shuffle check of docs/method.md §8.
"""

from __future__ import annotations

import pytest
import torch

from hf_stadyn.models.auto import load_model
from hf_stadyn.training.validation import probe_clip_pairs, read_trained_model, reference_reading, train_and_probe


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(2)
    pairs = probe_clip_pairs(800, seed=0, num_clips=200)
    out = {
        "motion": read_trained_model(load_model(), "videomae", "motion", num_test=400, num_pairs=800, pairs=pairs),
        "appearance": train_and_probe("videomae", "appearance", seed=0, num_train=1500, num_test=400, epochs=4,
                                      num_pairs=800, pairs=pairs),
    }  # fmt: skip
    out["init"] = reference_reading("videomae", pairs, 800)
    return out


def test_both_models_learned_their_task(runs):
    assert runs["motion"].accuracy > 0.8
    assert runs["appearance"].accuracy > 0.8


def test_last_block_separates_with_non_overlapping_intervals(runs):
    m, a = runs["motion"], runs["appearance"]
    last = m.last_layer
    lm, la = m.layers[last], a.layers[last]
    assert lm.percent["dynamic"] > la.percent["dynamic"]
    assert la.percent["static"] > lm.percent["static"]
    assert lm.intervals["percent_dynamic"].low > la.intervals["percent_dynamic"].high
    assert la.intervals["percent_static"].low > lm.intervals["percent_static"].high
    assert lm.s_dynamic > la.s_dynamic and la.s_static > lm.s_static


def test_motion_model_moves_away_from_initialisation(runs):
    last = runs["motion"].last_layer
    init = runs["init"][last]
    assert runs["motion"].layers[last].intervals["percent_dynamic"].low > init.intervals["percent_dynamic"].high
    # An untrained network reads "maximally static" on the default styles. Not because mean pooling ignores
    # frame order: order-sensitive pooling reads the same, while mild styles read near-equal shares
    # (docs/ground_truth.md table 3, docs/method.md §10). Strong styles decorrelate a dynamic pair's
    # random features; a shuffle changes little.
    assert init.category_counts["static"] >= 0.9 * init.num_channels


def test_shuffle_sensitivity(runs):
    assert runs["motion"].shuffle_drop > 0.3
    assert runs["appearance"].shuffle_drop < 0.1
