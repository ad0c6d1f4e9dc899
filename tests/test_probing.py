"""Pooling layouts and forward-hook probing of arbitrary modules (3D CNN, per-frame / two-stream maps,
two-pathway models, transformers' ViViT)."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from hf_stadyn.probing import (
    BiasProbingMixin,
    FeatureProbe,
    LayerSpec,
    Layout,
    extract_features,
    first_tensor,
    parse_autocast_dtype,
    pool,
)

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- models for the tests
class Tiny3DCNN(nn.Module):
    """(B, 3, T, H, W) -> logits; stages output (B, C, T, H, W) maps."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv3d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(nn.Conv3d(8, 12, 3, stride=(1, 2, 2), padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv3d(12, 16, 3, stride=2, padding=1), nn.ReLU())
        self.unused = nn.Conv3d(16, 16, 1)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.head(x.mean(dim=(2, 3, 4)))


class TwoPathway(nn.Module):
    """SlowFast-like: a slow pathway on every 4th frame and a fast one on all frames, then fused."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = nn.Sequential(nn.Conv3d(3, 16, 3, padding=1), nn.ReLU())
        self.fast = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(20, 3)

    def forward(self, slow_x: torch.Tensor, fast_x: torch.Tensor) -> torch.Tensor:
        s, f = self.slow(slow_x), self.fast(fast_x)
        return self.head(torch.cat([s.mean(dim=(2, 3, 4)), f.mean(dim=(2, 3, 4))], dim=1))


class PerFrameCNN(nn.Module):
    """A 2D CNN run on every frame: (B, T, 3, H, W) -> (B * T, C, H, W) maps, pooled per clip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.to_tokens = nn.Identity()  # (B, T, H, W, C) channels-last tap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        maps = self.conv(x.flatten(0, 1))  # (B*T, C, H, W)
        thwc = self.to_tokens(maps.unflatten(0, (b, t)).permute(0, 1, 3, 4, 2))
        return thwc.mean(dim=(1, 2, 3))


class TwoStream(nn.Module):
    """Per-frame two-stream model: RGB frame and flow image (B, 3, H, W) each, fused by a 1x1 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.app = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.mot = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.fuse = nn.Conv2d(16, 8, 1)

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.app(rgb), self.mot(flow)], dim=1))


class TupleBlock(nn.Module):
    """Returns (hidden, attention-like) like transformers blocks do."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.lin(x)
        return h, h * 10.0


# ------------------------------------------------------------------------------------------ pool()
def test_pool_matches_each_layout_definition():
    g = torch.Generator().manual_seed(0)
    x5 = torch.randn(2, 3, 4, 5, 6, generator=g)
    torch.testing.assert_close(pool(x5, "cthw"), x5.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(pool(x5, Layout.THWC), x5.mean(dim=(1, 2, 3)))
    tok = torch.randn(2, 7, 5, generator=g)
    torch.testing.assert_close(pool(tok, "tokens"), tok.mean(1))
    torch.testing.assert_close(pool(tok, "tokens_cls"), tok.mean(1))  # CLS included
    chw = torch.randn(6, 4, 3, 3, generator=g)
    torch.testing.assert_close(pool(chw, "chw"), chw.mean(dim=(2, 3)))
    vec = torch.randn(3, 4, generator=g)
    torch.testing.assert_close(pool(vec, "vector"), vec)


def test_pool_frames_groups_consecutive_frames_per_clip():
    # clip b, frame t has value 10 * b + t everywhere: per-clip mean = 10 * b + (T - 1) / 2
    b, t = 3, 4
    vals = torch.tensor([[10.0 * i + j for j in range(t)] for i in range(b)])  # (B, T)
    x = vals.reshape(b * t, 1, 1, 1).expand(b * t, 2, 3, 3).contiguous()
    out = pool(x, "frames", num_frames=t)
    assert out.shape == (b, 2)
    torch.testing.assert_close(out[:, 0], torch.tensor([1.5, 11.5, 21.5]))
    # a wrong T groups frames of different clips together and gives other values
    assert not torch.allclose(pool(x, "frames", num_frames=2)[:3, 0], out[:, 0])


def test_pool_returns_float32_for_low_precision_and_is_a_copy():
    x = torch.randn(2, 9, 8).to(torch.bfloat16)
    out = pool(x, "tokens")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x.float().mean(1), atol=1e-6, rtol=1e-6)
    seq = torch.randn(2, 9, 8)
    cls = seq[:, 0]  # a view into the sequence
    pooled = pool(cls, "vector")
    assert pooled.untyped_storage().data_ptr() != seq.untyped_storage().data_ptr()


@pytest.mark.parametrize(
    "shape, layout, kwargs, match",
    [
        ((2, 3, 4), "cthw", {}, "5-D"),
        ((2, 3, 4, 5, 6), "tokens", {}, "3-D"),
        ((8, 3, 4, 4), "frames", {}, "num_frames"),
        ((9, 3, 4, 4), "frames", {"num_frames": 4}, "multiple of num_frames"),
        ((2, 3), "nchw", {}, "not a known layout"),
    ],
)
def test_pool_rejects_bad_inputs_with_clear_messages(shape, layout, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pool(torch.zeros(shape), layout, **kwargs)


def test_first_tensor_and_autocast_parsing():
    t = torch.ones(1)
    assert first_tensor(t) is t
    assert first_tensor((None, [t, torch.zeros(1)])) is t
    assert first_tensor({"a": None, "b": (t,)}) is t
    with pytest.raises(ValueError, match="no tensor"):
        first_tensor((None, "x"))
    assert parse_autocast_dtype(None) is None and parse_autocast_dtype("fp32") is None
    assert parse_autocast_dtype("bf16") is torch.bfloat16 and parse_autocast_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="bf16"):
        parse_autocast_dtype("int8")


# ----------------------------------------------------------------------------- FeatureProbe on CNNs
def test_probe_3d_cnn_equals_manual_pooling_in_one_forward():
    torch.manual_seed(0)
    model = Tiny3DCNN().eval()
    x = torch.randn(3, 3, 8, 16, 16)
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    with torch.inference_mode():
        with FeatureProbe(model, {"stem": "cthw", "layer1": "cthw", "layer2": Layout.CTHW}) as probe:
            model(x)
            feats = probe.pop()
        s = model.stem(x)
        a1 = model.layer1(s)
        a2 = model.layer2(a1)
    assert len(calls) == 1
    assert list(feats) == ["stem", "layer1", "layer2"]
    assert {k: tuple(v.shape) for k, v in feats.items()} == {"stem": (3, 8), "layer1": (3, 12), "layer2": (3, 16)}
    torch.testing.assert_close(feats["stem"], s.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(feats["layer1"], a1.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(feats["layer2"], a2.mean(dim=(2, 3, 4)))
    # hooks are gone after the block
    assert not any(m._forward_hooks for m in model.modules())


def test_probe_keeps_no_activation_alive():
    torch.manual_seed(0)
    model = Tiny3DCNN().eval()
    refs: list[weakref.ref] = []
    for name in ("stem", "layer1", "layer2"):
        model.get_submodule(name).register_forward_hook(lambda m, a, out: refs.append(weakref.ref(out)))
    x = torch.randn(2, 3, 8, 16, 16)
    with torch.inference_mode(), FeatureProbe(model, {"stem": "cthw", "layer1": "cthw", "layer2": "cthw"}) as probe:
        model(x)
        gc.collect()
        # the probe holds its pooled rows, but none of the (B, C, T, H, W) activations
        assert len(refs) == 3 and all(r() is None for r in refs)
        held = [z for rows in probe._store.values() for z in rows]
        assert sum(z.numel() for z in held) == 2 * (8 + 12 + 16)
        assert all(z.untyped_storage().nbytes() == z.numel() * 4 for z in held)
        feats = probe.pop()
    assert all(v.shape[0] == 2 for v in feats.values())


def test_probe_two_pathway_model_and_extract_features():
    torch.manual_seed(0)
    model = TwoPathway()
    fast = torch.randn(2, 3, 8, 12, 12)
    slow = fast[:, :, ::4]
    feats = extract_features(model, (slow, fast), {"slow": "cthw", "fast": "cthw"})
    with torch.no_grad():
        torch.testing.assert_close(feats["slow"], model.slow(slow).mean(dim=(2, 3, 4)))
        torch.testing.assert_close(feats["fast"], model.fast(fast).mean(dim=(2, 3, 4)))
    assert feats["slow"].shape == (2, 16) and feats["fast"].shape == (2, 4)


def test_probe_per_frame_maps_pooled_per_clip_and_channels_last():
    torch.manual_seed(0)
    model = PerFrameCNN()
    x = torch.randn(3, 4, 3, 10, 10)
    feats = extract_features(model, x, {"conv": "frames", "to_tokens": "thwc"}, num_frames=4)
    with torch.no_grad():
        maps = model.conv(x.flatten(0, 1)).unflatten(0, (3, 4))  # (B, T, C, H, W)
    torch.testing.assert_close(feats["conv"], maps.mean(dim=(1, 3, 4)))
    torch.testing.assert_close(feats["to_tokens"], feats["conv"])  # same values, channels last
    # LayerSpec carries its own T
    feats2 = extract_features(model, x, {"per_clip": LayerSpec("conv", "frames", num_frames=4)})
    torch.testing.assert_close(feats2["per_clip"], feats["conv"])


def test_probe_two_stream_per_frame_maps_with_keyword_inputs():
    torch.manual_seed(0)
    model = TwoStream()
    rgb, flow = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    feats = extract_features(model, {"rgb": rgb, "flow": flow}, ["app", "mot", "fuse"], layout="chw")
    with torch.no_grad():
        a, m = model.app(rgb), model.mot(flow)
        f = model.fuse(torch.cat([a, m], 1))
    for name, ref in (("app", a), ("mot", m), ("fuse", f)):
        torch.testing.assert_close(feats[name], ref.mean(dim=(2, 3)))
        assert feats[name].shape == (5, 8)


def test_tuple_outputs_take_first_tensor_unless_a_selector_is_given():
    block = TupleBlock()
    x = torch.randn(2, 3, 4)
    first = extract_features(block, x, {"": "tokens"})
    second = extract_features(block, x, {"": "tokens"}, select=lambda out: out[1])
    torch.testing.assert_close(second[""], 10.0 * first[""])
    # input capture: what enters the module
    inp = extract_features(block, x, {"in": LayerSpec("lin", "tokens", capture="input")})
    torch.testing.assert_close(inp["in"], x.mean(1))


def test_extract_features_restores_training_mode_and_casts_inputs():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.9), nn.Linear(4, 4)).train()
    model[2].eval()  # a mixed state must come back exactly
    x = torch.randn(8, 4, dtype=torch.float64)  # cast to the model's float32
    a = extract_features(model, x, {"1": "vector"})["1"]
    b = extract_features(model, x, {"1": "vector"})["1"]
    torch.testing.assert_close(a, b)  # dropout off during probing
    assert model.training and model[1].training and not model[2].training


def test_bf16_autocast_gives_float32_features_close_to_fp32():
    torch.manual_seed(0)
    model = Tiny3DCNN()
    x = torch.randn(2, 3, 4, 8, 8)
    ref = extract_features(model, x, {"layer2": "cthw"})["layer2"]
    low = extract_features(model, x, {"layer2": "cthw"}, autocast_dtype="bf16")["layer2"]
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, atol=0.05, rtol=0.05)


# ------------------------------------------------------------------------------------ bad requests
def test_bad_module_names_and_layouts_are_rejected_with_hints():
    model = Tiny3DCNN()
    with pytest.raises(ValueError, match=r"no module 'layr1'.*'layer1'"):
        FeatureProbe(model, {"layr1": "cthw"})
    with pytest.raises(ValueError, match="not a known layout.*cthw"):
        FeatureProbe(model, {"layer1": "ncthw"})
    with pytest.raises(ValueError, match="layout is unknown"):
        FeatureProbe(model, ["layer1"])
    with pytest.raises(ValueError, match="needs num_frames|no num_frames"):
        FeatureProbe(model, {"layer1": "frames"})
    with pytest.raises(ValueError, match="empty"):
        FeatureProbe(model, {})
    with pytest.raises(ValueError, match="single string"):
        FeatureProbe(model, "layer1")


def test_wrong_layout_for_the_activation_fails_during_forward_with_the_layer_name():
    model = Tiny3DCNN()
    with pytest.raises(ValueError, match=r"layer 'layer1'.*'tokens' expects a 3-D"):
        extract_features(model, torch.randn(1, 3, 4, 8, 8), {"layer1": "tokens"})


def test_pop_reports_missing_layers_and_missing_forward():
    model = Tiny3DCNN()
    with FeatureProbe(model, {"layer1": "cthw", "unused": "cthw"}) as probe:
        with pytest.raises(RuntimeError, match="no probed module ran"):
            probe.pop()
        with torch.no_grad():
            model(torch.randn(1, 3, 4, 8, 8))
        with pytest.raises(RuntimeError, match=r"\['unused'\]"):
            probe.pop()


def test_rows_of_several_forwards_are_concatenated_in_call_order():
    torch.manual_seed(0)
    model = Tiny3DCNN()
    x1, x2 = torch.randn(2, 3, 4, 8, 8), torch.randn(3, 3, 4, 8, 8)
    with torch.no_grad(), FeatureProbe(model, {"layer2": "cthw"}) as probe:
        model(x1)
        model(x2)
        both = probe.pop()["layer2"]
        model(torch.cat([x1, x2]))
        one = probe.pop()["layer2"]
    assert both.shape == (5, 16)
    torch.testing.assert_close(both, one, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------- ViViT
@pytest.fixture(scope="module")
def vivit():
    from transformers import VivitConfig, VivitForVideoClassification

    torch.manual_seed(0)
    cfg = VivitConfig(
        image_size=32, num_frames=8, tubelet_size=[2, 8, 8], hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=3,
    )  # fmt: skip
    return VivitForVideoClassification(cfg).eval()


def test_probe_vivit_blocks_equal_hidden_states(vivit):
    x = torch.randn(2, 8, 3, 32, 32)
    layers = {"vivit.embeddings": "tokens_cls", "vivit.layers.0": "tokens_cls", "vivit.layers.1": "tokens_cls"}
    with torch.inference_mode(), FeatureProbe(vivit, layers) as probe:
        out = vivit(x, output_hidden_states=True)
        feats = probe.pop()
    hs = out.hidden_states
    assert len(hs) == 3 and hs[0].shape == (2, 65, 32)  # CLS + 4 x 4 x 4 tubelets
    for i, name in enumerate(layers):
        torch.testing.assert_close(feats[name], hs[i].mean(1))


def test_mixin_on_a_model_we_do_not_wrap_detects_blocks_and_classifier_input(vivit):
    from transformers import VivitForVideoClassification

    class ProbedVivit(BiasProbingMixin, VivitForVideoClassification):
        _probe_token_layout = "tokens_cls"

    model = ProbedVivit(vivit.config).eval()
    model.load_state_dict(vivit.state_dict())
    assert list(model.probe_layers()) == ["embeddings", "block_0", "block_1", "pre_classifier"]
    assert model.probe_layers()["block_0"] is Layout.TOKENS_CLS
    x = torch.randn(2, 8, 3, 32, 32)
    feats = model.pooled_features(x)
    with torch.inference_mode():
        out = vivit(x, output_hidden_states=True)
        last = vivit.vivit(x).last_hidden_state
    torch.testing.assert_close(feats["block_1"], out.hidden_states[2].mean(1))
    torch.testing.assert_close(feats["pre_classifier"], last[:, 0])
    spec = model.probe_input_spec()
    assert spec["num_frames"] == 8 and spec["image_size"] == 32
