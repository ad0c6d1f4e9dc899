"""Bias tracking during training: probe pairs, the refresh schedule, JSON lines + figure, and the
transformers Trainer callback / accelerate hook firing on schedule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_stadyn import models
from hf_stadyn.debias import (
    BiasTracker,
    ProbePairs,
    StaticDropoutCallback,
    StaticDropoutConfig,
    StaticDropoutHook,
    apply_static_dropout,
    get_static_dropout,
    measure_bias,
)


def _clips(n: int = 12, t: int = 4, size: int = 16, seed: int = 0) -> list[np.ndarray]:
    """Moving squares on noise: enough structure for the estimator to read something."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        clip = rng.integers(0, 80, size=(t, size, size, 3), dtype=np.uint8)
        x0, y0 = rng.integers(0, size - 6, size=2)
        col = rng.integers(120, 255, size=3)
        for f in range(t):
            x = (x0 + 2 * f * (1 if i % 2 else -1)) % (size - 5)
            clip[f, y0 : y0 + 5, x : x + 5] = col
        out.append(clip)
    return out


def _model(seed: int = 0):
    torch.manual_seed(seed)
    cfg = models.tiny_videomae_config(num_labels=3, num_frames=4, image_size=16, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=64)  # fmt: skip
    return models.StadynVideoMAEForVideoClassification(cfg)


def test_probe_pairs_are_fixed_and_balanced():
    clips = _clips()
    a, b = ProbePairs(clips, 40, seed=3), ProbePairs(clips, 40, seed=3, cache=False)
    for i in (0, 7, 39):
        assert torch.equal(a[i]["clip_a"], b[i]["clip_a"]) and torch.equal(a[i]["clip_b"], b[i]["clip_b"])
        assert a[i]["factor"] == b[i]["factor"]
    factors = [a[i]["factor"] for i in range(40)]
    assert 8 <= sum(factors) <= 32  # 50/50 draws
    st = next(i for i in range(40) if a[i]["factor"] == 1)
    # a static pair: same frames, another order
    fa, fb = a[st]["clip_a"].reshape(4, -1), a[st]["clip_b"].reshape(4, -1)
    assert not torch.equal(fa, fb) and sorted(map(tuple, fa.tolist())) == sorted(map(tuple, fb.tolist()))
    with pytest.raises(ValueError, match="num_pairs"):
        ProbePairs(clips, 2)


def _direct_scores(za: np.ndarray, zb: np.ndarray, static: np.ndarray) -> dict[str, object]:
    """docs/method.md §3-4 written out in NumPy: s_F, rho_F per channel, floored dims % (float64)."""
    z = np.concatenate([za, zb])
    total = ((z - z.mean(0)) ** 2).mean(0).sum()
    out: dict[str, object] = {}
    for name, sel in (("dynamic", ~static), ("static", static)):
        a, b = za[sel], zb[sel]
        m = 0.5 * (a.mean(0) + b.mean(0))
        cov = ((a - m) * (b - m)).mean(0)
        out[f"s_{name}"] = cov.sum() / total
        out[f"rho_{name}"] = cov / np.concatenate([a, b]).var(0)
    e = np.exp(np.array([out["s_dynamic"], out["s_static"], 1.0]) - 1.0)
    pi = e / e.sum()
    c = za.shape[1]
    d_d, d_s = int(np.floor(pi[0] * c)), int(np.floor(pi[1] * c))
    out["percent"] = {"dynamic": round(100 * d_d / c, 1), "static": round(100 * d_s / c, 1),
                      "residual": round(100 * (c - d_d - d_s) / c, 1)}  # fmt: skip
    return out


def test_measure_bias_matches_a_direct_estimate():
    """measure_bias equals an estimate made without the probing engine: plain torch forward hooks on
    ``videomae.encoder.layer[1]`` (raw block output, mean over the N tokens: the ``tokens`` layout of
    docs/method.md §2) and on the input of ``feature_dropout`` (the pooled, fc_norm-ed classifier input),
    members a and b run in separate forwards, fed to a NumPy re-implementation of §3-4. Batch size irrelevant.

    Bugs caught: a layer name bound to the wrong module (block_1 read at block_0, after a final LayerNorm,
    or pre_classifier after the dropout slot), pooling over the wrong axis or the first token only,
    members a/b or the factor labels misaligned with the pairs (e.g. factors shifted by one batch),
    clips prepared differently from ``prepare_pixel_values``, the model left in train mode.
    """
    model = _model().eval()
    pairs = ProbePairs(_clips(), 24, seed=0)
    r8 = measure_bias(model, pairs, ["pre_classifier", "block_1"], batch_size=8)
    r5 = measure_bias(model, pairs, ["pre_classifier", "block_1"], batch_size=5)
    assert set(r8) == {"pre_classifier", "block_1"}
    assert model.training is False

    feats: dict[str, list[torch.Tensor]] = {"block_1": [], "pre_classifier": []}
    hooks = [
        model.videomae.encoder.layer[1].register_forward_hook(
            lambda mod, inp, out: feats["block_1"].append(out.detach().double().mean(1))
        ),
        model.feature_dropout.register_forward_hook(
            lambda mod, inp, out: feats["pre_classifier"].append(inp[0].detach().double())
        ),
    ]
    items = [pairs[i] for i in range(len(pairs))]
    try:
        with torch.no_grad():
            for key in ("clip_a", "clip_b"):
                model(pixel_values=model.prepare_pixel_values(torch.stack([it[key] for it in items])))
    finally:
        for h in hooks:
            h.remove()
    static = np.array([it["factor"] == 1 for it in items])
    assert 4 <= static.sum() <= 20  # both factors present
    for name in ("block_1", "pre_classifier"):
        za, zb = (f.numpy() for f in feats[name])
        assert za.shape == (24, 32)
        ref = _direct_scores(za, zb, static)
        for res in (r8[name], r5[name]):
            assert res.num_channels == 32
            # float32 features, two different batchings: agreement to ~1e-6 relative
            assert res.s_static == pytest.approx(ref["s_static"], rel=1e-4, abs=1e-6), name
            assert res.s_dynamic == pytest.approx(ref["s_dynamic"], rel=1e-4, abs=1e-6), name
            np.testing.assert_allclose(res.rho_static, ref["rho_static"], rtol=1e-3, atol=1e-5)
            np.testing.assert_allclose(res.rho_dynamic, ref["rho_dynamic"], rtol=1e-3, atol=1e-5)
            assert res.percent == ref["percent"], name
        assert r8[name].s_static == pytest.approx(r5[name].s_static, abs=1e-9)
    # the two layers really differ (a test reading one module twice would pass the checks above only once)
    assert abs(r8["block_1"].s_static - r8["pre_classifier"].s_static) > 1e-3


def test_tracker_refreshes_on_schedule_and_writes_history(tmp_path):
    model = _model()
    cfg = StaticDropoutConfig(
        p=0.5, num_static=8, refresh_every=3, refresh_until=6, num_probe_pairs=16, probe_batch_size=8
    )
    apply_static_dropout(model, cfg)
    model.train()
    tracker = BiasTracker(ProbePairs(_clips(), 16, seed=1), static_dropout=cfg, every=2, output_dir=tmp_path)
    hook = StaticDropoutHook(tracker)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = model.prepare_pixel_values(np.stack(_clips(6)))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    hook.on_train_begin(model)
    assert get_static_dropout(model).num_static == 8  # selected before the first step
    fired = []
    for step in range(1, 10):
        model(pixel_values=x, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
        if hook.on_step_end(model, step, epoch=step / 9) is not None:
            fired.append(step)
    assert model.training  # measurements restore train mode
    # measured every 2 steps and at the refresh steps 3 and 6 (refresh_until = 6)
    assert fired == [2, 3, 4, 6, 8]
    refreshed = [r.step for r in tracker.history if r.static_dropout["refreshed"]]
    assert refreshed == [0, 3, 6]
    lines = [json.loads(s) for s in (tmp_path / "bias_history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 2, 3, 4, 6, 8]
    rec = lines[-1]
    assert set(rec["layers"]) == {"pre_classifier", "block_1"}
    assert rec["static_dropout"]["num_static"] == 8 and rec["static_dropout"]["kept"] == 8  # unchanged after 6
    pct = rec["layers"]["pre_classifier"]["percent"]
    assert 0 < pct["dynamic"] < 100 and 0 < pct["static"] < 100
    # the config records the current set
    assert model.config.stadyn["static_dropout"]["static_channels"] == rec["static_dropout"]["static_channels"]
    png = hook.on_train_end()
    assert png == tmp_path / "bias_history.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # metrics for trackers
    m = tracker.history[-1].metrics()
    assert m["bias/static_dropout/num_static"] == 8 and "bias/block_1/dynamic_pct" in m
    # resume: the history comes back from the state dict
    t2 = BiasTracker(tracker.pairs, static_dropout=cfg, every=2, output_dir=tmp_path / "b")
    t2.load_state_dict(tracker.state_dict())
    assert [r.step for r in t2.history] == [0, 2, 3, 4, 6, 8]


def test_tracking_without_static_dropout_needs_no_static_dropout(tmp_path):
    model = _model()
    tracker = BiasTracker(ProbePairs(_clips(), 12, seed=0), every=1, output_dir=tmp_path, layers=["block_0"])
    rec = tracker.refresh(model, 0)
    assert rec.static_dropout is None and list(rec.layers) == ["block_0"]
    with pytest.raises(ValueError, match="apply_static_dropout"):
        BiasTracker(tracker.pairs, static_dropout=StaticDropoutConfig(num_probe_pairs=12)).refresh(model, 0)


def test_trainer_callback_fires_on_schedule(tmp_path):
    from transformers import Trainer, TrainingArguments

    model = _model()
    cfg = StaticDropoutConfig(p=0.5, num_static=4, refresh_every=2, num_probe_pairs=12, probe_batch_size=12)
    apply_static_dropout(model, cfg)
    clips = _clips(12)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return {"pixel_values": model.prepare_pixel_values(clips[i])[0], "labels": i % 3}

    tracker = BiasTracker(ProbePairs(clips, 12, seed=0), static_dropout=cfg, output_dir=tmp_path / "bias")
    cb = StaticDropoutCallback(tracker)
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=5, learning_rate=1e-3,
        report_to=[], save_strategy="no", logging_steps=100, use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=DS(), callbacks=[cb])
    cb.attach(trainer)
    trainer.train()
    assert [r.step for r in tracker.history] == [0, 2, 4]
    logged = [h for h in trainer.state.log_history if "bias/static_dropout/num_static" in h]
    assert len(logged) == 3  # reached the trainer's log (and so its trackers)
    assert (tmp_path / "bias" / "bias_history.png").is_file()
