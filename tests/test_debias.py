"""StaticDropout: the module's statistics, the static-set selection from real estimator output, and
the config plumbing (install, record in the config, save/load)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hf_stadyn.debias import (
    StaticDropout,
    StaticDropoutConfig,
    apply_static_dropout,
    get_static_dropout,
    remove_static_dropout,
    select_static_channels,
    set_static_channels,
    static_dropout_from_config,
)
from hf_stadyn.metric import StaticDynamicEstimator

# ---------------------------------------------------------------------------- the module


def _train_out(sd: StaticDropout, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    sd.train()
    torch.manual_seed(seed)
    return sd(x)


def test_zeroing_rate_is_p_on_static_channels_only():
    static = [1, 5, 7, 12]
    p = 0.3
    sd = StaticDropout(16, p=p, static_channels=static)
    x = torch.rand(6000, 3, 16) + 0.5  # strictly positive: a zero can only come from the mask
    out = _train_out(sd, x)
    zero = out == 0
    rate = zero[..., static].float().mean().item()
    # 6000 samples x 4 channels Bernoulli(0.3): std of the mean is ~0.003.
    assert abs(rate - p) < 0.015
    others = [c for c in range(16) if c not in static]
    assert torch.equal(out[..., others], x[..., others])  # other channels untouched, exactly
    # every static channel is dropped at about the same rate (independent per channel)
    per_channel = zero[:, 0, static].float().mean(0)
    assert (per_channel - p).abs().max().item() < 0.04


def test_mask_is_per_sample_constant_over_positions_and_scaled():
    p = 0.5
    sd = StaticDropout(8, p=p, static_channels=[0, 2, 3])
    x = torch.rand(64, 10, 8) + 0.5
    out = _train_out(sd, x, seed=1)
    ratio = out / x  # (B, N, C) the applied factor
    # the same factor at all N positions of a sample
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio))
    # kept static channels scaled by exactly 1 / (1 - p), dropped ones are 0
    vals = torch.unique(ratio[..., [0, 2, 3]].round(decimals=5))
    assert set(vals.tolist()) == {0.0, 2.0}
    # masks differ between samples (not one mask for the batch)
    assert len({tuple(r.tolist()) for r in ratio[:, 0, [0, 2, 3]]}) > 1


def test_channel_first_maps():
    sd = StaticDropout(6, p=0.5, static_channels=[4], channel_dim=1)
    x = torch.rand(200, 6, 2, 3, 3) + 0.5
    out = _train_out(sd, x, seed=2)
    ratio = out / x
    assert torch.allclose(ratio, ratio[:, :, :1, :1, :1].expand_as(ratio))  # constant over T, H, W
    assert torch.equal(out[:, :4], x[:, :4]) and torch.equal(out[:, 5:], x[:, 5:])
    assert 0.35 < (out[:, 4] == 0).float().mean().item() < 0.65


def test_identity_in_eval_mode_exactly():
    sd = StaticDropout(8, p=0.7, static_channels=[0, 1, 2], p_other=0.4).eval()
    x = torch.randn(4, 5, 8)
    assert sd(x) is x


def test_p_other_is_ordinary_dropout_on_the_other_channels():
    sd = StaticDropout(10, p=0.5, static_channels=[0, 1], p_other=0.2)
    x = torch.rand(3000, 4, 10) + 0.5
    out = _train_out(sd, x, seed=3)
    other = out[..., 2:]
    assert abs((other == 0).float().mean().item() - 0.2) < 0.01
    kept = other[other != 0] / x[..., 2:][other != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.8))
    # element-wise: the other channels' mask varies over positions
    assert not torch.equal(other[:, :1] == 0, other[:, 1:2] == 0)
    # the static channels still get exactly the per-sample mask with rate p
    st = out[..., :2] / x[..., :2]
    assert torch.allclose(st, st[:, :1].expand_as(st))
    assert abs((st[:, 0] == 0).float().mean().item() - 0.5) < 0.03


def test_gradient_flows_only_through_kept_channels():
    sd = StaticDropout(4, p=0.5, static_channels=[3])
    x = torch.ones(50, 4, requires_grad=True)
    out = _train_out(sd, x, seed=4)
    out.sum().backward()
    assert torch.equal(x.grad[:, :3], torch.ones(50, 3))
    assert torch.equal(x.grad[:, 3], out[:, 3].detach())  # 0 or 2


def test_static_set_state_dict_roundtrip_with_size_change():
    a = StaticDropout(12, p=0.5, static_channels=[3, 1, 9])
    assert a.static_channels.tolist() == [1, 3, 9]  # stored sorted
    b = StaticDropout(12, p=0.5)  # empty set
    b.load_state_dict(a.state_dict())
    assert b.static_channels.tolist() == [1, 3, 9]
    assert b.static_mask().nonzero().flatten().tolist() == [1, 3, 9]
    a.set_static_channels([])
    b.load_state_dict(a.state_dict())
    assert b.num_static == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_channels": 0}, "num_channels"),
        ({"num_channels": 4, "p": 1.0}, "p must be in"),
        ({"num_channels": 4, "p": -0.1}, "p must be in"),
        ({"num_channels": 4, "p_other": 1.5}, "p_other"),
        ({"num_channels": 4, "static_channels": [4]}, "0..3"),
        ({"num_channels": 4, "static_channels": [1, 1]}, "repeats"),
        ({"num_channels": 4, "static_channels": [0.5]}, "integers"),
    ],
)
def test_bad_module_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StaticDropout(**kwargs)


def test_wrong_channel_count_is_reported():
    sd = StaticDropout(8, p=0.5, static_channels=[0]).train()
    with pytest.raises(ValueError, match="C = 8"):
        sd(torch.ones(2, 3, 7))


# ---------------------------------------------------------------------------- selection


def _estimate_with_known_channels(seed: int = 0):
    """Pairs whose channels 0-5 are static with decreasing strength, 6-15 dynamic (docs/method.md §1).

    In a static pair (same appearance, shuffled frames) a static channel is shared by both members and a
    dynamic channel is not; in a dynamic pair (same motion, other style) the reverse. Channel c < 6 shares
    a fraction w_c of its variance (w decreasing with c), so rho_S - rho_D ranks 0, 1, ..., 5.
    """
    rng = np.random.default_rng(seed)
    n, c = 1200, 16
    w = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5] + [0.9] * 10)
    factors = rng.integers(0, 2, size=n)  # 1 static, 0 dynamic
    shared = rng.normal(size=(n, c))
    za = np.sqrt(w) * shared + np.sqrt(1 - w) * rng.normal(size=(n, c))
    zb_shared = np.sqrt(w) * shared + np.sqrt(1 - w) * rng.normal(size=(n, c))
    zb_indep = rng.normal(size=(n, c))
    is_static_ch = np.arange(c) < 6
    share = np.where(factors[:, None] == 1, is_static_ch[None, :], ~is_static_ch[None, :])
    zb = np.where(share, zb_shared, zb_indep)
    est = StaticDynamicEstimator()
    est.update(za.astype(np.float32), zb.astype(np.float32), factors, layer="pre_classifier")
    return est.compute()["pre_classifier"]


def test_top_k_selection_from_estimator_output():
    lb = _estimate_with_known_channels()
    # the estimator sees channels 0-5 as static, the rest as dynamic
    assert (lb.rho_static[:6] > 0.4).all() and (lb.rho_dynamic[6:] > 0.8).all()
    top4 = select_static_channels(lb, StaticDropoutConfig(num_static=4))
    assert top4.tolist() == [0, 1, 2, 3]  # the four strongest, by rho_S - rho_D
    quarter = select_static_channels(lb, StaticDropoutConfig(top_k_fraction=0.25))
    assert quarter.tolist() == [0, 1, 2, 3]  # 25 % of 16
    cat = select_static_channels(lb, StaticDropoutConfig(selection="category", threshold=0.5))
    assert set(cat.tolist()) <= set(range(6)) and {0, 1, 2, 3} <= set(cat.tolist())
    capped = select_static_channels(lb, StaticDropoutConfig(selection="category", threshold=0.5, num_static=2))
    assert capped.tolist() == [0, 1]
    assert select_static_channels(lb, StaticDropoutConfig(selection="none")).size == 0
    # the old field name keeps working for one release, with a warning, and means the same threshold
    with pytest.warns(DeprecationWarning, match="threshold"):
        old = StaticDropoutConfig(selection="category", tau=0.9)
    assert old.threshold == 0.9 and "tau" not in old.to_dict()
    with pytest.warns(DeprecationWarning):
        assert StaticDropoutConfig.from_dict({"selection": "category", "tau": 0.9}).threshold == 0.9
    strict = select_static_channels(lb, old)
    assert set(strict.tolist()) <= set(cat.tolist())  # a higher threshold can only shrink the category


def test_random_selection_is_seeded_and_same_size():
    lb = _estimate_with_known_channels()
    cfg = StaticDropoutConfig(selection="random", num_static=4, seed=7)
    a = select_static_channels(lb, cfg)
    b = select_static_channels(lb, cfg)
    assert a.tolist() == b.tolist() and len(a) == 4 and len(set(a.tolist())) == 4
    draws = {tuple(select_static_channels(lb, cfg, rng=np.random.default_rng(s)).tolist()) for s in range(10)}
    assert len(draws) > 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"p": 1.0}, "p must be"),
        ({"selection": "best"}, "selection"),
        ({"top_k_fraction": 0.0}, "top_k_fraction"),
        ({"num_static": 0}, "num_static"),
        ({"num_probe_pairs": 2}, "num_probe_pairs"),
        ({"refresh_every": -1}, "refresh_every"),
        ({"layer": ""}, "layer"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StaticDropoutConfig(**kwargs)


def test_config_dict_roundtrip_and_unknown_field():
    cfg = StaticDropoutConfig(p=0.3, layer="block_1", num_static=5, static_channels=[1, 2])
    assert StaticDropoutConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        StaticDropoutConfig.from_dict({"p": 0.3, "rate": 0.2})


# ---------------------------------------------------------------------------- plumbing


def _tiny_plain_videomae(num_labels: int = 3):
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    cfg = VideoMAEConfig(
        image_size=16, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=num_labels,
    )  # fmt: skip
    torch.manual_seed(0)
    return VideoMAEForVideoClassification(cfg).eval()


@pytest.mark.parametrize("layer", ["pre_classifier", "videomae.encoder.layer.1"])
def test_apply_on_a_plain_transformers_model(layer):
    model = _tiny_plain_videomae()
    x = torch.randn(4, 4, 3, 16, 16)
    with torch.no_grad():
        ref = model(pixel_values=x).logits
    sd = apply_static_dropout(model, StaticDropoutConfig(p=0.5, layer=layer), static_channels=list(range(16)))
    assert get_static_dropout(model) is sd and sd.num_channels == 32
    assert model.config.static_dropout["static_channels"] == list(range(16))
    with torch.no_grad():
        assert torch.equal(model(pixel_values=x).logits, ref)  # eval: identity
        model.train()
        torch.manual_seed(0)
        out = model(pixel_values=x).logits
    assert not torch.allclose(out, ref)
    set_static_channels(model, [0])
    assert model.config.static_dropout["static_channels"] == [0]
    remove_static_dropout(model)
    assert get_static_dropout(model) is None and not getattr(model.config, "static_dropout", None)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(pixel_values=x).logits, ref)


def test_block_hook_uses_one_mask_for_all_tokens():
    model = _tiny_plain_videomae()
    seen = {}
    block = model.videomae.encoder.layer[0]
    apply_static_dropout(model, StaticDropoutConfig(p=0.5, layer="videomae.encoder.layer.0"), static_channels=[2, 5])
    h0 = block.register_forward_hook(lambda m, i, o: seen.__setitem__("out", o))
    raw = {}
    h1 = block.register_forward_pre_hook(lambda m, a: raw.__setitem__("x", a[0]))
    model.train()
    torch.manual_seed(1)
    model(pixel_values=torch.randn(16, 4, 3, 16, 16))
    h0.remove(), h1.remove()
    out = seen["out"]  # after our hook (hooks run in registration order)
    # dropped channels are zero at every token of a sample, kept ones nowhere
    zero = out[..., [2, 5]] == 0
    assert torch.equal(zero.all(dim=1), zero.any(dim=1))
    assert zero.any() and not zero.all()


def test_unknown_layer_is_reported():
    model = _tiny_plain_videomae()
    with pytest.raises(ValueError, match="not a module"):
        apply_static_dropout(model, StaticDropoutConfig(layer="block_99"))


def test_from_config_rebuilds_and_save_pretrained_keeps_plain_loadable(tmp_path):
    from transformers import AutoModelForVideoClassification

    model = _tiny_plain_videomae()
    apply_static_dropout(model, StaticDropoutConfig(p=0.4, num_static=3), static_channels=[4, 8, 9])
    model.save_pretrained(tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "static" in k]  # the set lives in config.json  # noqa: SIM118 (safe_open is not iterable)
    loaded = AutoModelForVideoClassification.from_pretrained(tmp_path)
    assert loaded.config.static_dropout["static_channels"] == [4, 8, 9]
    sd = static_dropout_from_config(loaded)
    assert sd is not None and sd.static_channels.tolist() == [4, 8, 9] and sd.p == 0.4
    x = torch.randn(2, 4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(pixel_values=x).logits, loaded.eval()(pixel_values=x).logits)
    assert static_dropout_from_config(_tiny_plain_videomae()) is None


def test_stadyn_model_feature_dropout_slot(tmp_path):
    from hf_stadyn import models

    model = models.StadynVideoMAEForVideoClassification(
        models.tiny_videomae_config(num_labels=3, num_frames=4, image_size=16, num_hidden_layers=2)
    ).eval()
    sd = apply_static_dropout(model, StaticDropoutConfig(p=0.5), static_channels=[1, 2])
    assert model.feature_dropout is sd
    assert model.config.stadyn["static_dropout"]["static_channels"] == [1, 2]
    model.save_pretrained(tmp_path)
    import json

    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["stadyn"]["static_dropout"]["static_channels"] == [1, 2]
    assert cfg["stadyn"]["static_dropout"]["p"] == 0.5
    loaded = models.StadynVideoMAEForVideoClassification.from_pretrained(tmp_path)
    sd2 = static_dropout_from_config(loaded)
    assert loaded.feature_dropout is sd2 and sd2.static_channels.tolist() == [1, 2]
    # a block layer by its probe name
    apply_static_dropout(loaded, StaticDropoutConfig(p=0.5, layer="block_1"), static_channels=[0])
    assert isinstance(loaded.feature_dropout, nn.Identity)
    assert loaded.static_dropout is get_static_dropout(loaded)


def test_timesformer_slots_and_block_hook():
    from hf_stadyn import models

    model = models.StadynTimesformerForVideoClassification(
        models.tiny_timesformer_config(num_labels=3, num_frames=4, image_size=16, hidden_size=32,
                                       num_hidden_layers=2, num_attention_heads=2)
    ).eval()  # fmt: skip
    x = torch.randn(2, 4, 3, 16, 16)
    with torch.no_grad():
        ref = model(pixel_values=x).logits
    for layer in ("pre_classifier", "block_1"):  # TimeSformer blocks return tuples; CLS token included
        apply_static_dropout(model, StaticDropoutConfig(p=0.5, layer=layer), static_channels=list(range(16)))
        with torch.no_grad():
            assert torch.equal(model(pixel_values=x).logits, ref)
            model.train()
            torch.manual_seed(0)
            assert not torch.allclose(model(pixel_values=x).logits, ref)
            model.eval()
