"""Unit masking: channel ranking from the estimator, the masking hook, and the drop against random
channels on a constructed case where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_stadyn.metric.estimator import compute_from_arrays
from hf_stadyn.probing.unit_masking import (
    channel_scores,
    mask_channels,
    random_channels,
    select_channels,
    unit_masking,
)

C = 16
DYN = [0, 1, 2, 3]  # channels that carry motion
STAT = [4, 5, 6, 7]  # channels that carry appearance


def _constructed_layer_bias(seed=0, n=400):
    """Pairs where channels 0-3 follow the dynamic factor, 4-7 the static one, the rest is noise."""
    rng = np.random.default_rng(seed)
    factors = np.array([0, 1] * (n // 2))
    za = rng.normal(size=(n, C))
    zb = rng.normal(size=(n, C))
    shared = rng.normal(size=(n, C))
    dyn = factors == 0
    for c in DYN:
        za[dyn, c] = zb[dyn, c] = shared[dyn, c]  # dynamic pairs share motion channels
    for c in STAT:
        za[~dyn, c] = zb[~dyn, c] = shared[~dyn, c]  # static pairs share appearance channels
    return compute_from_arrays(za, zb, factors, layer="feat")


def test_constructed_layer_has_the_planted_categories():
    lb = _constructed_layer_bias()
    assert set(np.flatnonzero(lb.categories == "dynamic")) == set(DYN)
    assert set(np.flatnonzero(lb.categories == "static")) == set(STAT)
    assert sorted(select_channels(lb, "dynamic", 0.25)) == DYN
    assert sorted(select_channels(lb, "static", 0.25)) == STAT
    score = channel_scores(lb, "static")
    assert np.allclose(score, lb.rho_static - lb.rho_dynamic)
    # within_category keeps only channels of that category (here all 4 of them, even for a larger K)
    assert sorted(select_channels(lb, "dynamic", 0.5, within_category=True)) == DYN
    assert len(select_channels(lb, "dynamic", 0.5)) == 8
    with pytest.raises(ValueError, match="fraction"):
        select_channels(lb, "dynamic", 0.0)
    with pytest.raises(ValueError, match="category"):
        select_channels(lb, "motion", 0.1)


def test_mask_channels_hook_is_scoped_and_not_in_place():
    layer = torch.nn.Identity()
    x = torch.ones(2, 4, 3, 3)
    with mask_channels(layer, [1, 3]):
        y = layer(x)
    assert torch.equal(y[:, [0, 2]], x[:, [0, 2]]) and not y[:, [1, 3]].any()
    assert bool((x == 1).all())  # the input was not edited
    assert torch.equal(layer(x), x)  # hook removed
    with pytest.raises(ValueError, match="out of range"), mask_channels(layer, [7]):
        layer(x)


class _Readout(torch.nn.Module):
    """features (B, C) -> layer (identity, maskable) -> score = mean of the motion channels."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Identity()

    def forward(self, z):
        return self.layer(z)[:, DYN].sum(1)


def test_unit_masking_drops_more_than_random_on_a_constructed_case():
    lb = _constructed_layer_bias()
    model = _Readout()
    z = torch.ones(8, C)

    def metric(m):
        return float(m(z).mean())  # 4.0 with every channel, less when motion channels are zeroed

    res = unit_masking(model, "layer", lb, metric, category="dynamic", fraction=0.25, num_random=8, seed=0)
    assert res.baseline == 4.0 and sorted(res.channels) == DYN
    assert res.masked == 0.0 and res.drop == 4.0
    # a random set of 4 of 16 channels hits on average one motion channel
    assert 0 < res.random_drop_mean < 2.5
    assert len(res.random_scores) == 8 and res.random_drop_std > 0
    stat = unit_masking(model, "layer", lb, metric, category="static", fraction=0.25, num_random=3, seed=0)
    assert stat.drop == 0.0 < res.drop
    # seeded: same seed, same random sets; another seed, other sets
    again = unit_masking(model, "layer", lb, metric, category="dynamic", fraction=0.25, num_random=8, seed=0)
    other = unit_masking(model, "layer", lb, metric, category="dynamic", fraction=0.25, num_random=8, seed=1)
    assert again.random_channels == res.random_channels != other.random_channels
    d = res.to_dict()
    assert d["num_channels_masked"] == 4 and d["drop"] == 4.0


class _Features(torch.nn.Module):
    """Pair features through a maskable identity layer: (za, zb) -> the layer's outputs."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Identity()

    def forward(self, z):
        return self.layer(z)


def test_masking_static_units_lowers_the_static_score_more_than_random_units():
    """What docs/method.md §7's unit masking predicts, on the constructed layer, over 5 seeds: zeroing the
    4 top static channels takes s_S of the layer from about 4/16 (4 of 16 unit-variance channels shared by
    static pairs) to about 0; zeroing 4 random channels leaves it near 4/16 on average (numerator and total
    variance shrink together), so the static drop exceeds every random drop; zeroing the top dynamic
    channels raises s_S (4/12), a negative drop.

    Bugs caught: the ranking sign flipped (static masking would then raise s_S), the hook masking another
    dim or nothing, random sets that overlap the selected set by construction, drops computed as
    masked - baseline.
    """
    factors = np.array([0, 1] * 100)
    for seed in range(5):
        lb = _constructed_layer_bias(seed=seed)
        rng = np.random.default_rng(100 + seed)
        za, zb = rng.normal(size=(200, C)), rng.normal(size=(200, C))
        shared = rng.normal(size=(200, C))
        for c in STAT:
            za[factors == 1, c] = zb[factors == 1, c] = shared[factors == 1, c]
        for c in DYN:
            za[factors == 0, c] = zb[factors == 0, c] = shared[factors == 0, c]
        model = _Features()

        def s_static(m, za=za, zb=zb):
            with torch.no_grad():
                a, b = m(torch.from_numpy(za)).numpy(), m(torch.from_numpy(zb)).numpy()
            return float(compute_from_arrays(a, b, factors).s_static)

        st = unit_masking(model, "layer", lb, s_static, category="static", fraction=0.25, num_random=10, seed=seed)
        assert sorted(st.channels) == STAT
        assert 0.18 < st.baseline < 0.32 and abs(st.masked) < 0.05  # ~4/16 -> ~0
        assert st.drop > max(st.baseline - np.asarray(st.random_scores))
        assert abs(st.random_drop_mean) < 0.08  # random units: s_S about unchanged on average
        dy = unit_masking(model, "layer", lb, s_static, category="dynamic", fraction=0.25, num_random=1, seed=seed)
        assert sorted(dy.channels) == DYN and dy.masked > dy.baseline + 0.03  # ~4/12 > 4/16


def test_random_channels_are_distinct_and_seeded():
    a = random_channels(10, 4, np.random.default_rng(0))
    assert len(set(a.tolist())) == 4 and a.min() >= 0 and a.max() < 10
    assert np.array_equal(a, random_channels(10, 4, np.random.default_rng(0)))
    with pytest.raises(ValueError):
        random_channels(3, 4, np.random.default_rng(0))


def test_unit_masking_on_an_avos_fusion_layer():
    """On an AVOS fusion layer the reported scores are exactly those of the model with the reported channels
    zeroed at the ``fusion2`` tap, recomputed with a plain torch forward hook, and the channels are the top
    2 of rho_D - rho_S ranked by hand (docs/method.md §4, §7).

    Bugs caught: masking another level or the stream stage instead of the fusion output, masking along H or
    W instead of C, masked channels that differ from the reported ones (or random sets from the recorded
    ones), the baseline taken with a hook still on, hooks left on the model.
    """
    from hf_stadyn.models.configuration_avos import tiny_avos_config
    from hf_stadyn.models.modeling_avos import AVOSModel

    torch.manual_seed(0)
    model = AVOSModel(tiny_avos_config("gated", "gated_bidirectional")).eval()
    g = torch.Generator().manual_seed(0)
    x, f = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 64, 64, generator=g)
    rng = np.random.default_rng(0)
    za, zb = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    lb = compute_from_arrays(za, zb, [0, 1] * 20, layer="fusion2")

    @torch.no_grad()
    def metric(m):
        return float(torch.sigmoid(m(pixel_values=x, flow_values=f).logits).mean())

    def zeroed(channels):
        def hook(mod, inp, out):
            out = out.clone()
            out[:, list(channels)] = 0
            return out

        handle = model.taps["fusion2"].register_forward_hook(hook)
        try:
            return metric(model)
        finally:
            handle.remove()

    baseline = metric(model)
    res = unit_masking(model, "fusion2", lb, metric, category="dynamic", fraction=0.25, num_random=2, seed=0)
    by_hand = np.argsort(-(lb.rho_dynamic - lb.rho_static), kind="stable")[:2]
    assert res.channels == [int(i) for i in by_hand]
    assert res.baseline == baseline == metric(model)  # hooks are gone afterwards
    assert res.masked == zeroed(res.channels) and res.masked != baseline
    assert len(res.random_channels) == 2
    for chans, score in zip(res.random_channels, res.random_scores, strict=True):
        assert len(set(chans)) == 2 and score == zeroed(chans)
    assert res.drop == baseline - res.masked
    with pytest.raises(ValueError, match="unknown probe layer"):
        unit_masking(model, "fusion9", lb, metric)
