"""The temporal window fits each video (docs/method.md §1.1): no frozen or looping clip by accident.

Before the fix the window was 64 source frames for every video, so the README's flow (`stadyn synth`
8-frame clips -> `stadyn probe --dataset`) and its Python quick start sampled `sample_indices(8, 8, 64)`
= `[0 0 0 0 0 0 0 0]`: every clip one repeated frame, and the embedded default read s_D 0.089 / s_S 1.011
at pre_classifier ("maximally static") instead of about 0.22 / 0.42 with a fitting window.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from hf_stadyn.cli import main as stadyn
from hf_stadyn.video.sampling import fit_window, sample_indices


@pytest.fixture(autouse=True)
def _reset_accelerate():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_issue_cases_are_neither_frozen_nor_looping():
    np.testing.assert_array_equal(sample_indices(8, 8, 64), np.arange(8))  # was all zeros
    idx = sample_indices(32, 16, 64)  # was 0, 4, ..., 28, 0, 4, ... (jumped back to frame 0)
    assert idx[0] == 0 and idx[-1] == 31 and (np.diff(idx) > 0).all()


def test_evenly_spaced_with_both_ends_and_no_wrap():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, t, w = int(rng.integers(1, 200)), int(rng.integers(2, 33)), int(rng.integers(1, 130))
        idx = sample_indices(n, t, w, rng)
        fitted = min(w, n)
        start = int(idx[0])
        assert 0 <= start <= n - fitted  # the window lies inside the video
        expected = np.floor(np.linspace(start, start + fitted - 1, t) + 0.5).astype(np.int64)
        np.testing.assert_array_equal(idx, expected)  # the research code's linspace, rounded
        assert idx[-1] == start + fitted - 1  # both ends included
        assert (np.diff(idx) >= 0).all()  # never wraps
    np.testing.assert_array_equal(sample_indices(100, 4, 64, start=10), [10, 31, 52, 73])
    np.testing.assert_array_equal(sample_indices(5, 8, 64), [0, 1, 1, 2, 2, 3, 3, 4])  # short: repeats in order
    np.testing.assert_array_equal(sample_indices(20, 4, 8, start=16), [16, 17, 18, 19])  # ends at the last frame


def test_loop_only_when_asked_and_only_below_the_frame_count():
    assert fit_window(5, 8, 16) == (5, False)
    assert fit_window(5, 8, 16, loop=True) == (16, True)
    assert fit_window(10, 8, 64, loop=True) == (10, False)  # at least T frames: fitted, never looped
    looped = sample_indices(5, 8, 16, loop=True, start=0)
    np.testing.assert_array_equal(looped, np.floor(np.linspace(0, 15, 8) + 0.5).astype(int) % 5)
    assert (np.diff(looped) < 0).any()  # wraps within the video, from the start frame
    assert (np.diff(sample_indices(5, 8, 16)) >= 0).all()


def test_pair_dataset_fits_arrays_and_counts_loops(caplog):
    from hf_stadyn.pairs import PairDataset

    rng = np.random.default_rng(1)
    videos = [rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8) for n in (8, 5, 40)]
    auto = PairDataset(videos, num_frames=8, size=None, seed=0, num_pairs=6)
    fitted = PairDataset(videos[:1] * 3, num_frames=8, size=None, window=8, seed=0, num_pairs=6)
    same = PairDataset(videos[:1] * 3, num_frames=8, size=None, seed=0, num_pairs=6)
    for i in range(6):
        assert auto[i]["video_index"] == i % 3
        a, b = same[i], fitted[i]
        assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in ("clip_a", "clip_b", "permutation"))
    summary = auto.window_summary()
    assert summary["fitted_window"] == {"min": 5, "median": 8.0, "max": 40}
    assert (summary["looped_videos"], summary["short_videos"]) == (0, 1)
    with caplog.at_level(logging.WARNING, logger="hf_stadyn.pairs.dataset"):
        looping = PairDataset(videos, num_frames=8, size=None, window=16, loop=True, seed=0, num_pairs=6)
        looping[1]
        assert looping.window_summary()["looped_videos"] == 1
    assert "loops" in caplog.text


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory):
    """What `stadyn synth --split motion` writes (8-frame clips at 32 px, like the embedded model's input)."""
    from hf_stadyn.synth import SynthConfig
    from hf_stadyn.synth.export import generate

    out = tmp_path_factory.mktemp("synth") / "motion"
    generate(out, "motion", num_clips=48, config=SynthConfig(num_frames=8, size=32), seed=0)
    return out


def _pre_classifier(folder, *extra):
    out = folder.parent / ("report" + "".join(extra).replace("-", "_"))
    args = ["probe", "--dataset", str(folder), "--num_pairs", "300", "--batch_size", "50", "--layers",
            "pre_classifier", "--no_reference", "--disable_tqdm", "--overwrite", "--output_dir", str(out), *extra]  # fmt: skip
    assert stadyn(args) == 0
    doc = json.loads((out / "report.json").read_text())
    return doc["layers"][0], doc["pair_settings"]


def test_readme_cli_flow_reads_like_a_fitting_window(synth_folder):
    auto, settings = _pre_classifier(synth_folder)
    explicit, _ = _pre_classifier(synth_folder, "--window", "8")
    assert (auto["s_dynamic"], auto["s_static"]) == (explicit["s_dynamic"], explicit["s_static"])
    assert auto["s_static"] < 0.7 and auto["s_dynamic"] > 0.12  # the frozen clips read s_S 1.011, s_D 0.089
    assert settings["window"] == 8 and settings["looped_videos"] == 0 and settings["window_requested"] == "auto"
    assert settings["chunking"] == "video" and len(settings["fingerprint"]) == 64


def test_readme_python_quick_start_reads_like_a_fitting_window(synth_folder):
    from hf_stadyn import PairDataset, load_model, probe

    model = load_model(None)
    spec = model.probe_input_spec()
    readings = []
    for window in ("auto", 8):
        pairs = PairDataset(synth_folder, num_frames=spec["num_frames"], size=spec["image_size"], window=window,
                            seed=0, num_pairs=200)  # fmt: skip
        res = probe(model, pairs, layers=["pre_classifier"], batch_size=50, progress=False, cpu=True)
        readings.append(res.layers["pre_classifier"])
        fingerprint = res.settings["pair_fingerprint"]
    assert (readings[0].s_dynamic, readings[0].s_static) == (readings[1].s_dynamic, readings[1].s_static)
    assert readings[0].s_static < 0.7 and readings[0].s_dynamic > 0.12
    assert len(fingerprint) == 64
