"""The debiasing suite of hf_stadyn.debias (docs/debiasing.md): static-pair decorrelation (cosine,
cosine_squared, cross_cov), the shuffle-uniform penalty, one shared extra forward, StillMix, the settings
in the checkpoint config, VideoMAE and TimeSformer, block layers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_stadyn import models
from hf_stadyn.debias import (
    DecorrelationConfig,
    ShuffledForward,
    ShuffleUniformPenalty,
    StaticPairDecorrelation,
    StillMixAugment,
    debias_loss_terms,
    decorrelation_penalty,
    get_debias_config,
    static_pair_score,
)
from hf_stadyn.metric.functional import static_dynamic_bias
from hf_stadyn.synth import SynthConfig
from hf_stadyn.training import AugmentedDataset, ClipTensorDataset, synth_datasets, train_classification
from hf_stadyn.training.classification import ClassificationTrainingConfig

SYNTH16 = SynthConfig(num_frames=4, size=16, speed=1.0, motions=("left", "right", "up"), num_appearances=3)


def _tiny(arch: str = "videomae", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if arch == "videomae":
        cfg = models.tiny_videomae_config(
            num_labels=3, num_frames=4, image_size=16, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64,
        )  # fmt: skip
        return models.StadynVideoMAEForVideoClassification(cfg).train()
    cfg = models.tiny_timesformer_config(
        num_labels=3, num_frames=4, image_size=16, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    return models.StadynTimesformerForVideoClassification(cfg).train()


def _inputs(seed: int = 0, b: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(b, 4, 3, 16, 16, generator=g), "labels": torch.arange(b) % 3}


def _step(model, terms, inputs, step=0):
    """What StadynTrainer.compute_loss does: prepare, main forward, terms."""
    for t in terms:
        t.prepare(model, inputs, step)
    out = model(**inputs)
    return out, [t(model, inputs, out) for t in terms]


# ---------------------------------------------------------------------- penalties
def test_cosine_form_is_nonnegative_and_its_gradient_pushes_copies_apart():
    """Bug caught: an unclamped cosine goes negative (anti-aligning the copies, the loophole of the
    issue); a sign error would pull the copies together (cosine rises after a gradient step)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 8, generator=g)
    b = (a + 0.3 * torch.randn(16, 8, generator=g)).requires_grad_(True)
    for form in ("cosine", "cosine_squared"):
        assert float(decorrelation_penalty(a, -a, form)) >= 0.0  # anti-aligned copies: no reward
    assert float(decorrelation_penalty(a, -a, "cosine")) == 0.0
    pen = decorrelation_penalty(a, b, "cosine")
    assert float(pen.detach()) > 0.5
    pen.backward()
    with torch.no_grad():
        b2 = b - 0.5 * b.grad
    after = decorrelation_penalty(a, b2, "cosine")
    assert float(after) < float(pen.detach())
    cos_before = torch.nn.functional.cosine_similarity(a, b.detach()).mean()
    cos_after = torch.nn.functional.cosine_similarity(a, b2).mean()
    assert float(cos_after) < float(cos_before)


def test_cross_cov_equals_the_estimators_static_score():
    """The differentiable s_S equals hf_stadyn.metric's s_S on the same (clip, shuffled) features
    (the pairs given as static pairs and, to keep V the same, once more as dynamic pairs)."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(20, 12, generator=g, dtype=torch.float64)
    b = 0.6 * a + 0.8 * torch.randn(20, 12, generator=g, dtype=torch.float64)
    a[:, 3] = 2.0  # a dead channel, as the estimator's 1e-10 rule handles
    b[:, 3] = 2.0
    ours = float(static_pair_score(a, b))
    ref = static_dynamic_bias(
        torch.cat([a, a]).numpy(), torch.cat([b, b]).numpy(), ["dynamic"] * 20 + ["static"] * 20
    )  # fmt: skip
    assert ours == pytest.approx(ref.s_static, rel=1e-9, abs=1e-12)
    assert float(decorrelation_penalty(a, b, "cross_cov")) == pytest.approx(max(0.0, ours), rel=1e-6)
    assert float(decorrelation_penalty(a, -a, "cross_cov")) == 0.0  # clamped at 0


# ---------------------------------------------------------------------- the shared forward
@pytest.mark.parametrize("arch", ["videomae", "timesformer"])
def test_one_extra_forward_per_step_for_both_terms_and_features_match_a_direct_forward(arch):
    """Bug caught: each term running its own shuffled forward (2 extra), or the clip's features taken
    from the wrong forward (they must equal the probe's pre_classifier features of the clips)."""
    model = _tiny(arch)
    calls = []
    model.register_forward_hook(lambda m, a, o: calls.append(1))
    terms = debias_loss_terms(DecorrelationConfig(weight=1.0, seed=5), shuffle_uniform=1.0)
    assert len(terms) == 2 and terms[0].forward is terms[1].forward
    inputs = _inputs()
    torch.manual_seed(0)
    out, values = _step(model, terms, inputs)
    assert len(calls) == 2  # the main forward + one shuffled forward
    assert all(v.ndim == 0 and torch.isfinite(v) for v in values)
    res = terms[0].forward(model, inputs, out)  # cached: no third forward
    assert len(calls) == 2
    perm = res.permutations
    assert not (perm == torch.arange(4)).all(dim=1).any()  # never the identity
    model.eval()
    with torch.no_grad():
        direct = model.pooled_features(inputs["pixel_values"], layers=["pre_classifier"])["pre_classifier"]
        shuffled = torch.take_along_dim(inputs["pixel_values"], perm.view(6, 4, 1, 1, 1).expand(6, 4, 3, 16, 16), 1)
        direct_s = model.pooled_features(shuffled, layers=["pre_classifier"])["pre_classifier"]
    torch.testing.assert_close(res.clip["pre_classifier"].detach(), direct, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(res.shuffled["pre_classifier"].detach(), direct_s, rtol=1e-4, atol=1e-5)
    _step(model.train(), terms, _inputs(1), step=1)
    assert len(calls) == 4 + 2  # the two eval-mode probe forwards above + 2 for the next step
    assert terms[0].forward.extra_forwards == 2


def test_permutations_are_seeded_by_seed_and_step():
    a, b, c = ShuffledForward(seed=3), ShuffledForward(seed=3), ShuffledForward(seed=4)
    model = _tiny()
    inputs = _inputs()
    for sf in (a, b, c):
        sf.require("pre_classifier")
        sf.prepare(model, inputs, step=7)
    assert torch.equal(a.permutations(32, 4), b.permutations(32, 4))
    assert not torch.equal(a.permutations(32, 4), c.permutations(32, 4))
    b.prepare(model, _inputs(2), step=8)
    assert not torch.equal(a.permutations(32, 4), b.permutations(32, 4))


def test_shuffled_grad_false_leaves_no_gradient_through_the_shuffled_branch():
    """With shuffled_grad=False the gradient is that of penalty(z(clip), constant z(shuffled));
    with True it differs (the bug: a forgotten detach makes both the same)."""
    grads = {}
    for flag in (False, True):
        model = _tiny(seed=2)
        term = StaticPairDecorrelation(DecorrelationConfig(weight=1.0, shuffled_grad=flag, form="cosine_squared"))
        inputs = _inputs(3)
        torch.manual_seed(0)
        out, (value,) = _step(model, [term], inputs)
        model.zero_grad()
        value.backward()
        grads[flag] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        if not flag:
            res = term.forward(model, inputs, out)
            assert not res.shuffled["pre_classifier"].requires_grad  # the extra forward ran without a graph
            # the same gradient from a fresh forward of the clips against the stored shuffled features
            model.zero_grad()
            seen = []
            handle = model.feature_dropout.register_forward_pre_hook(lambda m, a, seen=seen: seen.append(a[0]))
            model(pixel_values=inputs["pixel_values"])
            handle.remove()
            decorrelation_penalty(seen[0], res.shuffled["pre_classifier"], "cosine_squared").backward()
            ref = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            torch.testing.assert_close(grads[False], ref, rtol=1e-4, atol=1e-7)
    assert not torch.allclose(grads[False], grads[True], atol=1e-7)


@pytest.mark.parametrize("arch", ["videomae", "timesformer"])
def test_block_layer_features_are_mean_pooled_tokens(arch):
    model = _tiny(arch)
    term = StaticPairDecorrelation(DecorrelationConfig(layer="block_1", form="cross_cov"))
    inputs = _inputs(4)
    out, (value,) = _step(model, [term], inputs)
    res = term.forward(model, inputs, out)
    model.eval()
    with torch.no_grad():
        direct = model.pooled_features(inputs["pixel_values"], layers=["block_1"])["block_1"]
    torch.testing.assert_close(res.clip["block_1"].detach(), direct, rtol=1e-4, atol=1e-5)
    assert float(value.detach()) >= 0.0
    value.backward()  # differentiable
    with pytest.raises(ValueError, match="block_9"):
        _step(model.train(), [StaticPairDecorrelation(DecorrelationConfig(layer="block_9"))], inputs)


def test_shuffle_uniform_is_zero_at_uniform_logits_and_terms_need_prepare():
    model = _tiny()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
    term = ShuffleUniformPenalty(2.0)
    _, (value,) = _step(model, [term], _inputs())
    assert abs(float(value)) < 1e-6
    fresh = StaticPairDecorrelation(DecorrelationConfig())
    with pytest.raises(ValueError, match="prepare"):
        fresh(model, _inputs(), None)


def test_config_round_trip_and_bad_values():
    cfg = DecorrelationConfig(weight=2.0, form="cross_cov", layer="block_3", shuffled_grad=False, seed=4)
    assert DecorrelationConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in ({"weight": 0}, {"form": "dot"}, {"layer": ""}, {"shuffled_grad": "no"}, {"seed": -1}):
        with pytest.raises(ValueError, match="DecorrelationConfig"):
            DecorrelationConfig(**bad)
    with pytest.raises(ValueError, match="unknown"):
        DecorrelationConfig.from_dict({"lambda": 1.0})
    with pytest.raises(ValueError, match="shuffle_uniform"):
        debias_loss_terms(None, -1.0)
    assert debias_loss_terms(None, 0.0) == []


# ---------------------------------------------------------------------- StillMix
def _clips(n: int = 5) -> ClipTensorDataset:
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (n, 4, 8, 8, 3), generator=g, dtype=torch.uint8)
    return ClipTensorDataset(frames, torch.arange(n) % 3)


def test_stillmix_keeps_labels_blends_another_clips_frame_and_is_seeded():
    """Each output is (1 - l) x + l * (frame f of clip j != i, repeated over T), l <= max_mix; labels
    unchanged; the same seed gives the same clips, another seed or epoch others."""
    data = _clips()
    aug = AugmentedDataset(data, StillMixAugment(max_mix=0.5, seed=1))
    mix = aug.augment
    for i in range(len(data)):
        item = aug[i]
        assert int(item["label"]) == int(data[i]["label"])
        d = mix.draw(i, 0, num_frames=4)
        assert d.applied and d.other != i and 0 <= d.frame < 4 and 0.0 <= d.mix <= 0.5
        x = data[i]["frames"].numpy().astype(np.float32)
        still = data[d.other]["frames"].numpy()[d.frame].astype(np.float32)
        expect = np.clip(np.rint((1 - d.mix) * x + d.mix * still[None]), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(item["frames"].numpy(), expect)
    again = AugmentedDataset(data, StillMixAugment(max_mix=0.5, seed=1))
    other = AugmentedDataset(data, StillMixAugment(max_mix=0.5, seed=2))
    assert all(torch.equal(aug[i]["frames"], again[i]["frames"]) for i in range(5))
    assert not all(torch.equal(aug[i]["frames"], other[i]["frames"]) for i in range(5))
    aug.set_epoch(1)
    assert not all(torch.equal(aug[i]["frames"], again[i]["frames"]) for i in range(5))
    never = AugmentedDataset(data, StillMixAugment(max_mix=0.5, p=0.0))
    assert torch.equal(never[2]["frames"], data[2]["frames"])
    with pytest.raises(ValueError, match="max_mix"):
        StillMixAugment(max_mix=0.0)
    with pytest.raises(ValueError, match=">= 2"):
        AugmentedDataset(_clips(1), StillMixAugment())[0]


# ---------------------------------------------------------------------- training and the checkpoint config
@pytest.mark.parametrize("arch", ["videomae", "timesformer"])
def test_training_logs_terms_and_records_settings_plain_transformers_loads(tmp_path, arch):
    """train_classification with decorrelation + shuffle-uniform + StillMix: the terms are logged under
    their names, the settings land in config.json (and survive from_pretrained), and plain transformers
    loads the checkpoint with the same logits."""
    from transformers import AutoConfig, AutoModelForVideoClassification

    train, evals, names = synth_datasets("trap", num_train=24, num_eval=6, config=SYNTH16, seed=0)
    dec = DecorrelationConfig(weight=2.0, form="cosine", shuffled_grad=False, seed=3)
    cfg = ClassificationTrainingConfig(
        output_dir=str(tmp_path / "run"), model=arch, num_frames=4, image_size=16, hidden_size=32, num_layers=2,
        num_heads=2, epochs=1, batch_size=12, decorrelation=dec.to_dict(), shuffle_uniform=0.5, augment="stillmix",
        stillmix_max=0.3, track_bias=False, progress=False, seed=3,
    )  # fmt: skip
    result = train_classification(cfg, train, evals, label_names=names)
    logged = [e for e in result.log_history if "loss" in e]
    assert logged and "loss_decorrelation" in logged[-1] and "loss_shuffle_uniform" in logged[-1]
    saved = json.loads((result.model_dir / "config.json").read_text())
    debias = saved["stadyn"]["debias"]
    assert debias["decorrelation"] == dec.to_dict()
    assert debias["shuffle_uniform"] == 0.5 and debias["augment"] == "stillmix" and debias["stillmix_max"] == 0.3
    ours = models.auto.load_model(result.model_dir)
    assert get_debias_config(ours) == debias
    plain = AutoModelForVideoClassification.from_pretrained(result.model_dir)
    assert AutoConfig.from_pretrained(result.model_dir).model_type in ("videomae", "timesformer")
    x = _inputs(0, b=2)["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(pixel_values=x).logits, ours.eval()(pixel_values=x).logits)


def test_resumed_run_with_decorrelation_and_stillmix_gives_the_same_weights(tmp_path):
    """Killed after step 3 of 6 and resumed: bit-identical to the uninterrupted run. Bug caught: frame
    permutations (or StillMix draws) tied to a counter that restarts at 0 on resume instead of the step."""
    from safetensors.torch import load_file
    from transformers import TrainerCallback, TrainingArguments

    from hf_stadyn.training import StadynArguments, build_classifier, run_classification

    train, evals, names = synth_datasets("trap", num_train=24, num_eval=4, config=SYNTH16, seed=1)

    def targs(out):
        return TrainingArguments(str(out), num_train_epochs=2, per_device_train_batch_size=8, learning_rate=1e-3,
                                 use_cpu=True, report_to="none", disable_tqdm=True, save_strategy="steps",
                                 save_steps=1, logging_steps=1, seed=2, eval_strategy="no",
                                 dataloader_pin_memory=False)  # fmt: skip

    def model():
        cfg = ClassificationTrainingConfig(output_dir="unused", num_frames=4, image_size=16, hidden_size=32,
                                           num_layers=2, num_heads=2, seed=2)  # fmt: skip
        return build_classifier(cfg, len(names), names)

    def opts():
        return StadynArguments(decorrelate=2.0, decorrelate_layer="block_1", shuffle_uniform=0.5,
                               augment="stillmix", track_bias=False)  # fmt: skip

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 4:
                raise KeyboardInterrupt("killed")

    full = run_classification(targs(tmp_path / "a"), train, evals, model=model(), options=opts(), label_names=names)
    with pytest.raises(KeyboardInterrupt):
        run_classification(targs(tmp_path / "b"), train, evals, model=model(), options=opts(), label_names=names,
                           callbacks=[Crash()])  # fmt: skip
    rest = run_classification(targs(tmp_path / "b"), train, evals, model=model(), options=opts(), label_names=names,
                              resume_from_checkpoint=True)  # fmt: skip
    assert rest.steps_done == full.steps_done == 6
    wa, wb = load_file(full.model_dir / "model.safetensors"), load_file(rest.model_dir / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    la = [(h["step"], h["loss_decorrelation"]) for h in full.log_history if "loss" in h]
    lb = [(h["step"], h["loss_decorrelation"]) for h in rest.log_history if "loss" in h and h["step"] > 3]
    assert lb == la[3:]


def test_plain_transformers_model_through_hooks_and_config_debias(tmp_path):
    """A plain transformers VideoMAE (no hf_stadyn probe specs): the classifier input and a block are found
    through hooks; the settings go to ``config.debias`` and survive save_pretrained / from_pretrained."""
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    from hf_stadyn.debias import record_debias_config

    torch.manual_seed(0)
    cfg = VideoMAEConfig(num_labels=3, num_frames=4, image_size=16, patch_size=8, tubelet_size=2, hidden_size=32,
                         num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)  # fmt: skip
    model = VideoMAEForVideoClassification(cfg).train()
    assert not hasattr(model.config, "stadyn")
    for layer in ("pre_classifier", "block_1"):
        term = StaticPairDecorrelation(DecorrelationConfig(layer=layer))
        inputs = _inputs(5)
        out, (value,) = _step(model, [term], inputs)
        feats = term.forward(model, inputs, out)
        assert feats.clip[layer].shape == (6, 32) and torch.isfinite(value)
        value.backward()
        term.forward.remove()
    record_debias_config(model, {"decorrelation": DecorrelationConfig(weight=3.0).to_dict()})
    model.save_pretrained(tmp_path / "plain")
    back = VideoMAEForVideoClassification.from_pretrained(tmp_path / "plain")
    assert get_debias_config(back)["decorrelation"]["weight"] == 3.0
    record_debias_config(back, None)
    assert get_debias_config(back) is None
