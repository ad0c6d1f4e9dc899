"""The one probing engine: every entry point (probe, measure_bias, probe_avos, the CLI) reads pairs
through it, and the two-stream adapter makes AVOS models probe-able from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_stadyn.cli import main
from hf_stadyn.debias import measure_bias
from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config
from hf_stadyn.models.modeling_avos import AVOSModel, tiny_avos_config
from hf_stadyn.pairs import ProbePairs, TwoStreamPairDataset
from hf_stadyn.probing import ModuleAdapter, ProbeAdapter, adapter_for, probe
from hf_stadyn.training.avos import probe_avos
from hf_stadyn.video import write_video

torch.set_num_threads(1)


def _moving_square_video(path, n: int = 12, size: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
    frames = []
    for t in range(n):
        f = bg.copy()
        x = 4 + 2 * t + seed
        f[10:22, x : x + 12] = (200, 60 + 10 * seed, 40)
        frames.append(f)
    write_video(path, np.stack(frames), fps=10)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine_videos")
    return [str(_moving_square_video(d / f"v{i}.mp4", seed=i)) for i in range(3)]


@pytest.fixture(scope="module")
def avos_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("avos_model")
    torch.manual_seed(0)
    AVOSModel(tiny_avos_config("gated", "gated_bidirectional")).save_pretrained(d)
    return d


def test_both_mixins_implement_the_adapter_protocol():
    clip = StadynVideoMAEForVideoClassification(tiny_videomae_config(3))
    avos = AVOSModel(tiny_avos_config("concat", "none"))
    assert isinstance(clip, ProbeAdapter) and isinstance(avos, ProbeAdapter)
    assert adapter_for(clip) is clip and adapter_for(avos) is avos
    with pytest.raises(ValueError, match="no probing mixin"):
        adapter_for(torch.nn.Linear(3, 3))
    generic = adapter_for(torch.nn.Linear(3, 3), {"": "vector"}, forward_fn=lambda c: c.float().mean((1, 2, 3)))
    assert isinstance(generic, ModuleAdapter) and list(generic.probe_layer_specs()) == [""]


def test_probe_cli_reads_an_avos_folder_end_to_end(tmp_path, avos_dir, videos, capsys):
    """`stadyn probe --model <AVOS folder> --videos ...` failed with AttributeError (no probe_input_spec)
    before the engine; now it writes a report whose numbers equal the library's probe_avos on the same
    two-stream pairs (so the CLI cannot silently read a different protocol)."""
    out = tmp_path / "rep"
    rc = main(["probe", "--model", str(avos_dir), "--videos", *videos, "--num_pairs", "24", "--batch_size", "8",
               "--disable_tqdm", "--output_dir", str(out), "--layers", "app_stage2,mot_stage2,fusion2"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text())
    layers = {d["layer"]: d for d in doc["layers"]}
    assert list(layers) == ["app_stage2", "mot_stage2", "fusion2"]
    model = AVOSModel.from_pretrained(avos_dir).eval()
    pairs = TwoStreamPairDataset(videos, size=None, seed=0)
    ref = probe_avos(model, pairs, num_pairs=24, batch_size=8, layers=["app_stage2", "mot_stage2", "fusion2"])
    for name, lb in ref.items():
        assert layers[name]["s_dynamic"] == pytest.approx(lb.s_dynamic, rel=1e-9, abs=1e-12)
        assert layers[name]["s_static"] == pytest.approx(lb.s_static, rel=1e-9, abs=1e-12)
    # the default pair count of a two-stream model is every frame (3 videos x 12 frames), not 3000
    out2 = tmp_path / "rep2"
    assert (
        main(["probe", "--model", str(avos_dir), "--videos", *videos, "--disable_tqdm", "--output_dir", str(out2)]) == 0
    )
    assert json.loads((out2 / "report.json").read_text())["pair_settings"]["num_pairs"] == 36


def test_measure_bias_is_the_engine_with_the_model_left_in_place():
    """Bias tracking reads exactly what probe() reads on the same pairs, leaves the model's training
    mode alone and keeps it on its device (it must not re-place a model that a Trainer owns)."""
    torch.manual_seed(0)
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(3, num_frames=4, image_size=32))
    clips = np.random.default_rng(0).integers(0, 255, size=(6, 4, 32, 32, 3), dtype=np.uint8)
    pairs = ProbePairs(list(clips), num_pairs=16, seed=3)
    model.train()
    tracked = measure_bias(model, pairs, ["block_0", "pre_classifier"], batch_size=5)
    assert model.training  # restored
    direct = probe(model, pairs, ["block_0", "pre_classifier"], batch_size=5, progress=False)
    for name in tracked:
        assert tracked[name].s_dynamic == pytest.approx(direct.layers[name].s_dynamic, rel=1e-12)
        assert tracked[name].s_static == pytest.approx(direct.layers[name].s_static, rel=1e-12)
        np.testing.assert_allclose(tracked[name].rho_static, direct.layers[name].rho_static, rtol=1e-12)


def test_two_stream_inputs_are_normalised_with_the_models_statistics():
    model = AVOSModel(tiny_avos_config("concat", "none"))
    model.config.image_mean, model.config.image_std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    rgb = torch.full((2, 8, 8, 3), 255, dtype=torch.uint8)
    batch = {"rgb_a": rgb[:1], "flow_a": rgb[:1] * 0, "frame_b": rgb[1:], "flow_b": rgb[1:]}
    inputs = model.probe_inputs(batch)
    assert inputs["pixel_values"].shape == (2, 3, 8, 8)
    assert torch.allclose(inputs["pixel_values"], torch.full_like(inputs["pixel_values"], 2.0))
    assert torch.allclose(inputs["flow_values"][0], torch.full((3, 8, 8), -2.0))
    with pytest.raises(ValueError, match="no flow_b"):
        model.probe_inputs({"rgb_a": rgb, "flow_a": rgb, "rgb_b": rgb})


class _NoVideoPairs(torch.utils.data.Dataset):
    """In-memory pairs without ``video_index`` (the engine must fall back to pair-index chunks)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        it = self.pairs[i]
        return {k: it[k] for k in ("clip_a", "clip_b", "factor", "index")}


def test_chunks_follow_the_source_video_and_the_fingerprint_ignores_batching(tmp_path):
    """Pairs of one clip share a chunk (docs/method.md §5): a bug that chunks by pair index gives a
    different interval; the pair-set fingerprint is the same for any batch size and after a resume,
    and changes with the pairs."""
    from hf_stadyn.metric import StaticDynamicEstimator

    torch.manual_seed(0)
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(3, num_frames=4, image_size=32))
    clips = np.random.default_rng(0).integers(0, 255, size=(7, 4, 32, 32, 3), dtype=np.uint8)
    pairs = ProbePairs(list(clips), num_pairs=40, seed=3)
    a = probe(model, pairs, ["pre_classifier"], batch_size=5, progress=False, cpu=True)
    b = probe(model, pairs, ["pre_classifier"], batch_size=16, progress=False, cpu=True)
    assert a.settings["chunking"] == "video" and a.settings["num_videos"] == 7
    assert a.settings["pair_fingerprint"] == b.settings["pair_fingerprint"]
    other = probe(model, ProbePairs(list(clips), num_pairs=40, seed=4), ["pre_classifier"], progress=False, cpu=True)
    assert other.settings["pair_fingerprint"] != a.settings["pair_fingerprint"]
    # 7 clips for 10 chunks: K = 7 chunks, noted
    lb = a.layers["pre_classifier"]
    assert lb.num_chunks_used == 7 and len(lb.replicates["s_dynamic"]) == 7
    assert any("7 source video" in n for n in a.settings["interval_notes"])
    # the same reading by hand: groups = clip index i % 7
    z = {}
    for i in range(40):
        it = pairs[i]
        feats = model.pooled_pair_features(
            model.prepare_pixel_values(it["clip_a"][None]), model.prepare_pixel_values(it["clip_b"][None]),
            ["pre_classifier"],
        )  # fmt: skip
        z.setdefault("a", []).append(feats[0]["pre_classifier"][0].numpy())
        z.setdefault("b", []).append(feats[1]["pre_classifier"][0].numpy())
    est = StaticDynamicEstimator()
    factors = [pairs[i]["factor"] for i in range(40)]
    est.update(np.stack(z["a"]), np.stack(z["b"]), factors, layer="p", groups=np.arange(40) % 7)
    by_hand = est.compute()["p"].intervals["s_dynamic"]
    assert by_hand.stderr == pytest.approx(lb.intervals["s_dynamic"].stderr, rel=1e-4)
    # without video_index: pair-index chunks, said in the settings
    plain = probe(model, _NoVideoPairs(pairs), ["pre_classifier"], batch_size=8, progress=False, cpu=True)
    assert plain.settings["chunking"] == "pair" and plain.layers["pre_classifier"].num_chunks_used == 10
    assert plain.layers["pre_classifier"].s_dynamic == pytest.approx(lb.s_dynamic, rel=1e-9)
    assert plain.layers["pre_classifier"].intervals["s_dynamic"].stderr != pytest.approx(
        lb.intervals["s_dynamic"].stderr, rel=1e-3
    )
    # interrupted and resumed: the same fingerprint and numbers
    resumed = probe(model, pairs, ["pre_classifier"], batch_size=5, progress=False, cpu=True,
                    checkpoint_dir=tmp_path / "s", save_every_pairs=5, num_pairs=40)  # fmt: skip
    again = probe(model, pairs, ["pre_classifier"], batch_size=5, progress=False, cpu=True,
                  checkpoint_dir=tmp_path / "s", resume=True)  # fmt: skip
    assert resumed.settings["pair_fingerprint"] == again.settings["pair_fingerprint"] == a.settings["pair_fingerprint"]
