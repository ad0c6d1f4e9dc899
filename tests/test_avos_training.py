"""AVOS data, training, evaluation and probing on tiny StaDyn-Synth sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_stadyn.models.configuration_avos import tiny_avos_config
from hf_stadyn.training.avos import (
    AVOSFrames,
    AVOSTrainingArguments,
    avos_frames_from_video,
    avos_inputs,
    build_avos_frames,
    build_avos_model,
    evaluate_avos,
    predict_avos,
    probe_avos,
    train_avos,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def frames() -> AVOSFrames:
    return build_avos_frames(6, seed=0)


def test_build_frames_shapes_and_seeding(frames):
    assert len(frames) == 6 * 7  # 8-frame clips, the last frame has no forward flow
    assert frames.rgb.shape == frames.flow.shape == (42, 64, 64, 3) and frames.mask.shape == (42, 64, 64)
    assert frames.clip_id.tolist() == [i for i in range(6) for _ in range(7)]
    assert 0.01 < float(frames.mask.float().mean()) < 0.3  # one object per frame
    again = build_avos_frames(2, seed=0)
    assert torch.equal(again.rgb, frames.rgb[:14]) and torch.equal(again.flow, frames.flow[:14])
    camo = build_avos_frames(2, seed=0, camouflage=True)
    assert torch.equal(camo.mask, frames.mask[:14])  # same trajectories ...
    assert not torch.equal(camo.rgb, frames.rgb[:14])  # ... other object texture
    # flow is white (no motion) away from the object and coloured on it
    sat = frames.flow.float().std(-1)  # grey/white pixels have equal channels
    on, off = sat[frames.mask].mean(), sat[~frames.mask].mean()
    assert on > 3 * off
    with pytest.raises(ValueError, match="num_clips"):
        build_avos_frames(0)


def test_frames_from_video_validation():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, size=(3, 16, 16, 3), dtype=np.uint8)
    out = avos_frames_from_video(video, np.zeros((3, 16, 16), bool), clip_id=5)
    assert len(out) == 2 and out.clip_id.tolist() == [5, 5]
    with pytest.raises(ValueError, match="masks"):
        avos_frames_from_video(video, np.zeros((3, 8, 8), bool))
    with pytest.raises(ValueError, match="uint8"):
        avos_frames_from_video(video.astype(float), np.zeros((3, 16, 16), bool))


def test_inputs_are_normalised():
    rgb = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    pv, fv = avos_inputs(rgb, rgb, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    assert pv.shape == (1, 3, 2, 2) and torch.allclose(pv, torch.full_like(pv, 2.0))
    with pytest.raises(ValueError):
        avos_inputs(rgb.float(), rgb, [0.5] * 3, [0.5] * 3)


def _eval_loss(model, data):
    pv, fv = avos_inputs(data.rgb, data.flow, model.config.image_mean, model.config.image_std)
    with torch.no_grad():
        return float(model.eval()(pixel_values=pv, flow_values=fv, labels=data.mask[:, None].float()).loss)


def test_short_training_lowers_the_loss_and_is_seeded(frames):
    model = build_avos_model(tiny_avos_config("gated", "gated_bidirectional"), seed=0)
    before = _eval_loss(model, frames)
    args = AVOSTrainingArguments(epochs=6, batch_size=14, learning_rate=5e-3, seed=0)
    res = train_avos(model, frames, args)
    after = _eval_loss(model, frames)
    assert res.num_steps == 18 and len(res.epoch_losses) == 6
    assert after < 0.6 * before, (before, after)
    assert res.epoch_losses[-1] < res.epoch_losses[0]
    # same seeds, same run; another shuffling seed, another run
    runs = []
    for seed in (0, 0, 1):
        m2 = build_avos_model(tiny_avos_config("gated", "gated_bidirectional"), seed=0)
        runs.append(train_avos(m2, frames, AVOSTrainingArguments(epochs=1, batch_size=14, seed=seed)).step_losses)
    assert runs[0] == runs[1] != runs[2]
    with pytest.raises(ValueError, match="epochs"):
        train_avos(m2, frames, AVOSTrainingArguments(epochs=0))


def test_evaluate_scores_a_perfect_and_a_useless_model(frames):
    model = build_avos_model(tiny_avos_config(), seed=0)
    probs = predict_avos(model, frames, batch_size=16)
    assert probs.shape == (42, 64, 64) and float(probs.min()) >= 0 and float(probs.max()) <= 1
    scores = evaluate_avos(model, frames)
    assert scores.num_frames == 42 and scores.num_clips == 6
    assert 0 <= scores.J <= 1 and 0 <= scores.F <= 1 and 0 <= scores.auc <= 1

    class Oracle(torch.nn.Module):  # predicts the true mask: J = F = AUC = 1
        config = model.config

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))
            self.i = 0

        def forward(self, pixel_values, flow_values):
            b = pixel_values.shape[0]
            m = frames.mask[self.i : self.i + b, None].float()
            self.i += b
            return type("O", (), {"logits": (m * 2 - 1) * 30})()

    perfect = evaluate_avos(Oracle(), frames, batch_size=10)
    assert perfect.J == perfect.F == perfect.auc == perfect.mIoU == 1.0


def test_probe_separates_the_streams(frames):
    """Untrained, no cross-connections: the appearance stream is static, the motion stream dynamic."""
    model = build_avos_model(tiny_avos_config("concat", "none"), seed=0)
    res = probe_avos(model, frames, num_pairs=96, batch_size=32, seed=0)
    assert set(res) == set(model.probe_layers())
    for i in (1, 3, 5):
        app, mot = res[f"app_stage{i}"], res[f"mot_stage{i}"]
        assert app.num_pairs["dynamic"] + app.num_pairs["static"] == 96
        # static pairs share the RGB frame, so every appearance channel has rho_S = 1 ...
        assert np.allclose(app.rho_static[app.rho_static != 0], 1.0)
        assert app.s_static > 0.5 > app.s_dynamic
        # ... and dynamic pairs share the flow image, so motion channels have rho_D = 1
        assert np.allclose(mot.rho_dynamic[mot.rho_dynamic != 0], 1.0)
        # the two-level jitter (docs/method.md §1.2) is mild (|hue shift| 0.15 turns on average, factor
        # near 1 often), so jittered flow images still co-vary: motion reads dynamic-leaning, not s_S < 0.5
        assert mot.s_dynamic > 0.5 and mot.s_dynamic > mot.s_static and mot.s_static < app.s_static
    # same seed, same pairs, same numbers
    again = probe_avos(model, frames, num_pairs=96, batch_size=16, seed=0, layers=["fusion2"])
    assert list(again) == ["fusion2"] and again["fusion2"].s_dynamic == pytest.approx(res["fusion2"].s_dynamic)
    with pytest.raises(ValueError, match="unknown probe layer"):
        probe_avos(model, frames, num_pairs=8, layers=["block_0"])
    with pytest.raises(ValueError, match="num_pairs"):
        probe_avos(model, frames)


def test_probe_with_the_two_stream_pair_dataset():
    from hf_stadyn.pairs import TwoStreamPairDataset
    from hf_stadyn.synth.config import SynthConfig
    from hf_stadyn.synth.dataset import SynthDataset

    ds = SynthDataset("motion", 3, SynthConfig(size=64, num_frames=6, speed=3.0), seed=0)
    pairs = TwoStreamPairDataset([ds[i]["frames"].numpy() for i in range(3)], seed=0)
    model = build_avos_model(tiny_avos_config("convex", "bidirectional"), seed=0)
    res = probe_avos(model, pairs, batch_size=8, layers=["mot_stage2", "fusion5"])
    assert sum(res["fusion5"].num_pairs.values()) == len(pairs) == 18
    assert res["mot_stage2"].s_dynamic > res["mot_stage2"].s_static


def test_pairs_from_frames_carry_their_source_clip(frames):
    """Intervals resample source clips (docs/method.md §5): every pair made from AVOSFrames names the clip
    of its frame as video_index (fails if it were the pair index or missing)."""
    from hf_stadyn.training.avos import _pairs_from_frames

    pairs = _pairs_from_frames(frames, 40, seed=1)
    clips = set()
    for i in range(len(pairs)):
        item = pairs[i]
        same = (frames.flow.reshape(len(frames), -1) == torch.as_tensor(item["flow_a"]).reshape(1, -1)).all(1)
        assert int(item["video_index"]) in set(frames.clip_id[same].tolist())
        clips.add(int(item["video_index"]))
        if item["factor"] == 1:
            assert item["jitter_order"] in ("hue,saturation", "saturation,hue")
    assert len(clips) > 1 and clips <= set(frames.clip_id.tolist())
