"""Every video architecture of the installed transformers probes end to end (issue 15 points 1-2).

Each architecture is a tiny random config saved with ``save_pretrained`` (no network) and read back with
``load_model``; the probe layers and layouts come from the config and are checked against a real forward.
A plausible bug each test catches: a layer hooked on the wrong module (its pooled features differ from
the model's own ``hidden_states``); per-frame tokens pooled as if each frame were a clip (the batch comes
out ``B * T`` rows); a second forward per batch (e.g. one per pair member); a processor's offset or
statistics dropped (ViViT's ``x / 127.5 - 1``); a family name missing from the report; a config that
disagrees with the module going unnoticed; ``--model_factory`` running something other than the file's
function, or reports whose layouts are not the ones asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_stadyn.cli import main as stadyn
from hf_stadyn.models.auto import load_model, loadable_model_types
from hf_stadyn.models.generic import (
    UpstreamVideoProbingMixin,
    model_family,
    probe_class_for,
    tiny_upstream_config,
    tiny_upstream_names,
)
from hf_stadyn.probing import ModuleAdapter, pool, probe
from hf_stadyn.probing.adapter import parse_layer_layouts

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "probe_custom_3dcnn.py"

#: name -> (family, upstream class, {layer: layout}) as the config says.
EXPECTED = {
    "vivit": ("ViViT", "VivitForVideoClassification", {"embeddings": "tokens_cls", "block_0": "tokens_cls",
              "block_1": "tokens_cls", "pre_classifier": "vector"}),
    "vivit_encoder": ("ViViT", "VivitModel", {"embeddings": "tokens_cls", "block_0": "tokens_cls",
                      "block_1": "tokens_cls", "encoder_output": "tokens_cls"}),
    "vjepa2": ("V-JEPA 2", "VJEPA2ForVideoClassification", {"embeddings": "tokens", "block_0": "tokens",
               "block_1": "tokens", "pre_classifier": "vector"}),
    "vjepa2_encoder": ("V-JEPA 2", "VJEPA2Model", {"embeddings": "tokens", "block_0": "tokens", "block_1": "tokens",
                       "encoder_output": "tokens"}),
    "videoprism": ("VideoPrism", "VideoPrismForVideoClassification", {
        "embeddings": "frame_tokens", "block_0": "frame_tokens", "block_1": "frame_tokens",
        "temporal_embeddings": "tokens", "temporal_block_0": "tokens", "temporal_block_1": "tokens",
        "pre_classifier": "tokens"}),
    "videoprism_encoder": ("VideoPrism", "VideoPrismVisionModel", {
        "embeddings": "frame_tokens", "block_0": "frame_tokens", "block_1": "frame_tokens",
        "temporal_embeddings": "tokens", "temporal_block_0": "tokens", "temporal_block_1": "tokens",
        "encoder_output": "tokens"}),
    "xclip": ("X-CLIP (video tower)", "XCLIPModel", {"embeddings": "frame_tokens", "block_0": "frame_tokens",
              "block_1": "frame_tokens", "mit_block_0": "tokens", "video_embeds": "vector"}),
    "xclip_vision": ("X-CLIP vision tower", "XCLIPVisionModel", {"embeddings": "frame_tokens",
                     "block_0": "frame_tokens", "block_1": "frame_tokens", "encoder_output": "frame_tokens"}),
}  # fmt: skip

#: name -> {index of output_hidden_states: layer} where the model returns the probed tensor itself.
#: (X-CLIP's hidden_states[0] follows pre_layernorm, the embeddings layer precedes it; VideoPrism records
#: no temporal_embeddings and replaces its last temporal block by last_hidden_state.)
HIDDEN = {
    "vivit": {0: "embeddings", 1: "block_0", 2: "block_1"},
    "vivit_encoder": {0: "embeddings", 1: "block_0", 2: "block_1"},
    "vjepa2": {0: "embeddings", 1: "block_0", 2: "block_1"},
    "vjepa2_encoder": {0: "embeddings", 1: "block_0", 2: "block_1"},
    "videoprism": {0: "embeddings", 1: "block_0", 2: "block_1", 3: "temporal_block_0"},
    "videoprism_encoder": {0: "embeddings", 1: "block_0", 2: "block_1", 3: "temporal_block_0", 4: "encoder_output"},
    "xclip": {1: "block_0", 2: "block_1"},
    "xclip_vision": {1: "block_0", 2: "block_1"},
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """One save_pretrained folder per tiny architecture (random weights, safetensors)."""
    root = tmp_path_factory.mktemp("archs")
    out = {}
    for name in tiny_upstream_names():
        torch.manual_seed(0)
        config = tiny_upstream_config(name)
        model = probe_class_for(config)(config)
        model.save_pretrained(root / name)
        out[name] = root / name
    return out


def _clips(n: int, t: int = 8, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_every_video_classification_architecture_is_loadable():
    """Every model type of transformers' AutoModelForVideoClassification mapping, and the video towers."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES as mapping

    types = set(loadable_model_types())
    assert set(mapping) <= types, set(mapping) - types
    assert {"xclip", "xclip_vision_model", "pe_video", "pe_video_encoder", "videomt"} <= types


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_model_layers_layouts_and_shapes_from_the_config(name, folders):
    family, upstream, layouts = EXPECTED[name]
    model = load_model(folders[name])  # checks every probed shape against the config (one forward)
    assert isinstance(model, UpstreamVideoProbingMixin) and type(model).__name__ == f"Stadyn{upstream}"
    assert model_family(model) == family
    assert {k: str(v) for k, v in model.probe_layers().items()} == layouts
    assert list(model.probe_layers()) == list(layouts)  # forward order
    info = model.probe_family()
    assert info["family"] == family and info["class"] == upstream
    # a saved checkpoint stays upstream's: plain transformers reads it back
    assert json.loads((folders[name] / "config.json").read_text())["architectures"] == [upstream]
    shapes = model.check_probe_layers(batch_size=2)
    assert all(s[0] in (2, 8) for s in shapes.values()), shapes  # B clips, or B * T frames of 4-frame clips


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_hook_features_equal_the_pooled_hidden_states(name, folders):
    model = load_model(folders[name])
    spec = model.probe_input_spec()
    torch.manual_seed(1)
    x = torch.randn(2, spec["num_frames"], 3, 32, 32)
    feats = model.pooled_features(x)
    assert all(v.shape[0] == 2 for v in feats.values()), {k: tuple(v.shape) for k, v in feats.items()}
    family = model.stadyn_family
    with torch.inference_mode():
        out = model(**{family.input_name: x, **family.forward_kwargs(model)}, output_hidden_states=True)
    specs = model.probe_layer_specs()
    for index, layer in HIDDEN[name].items():
        s = specs[layer]
        h = out.hidden_states[index]
        want = pool(s.select(h) if s.select is not None else h, s.layout, s.num_frames)
        torch.testing.assert_close(feats[layer], want, rtol=1e-5, atol=1e-5, msg=f"{name} {layer}")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_probe_end_to_end_one_forward_per_batch(name, folders):
    model = load_model(folders[name])
    calls = []
    handle = model.register_forward_pre_hook(lambda m, a, kw: calls.append(1), with_kwargs=True)
    try:
        pairs = model.pairs_from_videos(_clips(4), seed=0, num_pairs=12)
        result = probe(model, pairs, batch_size=4, progress=False, place=False)
    finally:
        handle.remove()
    assert len(calls) == 3  # 12 pairs, 4 per forward (both members of each pair in the same batch)
    assert list(result.layers) == list(EXPECTED[name][2])
    for lb in result.layers.values():
        assert lb.num_pairs["dynamic"] + lb.num_pairs["static"] == 12


def test_vivit_processor_offset_and_statistics(folders, tmp_path):
    """ViViT's processors compute x / 127.5 - 1 before (p - mean) / std: in x / 255 units mean (1 + m) / 2."""
    import shutil

    folder = tmp_path / "vivit"
    shutil.copytree(folders["vivit"], folder)
    proc = {"image_processor_type": "VivitImageProcessor", "image_mean": [0.5, 0.4, 0.3], "image_std": [0.5, 0.5, 0.5],
            "rescale_factor": 1 / 127.5, "offset": True, "do_rescale": True, "do_normalize": True,
            "crop_size": {"height": 32, "width": 32}, "size": {"shortest_edge": 32}}  # fmt: skip
    (folder / "preprocessor_config.json").write_text(json.dumps(proc))
    spec = load_model(folder).probe_input_spec()
    np.testing.assert_allclose(spec["mean"], [0.75, 0.7, 0.65])
    np.testing.assert_allclose(spec["std"], [0.25, 0.25, 0.25])
    assert spec["processor"]["source"] == "preprocessor_config.json"
    # no processor file: the ViViT processor's defaults (mean = std = 0.5 with the offset)
    default = load_model(folders["vivit"]).probe_input_spec()
    np.testing.assert_allclose(default["mean"], [0.75] * 3)
    assert "class defaults" in default["processor"]["sources"]["mean"]


def test_a_config_that_disagrees_with_the_module_is_refused():
    config = tiny_upstream_config("vivit")
    model = probe_class_for(config)(config)
    model.config.tubelet_size = [2, 4, 4]  # the module still embeds 8 x 8 patches
    with pytest.raises(ValueError, match=r"probed shapes differ from the config's; embeddings: config says"):
        model.check_probe_layers()


def test_unknown_model_type_names_the_alternatives(tmp_path):
    import transformers

    cfg = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    transformers.BertModel(cfg).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"model_type 'bert'.*vivit.*--model_factory"):
        load_model(tmp_path)


@pytest.mark.parametrize("name", ["vivit", "xclip"])
def test_stadyn_probe_model_folder_reports_the_family(name, folders, tmp_path):
    out = tmp_path / "report"
    args = ["probe", "--model", str(folders[name]), "--synth", "motion", "--synth_clips", "4", "--num_pairs", "8",
            "--batch_size", "8", "--no_reference", "--disable_tqdm", "--output_dir", str(out)]  # fmt: skip
    assert stadyn(args) == 0
    doc = json.loads((out / "report.json").read_text())
    family, _, layouts = EXPECTED[name]
    assert doc["pair_settings"]["model_family"] == family
    assert doc["pair_settings"]["layouts"] == layouts
    assert [lb["layer"] for lb in doc["layers"]] == list(layouts)
    assert f"model_family: `{json.dumps(family)}`" in (out / "report.md").read_text()


# --------------------------------------------------------------------------------- --model_factory
def test_model_factory_probes_a_3d_cnn_with_the_same_report(tmp_path):
    out = tmp_path / "cnn"
    layers = "stem:cthw,layer1:cthw,layer2:cthw,head:vector"
    args = ["probe", "--model_factory", f"{EXAMPLE}:build", "--layers", layers, "--synth", "motion",
            "--synth_clips", "4", "--num_pairs", "8", "--reference", "--disable_tqdm", "--output_dir", str(out)]  # fmt: skip
    assert stadyn(args) == 0
    doc = json.loads((out / "report.json").read_text())
    assert [lb["layer"] for lb in doc["layers"]] == ["stem", "layer1", "layer2", "head"]
    assert doc["pair_settings"]["model_family"] == "Tiny3DCNN (model factory)"
    assert doc["pair_settings"]["layouts"] == parse_layer_layouts(layers)
    assert doc["pair_settings"]["num_frames"] == 8 and doc["pair_settings"]["image_size"] == 32
    assert doc["reference"] is not None and "--model_factory" in doc["extra"]["command"]
    # the readings are those of the module the file builds, pooled as asked (one forward per batch)
    adapter = ModuleAdapter.from_factory(f"{EXAMPLE}:build", layers)
    calls = []
    adapter.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    pairs = adapter.pairs_from_videos(_clips(4), seed=0, num_pairs=8)
    res = probe(adapter.model, pairs, layers=adapter.probe_layer_specs(), forward_fn=adapter.forward_fn,
                batch_size=4, progress=False, place=False)  # fmt: skip
    assert len(calls) == 2 and list(res.layers) == ["stem", "layer1", "layer2", "head"]
    assert res.layers["layer2"].num_channels == 32


def test_model_factory_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "f.py"
    bad.write_text("import torch\nINPUT_SPEC = {'num_frames': 4, 'image_size': 16}\n"
                   "def build():\n    return torch.nn.Conv3d(3, 4, 1)\n")  # fmt: skip
    base = ["probe", "--synth", "motion", "--no_reference", "--disable_tqdm", "--output_dir", str(tmp_path / "o")]
    cases = [
        ([f"{bad}:missing", "--layers", ":cthw"], "has no layout"),
        ([f"{bad}:missing", "--layers", "x:cthw"], "has no function 'missing'"),
        ([f"{tmp_path}/nope.py:build", "--layers", "x:cthw"], "is not a file"),
        ([f"{bad}:build", "--layers", "x:cube"], "is not a known layout"),
        ([f"{bad}:build", "--layers", "x:cthw"], "has no module 'x'"),
        ([f"{bad}:build"], "give the layers to probe"),
    ]
    for extra, msg in cases:
        rc = stadyn([*base, "--model_factory", extra[0], *extra[1:]])
        err = capsys.readouterr().err
        assert rc != 0 and msg in err, (extra, err)
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert stadyn([*base, "--model", "x", "--model_factory", f"{bad}:build"]) != 0
    assert "exclude each other" in capsys.readouterr().err


def test_model_factory_per_frame_layouts_pool_per_clip(tmp_path):
    """A frame encoder (B * T frames along the batch): 'frames' / 'frame_tokens' layers pool per clip of the
    INPUT_SPEC's T frames (a bug: B * T rows, one per frame, reach the estimator)."""
    f = tmp_path / "frames.py"
    f.write_text(
        "import torch\n"
        "INPUT_SPEC = {'num_frames': 4, 'image_size': 16}\n"
        "class Tok(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x.flatten(2).transpose(1, 2)\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, 6, 3)\n"
        "        self.tok = Tok()\n"
        "    def forward(self, x):\n"
        "        return self.tok(self.conv(x))\n"
        "def build():\n    return M()\n"
        "def forward_fn(clips):\n"
        "    return clips.flatten(0, 1).permute(0, 3, 1, 2).float() / 255\n"
    )
    adapter = ModuleAdapter.from_factory(f"{f}:build", "conv:frames,tok:frame_tokens")
    pairs = adapter.pairs_from_videos(_clips(3, t=4, size=16), seed=0, num_pairs=8)
    res = probe(adapter.model, pairs, layers=adapter.probe_layer_specs(), forward_fn=adapter.forward_fn,
                batch_size=4, progress=False, place=False)  # fmt: skip
    assert list(res.layers) == ["conv", "tok"]
    for lb in res.layers.values():
        assert lb.num_channels == 6 and lb.num_pairs["dynamic"] + lb.num_pairs["static"] == 8
