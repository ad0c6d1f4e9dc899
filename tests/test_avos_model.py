"""AVOS two-stream segmenter: shapes, gradients, fusion/cross-connection semantics, loss, save/load,
Auto classes and remote code without hf_stadyn."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from hf_stadyn.models.configuration_avos import (
    CROSS_CONNECTION_TYPES,
    FUSION_TYPES,
    AVOSConfig,
    tiny_avos_config,
)
from hf_stadyn.models.modeling_avos import (
    AVOSModel,
    BidirectionalCross,
    ConcatFusion,
    ConvexFusion,
    GatedBidirectionalCross,
    GatedFusion,
    MotionToAppearance,
    avos_loss,
)

torch.set_num_threads(1)


def _model(fusion="concat", cross="none", seed=0, **kw) -> AVOSModel:
    torch.manual_seed(seed)
    return AVOSModel(tiny_avos_config(fusion, cross, **kw))


def _inputs(b=2, size=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, size, size, generator=g)
    f = torch.randn(b, 3, size, size, generator=g)
    y = (torch.rand(b, 1, size, size, generator=g) > 0.7).float()
    return x, f, y


@pytest.mark.parametrize("fusion,cross", list(itertools.product(FUSION_TYPES, CROSS_CONNECTION_TYPES)))
def test_every_variant_shapes_and_gradients(fusion, cross):
    model = _model(fusion, cross).train()
    x, f, y = _inputs()
    out = model(pixel_values=x, flow_values=f, labels=y, output_hidden_states=True)
    assert out.logits.shape == (2, 1, 64, 64)
    assert torch.isfinite(out.loss)
    # 5 levels: stem (stride 4), stage1 (4), stage2 (8), stage3 (16), stage4 (32)
    sizes = [16, 16, 8, 4, 2]
    widths = [8, 8, 16, 24, 32]
    for hs in (out.appearance_hidden_states, out.motion_hidden_states, out.fusion_hidden_states):
        assert [tuple(h.shape) for h in hs] == [(2, c, s, s) for c, s in zip(widths, sizes)]
    assert list(model.probe_layers()) == [f"{p}{i}" for i in range(1, 6) for p in ("app_stage", "mot_stage", "fusion")]
    assert len(model.cross) == (0 if cross == "none" else 3)
    out.loss.backward()
    for part in ("appearance_backbone", "motion_backbone", "fusions", "decoder", "cross"):
        params = list(getattr(model, part).parameters())
        if part == "cross" and cross == "none":
            assert not params
            continue
        grads = [p.grad for p in params]
        assert all(g is not None for g in grads), part
        assert sum(float(g.abs().sum()) for g in grads) > 0, part


def test_streams_only_mix_through_cross_connections():
    """Without cross-connections the motion stream never sees the RGB frame; with them it does."""
    x, f, _ = _inputs()
    x2 = torch.randn_like(x)
    for cross, mixes in [
        ("none", False),
        ("motion_to_appearance", False),
        ("bidirectional", True),
        ("gated_bidirectional", True),
    ]:
        model = _model("gated", cross).eval()
        with torch.no_grad():
            a = model(pixel_values=x, flow_values=f, output_hidden_states=True)
            b = model(pixel_values=x2, flow_values=f, output_hidden_states=True)
        # levels 1-2 come before any cross-connection: motion features never depend on RGB there
        assert torch.equal(a.motion_hidden_states[1], b.motion_hidden_states[1])
        assert torch.equal(a.motion_hidden_states[4], b.motion_hidden_states[4]) != mixes, cross
        # and appearance depends on flow only with a connection into the appearance stream
        with torch.no_grad():
            c = model(pixel_values=x, flow_values=torch.randn_like(f), output_hidden_states=True)
        assert torch.equal(a.appearance_hidden_states[4], c.appearance_hidden_states[4]) == (cross == "none"), cross


def test_convex_fusion_lies_between_the_streams():
    torch.manual_seed(0)
    fus = ConvexFusion(6)
    torch.nn.init.normal_(fus.channel_alpha.weight, std=2.0)
    torch.nn.init.normal_(fus.spatial_alpha.weight, std=2.0)
    app, mot = torch.randn(3, 6, 5, 5), torch.randn(3, 6, 5, 5)
    out = fus(app, mot)
    lo, hi = torch.minimum(app, mot), torch.maximum(app, mot)
    assert bool(((out >= lo - 1e-6) & (out <= hi + 1e-6)).all())
    alpha = fus.alpha(app, mot)
    assert alpha.shape == (3, 6, 5, 5) and float(alpha.detach().std()) > 0.05  # not a constant blend
    assert torch.allclose(out, alpha * app + (1 - alpha) * mot)


def _zero_(module):
    for p in module.parameters():
        torch.nn.init.zeros_(p)


def test_cross_connections_with_zero_weights():
    app, mot = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    gb = GatedBidirectionalCross(4)
    _zero_(gb)
    a, m = gb(app, mot)  # g = sigmoid(0) = 0.5: x' = x * 0.5 + x
    assert torch.allclose(a, 1.5 * app) and torch.allclose(m, 1.5 * mot)
    bi = BidirectionalCross(4)
    _zero_(bi)
    a, m = bi(app, mot)
    assert torch.equal(a, app) and torch.equal(m, mot)
    m2a = MotionToAppearance(4)
    _zero_(m2a)
    a, m = m2a(app, mot)
    assert torch.allclose(a, 1.5 * app) and m is mot
    # a gate that opens fully doubles appearance where motion says so
    torch.nn.init.constant_(m2a.gate.bias, 50.0)
    a, _ = m2a(app, mot)
    assert torch.allclose(a, 2.0 * app)


def test_gated_fusion_gates_and_residual():
    torch.manual_seed(0)
    fus = GatedFusion(8).eval()
    app, mot = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    f = fus.proj(torch.cat([app, mot], 1))
    for lin in (fus.channel_gate[2], fus.spatial_gate, fus.global_gate):
        _zero_(lin)
    # every gate is sigmoid(0) = 0.5, so out = f + f * 0.125
    assert torch.allclose(fus(app, mot), f * 1.125, atol=1e-6)
    torch.nn.init.constant_(fus.global_gate.bias, -50.0)  # global gate closed: only the residual is left
    assert torch.allclose(fus(app, mot), f, atol=1e-6)
    g_c, g_s, g_g = fus.gates(f)
    assert g_c.shape == (2, 8, 1, 1) and g_s.shape == (2, 1, 4, 4) and g_g.shape == (2, 1, 1, 1)


def test_concat_fusion_uses_both_streams():
    torch.manual_seed(0)
    fus = ConcatFusion(4).eval()
    app, mot = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    base = fus(app, mot)
    assert not torch.equal(base, fus(app, torch.randn_like(mot)))
    assert not torch.equal(base, fus(torch.randn_like(app), mot))


def test_loss_matches_hand_computation():
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]]])
    labels = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    p = torch.sigmoid(logits)
    bce = -(labels * torch.log(p) + (1 - labels) * torch.log(1 - p)).mean()
    inter, union = (p * labels).sum(), (p + labels - p * labels).sum()
    want_iou = bce + 1 - (inter + 1) / (union + 1)
    want_dice = bce + 1 - (2 * inter + 1) / (p.sum() + labels.sum() + 1)
    assert torch.allclose(avos_loss(logits, labels), want_iou)
    assert torch.allclose(avos_loss(logits, labels[:, 0], soft_loss="dice"), want_dice)
    assert torch.allclose(avos_loss(logits, labels, soft_loss="none"), bce)
    # confident correct predictions give a near-zero loss, confident wrong ones a large one
    assert float(avos_loss(20 * (2 * labels - 1), labels)) < 1e-3
    assert float(avos_loss(-20 * (2 * labels - 1), labels)) > 5
    with pytest.raises(ValueError, match="labels have shape"):
        avos_loss(logits, torch.zeros(1, 1, 3, 3))


def test_config_validation_messages():
    with pytest.raises(ValueError, match="fusion"):
        tiny_avos_config("sum")
    with pytest.raises(ValueError, match="cross_connection"):
        tiny_avos_config("concat", "sideways")
    with pytest.raises(ValueError, match="use_pretrained_backbone"):
        tiny_avos_config(use_pretrained_backbone=True)
    with pytest.raises(ValueError, match="cross_stages"):
        tiny_avos_config("concat", "bidirectional", cross_stages=[3, 7])
    with pytest.raises(ValueError, match="soft_loss"):
        tiny_avos_config(soft_loss="focal")
    model = _model()
    with pytest.raises(ValueError, match="flow_values"):
        model(pixel_values=torch.zeros(1, 3, 64, 64), flow_values=torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown probe layer"):
        model.get_probe_module("fusion9")
    # the default configuration is a ResNet-50 layout fused at all 5 levels
    cfg = AVOSConfig()
    assert cfg.fused_levels == [1, 2, 3, 4, 5] and cfg.backbone_config.hidden_sizes[-1] == 2048


def test_fuse_a_subset_of_levels():
    from transformers import ResNetConfig

    bb = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )
    torch.manual_seed(0)
    model = AVOSModel(
        AVOSConfig(backbone_config=bb, fusion="convex", cross_connection="gated_bidirectional", decoder_hidden_size=8)
    )
    x, f, _ = _inputs()
    out = model(pixel_values=x, flow_values=f, output_hidden_states=True)
    assert out.logits.shape == (2, 1, 64, 64) and len(out.fusion_hidden_states) == 3
    assert list(model.probe_layers())[:3] == ["app_stage3", "mot_stage3", "fusion3"]


def test_save_load_round_trip_and_auto(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    model = _model("gated", "gated_bidirectional").eval()
    x, f, _ = _inputs()
    with torch.no_grad():
        want = model(pixel_values=x, flow_values=f).logits
    model.save_pretrained(tmp_path)
    names = sorted(os.listdir(tmp_path))
    assert names == ["config.json", "configuration_avos.py", "model.safetensors", "modeling_avos.py"]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "stadyn_avos" and cfg["fusion"] == "gated"
    assert cfg["auto_map"] == {"AutoConfig": "configuration_avos.AVOSConfig", "AutoModel": "modeling_avos.AVOSModel"}

    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is AVOSModel and isinstance(AutoConfig.from_pretrained(tmp_path), AVOSConfig)
    assert loaded.config.cross_connection == "gated_bidirectional"
    saved = load_file(tmp_path / "model.safetensors")
    state = model.state_dict()
    assert set(saved) == set(state) and all(torch.equal(saved[k], state[k]) for k in state)
    loaded_state = loaded.state_dict()
    assert all(torch.equal(loaded_state[k], state[k]) for k in state)
    # Weights are bit-identical; BLAS kernels may take another path for memory-mapped (differently
    # aligned) weights, so logits agree to float32 rounding, and exactly once the weights are copied.
    with torch.no_grad():
        got = loaded(pixel_values=x, flow_values=f).logits
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
        for p in loaded.parameters():
            p.data = p.data.clone()
        assert torch.equal(loaded(pixel_values=x, flow_values=f).logits, want)


def test_pretrained_backbone_from_a_folder(tmp_path):
    from transformers import ResNetBackbone, ResNetConfig

    bb_cfg = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stem", "stage1", "stage2", "stage3", "stage4"],
    )
    torch.manual_seed(3)
    ResNetBackbone(bb_cfg).save_pretrained(tmp_path / "bb")
    cfg = AVOSConfig(
        backbone_config=bb_cfg, backbone=str(tmp_path / "bb"), use_pretrained_backbone=True, decoder_hidden_size=8
    )
    model = AVOSModel(cfg)
    ref = ResNetBackbone.from_pretrained(tmp_path / "bb").state_dict()
    for stream in (model.appearance_backbone, model.motion_backbone):
        got = stream.state_dict()
        assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert model.config.use_pretrained_backbone is False  # a saved checkpoint holds the weights


_REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_stadyn" or name.startswith("hf_stadyn."):
                raise ImportError("hf_stadyn is blocked in this test")
            return None
    sys.meta_path.insert(0, _Block())
    sys.path = [p for p in sys.path if "work/main" not in p]
    try:
        import hf_stadyn  # noqa: F401
        raise SystemExit("hf_stadyn is still importable")
    except ImportError:
        pass
    import torch
    from transformers import AutoModel
    folder, io_path = sys.argv[1], sys.argv[2]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    for p in model.parameters():
        p.data = p.data.clone()
    io = torch.load(io_path)
    with torch.no_grad():
        out = model(pixel_values=io["x"], flow_values=io["f"]).logits
    print(type(model).__module__, bool(torch.equal(out, io["logits"])))
    """
)


def test_remote_code_without_hf_stadyn(tmp_path):
    model = _model("convex", "motion_to_appearance").eval()
    x, f, _ = _inputs()
    with torch.no_grad():
        logits = model(pixel_values=x, flow_values=f).logits
    model.save_pretrained(tmp_path / "ckpt")
    torch.save({"x": x, "f": f, "logits": logits}, tmp_path / "io.pt")
    (tmp_path / "run.py").write_text(_REMOTE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), str(tmp_path / "ckpt"), str(tmp_path / "io.pt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    module, same = proc.stdout.strip().splitlines()[-1].split()
    assert module.startswith("transformers_modules.") and same == "True"
