"""Video instance segmentation (issue 15 points 3, 4): the VidEoMT probe adapter, StaDyn-Synth instance
maps and per-object camouflage, and the VIS loss / metrics (docs/vis.md).

Tiny random VidEoMT configs saved with save_pretrained (no network); about 10 s on one core.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import VideomtConfig, VideomtForUniversalSegmentation

from hf_stadyn.models.vis import VisProbeModel, load_vis_adapter
from hf_stadyn.pairs import ProbePairs
from hf_stadyn.probing import probe
from hf_stadyn.probing.hooks import extract_features
from hf_stadyn.synth import SynthConfig, SynthDataset, generate, load_instance_masks, load_masks, render_clip
from hf_stadyn.training.vis import (
    VisTrainingConfig,
    evaluate_vis,
    instance_targets,
    match_queries,
    tiny_videomt_config,
    train_vis,
    video_mask_ap,
)

T = 4
SMALL = dict(num_frames=T, size=16, speed=1.0, object_scale=0.15, orbit_radius=0.2)  # a 16x16 StaDyn-Synth


def _config(**kw) -> VideomtConfig:
    base = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, image_size=16, patch_size=8,
                num_blocks=2, num_queries=3, num_register_tokens=1, num_upscale_blocks=1, num_labels=1)  # fmt: skip
    base.update(kw)
    return VideomtConfig(**base)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("videomt")
    VideomtForUniversalSegmentation(_config(num_frames=T)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clips():
    ds = SynthDataset("motion", 4, SynthConfig(**SMALL), seed=0)
    return [ds[i]["frames"] for i in range(4)]


def _pixels(adapter: VisProbeModel, clips: list[torch.Tensor]) -> torch.Tensor:
    return adapter.prepare_pixel_values(torch.stack(clips))


def test_adapter_layers_input_spec_and_hooks_equal_hidden_states(folder, clips):
    """Each probe layer is the per-clip mean of what the model returns. Catches the frame-major (T * B)
    order of VidEoMT's outputs read as clip-major, and query-stage blocks (T calls) pooled per call."""
    adapter = load_vis_adapter(folder, per_query=[1])
    assert list(adapter.probe_layers()) == ["embeddings", "block_0", "block_1", "block_2", "queries", "query_1"]
    spec = adapter.probe_input_spec()
    assert (spec["num_frames"], spec["image_size"]) == (T, 16) and spec["processor"]["sources"][
        "num_frames"
    ] == "config"
    x = _pixels(adapter, clips)  # (4, T, 3, 16, 16)
    b, s = x.shape[0], 1 + 1 + 4  # CLS + 1 register + 2x2 patches
    feats = extract_features(adapter, {"pixel_values_videos": x}, adapter.probe_layer_specs())
    with torch.no_grad():
        out = adapter.model(pixel_values_videos=x, output_hidden_states=True)
    hs = out.hidden_states  # embeddings, block_0 (B*T rows each); then block_1, block_2 per frame
    for name, h in (("embeddings", hs[0]), ("block_0", hs[1])):
        torch.testing.assert_close(feats[name], h.reshape(b, T * s, -1).mean(1), rtol=1e-5, atol=1e-6)
    per_frame_block1 = torch.stack([hs[2 + 2 * f] for f in range(T)], dim=1)  # (B, T, Q + s, C)
    torch.testing.assert_close(feats["block_1"], per_frame_block1.flatten(1, 2).mean(1), rtol=1e-5, atol=1e-6)
    q = out.last_hidden_state.reshape(T, b, -1, 16)[:, :, :3].transpose(0, 1)  # (B, T, Q, C)
    torch.testing.assert_close(feats["queries"], q.flatten(1, 2).mean(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(feats["query_1"], q[:, :, 1].mean(1), rtol=1e-5, atol=1e-6)
    # each clip's features do not depend on the other clips of the batch
    alone = extract_features(adapter, {"pixel_values_videos": x[2:3]}, adapter.probe_layer_specs())
    for name in feats:
        torch.testing.assert_close(alone[name][0], feats[name][2], rtol=1e-4, atol=1e-5)


def test_per_frame_blocks_ignore_frame_order_and_queries_do_not(folder, clips):
    """The blocks before the query stage see one frame at a time, so a shuffled clip (a static pair) gives
    them the same pooled features; the query stage propagates queries frame to frame and does not."""
    adapter = load_vis_adapter(folder)
    x = _pixels(adapter, clips[:1])
    shuffled = x[:, [2, 0, 3, 1]]
    f = extract_features(adapter, {"pixel_values_videos": torch.cat([x, shuffled])}, adapter.probe_layer_specs())
    for name in ("embeddings", "block_0"):
        torch.testing.assert_close(f[name][0], f[name][1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(f["queries"][0], f["queries"][1], atol=1e-4)


def test_probe_end_to_end_one_forward_per_batch(folder, clips):
    adapter = load_vis_adapter(folder, num_frames=T)
    calls = []
    handle = adapter.model.register_forward_hook(lambda m, a, o: calls.append(1))
    try:
        result = probe(adapter, ProbePairs(clips, num_pairs=12, seed=0), batch_size=4, progress=False)
    finally:
        handle.remove()
    assert len(calls) == 3  # 12 pairs, 4 per forward: one forward of 8 clips per batch
    assert list(result.layers) == ["embeddings", "block_0", "block_1", "block_2", "queries"]
    for lb in result.layers.values():
        assert np.isfinite(lb.s_dynamic) and np.isfinite(lb.s_static)
    assert result.settings["model_fingerprint"]


def test_stadyn_probe_model_folder(folder, tmp_path):
    """``stadyn probe --model FOLDER`` on a VidEoMT checkpoint: load_model dispatches to load_vis_adapter."""
    from _media import write_motion_videos

    from hf_stadyn.cli import main as stadyn

    vids = write_motion_videos(tmp_path / "videos", 3, seed=1, num_frames=8, size=32)
    out = tmp_path / "rep"
    args = ["probe", "--model", str(folder), "--videos", str(vids), "--num_pairs", "8", "--batch_size", "4",
            "--layers", "block_0,queries", "--no_reference", "--disable_tqdm", "--output_dir", str(out)]  # fmt: skip
    assert stadyn(args) == 0
    doc = json.loads((out / "report.json").read_text())
    assert [lb["layer"] for lb in doc["layers"]] == ["block_0", "queries"]
    assert doc["pair_settings"]["num_frames"] == T and doc["pair_settings"]["image_size"] == 16


def test_load_vis_adapter_errors(tmp_path):
    with pytest.raises(ValueError, match="model_type 'videomae'"):
        from transformers import VideoMAEConfig

        VideoMAEConfig().save_pretrained(tmp_path)
        load_vis_adapter(tmp_path)
    torch.manual_seed(0)
    model = VideomtForUniversalSegmentation(_config())
    with pytest.raises(ValueError, match="out of range"):
        VisProbeModel(model, per_query=[3])
    assert load_vis_adapter(model).probe_input_spec()["num_frames"] == 8  # no num_frames anywhere: the default


# --------------------------------------------------------------------------------------- synth
def test_instance_maps_and_per_object_camouflage():
    """instances > 0 is the union mask; camouflage_share 1 draws exactly what camouflage=True draws (the
    share uses a spare per-object uniform, so other clips' draws are untouched); 0.5 mixes."""
    cfg = SynthConfig(num_objects=3)
    clip = render_clip(cfg, 0, 0, np.random.default_rng(1))
    assert clip.instances.dtype == np.uint8 and np.array_equal(clip.instances > 0, clip.masks)
    assert set(np.unique(clip.instances)) <= {0, 1, 2, 3} and len(np.unique(clip.instances)) >= 3
    assert "camouflaged" not in clip.meta["objects"][0] and "camouflage_share" not in cfg.to_dict()
    all_camo = render_clip(SynthConfig(num_objects=3, camouflage=True), 0, 0, np.random.default_rng(1))
    share_one = render_clip(SynthConfig(num_objects=3, camouflage_share=1.0), 0, 0, np.random.default_rng(1))
    assert np.array_equal(all_camo.frames, share_one.frames)
    assert [o["camouflaged"] for o in share_one.meta["objects"]] == [True] * 3
    ds = SynthDataset("motion", 30, SynthConfig(num_objects=2, camouflage_share=0.5), seed=0, instance_masks=True)
    t = ds.to_tensors()
    assert t["instances"].shape == t["mask"].shape and t["camouflaged"].shape == (30, 2)
    assert 0.25 < t["camouflaged"].float().mean() < 0.75
    assert torch.equal(ds[3]["instances"], t["instances"][3]) and torch.equal(ds[3]["camouflaged"], t["camouflaged"][3])
    assert SynthConfig.from_dict(SynthConfig(camouflage_share=0.5).to_dict()).camouflage_share == 0.5
    with pytest.raises(ValueError, match="camouflage_share"):
        SynthConfig(camouflage_share=1.5)


def test_generate_writes_instance_maps_only_when_asked(tmp_path):
    cfg = SynthConfig(num_frames=4, size=24, speed=1.0, num_objects=2, camouflage_share=0.5)
    with_inst = generate(tmp_path / "a", num_clips=2, config=cfg, instance_masks=True)
    plain = generate(tmp_path / "b", num_clips=2, config=cfg)
    row = json.loads((with_inst / "metadata.jsonl").read_text().splitlines()[0])
    inst = load_instance_masks(with_inst / row["mask"])
    assert np.array_equal(inst > 0, load_masks(with_inst / row["mask"])) and inst.shape == (4, 24, 24)
    assert "camouflaged" in row["objects"][0]
    with pytest.raises(ValueError, match="instance_masks=True"):
        load_instance_masks(plain / row["mask"])
    assert (with_inst / row["video"]).read_bytes() == (plain / row["video"]).read_bytes()


# ------------------------------------------------------------------------------------ training
def test_matching_recovers_a_permutation_and_metrics_are_exact():
    """A query that predicts instance g perfectly is matched to g; perfect predictions give AP 1 and J 1,
    a confident false positive lowers AP but not J."""
    gt = torch.zeros(3, 2, 8, 8)
    gt[0, :, :3, :3] = gt[1, :, 5:, 5:] = gt[2, :, :2, 5:] = 1
    perm = [2, 0, 1]  # query q predicts instance perm[q]
    logits = torch.stack([gt[g] * 20 - 10 for g in perm])
    cls = torch.tensor([[4.0, -4.0]]).repeat(3, 2, 1)
    rows, cols = match_queries(logits, cls, gt, VisTrainingConfig())
    assert dict(zip(rows.tolist(), cols.tolist())) == dict(enumerate(perm))
    g = gt.numpy().astype(bool)
    assert video_mask_ap([np.ones(3)], [g], [g])["AP"] == pytest.approx(1.0)
    fp = np.zeros((1, 2, 8, 8), dtype=bool)
    fp[0, :, 3:5, 0:2] = True
    ap = video_mask_ap([np.array([0.9, 0.8, 0.7, 0.95])], [np.concatenate([g, fp])], [g])
    assert 0.5 < ap["AP"] < 1.0
    inst, objs = instance_targets(torch.tensor([[[0, 2], [2, 0]]], dtype=torch.uint8))
    assert objs == [1] and inst.shape == (1, 1, 2, 2)


def test_training_lowers_the_loss_and_evaluation_reports_camouflage():
    cfg = SynthConfig(**SMALL, num_objects=2, camouflage_share=0.5)
    data = SynthDataset("motion", 8, cfg, seed=0, instance_masks=True).to_tensors()
    torch.manual_seed(0)
    model = VideomtForUniversalSegmentation(tiny_videomt_config(image_size=16, hidden_size=16, patch_size=4))
    hist = train_vis(model, data["frames"], data["instances"], VisTrainingConfig(epochs=4, batch_size=4, lr=2e-3,
                     warmup_steps=2))  # fmt: skip
    assert hist[-1]["loss"] < hist[0]["loss"]
    res = evaluate_vis(model, data["frames"], data["instances"], data["camouflaged"])
    assert res["num_camouflaged"] + res["num_visible"] == res["num_instances"] > 0
    for key in ("AP", "AP50", "J", "J_camouflaged", "J_visible", "recall50"):
        assert 0.0 <= res[key] <= 1.0
