"""HF conventions of our three model families (VideoMAE, TimeSformer, AVOS), with tiny configs.

The properties transformers' own ModelTesterMixin checks and that matter here: save/load round trip
with identical outputs, Auto resolution, ``hidden_states`` tuple lengths and shapes, ``attentions``
(eager attention), gradient checkpointing (same gradients, and really recomputing), config
strictness, ``_no_split_modules`` naming real module classes, forward kwargs annotated as upstream.
"""

from __future__ import annotations

import copy
import inspect
import json

import pytest
import torch
import transformers
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from torch import nn

from hf_stadyn.models import (
    AVOSConfig,
    AVOSModel,
    StadynTimesformerConfig,
    StadynTimesformerForVideoClassification,
    StadynVideoMAEConfig,
    StadynVideoMAEForVideoClassification,
    tiny_avos_config,
    tiny_timesformer_config,
    tiny_videomae_config,
)

torch.set_num_threads(1)
transformers.utils.logging.disable_progress_bar()

FAMILIES = ("videomae", "timesformer", "avos")
T, S, B = 4, 32, 2  # clip frames, clip side, batch
LAYERS = 2


def _model(family: str, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    if family == "videomae":
        cfg = tiny_videomae_config(3, num_frames=T, image_size=S, num_hidden_layers=LAYERS, **kwargs)
        return StadynVideoMAEForVideoClassification(cfg)
    if family == "timesformer":
        cfg = tiny_timesformer_config(3, num_frames=T, image_size=S, num_hidden_layers=LAYERS, **kwargs)
        return StadynTimesformerForVideoClassification(cfg)
    return AVOSModel(tiny_avos_config("gated", "gated_bidirectional", **kwargs))


def _inputs(family: str, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if family == "avos":
        return {
            "pixel_values": torch.randn(B, 3, 64, 64, generator=g),
            "flow_values": torch.randn(B, 3, 64, 64, generator=g),
        }
    return {"pixel_values": torch.randn(B, T, 3, S, S, generator=g)}


def _labels(family: str) -> torch.Tensor:
    if family == "avos":
        return (torch.rand(B, 1, 64, 64, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    return torch.tensor([0, 2])


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_gives_identical_outputs(family, tmp_path):
    """save_pretrained -> from_pretrained (our class and the Auto class) reproduces the logits exactly."""
    model = _model(family, **({} if family == "avos" else {"save_as_upstream": False})).eval()
    x = _inputs(family)
    with torch.no_grad():
        want = model(**x).logits
    model.save_pretrained(tmp_path)
    auto = transformers.AutoModel if family == "avos" else transformers.AutoModelForVideoClassification
    for loaded in (type(model).from_pretrained(tmp_path), auto.from_pretrained(tmp_path)):
        assert type(loaded) is type(model)
        loaded.eval()
        for p in loaded.parameters():  # memory-mapped weights may take another BLAS path; copies do not
            p.data = p.data.clone()
        with torch.no_grad():
            assert torch.equal(loaded(**x).logits, want)
    assert type(transformers.AutoModel.from_pretrained(tmp_path)) is type(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_hidden_states_tuple_lengths_and_shapes(family):
    """``hidden_states`` is a tuple: embeddings + one per block (clip models), one per fused level (AVOS)."""
    model = _model(family).eval()
    with torch.no_grad():
        out = model(**_inputs(family), output_hidden_states=True)
        assert model(**_inputs(family)).hidden_states is None
    hs = out.hidden_states
    assert isinstance(hs, tuple)
    if family == "avos":
        assert len(hs) == len(model.levels) == 5
        assert all(a is b for a, b in zip(hs, out.fusion_hidden_states))
        assert [h.shape[:2] for h in hs] == [(B, c) for c in (8, 8, 16, 24, 32)]
        assert [h.shape[-1] for h in hs] == [16, 16, 8, 4, 2]
        # the tuple form keeps the earlier fields' positions and adds hidden_states last
        tup = model(**_inputs(family), output_hidden_states=True, return_dict=False)
        assert len(tup) == 5 and all(a is b or torch.equal(a, b) for a, b in zip(tup[-1], hs))
    else:
        tokens = (T // 2 if family == "videomae" else T) * (S // 8) ** 2 + (family == "timesformer")
        assert len(hs) == LAYERS + 1
        assert all(h.shape == (B, tokens, 64) for h in hs)


@pytest.mark.parametrize("family", ["videomae", "timesformer"])
def test_attentions_with_eager_attention(family):
    """One attention map per block, ``(B', heads, N', N')``, with eager attention (as upstream's tests)."""
    model = _model(family, attn_implementation="eager").eval()
    with torch.no_grad():
        att = model(**_inputs(family), output_attentions=True).attentions
    assert isinstance(att, tuple) and len(att) == LAYERS
    if family == "videomae":  # joint space-time attention over all tubelet tokens
        n = (T // 2) * (S // 8) ** 2
        assert all(a.shape == (B, 4, n, n) for a in att)
    else:  # divided space-time: the spatial attention of each frame (CLS + patches)
        n = (S // 8) ** 2 + 1
        assert all(a.shape == (B * T, 4, n, n) for a in att)


def test_forward_kwargs_are_annotated_as_upstream():
    """Generic tooling reads attention support from forward's ``**kwargs`` annotation; ours equal upstream's."""
    for ours, upstream in (
        (StadynVideoMAEForVideoClassification, transformers.VideoMAEForVideoClassification),
        (StadynTimesformerForVideoClassification, transformers.TimesformerForVideoClassification),
    ):
        got = inspect.signature(ours.forward).parameters["kwargs"].annotation
        want = inspect.signature(upstream.forward).parameters["kwargs"].annotation
        assert got == want or (want is inspect.Parameter.empty and got in ("Any", inspect.Parameter.empty)), ours
    ann = inspect.signature(StadynVideoMAEForVideoClassification.forward).parameters["kwargs"].annotation
    assert "TransformersKwargs" in str(ann) and not isinstance(ann, str)


def _step(model: nn.Module, family: str) -> dict[str, torch.Tensor]:
    model.train()
    model.zero_grad()
    out = model(**_inputs(family), labels=_labels(family))
    out.loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_same_gradients_and_recomputes(family):
    """Same loss gradients (and AVOS BatchNorm statistics) with checkpointing, which really recomputes.

    Bugs caught: the flag set but never used (no recomputation: the hooked module runs once), or
    BatchNorm running statistics updated a second time by the recomputation.
    """
    plain = _model(family)
    ckpt = copy.deepcopy(plain)
    assert type(plain).supports_gradient_checkpointing
    if hasattr(ckpt, "activation_checkpointing_enable"):  # transformers >= 5.2x name
        ckpt.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        ckpt.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert getattr(ckpt, "is_activation_checkpointing", None) or ckpt.is_gradient_checkpointing

    def unit(m: nn.Module) -> nn.Module:  # a module whose forward sits inside a checkpointed call
        # (transformers checkpoints a block's forward, not its __call__: hook a module inside the block)
        return m.fusions[0] if family == "avos" else m.base_model.encoder.layer[0].intermediate

    calls = {"plain": 0, "ckpt": 0}
    # pre-hooks: the recomputation may stop early, before the module returns
    unit(plain).register_forward_pre_hook(lambda *_: calls.__setitem__("plain", calls["plain"] + 1))
    unit(ckpt).register_forward_pre_hook(lambda *_: calls.__setitem__("ckpt", calls["ckpt"] + 1))
    g_plain, g_ckpt = _step(plain, family), _step(ckpt, family)
    assert calls == {"plain": 1, "ckpt": 2}  # forward + recomputation in backward
    assert g_plain.keys() == g_ckpt.keys() and len(g_plain) == len(list(plain.parameters()))
    for name in g_plain:
        torch.testing.assert_close(g_ckpt[name], g_plain[name], rtol=1e-5, atol=1e-7, msg=name)
    for (name, b1), (_, b2) in zip(plain.named_buffers(), ckpt.named_buffers()):
        assert torch.equal(b1, b2), name  # e.g. BatchNorm running_mean / num_batches_tracked
    # eval mode: no checkpointing (nothing to recompute)
    calls["ckpt"] = 0
    with torch.no_grad():
        ckpt.eval()(**_inputs(family))
    assert calls["ckpt"] == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_no_split_modules_name_real_module_classes(family):
    """Every name in ``_no_split_modules`` is the class of modules the model (some variant of it) has."""
    if family == "avos":
        models = [
            AVOSModel(tiny_avos_config(f, c))
            for f, c in (
                ("concat", "motion_to_appearance"),
                ("gated", "bidirectional"),
                ("convex", "gated_bidirectional"),
            )
        ]
    else:
        models = [_model(family)]
    present = {type(m).__name__ for model in models for m in model.modules()}
    declared = set(type(models[0])._no_split_modules)
    assert declared and declared <= present, declared - present
    if family == "avos":
        assert {"AVOSDecoder", "GatedFusion", "GatedBidirectionalCross"} <= declared
        # transformers also collects the backbones' own units (for device_map="auto")
        assert {"ResNetConvLayer", "ResNetShortCut"} <= set(models[0]._no_split_modules)


@pytest.mark.parametrize(
    ("factory", "bad_type"),
    [
        (lambda **kw: tiny_videomae_config(3, **kw), {"hidden_size": "64"}),
        (lambda **kw: tiny_timesformer_config(3, **kw), {"num_frames": 8.0}),
        (lambda **kw: tiny_avos_config(**kw), {"decoder_hidden_size": "16"}),
        (lambda **kw: tiny_avos_config(**kw), {"image_size": 64.0}),
        (lambda **kw: tiny_avos_config(**kw), {"cross_stages": "345"}),
    ],
)
def test_configs_are_strict_about_types(factory, bad_type):
    """Strict dataclass configs (as upstream's): a wrong type raises at construction and on assignment."""
    with pytest.raises(StrictDataclassFieldValidationError, match=next(iter(bad_type))):
        factory(**bad_type)
    cfg = factory()
    ((name, value),) = bad_type.items()
    with pytest.raises(StrictDataclassFieldValidationError, match=name):
        setattr(cfg, name, value)


def test_configs_reject_invalid_values_now_and_on_validate():
    """Values outside the accepted choices raise ValueError; ``config.validate()`` re-checks after edits."""
    with pytest.raises(ValueError, match="fusion"):
        tiny_avos_config("sum")
    with pytest.raises(ValueError, match="image_size must be >= 1"):
        tiny_avos_config(image_size=0)
    with pytest.raises(ValueError, match="tubelet_size"):
        tiny_videomae_config(3, num_frames=7)
    with pytest.raises(ValueError, match="attention_type"):
        tiny_timesformer_config(3, attention_type="space_only")
    for cfg, name, value in (
        (tiny_avos_config(), "fusion", "sum"),
        (tiny_videomae_config(3), "num_frames", 7),
        (tiny_timesformer_config(3), "attention_type", "sideways"),
    ):
        cfg.validate()
        setattr(cfg, name, value)  # the right type: accepted by the field validator...
        with pytest.raises(StrictDataclassClassValidationError):
            cfg.validate()  # ...and refused by the class validator


def test_avos_image_size_is_optional_and_old_checkpoints_read_none(tmp_path):
    """``image_size`` defaults to None, round-trips, feeds the probe input spec; a config.json written
    before the field existed (no key) still loads, with None."""
    cfg = tiny_avos_config(image_size=48)
    assert AVOSModel(cfg).probe_input_spec()["image_size"] == 48
    cfg.save_pretrained(tmp_path / "new")
    assert AVOSConfig.from_pretrained(tmp_path / "new").image_size == 48
    old = json.loads((tmp_path / "new" / "config.json").read_text())
    del old["image_size"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(old))
    back = transformers.AutoConfig.from_pretrained(tmp_path / "old")
    assert type(back) is AVOSConfig and back.image_size is None
    assert AVOSModel(back).probe_input_spec()["image_size"] is None
    assert tiny_avos_config().image_size is None


def test_auto_classes_resolve_every_family():
    """AutoConfig by model type, AutoModel from each config (our full model), AutoModelForVideoClassification."""
    for cfg, cls in (
        (StadynVideoMAEConfig(), StadynVideoMAEForVideoClassification),
        (tiny_timesformer_config(2), StadynTimesformerForVideoClassification),
        (tiny_avos_config(), AVOSModel),
    ):
        assert type(transformers.AutoConfig.for_model(cfg.model_type)) is type(cfg)
        assert type(transformers.AutoModel.from_config(cfg)) is cls
    assert isinstance(StadynTimesformerConfig(), transformers.TimesformerConfig)
    assert type(transformers.AutoModelForVideoClassification.from_config(tiny_videomae_config(2))) is (
        StadynVideoMAEForVideoClassification
    )
