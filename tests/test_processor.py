"""Inputs are prepared the way the checkpoint says (issue #10 point 1, docs/method.md §1.1).

Two local checkpoints that differ only in their processor file (ImageNet vs 0.5 statistics) must give
different readings, each equal to a reference computed by hand from that file's statistics; a
checkpoint without a processor file uses the class defaults and says so; the processor's crop size,
frame count and sampling rate reach ``probe_input_spec()``; the embedded default's file agrees with
the class defaults (so its reading does not move).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import transformers
from transformers import VideoMAEImageProcessorPil

from hf_stadyn.metric import StaticDynamicEstimator
from hf_stadyn.models import (
    AVOSModel,
    StadynTimesformerForVideoClassification,
    StadynVideoMAEForVideoClassification,
    tiny_avos_config,
    tiny_timesformer_config,
    tiny_videomae_config,
)
from hf_stadyn.models.auto import DEFAULT_MODEL_DIR, load_model
from hf_stadyn.models.processor import read_processor_config
from hf_stadyn.pairs import ProbePairs
from hf_stadyn.probing import probe
from hf_stadyn.probing.engine import collate_pairs
from hf_stadyn.probing.hooks import extract_features

torch.set_num_threads(1)
transformers.utils.logging.disable_progress_bar()

T, S = 8, 32
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
HALF = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])


def _clips(n: int = 4, seed: int = 0, size: int = S) -> list[np.ndarray]:
    """Textured clips with a moving bright square (so dynamic and static pairs differ)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bg = rng.integers(0, 120, size=(size, size, 3), dtype=np.uint8)
        frames = []
        for t in range(T):
            f = bg.copy()
            x = (2 * t + 3 * i) % (size - 8)
            f[4:12, x : x + 8] = (230, 40 + 40 * i, 30)
            frames.append(f)
        out.append(np.stack(frames))
    return out


def _save(model, folder, stats=None, **proc_kwargs):
    model.save_pretrained(folder)
    if stats is not None:
        proc = VideoMAEImageProcessorPil(
            size={"shortest_edge": S}, crop_size={"height": S, "width": S},
            image_mean=stats[0], image_std=stats[1], **proc_kwargs,
        )  # fmt: skip
        proc.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def twin_checkpoints(tmp_path_factory):
    """The same weights saved twice; only the processor file differs (ImageNet vs 0.5 statistics)."""
    torch.manual_seed(0)
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(4)).eval()
    root = tmp_path_factory.mktemp("twins")
    return {
        "imagenet": _save(model, root / "imagenet", IMAGENET),
        "half": _save(model, root / "half", HALF),
        "none": _save(model, root / "none"),
    }


def _hand_features(model, clip: np.ndarray, mean, std) -> dict[str, torch.Tensor]:
    """Pooled features of one clip, normalised by hand and pooled from the model's hidden states."""
    x = (clip.astype(np.float64) / 255.0 - np.asarray(mean)) / np.asarray(std)  # (T, H, W, 3)
    pv = torch.from_numpy(x.transpose(0, 3, 1, 2)[None].astype(np.float32))
    with torch.no_grad():
        out = model(pixel_values=pv, output_hidden_states=True)
    hs = out.hidden_states  # embeddings, then one per block
    feats = {"embeddings": hs[0].mean(1)}
    feats.update({f"block_{i}": h.mean(1) for i, h in enumerate(hs[1:])})
    feats["pre_classifier"] = model.fc_norm(hs[-1].mean(1))
    return {k: v[0] for k, v in feats.items()}


def test_twin_checkpoints_read_differently_and_each_equals_a_hand_normalised_reference(twin_checkpoints):
    """Bug caught: the processor file ignored (both read alike) or its statistics applied wrongly."""
    pairs = ProbePairs(_clips(), num_pairs=16, seed=0)
    readings = {}
    for name, stats in (("imagenet", IMAGENET), ("half", HALF)):
        model = load_model(twin_checkpoints[name])
        spec = model.probe_input_spec()
        assert spec["mean"] == pytest.approx(tuple(stats[0])) and spec["std"] == pytest.approx(tuple(stats[1]))
        assert spec["processor"]["source"] == "preprocessor_config.json"
        assert spec["processor"]["sources"]["mean"] == "preprocessor_config.json"

        # features the probe computes (the engine's own calls) == features by hand, pair by pair
        items = [pairs[i] for i in range(len(pairs))]
        batch = collate_pairs(items)
        probe_feats = extract_features(model, model.probe_inputs(batch), model.probe_layer_specs())
        est = StaticDynamicEstimator()
        n = len(items)
        for layer, z in probe_feats.items():
            hand_a = torch.stack([_hand_features(model, it["clip_a"].numpy(), *stats)[layer] for it in items])
            hand_b = torch.stack([_hand_features(model, it["clip_b"].numpy(), *stats)[layer] for it in items])
            torch.testing.assert_close(z[:n], hand_a, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(z[n:], hand_b, atol=1e-5, rtol=1e-5)
            est.update(hand_a, hand_b, batch["factor"], layer=layer, pair_ids=batch["index"])
        hand = est.compute()

        result = probe(model, pairs, batch_size=8, place=False, progress=False)
        for layer, lb in result.layers.items():
            assert lb.s_dynamic == pytest.approx(hand[layer].s_dynamic, abs=1e-5)
            assert lb.s_static == pytest.approx(hand[layer].s_static, abs=1e-5)
        readings[name] = result.layers

    diffs = [abs(readings["imagenet"][k].s_dynamic - readings["half"][k].s_dynamic) for k in readings["half"]]
    assert max(diffs) > 1e-3, f"the two processor files gave the same readings: {diffs}"


def test_no_processor_file_uses_the_class_defaults_and_says_so(twin_checkpoints, tmp_path):
    spec = load_model(twin_checkpoints["none"]).probe_input_spec()
    assert spec["mean"] == (0.5, 0.5, 0.5) and spec["std"] == (0.5, 0.5, 0.5)
    assert spec["processor"]["source"] == "class defaults"
    assert spec["processor"]["sources"]["mean"] == "class defaults"
    assert spec["window"] is None
    torch.manual_seed(0)
    _save(StadynTimesformerForVideoClassification(tiny_timesformer_config(3)), tmp_path / "tsf")
    tsf = load_model(tmp_path / "tsf").probe_input_spec()
    assert tsf["mean"] == tuple(IMAGENET[0]) and tsf["processor"]["source"] == "class defaults"
    # in memory: the same, and JSON-ready
    mem = StadynVideoMAEForVideoClassification(tiny_videomae_config(4)).probe_input_spec()
    assert mem["processor"]["source"] == "class defaults" and mem["image_size"] == S and mem["num_frames"] == T
    json.dumps(mem["processor"])


def test_prepare_pixel_values_equals_the_transformers_processor_output(tmp_path):
    """Every statistics form a file can take (0-255 statistics with do_rescale false, a rescale factor,
    do_normalize false) gives the processor's own pixel_values. Bug caught: a rescale setting ignored."""
    torch.manual_seed(0)
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(4))
    clips = np.stack(_clips(2))
    variants = {
        "imagenet": {"image_mean": IMAGENET[0], "image_std": IMAGENET[1]},
        "no_rescale": {"image_mean": [127.5, 120.0, 100.0], "image_std": [60.0, 58.0, 57.0], "do_rescale": False},
        "factor": {"image_mean": [0.2, 0.3, 0.4], "image_std": [0.5, 0.6, 0.7], "rescale_factor": 1 / 127.5},
        "no_normalize": {"do_normalize": False},
    }
    for name, kw in variants.items():
        folder = tmp_path / name
        model.save_pretrained(folder)
        proc = VideoMAEImageProcessorPil(size={"shortest_edge": S}, crop_size={"height": S, "width": S}, **kw)
        proc.save_pretrained(folder)
        loaded = load_model(folder)
        ref = proc([list(c) for c in clips], return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(loaded.prepare_pixel_values(clips), ref, atol=1e-5, rtol=1e-5, msg=name)


def test_processor_crop_size_sets_the_input_size(tmp_path, caplog):
    """TimeSformer (position embeddings interpolated) and AVOS take the processor's crop size; VideoMAE
    (a fixed position table) keeps config.image_size, with a warning and a note."""
    torch.manual_seed(0)
    crop = {"size": {"shortest_edge": 48}, "crop_size": {"height": 48, "width": 48}}
    tsf = StadynTimesformerForVideoClassification(tiny_timesformer_config(3))
    tsf.save_pretrained(tmp_path / "tsf")
    VideoMAEImageProcessorPil(image_mean=HALF[0], image_std=HALF[1], **crop).save_pretrained(tmp_path / "tsf")
    loaded = load_model(tmp_path / "tsf")
    spec = loaded.probe_input_spec()
    assert spec["image_size"] == 48 and spec["processor"]["sources"]["image_size"] == "preprocessor_config.json"
    assert spec["mean"] == (0.5, 0.5, 0.5)  # the file's, not the class's ImageNet statistics
    pairs = loaded.pairs_from_videos(_clips(4, size=64), num_pairs=16, window=T)
    assert pairs[0]["clip_a"].shape == (T, 48, 48, 3)
    assert probe(loaded, pairs, batch_size=8, place=False, progress=False).num_pairs == 16

    vmae = StadynVideoMAEForVideoClassification(tiny_videomae_config(4))
    vmae.save_pretrained(tmp_path / "vmae")
    VideoMAEImageProcessorPil(**crop).save_pretrained(tmp_path / "vmae")
    with caplog.at_level(logging.WARNING):
        spec = load_model(tmp_path / "vmae").probe_input_spec()
    assert spec["image_size"] == S and "takes only" in caplog.text
    assert any("not used" in n for n in spec["processor"]["notes"])

    avos = AVOSModel(tiny_avos_config())
    avos.save_pretrained(tmp_path / "avos")
    assert load_model(tmp_path / "avos").probe_input_spec()["image_size"] is None
    VideoMAEImageProcessorPil(image_mean=HALF[0], image_std=HALF[1], **crop).save_pretrained(tmp_path / "avos")
    spec = load_model(tmp_path / "avos").probe_input_spec()
    assert spec["image_size"] == 48 and spec["mean"] == (0.5, 0.5, 0.5) and spec["num_frames"] == 1
    assert spec["window"] is None


def test_video_processor_file_frame_count_and_sampling_rate(tmp_path, caplog):
    """A video processor file (read as a dict here: video processors need torchvision) wins over the
    image processor file; its sampling rate gives the window; a frame count the model cannot take is
    overruled by the config with a warning."""
    torch.manual_seed(0)
    model = StadynTimesformerForVideoClassification(tiny_timesformer_config(3))
    _save(model, tmp_path, IMAGENET)
    video = {
        "video_processor_type": "TimesformerVideoProcessor", "image_mean": [0.45, 0.45, 0.45],
        "image_std": [0.225, 0.225, 0.225], "size": {"shortest_edge": S}, "crop_size": {"height": S, "width": S},
        "do_center_crop": True, "num_frames": T, "sampling_rate": 4,
    }  # fmt: skip
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps(video))
    spec = load_model(tmp_path).probe_input_spec()
    assert spec["processor"]["source"] == "video_preprocessor_config.json"
    assert spec["mean"] == (0.45, 0.45, 0.45) and spec["std"] == (0.225, 0.225, 0.225)
    assert spec["num_frames"] == T and spec["processor"]["sources"]["num_frames"] == "video_preprocessor_config.json"
    assert spec["window"] == 4 * T and spec["processor"]["sampling_rate"] == 4

    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps({**video, "num_frames": 16}))
    with caplog.at_level(logging.WARNING):
        spec = load_model(tmp_path).probe_input_spec()
    assert spec["num_frames"] == T and spec["window"] == 4 * T and "samples 16 frames" in caplog.text


def test_sampling_rate_in_the_config_sets_the_window(tmp_path):
    torch.manual_seed(0)
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(4, stadyn={"sampling_rate": 2}))
    assert model.probe_input_spec()["window"] == 2 * T
    _save(model, tmp_path, HALF)
    spec = load_model(tmp_path).probe_input_spec()
    assert spec["window"] == 2 * T and spec["processor"]["sources"]["window"] == "config"
    assert StadynVideoMAEForVideoClassification(tiny_videomae_config(4)).probe_input_spec()["window"] is None


def test_remote_processor_code_is_never_run(tmp_path):
    """A processor file naming remote code: its values are read as data, the code is not imported."""
    torch.manual_seed(0)
    _save(StadynVideoMAEForVideoClassification(tiny_videomae_config(4)), tmp_path)
    sentinel = tmp_path / "ran.txt"
    (tmp_path / "my_proc.py").write_text(f"open({str(sentinel)!r}, 'w').write('ran')\n")
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({
            "image_processor_type": "MyProc", "auto_map": {"AutoImageProcessor": "my_proc.MyProc"},
            "image_mean": IMAGENET[0], "image_std": IMAGENET[1], "crop_size": {"height": S, "width": S},
        })
    )  # fmt: skip
    spec = load_model(tmp_path).probe_input_spec()
    assert not sentinel.exists()
    assert spec["mean"] == tuple(IMAGENET[0]) and spec["processor"]["loaded_with"].startswith("processor dict")


def test_embedded_default_processor_file_equals_the_class_defaults():
    """The default model's file declares what the model used so far (0.5 statistics, 32 px, 8 frames), so
    reading the file does not move the default reading."""
    settings = read_processor_config(DEFAULT_MODEL_DIR)
    assert settings is not None and settings["file"] == "preprocessor_config.json"
    model = load_model()
    spec = model.probe_input_spec()
    assert spec["processor"]["source"] == "preprocessor_config.json"
    model.set_probe_processor(None)
    before = model.probe_input_spec()
    assert before["processor"]["source"] == "class defaults"
    for key in ("num_frames", "image_size", "mean", "std", "window"):
        assert spec[key] == before[key], key


def test_pairs_from_videos_follow_the_declared_window(tmp_path):
    """Bug caught: a model's declared window (rate x frames) ignored when pairs are made from videos."""
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(4, stadyn={"sampling_rate": 2}))
    videos = [np.concatenate(_clips(1, seed=s) * 4) for s in range(2)]  # 32 frames each
    assert model.pairs_from_videos(videos, num_pairs=4).window == 2 * T
    assert model.pairs_from_videos(videos, num_pairs=4, window=T).window == T
