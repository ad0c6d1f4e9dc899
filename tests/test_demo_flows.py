"""The demo Space's three flows as library calls (hf_stadyn.demo.single / videoset / compare / models), on real mp4
files, the embedded default and the released checkpoints bundled in spaces_app/models/."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_stadyn.demo import AnalysisCancelled, DemoLimits, make_example_videos
from hf_stadyn.demo.compare import compare_models, comparison_markdown, load_readings, synth_pair_set
from hf_stadyn.demo.models import ALLOW_HUB_ENV, RELEASED_MODELS, model_choices, resolve_model
from hf_stadyn.demo.single import explain_video, video_clips
from hf_stadyn.demo.videoset import MIN_VIDEOS, analyze_videos
from hf_stadyn.metric import LayerBias
from hf_stadyn.pairs import PairDataset
from hf_stadyn.probing.engine import probe
from hf_stadyn.report import BiasReport
from hf_stadyn.report.compare import delta
from hf_stadyn.video import read_video, write_video

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "spaces_app"
MODELS = SPACE / "models"


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """probe() makes a default Accelerator; start from a clean singleton whatever ran before."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> list[Path]:
    return make_example_videos(tmp_path_factory.mktemp("examples"), seed=0)


@pytest.fixture(scope="module")
def still(tmp_path_factory) -> Path:
    """A video whose 24 frames are all the same picture: shuffling its frames changes nothing."""
    frame = np.random.default_rng(0).integers(0, 256, size=(1, 48, 64, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("still") / "still.mp4", np.repeat(frame, 24, axis=0), fps=8)


# -- one video ---------------------------------------------------------------------------------------


def test_one_video_trained_model_moves_under_shuffling_init_does_not(tmp_path, examples):
    """The embedded default is motion-trained: shuffling the frames of a moving object moves its deep features
    far more than those of the same architecture at init. A bug that does not shuffle (identity permutation),
    that compares each view with another clip, or that swaps the two columns fails here."""
    md, js = explain_video(examples[0], "default", seed=0, out_dir=tmp_path / "d")
    trained = json.loads(Path(js).read_text())
    _, js0 = explain_video(examples[0], "init", seed=0, out_dir=tmp_path / "i")
    init = json.loads(Path(js0).read_text())
    assert list(trained["layers"]) == ["embeddings", "block_0", "block_1", "block_2", "block_3", "pre_classifier"]
    deep_t, deep_i = trained["layers"]["block_3"], init["layers"]["block_3"]
    assert deep_t["shuffle_movement_percent"] > 10 * deep_i["shuffle_movement_percent"]
    assert deep_i["shuffle_movement_percent"] < 0.1 * deep_i["restyle_movement_percent"]  # init: appearance only
    # the patch embedding sees frame pairs (tubelets): shuffling moves it little in either model
    assert trained["layers"]["embeddings"]["shuffle_movement_percent"] < deep_t["shuffle_movement_percent"]
    # the prediction has the model's class names; init keeps its answer under shuffling
    assert trained["prediction"]["top_class_name"] in ("'left'", "'right'", "'up'", "'down'")
    assert init["prediction"]["kept_top1_percent"] == 100.0
    assert trained["prediction"]["kept_top1_percent"] < 100.0
    # the page says what one video can and cannot give, names the model and explains each quantity
    assert "**One video gives no layer estimate.**" in md and "dynamic share" not in md
    assert "**Model**: embedded default (stadyn-tiny-videomae-synth-motion" in md
    for what in ("**Shuffle movement**", "**Restyle movement**", "**Prediction under shuffling**"):
        assert what in md
    assert f"| block_3 | {deep_t['shuffle_movement_percent']:.1f} [" in md
    # deterministic from the seed; another seed draws other shuffles and styles
    _, again = explain_video(examples[0], "default", seed=0, out_dir=tmp_path / "d2")
    assert Path(again).read_bytes() == Path(js).read_bytes()
    _, other = explain_video(examples[0], "default", seed=1, out_dir=tmp_path / "d3")
    assert json.loads(Path(other).read_text())["layers"] != trained["layers"]


def test_one_video_still_frames_do_not_move_under_shuffling(tmp_path, still):
    """Frames that are all the same picture: every shuffle gives the same clip, so the shuffle movement is 0 and
    the prediction is kept; restyling still moves the features. Catches a movement measured against anything but
    the clip's own features."""
    _, js = explain_video(still, "stadyn-tiny-videomae-trap-plain", seed=0, models_dir=MODELS, out_dir=tmp_path)
    r = json.loads(Path(js).read_text())
    assert r["model"] == "stadyn-tiny-videomae-trap-plain"
    for name, row in r["layers"].items():
        assert row["shuffle_movement_percent"] < 1e-3, name
        assert row["restyle_movement_percent"] > 1.0, name
    assert r["prediction"]["kept_top1_percent"] == 100.0 and abs(r["prediction"]["mean_probability_drop"]) < 1e-5


def test_one_video_caps_cancel_and_clips(tmp_path, monkeypatch, examples):
    with pytest.raises(ValueError, match="the demo takes at most 32x32"):
        explain_video(examples[0], "init", limits=DemoLimits(max_width=32, max_height=32), out_dir=tmp_path / "a")
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2  # before decoding, before clip 0, then stop before clip 1

    with pytest.raises(AnalysisCancelled, match="after 1 of 4 clips"):
        explain_video(examples[0], "init", cancel=cancel, out_dir=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    video = read_video(examples[0], size=32)
    clips = video_clips(video, 8, 4)
    assert clips.shape == (4, 8, 32, 32, 3)
    np.testing.assert_array_equal(clips[0, 0], video[0])  # first window starts at frame 0
    np.testing.assert_array_equal(clips[-1, -1], video[-1])  # last window ends at the last frame
    with pytest.raises(ValueError, match="num_clips must be an integer from 1 to 16"):
        explain_video(examples[0], "init", num_clips=0)


# -- a set of videos -----------------------------------------------------------------------------------


def test_video_set_equals_the_engine_and_says_what_the_interval_rests_on(tmp_path, examples):
    md, fig, js = analyze_videos(examples, 48, seed=2, model="default", out_dir=tmp_path / "s")
    report = BiasReport.load(js)
    videos = [read_video(p, size=32) for p in examples]
    pairs = PairDataset(videos, num_frames=8, size=32, window="auto", seed=2, num_pairs=48)
    net, _ = resolve_model("default")
    direct = probe(net, pairs, batch_size=16, progress=False).layers
    for name, lb in direct.items():
        assert report.layers[name].to_dict() == lb.to_dict(), name
    last = direct["pre_classifier"]
    assert last.intervals, "three videos give an interval (jackknife over 3 videos)"
    assert report.pair_settings["num_videos"] == 3
    assert "**The intervals rest on 3 videos and 48 pairs**" in md
    assert "With only 3 videos the interval is itself rough" in md
    assert f"{last.num_pairs['dynamic']} dynamic / {last.num_pairs['static']} static" in md
    assert "**Model**: embedded default" in md and report.model_id.startswith("embedded default")


def test_video_set_refuses_too_few_duplicates_and_oversized(tmp_path, monkeypatch, examples):
    with pytest.raises(ValueError, match=f"needs at least {MIN_VIDEOS} videos"):
        analyze_videos(examples[:2], 32, 0, "init")
    with pytest.raises(ValueError, match="the same video was given twice"):
        analyze_videos([examples[0], examples[0], examples[1]], 32, 0, "init")

    def no_decoding(*a, **k):
        raise AssertionError("decoded a video that breaks the caps")

    monkeypatch.setattr("hf_stadyn.video.read_video", no_decoding)
    with pytest.raises(ValueError, match="lasts 4.0 s; the demo takes at most 3 s"):
        analyze_videos(examples, 32, 0, "init", limits=DemoLimits(max_duration_s=3), out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="need 0 MB decoded"):
        analyze_videos(examples, 32, 0, "init", limits=DemoLimits(max_decoded_mb=1e-3), out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_video_set_stops_when_cancelled(tmp_path, examples):
    made: list[int] = []
    with pytest.raises(AnalysisCancelled, match="cancelled after 5 of 64 pairs"):
        analyze_videos(
            examples, 64, 0, "init", out_dir=tmp_path / "c", cancel=lambda: len(made) >= 5,
            on_pair=lambda k, n: made.append(k), batch_size=4,
        )  # fmt: skip
    assert made == [1, 2, 3, 4, 5] and not (tmp_path / "c").exists()


# -- models ----------------------------------------------------------------------------------------------


def test_released_models_are_the_published_checkpoints_and_choices_are_checked(monkeypatch):
    """The Space's copies are byte for byte the releases in model_cards/ (a stale copy after a rebuild fails)."""
    for name in RELEASED_MODELS:
        for f in ("config.json", "preprocessor_config.json", "model.safetensors", "training.json"):
            a, b = (MODELS / name / f).read_bytes(), (REPO / "model_cards" / name / f).read_bytes()
            assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest(), (name, f)
    assert list(model_choices(MODELS)) == ["default", "init", *RELEASED_MODELS]
    assert list(model_choices(None)) == ["default", "init"]
    net, label = resolve_model("stadyn-tiny-videomae-trap-stillmix", MODELS)
    assert label == "stadyn-tiny-videomae-trap-stillmix" and net.config.id2label[0] == "left"
    init, init_label = resolve_model("init")
    default, _ = resolve_model("default")
    assert init_label.startswith("init:") and init is not default
    assert not torch.equal(init.videomae.embeddings.patch_embeddings.projection.weight,
                           default.videomae.embeddings.patch_embeddings.projection.weight)  # fmt: skip
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        resolve_model("nope", MODELS)
    with pytest.raises(ValueError, match="is not bundled with this Space"):
        resolve_model("stadyn-tiny-videomae-trap-plain", None)
    monkeypatch.delenv(ALLOW_HUB_ENV, raising=False)
    with pytest.raises(ValueError, match="does not load Hub models"):
        resolve_model("hub:MCG-NJU/videomae-base")
    monkeypatch.setenv(ALLOW_HUB_ENV, "1")
    for bad in ("hub:../etc", "hub:a/b/c", "hub:"):
        with pytest.raises(ValueError, match="is not a Hub model id"):
            resolve_model(bad)


def test_hub_model_size_cap_and_safetensors_only(tmp_path, hub_server):  # noqa: F811
    """Against the local Hub server (in a subprocess: huggingface_hub reads HF_ENDPOINT at import): a repo with
    weights over the cap, or with pickle weights only, is refused before anything is downloaded; one under the cap
    loads, equals the uploaded model, and is named in the label."""
    proc = run_in_hub_env(
        hub_server,
        f"""
        import os, torch
        from pathlib import Path
        from huggingface_hub import HfApi
        from hf_stadyn.demo.models import resolve_model
        from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config

        os.environ["{ALLOW_HUB_ENV}"] = "1"
        torch.manual_seed(0)
        model = StadynVideoMAEForVideoClassification(tiny_videomae_config(num_labels=4, num_hidden_layers=2)).eval()
        root = Path({str(tmp_path)!r})
        model.save_pretrained(root / "m")
        api = HfApi()
        api.create_repo("tester/tiny", exist_ok=True)
        api.upload_folder(folder_path=str(root / "m"), repo_id="tester/tiny")
        os.environ["STADYN_SPACE_MAX_MODEL_MB"] = "0.001"  # the Space variable
        try:
            resolve_model("hub:tester/tiny")
            raise SystemExit("no size cap")
        except ValueError as e:
            assert "this Space takes models up to 0.001 MB" in str(e), e
        os.environ["STADYN_SPACE_MAX_MODEL_MB"] = "lots"
        try:
            resolve_model("hub:tester/tiny")
            raise SystemExit("a bad cap was accepted")
        except ValueError as e:
            assert "is not a positive number of MB" in str(e), e
        del os.environ["STADYN_SPACE_MAX_MODEL_MB"]
        assert not list((Path(os.environ["HF_HOME"])).rglob("model.safetensors")), "downloaded before the check"
        net, label = resolve_model("hub:tester/tiny", max_hub_mb=50)
        assert label == "tester/tiny (Hub)", label
        x = torch.zeros(1, 8, 3, 32, 32)
        torch.testing.assert_close(net(pixel_values=x).logits, model(pixel_values=x).logits)
        (root / "p").mkdir()
        (root / "p" / "config.json").write_text((root / "m" / "config.json").read_text())
        torch.save(model.state_dict(), root / "p" / "pytorch_model.bin")
        api.create_repo("tester/pickle", exist_ok=True)
        api.upload_folder(folder_path=str(root / "p"), repo_id="tester/pickle")
        try:
            resolve_model("hub:tester/pickle")
            raise SystemExit("loaded pickle weights")
        except ValueError as e:
            assert "safetensors weights only" in str(e), e
        print("hub ok")
        """,
    )
    assert "hub ok" in proc.stdout


# -- the first screen ----------------------------------------------------------------------------------


def test_comparison_is_paired_on_one_synth_set(examples):
    r = compare_models(["default", "init"], num_clips=20, num_pairs=64, seed=1)
    pairs, settings = synth_pair_set(20, 64, 1, 8, 32)
    assert r["pair_set"]["num_clips"] == settings["num_clips"] == 20 and r["pair_set"]["num_videos"] == 20
    net, _ = resolve_model("default")
    alone = probe(net, pairs, batch_size=16, progress=False).layers
    for name, lb in alone.items():
        assert r["models"]["default"]["layers"][name] == lb.to_dict(include_channels=False), name
    md = comparison_markdown(r, ["default", "init"], "block_3")
    a = LayerBias.from_dict(r["models"]["default"]["layers"]["block_3"])
    b = LayerBias.from_dict(r["models"]["init"]["layers"]["block_3"])
    d = delta(a, b, "share_dynamic", paired=True)
    assert f"{d.estimate:+.1f} [{d.low:+.1f}, {d.high:+.1f}]" in md
    assert "64 StaDyn-Synth pairs" in md and "across 20 synthetic clips" in md
    with pytest.raises(ValueError, match="layer 'block_9' is not read"):
        comparison_markdown(r, ["default"], "block_9")
    only = comparison_markdown(r, ["init", "stadyn-tiny-videomae-trap-plain"], "block_3")
    assert "Not in these readings: stadyn-tiny-videomae-trap-plain" in only and "motion-trained" not in only


def test_precomputed_readings_are_current():
    """spaces_app/readings.json is what its recorded command gives today: init (seeded, no weights to drift) is
    recomputed on the full pair set (same pair fingerprint, same numbers to float rounding); every offered model
    is in it. A change to the pairs, the styles or the estimator without rebuilding the file fails here."""
    r = load_readings(SPACE / "readings.json")
    assert r["command"] == "PYTHONPATH=. python scripts/space_readings.py"
    assert list(r["models"]) == ["default", "init", *RELEASED_MODELS]
    ps = r["pair_set"]
    again = compare_models(["init"], num_clips=ps["num_clips"], num_pairs=ps["num_pairs"], seed=ps["seed"])
    assert again["pair_set"]["fingerprint"] == ps["fingerprint"]
    # to float32 rounding (another CPU may differ in the last bits); a stale file differs by far more
    for name, got in again["models"]["init"]["layers"].items():
        want = r["models"]["init"]["layers"][name]
        assert got["num_pairs"] == want["num_pairs"], name
        for key in ("s_dynamic", "s_static"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), (name, key)
        assert got["share"] == pytest.approx(want["share"], rel=1e-4, abs=1e-6), name
        for k, iv in want["intervals"].items():
            assert got["intervals"][k] == pytest.approx(iv, rel=1e-3, abs=1e-5), (name, k)
    # the embedded default's reading moves away from init at block_3 (the honest headline of the first screen)
    md = comparison_markdown(r, None, "block_3")
    dflt = LayerBias.from_dict(r["models"]["default"]["layers"]["block_3"])
    init = LayerBias.from_dict(r["models"]["init"]["layers"]["block_3"])
    assert delta(dflt, init, "share_dynamic", paired=True).low > 0
    assert "| embedded default (stadyn-tiny-videomae-synth-motion, motion-trained) |" in md


from hub_server import hub_server, run_in_hub_env  # noqa: E402, F401  (pytest fixture)
