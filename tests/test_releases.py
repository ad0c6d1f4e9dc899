"""The released checkpoints in model_cards/ (issue 17 point 1): complete Hub repos whose records describe them.

Each folder (built by scripts/build_releases.py) must hold the weights (safetensors only), config, processor
config, a Hub-complete card, bias_report.json and training.json; load in plain transformers in a process that
never imports hf_stadyn with the same logits as hf_stadyn's loader; reproduce, on the study's own held-out clips,
the task accuracies its card and training.json state; and carry a card that is what the card code builds today
from those two files.

Bugs caught: a folder missing a file the Hub repo needs, or with a pickle; weights that need hf_stadyn to load
(custom classes, config keys plain transformers rejects); a processor config whose statistics differ from those
hf_stadyn applies (logits would differ); recorded accuracies that do not describe the weights (a copy from the
wrong run, a stale card after retraining); a card made by older card code or for the wrong repo id; the
side-by-side README missing a release or quoting stale figures.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hub_server import hub_env, hub_server  # noqa: F401  (pytest fixture)
from huggingface_hub import ModelCard

from hf_stadyn import load_model
from hf_stadyn.hub import STADYN_SYNTH_DATASET, bias_model_card
from hf_stadyn.report import BiasReport
from hf_stadyn.synth import SynthConfig, SynthDataset

ROOT = Path(__file__).resolve().parent.parent
CARDS = ROOT / "model_cards"


def _builder():
    spec = importlib.util.spec_from_file_location("build_releases", ROOT / "scripts" / "build_releases.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_releases"] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


BUILD = _builder()
RELEASES = {r.name: r for r in BUILD.RELEASES}
TRAP = [r.name for r in BUILD.RELEASES if r.run is not None]
REQUIRED = {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "bias_report.json",
            "training.json"}  # fmt: skip


def _training(name: str) -> dict:
    return json.loads((CARDS / name / "training.json").read_text())


def test_every_release_has_a_folder_and_nothing_else_is_there():
    folders = {p.name for p in CARDS.iterdir() if p.is_dir()}
    assert folders == set(RELEASES)
    assert {"plain fine-tuning", "StaticDropout"} <= {r.method for r in BUILD.RELEASES}


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_folder_is_a_complete_hub_repo(name):
    folder = CARDS / name
    files = {p.name for p in folder.iterdir()}
    assert files >= REQUIRED, REQUIRED - files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"))]
    assert (folder / "model.safetensors").stat().st_size < 5_000_000  # small enough to commit
    tr = _training(name)
    for key in ("command", "seed", "seeds", "epochs", "data", "method", "base_model", "accuracy", "synth_config"):
        assert key in tr, key
    assert tr["seeds"] == [tr["seed"]] and tr["method"] == RELEASES[name].method
    script = tr["command"].split("python ")[1].split()[0]
    assert (ROOT / script).is_file(), script  # the rebuild command names a script that exists
    if RELEASES[name].run is not None:
        assert f"--only {RELEASES[name].run}" in tr["command"]
        assert set(tr["accuracy"]) == {"test_aligned", "test_conflicting"}
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architectures"] == ["VideoMAEForVideoClassification"]
    assert [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))] == tr["synth_config"]["motions"]


def _clips(n: int, variant: str) -> torch.Tensor:
    ev = BUILD.EVAL_SET
    cfg = SynthConfig(motions=tuple(BUILD_MOTIONS), num_appearances=BUILD_A)
    ds = SynthDataset(ev["split"], n, cfg, seed=ev["seed"], trap_share=ev["trap_share"], trap_cue=ev["trap_cue"],
                      test_variant=variant, train=False)  # fmt: skip
    return ds.to_tensors()


BUILD_MOTIONS = _training(TRAP[0])["synth_config"]["motions"]
BUILD_A = _training(TRAP[0])["synth_config"]["num_appearances"]

PLAIN = """
import json, sys
sys.modules["hf_stadyn"] = None  # any import of hf_stadyn fails
import numpy as np, torch
from transformers import AutoImageProcessor, AutoModelForVideoClassification
folders, clips = json.loads(sys.argv[1]), np.load(sys.argv[2])
out = {}
for f in folders:
    model = AutoModelForVideoClassification.from_pretrained(f).eval()
    processor = AutoImageProcessor.from_pretrained(f)
    pixel_values = processor([list(c) for c in clips], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out[f] = model(pixel_values=pixel_values).logits.tolist()
assert not any(m == "hf_stadyn" or m.startswith("hf_stadyn.") for m in sys.modules if sys.modules[m] is not None)
json.dump(out, open(sys.argv[3], "w"))
"""


def test_every_release_loads_in_plain_transformers_with_hf_stadyns_logits(tmp_path):
    """One subprocess (hf_stadyn blocked in sys.modules) loads every folder with AutoModelForVideoClassification
    and its processor config; logits on 16 trap clips equal hf_stadyn's loader + prepare_pixel_values."""
    clips = torch.cat([_clips(8, "aligned")["frames"], _clips(8, "conflicting")["frames"]])
    np.save(tmp_path / "clips.npy", clips.numpy())
    folders = [str(CARDS / n) for n in sorted(RELEASES)]
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, json.dumps(folders), str(tmp_path / "clips.npy"), str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain = json.loads((tmp_path / "out.json").read_text())
    for f in folders:
        model = load_model(f).eval()
        with torch.no_grad():
            ours = model(pixel_values=model.prepare_pixel_values(clips)).logits
        torch.testing.assert_close(torch.tensor(plain[f]), ours, atol=1e-4, rtol=1e-4, msg=f)


@pytest.fixture(scope="module")
def test_sets() -> dict[str, dict]:
    n = BUILD.EVAL_SET["clips"]
    return {v: _clips(n, v) for v in BUILD.EVAL_SET["variants"]}


@pytest.mark.parametrize("name", TRAP)
def test_recorded_accuracies_describe_the_weights(name, test_sets):
    """The study's own 500 + 500 held-out trap clips give the accuracies in training.json and the card (at most
    one clip of difference for float summation order), and the cue-following rate of the conflicting clips."""
    tr = _training(name)
    model = load_model(str(CARDS / name)).eval()
    n = BUILD.EVAL_SET["clips"]
    for variant in ("aligned", "conflicting"):
        t = test_sets[variant]
        with torch.no_grad():
            pred = torch.cat([model(pixel_values=model.prepare_pixel_values(c)).logits.argmax(-1)
                              for c in t["frames"].split(100)])  # fmt: skip
        acc = (pred == t["motion"]).float().mean().item()
        assert abs(acc - tr["accuracy"][f"test_{variant}"]) <= 1 / n + 1e-6, (variant, acc)
        if variant == "conflicting":
            follows = (pred == t["appearance"]).float().mean().item()
            assert abs(follows - tr["behaviour"]["conflicting_follows_cue"]) <= 1 / n + 1e-6, follows


def test_the_debiasers_beat_plain_fine_tuning_on_conflicting_clips():
    """What the release table tells users: the released StillMix and decorrelation models are better on
    conflicting clips than the released plain model (seed 0; all 8 seeds: docs/debias_study.md)."""
    acc = {n: _training(n)["accuracy"]["test_conflicting"] for n in TRAP}
    plain = acc["stadyn-tiny-videomae-trap-plain"]
    assert acc["stadyn-tiny-videomae-trap-stillmix"] > plain + 0.1
    assert acc["stadyn-tiny-videomae-trap-decorrelation"] > plain + 0.1


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_card_is_current_and_hub_complete(name):
    """README.md is exactly what the card code builds now from bias_report.json and training.json."""
    folder = CARDS / name
    report = BiasReport.load(folder / "bias_report.json")
    tr = _training(name)
    kwargs = BUILD.card_kwargs(RELEASES[name], tr)
    expected = bias_model_card(report, figures=report.figure_files(), **kwargs)
    text = (folder / "README.md").read_text()
    assert text == str(expected), "stale card: rerun `PYTHONPATH=. python scripts/build_releases.py`"
    card = ModelCard.load(folder / "README.md")
    meta = yaml.safe_load(text.split("---")[1])
    assert card.data.license and card.data.pipeline_tag == "video-classification"
    assert STADYN_SYNTH_DATASET in card.data.datasets
    assert meta["model-index"][0]["name"] == f"{BUILD.ORG}/{name}"
    accs = {r.dataset_split: r.metric_value for r in card.data.eval_results if r.metric_type == "accuracy"}
    assert accs == tr["accuracy"]
    for fig in report.figure_files().values():
        assert (folder / fig).is_file(), fig
    assert f'from_pretrained("{BUILD.ORG}/{name}")' in text and tr["command"] in text


def test_side_by_side_readme_is_current():
    text = (CARDS / "README.md").read_text()
    assert text == BUILD.readme(), "stale model_cards/README.md: rerun scripts/build_releases.py --readme-only"
    for name in RELEASES:
        assert f"[`{name}`]({name}/)" in text


FROM_HUB = """
import sys
sys.modules["hf_stadyn"] = None
import torch
from transformers import AutoModelForVideoClassification
model = AutoModelForVideoClassification.from_pretrained(sys.argv[1], revision="v1").eval()
torch.manual_seed(0)
x = torch.rand(2, model.config.num_frames, 3, model.config.image_size, model.config.image_size)
with torch.no_grad():
    print(repr(model(pixel_values=x).logits.tolist()))
"""


def test_a_release_publishes_and_loads_from_the_hub(hub_server, tmp_path):  # noqa: F811
    """``stadyn publish model_cards/<name> --repo_id ... --revision v1`` against the local Hub server uploads
    every file of the folder (weights through LFS), with the card rebuilt for that repo id and its description
    kept; plain transformers then loads the repo at the tag from the Hub (HF_ENDPOINT) with the folder's logits.

    Bugs caught: a release folder that does not publish as it is (a file left out, the card losing its
    description or training record for another repo id), weights on the Hub that differ from the folder's."""
    name = "stadyn-tiny-videomae-trap-stillmix"
    repo = f"tester/{name}"
    folder = CARDS / name
    env = hub_env(hub_server)
    proc = subprocess.run(["stadyn", "publish", str(folder), "--repo_id", repo, "--revision", "v1"], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = hub_server.hub.files(repo)
    assert set(files) == {p.name for p in folder.iterdir()}
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    readme = files["README.md"].decode()
    assert _training(name)["description"] in readme and f'from_pretrained("{repo}")' in readme
    assert _training(name)["command"] in readme
    proc = subprocess.run([sys.executable, "-c", FROM_HUB, repo], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = load_model(str(folder)).eval()
    torch.manual_seed(0)
    x = torch.rand(2, model.config.num_frames, 3, model.config.image_size, model.config.image_size)
    with torch.no_grad():
        want = model(pixel_values=x).logits
    torch.testing.assert_close(torch.tensor(eval(proc.stdout.strip())), want, atol=1e-5, rtol=1e-5)
