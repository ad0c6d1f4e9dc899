"""VideoMAE / TimeSformer wrappers: upstream checkpoint compatibility both ways, Auto registration,
probe layers equal to hidden states in one forward, input spec, hook point before the classifier."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from safetensors import safe_open
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForVideoClassification,
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
)

from hf_stadyn.models import (
    StadynTimesformerConfig,
    StadynTimesformerForVideoClassification,
    StadynVideoMAEConfig,
    StadynVideoMAEForVideoClassification,
    tiny_timesformer_config,
    tiny_videomae_config,
)
from hf_stadyn.probing import FeatureProbe

torch.set_num_threads(1)
transformers.utils.logging.disable_progress_bar()

T, S = 8, 32
KINDS = {
    "videomae": (tiny_videomae_config, StadynVideoMAEForVideoClassification, VideoMAEForVideoClassification, VideoMAEConfig),
    "timesformer": (
        tiny_timesformer_config,
        StadynTimesformerForVideoClassification,
        TimesformerForVideoClassification,
        TimesformerConfig,
    ),
}  # fmt: skip


def _clips(b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, T, 3, S, S, generator=torch.Generator().manual_seed(seed))


def _ours(kind: str, seed: int = 0, **kwargs) -> nn.Module:
    factory, cls = KINDS[kind][:2]
    torch.manual_seed(seed)
    return cls(factory(num_labels=3, **kwargs)).eval()


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(pixel_values=x).logits


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _safetensors_keys(folder: Path) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return set(f.keys())


# ------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("kind", list(KINDS))
def test_upstream_checkpoint_loads_into_our_class_identically(kind, tmp_path):
    factory, ours_cls, up_cls, up_cfg_cls = KINDS[kind]
    cfg = up_cfg_cls(**{k: v for k, v in factory(num_labels=3).to_dict().items() if k not in ("model_type",)})
    assert type(cfg) is up_cfg_cls
    torch.manual_seed(1)
    vanilla = up_cls(cfg).eval()
    vanilla.save_pretrained(tmp_path)
    ours = ours_cls.from_pretrained(tmp_path).eval()
    assert type(ours.config) is ours_cls.config_class and ours.config.model_type == f"stadyn_{kind}"
    _assert_same_weights(vanilla, ours)
    x = _clips()
    assert torch.equal(_logits(ours, x), _logits(vanilla, x))


@pytest.mark.parametrize("kind", list(KINDS))
def test_our_checkpoint_is_an_upstream_checkpoint_with_our_fields(kind, tmp_path):
    _, ours_cls, up_cls, up_cfg_cls = KINDS[kind]
    ours = _ours(kind)
    ours.config.stadyn = {"static_dropout": {"p": 0.5, "static_channels": [1, 4]}}
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == kind
    assert saved["architectures"] == [up_cls.__name__]
    assert saved["stadyn"] == {"static_dropout": {"p": 0.5, "static_channels": [1, 4]}}
    assert "save_as_upstream" not in saved

    # plain transformers (Auto resolves model_type "videomae"/"timesformer" to the vanilla class)
    vanilla = AutoModelForVideoClassification.from_pretrained(tmp_path).eval()
    assert type(vanilla) is up_cls and type(vanilla.config) is up_cfg_cls
    assert vanilla.config.stadyn["static_dropout"]["p"] == 0.5  # extra fields ride along
    _assert_same_weights(ours, vanilla)
    x = _clips()
    assert torch.equal(_logits(vanilla, x), _logits(ours, x))

    # same tensor names on disk as a freshly built vanilla model writes (e.g. VideoMAE's q_bias / v_bias)
    up_cls(vanilla.config).save_pretrained(tmp_path / "fresh")
    assert _safetensors_keys(tmp_path) == _safetensors_keys(tmp_path / "fresh")
    vanilla.save_pretrained(tmp_path / "vanilla")

    # and our class reads every field back, also from the vanilla re-save
    for folder in (tmp_path, tmp_path / "vanilla"):
        back = ours_cls.from_pretrained(folder).eval()
        assert back.config.stadyn == ours.config.stadyn
        assert torch.equal(_logits(back, x), _logits(ours, x))


def test_checkpoint_loads_in_a_process_that_never_imports_hf_stadyn(tmp_path):
    x = _clips(seed=3)
    for kind in KINDS:
        ours = _ours(kind, seed=2, stadyn={"static_dropout": {"p": 0.25}})
        ours.save_pretrained(tmp_path / kind)
        torch.save({"x": x, "logits": _logits(ours, x)}, tmp_path / kind / "expected.pt")
    script = textwrap.dedent(
        """
        import sys, torch, transformers
        transformers.utils.logging.disable_progress_bar()
        from transformers import AutoModelForVideoClassification
        for kind in ("videomae", "timesformer"):
            folder = sys.argv[1] + "/" + kind
            model = AutoModelForVideoClassification.from_pretrained(folder).eval()
            exp = torch.load(folder + "/expected.pt")
            with torch.inference_mode():
                logits = model(pixel_values=exp["x"]).logits
            assert torch.equal(logits, exp["logits"]), kind
            assert type(model).__module__.startswith("transformers."), type(model)
            assert model.config.stadyn == {"static_dropout": {"p": 0.25}}
        assert not any(m.startswith("hf_stadyn") for m in sys.modules)
        print("OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")
    assert "trust_remote_code" not in proc.stderr


@pytest.mark.parametrize("kind", list(KINDS))
def test_save_as_upstream_false_writes_our_model_type_and_auto_loads_our_class(kind, tmp_path):
    _, ours_cls, _, _ = KINDS[kind]
    ours = _ours(kind, save_as_upstream=False)
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == f"stadyn_{kind}" and saved["save_as_upstream"] is False
    assert saved["architectures"] == [ours_cls.__name__]
    assert type(AutoConfig.from_pretrained(tmp_path)) is ours_cls.config_class
    back = AutoModelForVideoClassification.from_pretrained(tmp_path).eval()
    assert type(back) is ours_cls and back.config.save_as_upstream is False
    assert torch.equal(_logits(back, _clips()), _logits(ours, _clips()))


def test_auto_registration():
    assert AutoConfig.for_model("stadyn_videomae").__class__ is StadynVideoMAEConfig
    assert AutoConfig.for_model("stadyn_timesformer").__class__ is StadynTimesformerConfig
    m = AutoModelForVideoClassification.from_config(tiny_videomae_config(num_labels=2))
    assert type(m) is StadynVideoMAEForVideoClassification
    m = AutoModelForVideoClassification.from_config(tiny_timesformer_config(num_labels=2))
    assert type(m) is StadynTimesformerForVideoClassification


def test_wrong_checkpoints_and_configs_are_rejected(tmp_path):
    TimesformerConfig(num_frames=T, image_size=S, patch_size=8, hidden_size=32, num_attention_heads=2).save_pretrained(
        tmp_path / "tsf"
    )
    with pytest.raises(ValueError, match="model_type 'timesformer'.*reads 'videomae' or 'stadyn_videomae'"):
        StadynVideoMAEForVideoClassification.from_pretrained(tmp_path / "tsf")
    TimesformerConfig(attention_type="space_only").save_pretrained(tmp_path / "space")
    with pytest.raises(ValueError, match="space_only.*per-frame logits"):
        StadynTimesformerForVideoClassification.from_pretrained(tmp_path / "space")
    with pytest.raises(ValueError, match="space_only"):
        tiny_timesformer_config(3, attention_type="space_only")
    with pytest.raises(ValueError, match="tubelet_size"):
        tiny_videomae_config(3, num_frames=7)
    with pytest.raises(ValueError, match="patch_size"):
        tiny_timesformer_config(3, image_size=30)


# ------------------------------------------------------------------------ TimeSformer init
def test_timesformer_time_embeddings_drawn_at_init_and_kept_when_loaded(tmp_path):
    model = _ours("timesformer", seed=0)
    te = model.timesformer.embeddings.time_embeddings
    assert 0.4 < te.std().item() < 0.6  # drawn with std 0.5 (512 values)
    plain = _ours("timesformer", seed=0, time_embed_init_std=None)
    assert torch.count_nonzero(plain.timesformer.embeddings.time_embeddings) == 0  # upstream: zeros
    assert 0.07 < model.classifier.weight.std().item() < 0.13  # initializer_range 0.1
    with torch.no_grad():
        te.fill_(0.25)
    model.save_pretrained(tmp_path)
    back = StadynTimesformerForVideoClassification.from_pretrained(tmp_path)
    assert back.config.time_embed_init_std == 0.5
    assert torch.all(back.timesformer.embeddings.time_embeddings == 0.25)  # not re-drawn


# ------------------------------------------------------------------------------ probing
@pytest.mark.parametrize("kind", list(KINDS))
def test_probe_layers_equal_hidden_states_in_one_forward(kind):
    model = _ours(kind)
    names = model.probe_layers()
    assert list(names) == ["embeddings", "block_0", "block_1", "block_2", "block_3", "pre_classifier"]
    assert str(names["block_0"]) == ("tokens" if kind == "videomae" else "tokens_cls")
    x = _clips(3)
    calls = []
    model.register_forward_pre_hook(lambda m, a, k: calls.append(1), with_kwargs=True)
    base = model.videomae if kind == "videomae" else model.timesformer
    base.embeddings.register_forward_pre_hook(lambda m, a: calls.append(2))
    feats = model.pooled_features(x)
    assert calls == [1, 2]  # one forward of the model, one of its embeddings
    assert list(feats) == list(names)
    assert all(v.shape == (3, 64) and v.dtype == torch.float32 for v in feats.values())

    with torch.inference_mode():
        out = model(pixel_values=x, output_hidden_states=True)
    hs = out.hidden_states
    assert len(hs) == 5
    n_tokens = (T // 2) * 16 if kind == "videomae" else 1 + T * 16
    assert hs[0].shape == (3, n_tokens, 64)
    torch.testing.assert_close(feats["embeddings"], hs[0].mean(1))
    for i in range(4):
        torch.testing.assert_close(feats[f"block_{i}"], hs[i + 1].mean(1))  # CLS included for TimeSformer
    with torch.inference_mode():
        if kind == "videomae":
            pre = model.fc_norm(hs[-1].mean(1))
        else:
            pre = model.timesformer.layernorm(hs[-1])[:, 0]
        torch.testing.assert_close(model.classifier(pre), out.logits)
    torch.testing.assert_close(feats["pre_classifier"], pre)


def test_pair_features_use_one_batch_and_split_members():
    model = _ours("videomae")
    a, b = _clips(2, seed=1), _clips(2, seed=2)
    calls = []
    model.register_forward_pre_hook(lambda m, args, kw: calls.append(kw["pixel_values"].shape[0]), with_kwargs=True)
    fa, fb = model.pooled_pair_features(a, b, layers=["block_3", "pre_classifier"])
    assert calls == [4] and list(fa) == ["block_3", "pre_classifier"]
    torch.testing.assert_close(fa["block_3"], model.pooled_features(a, ["block_3"])["block_3"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fb["block_3"], model.pooled_features(b, ["block_3"])["block_3"], atol=1e-5, rtol=1e-5)


def test_probing_keeps_no_full_activation_alive():
    model = _ours("timesformer")
    refs = []
    model.timesformer.layernorm.register_forward_hook(lambda m, a, out: refs.append(weakref.ref(out)))
    for block in model.timesformer.encoder.layer:
        block.register_forward_hook(lambda m, a, out: refs.append(weakref.ref(out[0])))
    with torch.inference_mode(), FeatureProbe(model, model.probe_layer_specs()) as probe:
        model(pixel_values=_clips())
        gc.collect()
        assert len(refs) == 5 and all(r() is None for r in refs)
        # each held row block owns exactly its (B, C) floats: no view pins a (B, N, C) storage,
        # e.g. the CLS token that feeds the classifier
        held = [z for rows in probe._store.values() for z in rows]
        assert len(held) == 6
        assert all(z.untyped_storage().nbytes() == z.numel() * z.element_size() == 2 * 64 * 4 for z in held)
        feats = probe.pop()
    assert set(feats) == set(model.probe_layers())


def test_pooled_features_are_eval_mode_and_restore_training():
    model = _ours("videomae", hidden_dropout_prob=0.5).train()
    x = _clips()
    f1 = model.pooled_features(x, ["block_3"])["block_3"]
    f2 = model.pooled_features(x, ["block_3"])["block_3"]
    assert torch.equal(f1, f2) and model.training
    low = model.pooled_features(x, ["block_3"], autocast_dtype="bf16")["block_3"]
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, f1, atol=0.1, rtol=0.05)


def test_feature_dropout_is_the_hook_point_right_before_the_classifier():
    model = _ours("timesformer")
    assert isinstance(model.feature_dropout, nn.Identity)
    assert model.classifier_input_layer == "pre_classifier"
    x = _clips()
    before = model.pooled_features(x, ["pre_classifier"])["pre_classifier"]

    class Zero(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(z)

    model.set_feature_dropout(Zero())
    logits = _logits(model, x)
    assert torch.allclose(logits, model.classifier.bias.expand_as(logits))  # classifier saw the zeros
    torch.testing.assert_close(
        model.pooled_features(x, ["pre_classifier"])["pre_classifier"], before
    )  # probed before it
    assert set(model.state_dict()) == set(_ours("timesformer").state_dict())
    with pytest.raises(ValueError, match="nn.Module"):
        model.set_feature_dropout(lambda z: z)


def test_bad_layer_names_and_inputs_are_rejected():
    model = _ours("videomae")
    with pytest.raises(ValueError, match=r"unknown probe layer.*'block_9'.*available: embeddings, block_0"):
        model.pooled_features(_clips(), ["block_9"])
    bad = torch.randn(2, 6, 3, S, S)
    with pytest.raises(ValueError, match="exactly 8 frames of 32x32"):
        model.pooled_features(bad)
    with pytest.raises(ValueError, match="exactly 8 frames"):
        model(pixel_values=bad)
    with pytest.raises(ValueError, match="prepare_pixel_values"):
        model.pooled_features(torch.zeros(2, T, 3, S, S, dtype=torch.uint8))
    with pytest.raises(ValueError, match="differ in shape"):
        model.pooled_pair_features(_clips(2), _clips(1))


# ------------------------------------------------------------------------------ input spec
@pytest.mark.parametrize("kind", list(KINDS))
def test_input_spec_and_pixel_values_match_the_image_processor(kind):
    from transformers import VideoMAEImageProcessorPil

    model = _ours(kind)
    spec = model.probe_input_spec()
    mean = (0.5, 0.5, 0.5) if kind == "videomae" else (0.485, 0.456, 0.406)
    assert spec["num_frames"] == T and spec["image_size"] == S and spec["mean"] == mean
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(2, T, S, S, 3), dtype=np.uint8)
    pv = model.prepare_pixel_values(clips)
    proc = VideoMAEImageProcessorPil(
        do_resize=False, do_center_crop=False, image_mean=list(spec["mean"]), image_std=list(spec["std"])
    )
    ref = proc([list(c) for c in clips], return_tensors="pt")["pixel_values"]
    assert pv.shape == ref.shape == (2, T, 3, S, S)
    torch.testing.assert_close(pv, ref, atol=1e-6, rtol=1e-6)
    single = model.prepare_pixel_values(torch.from_numpy(clips[0]))
    torch.testing.assert_close(single, pv[:1])
    with pytest.raises(ValueError, match="exactly 8"):
        model.prepare_pixel_values(clips[:, :4])
    with pytest.raises(ValueError, match="resize"):
        model.prepare_pixel_values(clips[:, :, :16])
    with pytest.raises(ValueError, match="uint8"):
        model.prepare_pixel_values(clips.astype(np.float32))
