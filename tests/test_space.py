"""The demo: hf_stadyn.demo.analyze_video on real mp4 files, its caps, and the Gradio Space
(spaces_app/app.py) through gradio_client and through a real browser (Playwright + Debian's chromium).

(A little over 500 lines: the Space's fixtures are shared by the API, cancellation and browser tests.)"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_stadyn import demo as demo_mod
from hf_stadyn.demo import AnalysisCancelled, DemoLimits, analyze_video, check_video, load_demo_model, video_pairs
from hf_stadyn.demo.compare import load_readings
from hf_stadyn.demo.single import explain_video
from hf_stadyn.demo.videoset import analyze_videos
from hf_stadyn.metric import LayerBias
from hf_stadyn.pairs import PairDataset
from hf_stadyn.probing.engine import probe
from hf_stadyn.report import FIGURE_SIZE, BiasReport
from hf_stadyn.report.headline import share_text
from hf_stadyn.video import read_video, write_video

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "spaces_app" / "app.py"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """probe() makes a default Accelerator; start from a clean singleton whatever ran before."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield


def _moving_frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """A textured square moving right over a noisy background: (T, H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 120, size=(h, w, 3), dtype=np.uint8)
    tex = rng.integers(120, 256, size=(h // 3, h // 3, 3), dtype=np.uint8)
    frames = np.repeat(bg[None], t, axis=0)
    s = tex.shape[0]
    for i in range(t):
        x = (2 * i) % (w - s)
        frames[i, h // 3 : h // 3 + s, x : x + s] = tex
    return frames


@pytest.fixture(scope="module")
def tiny_model():
    from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config

    torch.manual_seed(0)
    return StadynVideoMAEForVideoClassification(tiny_videomae_config(num_labels=4, num_hidden_layers=2)).eval()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        # 40 frames, 64x48, 10 fps (4 s)
        "clip": write_video(d / "clip.mp4", _moving_frames(40, 48, 64, 0), fps=10),
        # another texture and background, 3 s
        "clip2": write_video(d / "clip2.mp4", _moving_frames(30, 48, 64, 4), fps=10),
        # portrait 48x64, 2 s
        "portrait": write_video(d / "portrait.mp4", _moving_frames(20, 64, 48, 1), fps=10),
        # 40 frames at 4 fps: 10 s
        "long": write_video(d / "long.mp4", _moving_frames(40, 48, 64, 2), fps=4),
        "still": write_video(d / "still.mp4", _moving_frames(1, 48, 64, 3), fps=10),
    }


# -- analyze_video ---------------------------------------------------------------------------------


def test_analyze_video_equals_the_runner_on_the_same_pairs(tmp_path, tiny_model, videos):
    md, fig, js = analyze_video(videos["clip"], 16, seed=3, model=tiny_model, out_dir=tmp_path / "a")
    report = BiasReport.load(js)
    assert report.pair_settings["window"] == 20  # a 40-frame video: windows of half its length
    assert report.pair_settings["num_pairs"] == 16 and report.seed == 3

    # the same pairs built independently from the file, probed directly with the runner
    pairs = PairDataset([str(videos["clip"])], num_frames=8, size=32, window=20, seed=3, num_pairs=16)
    direct = probe(tiny_model, pairs, batch_size=16, progress=False).layers
    assert list(report.layers) == list(direct) == ["embeddings", "block_0", "block_1", "pre_classifier"]
    for name, lb in direct.items():
        assert report.layers[name].to_dict() == lb.to_dict(), name

    last = direct["pre_classifier"]
    # the headline is the share 100 * pi_F (the floored dims % beside it, labelled); one video is one
    # resampling unit, so there is no interval, and the summary says so instead of showing one
    assert last.intervals == {} and report.pair_settings["num_videos"] == 1
    dyn, stat = 100 * last.share["dynamic"], 100 * last.share["static"]
    assert f"**{dyn:.1f} % dynamic / {stat:.1f} % static** share" in md
    assert f"dims % (paper): {last.percent['dynamic']:.1f} / {last.percent['static']:.1f}" in md
    assert "there is no interval" in md and "Intervals: none" in md
    assert report.pair_settings["fingerprint"] and report.pair_settings["chunking"] == "video"
    assert f"| pre_classifier | 64 | {last.num_pairs['dynamic']} / {last.num_pairs['static']} |" in md
    assert "64x48, 40 frames at 10 fps (4.0 s)" in md
    from PIL import Image

    with Image.open(fig) as im:
        assert im.format == "PNG" and im.size == (int(FIGURE_SIZE[0] * 100), int(FIGURE_SIZE[1] * 100))

    # reading each clip from the file (a video too large to hold decoded) gives the same report
    _, _, js_file = analyze_video(
        videos["clip"], 16, seed=3, model=tiny_model, out_dir=tmp_path / "b", limits=DemoLimits(max_decoded_mb=1e-6)
    )
    assert Path(js_file).read_bytes() == Path(js).read_bytes()
    # another seed draws other windows, styles and shuffles
    _, _, js_other = analyze_video(videos["clip"], 16, seed=4, model=tiny_model, out_dir=tmp_path / "c")
    other = BiasReport.load(js_other)
    assert other.layers["pre_classifier"].s_static != last.s_static


def test_analyze_video_stops_when_cancelled_and_writes_nothing(tmp_path, tiny_model, videos):
    """The Space's cancellation hook: asked before each pair; a bug that ignores it (or checks only once per run)
    makes all 32 pairs, and one that reorders or drops items changes the report's bytes."""
    made: list[tuple[int, int]] = []

    def on_pair(k: int, n: int) -> None:
        made.append((k, n))

    kw = {"model": tiny_model, "batch_size": 8}
    _, _, plain = analyze_video(videos["clip"], 32, 2, out_dir=tmp_path / "plain", **kw)
    _, _, watched = analyze_video(
        videos["clip"], 32, 2, out_dir=tmp_path / "watched", cancel=lambda: False, on_pair=on_pair, **kw
    )
    assert Path(watched).read_bytes() == Path(plain).read_bytes()
    assert made == [(k, 32) for k in range(1, 33)]

    made.clear()
    with pytest.raises(AnalysisCancelled, match="cancelled after 10 of 32 pairs"):
        analyze_video(
            videos["clip"], 32, 2, out_dir=tmp_path / "stopped", cancel=lambda: len(made) >= 10, on_pair=on_pair, **kw
        )
    assert len(made) == 10  # stopped inside the second batch of 8, before its third pair
    assert not (tmp_path / "stopped").exists()
    with pytest.raises(AnalysisCancelled, match="before decoding the video"):
        analyze_video(videos["clip"], 32, 2, out_dir=tmp_path / "early", cancel=lambda: True, **kw)
    assert not (tmp_path / "early").exists()
    with pytest.raises(ValueError, match="cancel must be a callable"):
        analyze_video(videos["clip"], 32, 2, out_dir=tmp_path / "bad", cancel=True, **kw)


def test_video_pairs_come_from_several_windows_decoded_once(monkeypatch, tiny_model, videos):
    pairs = video_pairs(videos["clip"], tiny_model, 16, seed=0)

    def no_file_reads(*a, **k):
        raise AssertionError("a clip was read from the file again")

    monkeypatch.setattr("hf_stadyn.pairs.dataset.read_clip", no_file_reads)
    items = [pairs[i] for i in range(16)]  # served from the video decoded once at the model's size
    assert len({int(it["start"]) for it in items}) > 4  # several temporal windows
    for it in items:
        assert it["clip_a"].shape == (8, 32, 32, 3) and it["clip_b"].shape == (8, 32, 32, 3)
        if it["factor"] == 1:  # static: clip_b is clip_a with its frames shuffled
            np.testing.assert_array_equal(it["clip_b"].numpy(), it["clip_a"].numpy()[it["permutation"].numpy()])


@pytest.mark.parametrize(
    "limits, video, error, message",
    [
        (DemoLimits(max_file_mb=0.0001), "clip", ValueError, "the demo takes files up to 0.0001 MB"),
        (DemoLimits(max_duration_s=5), "long", ValueError, "lasts 10.0 s; the demo takes at most 5 s"),
        (DemoLimits(max_width=60, max_height=60), "clip", ValueError, "64x48 pixels; the demo takes at most 60x60"),
        (DemoLimits(max_width=64, max_height=40), "portrait", ValueError, "48x64 pixels"),
        (DemoLimits(max_frames=30), "clip", ValueError, "has 40 frames; the demo takes at most 30"),
        (DemoLimits(), "still", ValueError, "needs at least 2"),
        (DemoLimits(), "missing", FileNotFoundError, "not found"),
        (DemoLimits(), "not_video", ValueError, "cannot read"),
    ],
)
def test_caps_are_checked_before_decoding(tmp_path, monkeypatch, tiny_model, videos, limits, video, error, message):
    def no_decoding(*a, **k):
        raise AssertionError("decoded a video that breaks the caps")

    monkeypatch.setattr("hf_stadyn.video.read_video", no_decoding)
    monkeypatch.setattr("hf_stadyn.pairs.dataset.read_clip", no_decoding)
    if video == "missing":
        path = tmp_path / "gone.mp4"
    elif video == "not_video":
        path = tmp_path / "notes.mp4"
        path.write_text("this is not a video")
    else:
        path = videos[video]
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        analyze_video(path, 16, 0, model=tiny_model, out_dir=tmp_path / "out", limits=limits)
    assert not (tmp_path / "out").exists()


def test_caps_accept_portrait_and_bad_arguments_are_rejected(tmp_path, tiny_model, videos):
    info = check_video(videos["portrait"], DemoLimits(max_width=64, max_height=48))  # 48x64: either orientation
    assert (info.width, info.height, info.num_frames) == (48, 64, 20)
    for bad in (0, 15, 257, 16.5, True, "16", None):
        with pytest.raises(ValueError, match="number of pairs must be an integer from 16 to 256"):
            analyze_video(videos["clip"], bad, 0, model=tiny_model, out_dir=tmp_path)
    for bad in (-1, 1.5, "0"):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            analyze_video(videos["clip"], 16, bad, model=tiny_model, out_dir=tmp_path)
    with pytest.raises(ValueError, match="without the clip-probing mixin"):
        analyze_video(videos["clip"], 16, 0, model=torch.nn.Linear(2, 2), out_dir=tmp_path)
    with pytest.raises(ValueError, match="max_pairs"):
        DemoLimits(min_pairs=10, max_pairs=5)
    with pytest.raises(ValueError, match="max_file_mb"):
        DemoLimits(max_file_mb=0)


def test_model_from_env_and_missing_default(tmp_path, monkeypatch, tiny_model):
    folder = tmp_path / "model"
    tiny_model.save_pretrained(folder)
    monkeypatch.setattr(demo_mod, "_MODEL_CACHE", demo_mod.OrderedDict())
    monkeypatch.setenv(demo_mod.MODEL_ENV, str(folder))
    net, model_id = load_demo_model()
    assert model_id == str(folder)
    assert load_demo_model()[0] is net  # loaded once, then cached
    x = torch.randn(1, 8, 3, 32, 32)
    torch.testing.assert_close(net(pixel_values=x).logits, tiny_model(pixel_values=x).logits)

    monkeypatch.delenv(demo_mod.MODEL_ENV)
    monkeypatch.setattr("hf_stadyn.models.auto.DEFAULT_MODEL_DIR", tmp_path / "no-default")
    with pytest.raises(FileNotFoundError, match="STADYN_MODEL"):
        load_demo_model()


def test_example_videos(tmp_path):
    paths = demo_mod.make_example_videos(tmp_path / "ex", seed=0)
    again = demo_mod.make_example_videos(tmp_path / "ex2", seed=0)
    assert [p.name for p in paths] == ["synth_right.mp4", "synth_clockwise.mp4", "synth_camouflage_up.mp4"]
    first = read_video(paths[0])
    assert first.shape == (48, 128, 128, 3)
    np.testing.assert_array_equal(first, read_video(again[0]))
    assert np.abs(np.diff(first.astype(np.int16), axis=0)).mean() > 0.5  # something moves


# -- the Space -------------------------------------------------------------------------------------


def _load_app():
    spec = importlib.util.spec_from_file_location("stadyn_space_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def space(tmp_path_factory, tiny_model):
    """The Space's app, in-process on 127.0.0.1, probing a tiny model given through STADYN_MODEL."""
    folder = tmp_path_factory.mktemp("space-model") / "model"
    tiny_model.save_pretrained(folder)
    outputs = tmp_path_factory.mktemp("space-outputs")
    old = {k: os.environ.get(k) for k in (demo_mod.MODEL_ENV, "STADYN_SPACE_OUTPUT_DIR")}
    os.environ[demo_mod.MODEL_ENV] = str(folder)
    os.environ["STADYN_SPACE_OUTPUT_DIR"] = str(outputs)
    app = _load_app()
    assert outputs == app.OUTPUT_ROOT
    demo = app.build_demo(limits=DemoLimits(max_duration_s=5))
    demo.launch(  # build_demo set the queue's bounds; launching does not change them
        server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True, max_file_size="50mb"
    )
    try:
        yield demo, folder, app
    finally:
        demo.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _set(videos) -> list:
    from gradio_client import handle_file

    return [handle_file(str(videos[k])) for k in ("clip", "clip2", "portrait")]


def test_space_through_gradio_client(tmp_path, space, tiny_model, videos):
    """The three flows through the HTTP API: each answer equals the library call and names the model."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    demo, folder, app = space
    assert (demo._queue.max_size, app.CONCURRENCY) == (app.QUEUE_MAX_SIZE, 1)
    client = Client(demo.local_url, verbose=False)
    # a set of videos: the layer estimate, with the videos and pairs its interval rests on
    md, fig, js = client.predict(_set(videos), 16, 1, "default", "", api_name="/analyze")
    assert f"**Model**: {folder}" in md and "| layer | C | pairs D / S |" in md
    assert "**The intervals rest on 3 videos and 16 pairs**" in md
    assert Path(fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    got = BiasReport.load(js)
    paths = [videos[k] for k in ("clip", "clip2", "portrait")]
    _, _, expected = analyze_videos(paths, 16, 1, model=tiny_model, out_dir=tmp_path / "direct")
    for name, lb in BiasReport.load(expected).layers.items():
        assert got.layers[name].to_dict() == lb.to_dict(), name
    assert got.model_id == str(folder) and got.pair_settings["num_videos"] == 3
    # the request's own output folder is gone once it answered; the files came from Gradio's cache
    assert list(app.OUTPUT_ROOT.glob("run-*")) == []
    assert not Path(js).is_relative_to(app.OUTPUT_ROOT) and Path(js).is_file()
    # too few videos, a video over the caps: one clear line, not a traceback
    with pytest.raises(AppError, match="needs at least 3 videos"):
        client.predict(_set(videos)[:2], 16, 0, "default", "", api_name="/analyze")
    with pytest.raises(AppError, match="lasts 10.0 s; the demo takes at most 5 s"):
        client.predict([*_set(videos)[:2], handle_file(str(videos["long"]))], 16, 0, "default", "", api_name="/analyze")
    with pytest.raises(AppError, match="greater than maximum"):
        client.predict(_set(videos), 1000, 0, "default", "", api_name="/analyze")
    with pytest.raises(AppError, match="does not load Hub models"):
        client.predict(_set(videos), 16, 0, "default", "someone/model", api_name="/analyze")

    # one video: movement under shuffling vs restyling, the prediction, no layer estimate
    md1, js1 = client.predict(handle_file(str(videos["clip"])), "stadyn-tiny-videomae-trap-plain", "", 0,
                              api_name="/explain")  # fmt: skip
    assert "**Model**: stadyn-tiny-videomae-trap-plain" in md1 and "**One video gives no layer estimate.**" in md1
    _, direct1 = explain_video(videos["clip"], "stadyn-tiny-videomae-trap-plain", 0, models_dir=app.MODELS_DIR,
                               out_dir=tmp_path / "one")  # fmt: skip
    assert json.loads(Path(js1).read_text())["layers"] == json.loads(Path(direct1).read_text())["layers"]
    with pytest.raises(AppError, match="lasts 10.0 s"):
        client.predict(handle_file(str(videos["long"])), "default", "", 0, api_name="/explain")

    # the first screen: precomputed readings (the given model replaces "default", so that row is not shown)
    md2, _ = client.predict(["init", "stadyn-tiny-videomae-trap-stillmix"], "block_1", api_name="/show")
    readings = load_readings(app.READINGS_PATH)
    lb = LayerBias.from_dict(readings["models"]["stadyn-tiny-videomae-trap-stillmix"]["layers"]["block_1"])
    assert f"| stadyn-tiny-videomae-trap-stillmix | {share_text(lb, 'dynamic')} | {share_text(lb, 'static')} |" in md2
    assert "**Layer** `block_1`" in md2 and "1500 StaDyn-Synth pairs" in md2
    md3, _ = client.predict(["init", "stadyn-tiny-videomae-trap-plain"], "block_3", api_name="/recompute")
    assert f"{app.RECOMPUTE_PAIRS} StaDyn-Synth pairs" in md3 and "| stadyn-tiny-videomae-trap-plain |" in md3
    assert "recomputed on demand" in md3
    assert list(app.OUTPUT_ROOT.glob("run-*")) == []


def test_space_cancel_stops_the_analysis_and_frees_its_folder(space, videos, caplog):
    """gradio_client's job.cancel() (the /cancel route) on a running 256-pair request: the app stops the analysis
    between pairs (a cancelled request whose thread runs on logs "finished" instead) and removes its folder."""
    from gradio_client import Client

    demo, _, app = space
    client = Client(demo.local_url, verbose=False)

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "stadyn.space"]

    with caplog.at_level(logging.INFO, logger="stadyn.space"):
        job = client.submit(_set(videos), 256, 0, "default", "", api_name="/analyze")
        for _ in range(1200):  # bounded: 120 s
            if any("started (256 pairs" in m for m in messages()):
                break
            time.sleep(0.1)
        assert job.cancel()
        for _ in range(1200):
            if any(re.search(r"cancelled after \d+ of 256 pairs", m) for m in messages()):
                break
            time.sleep(0.1)
        for _ in range(100):
            if not list(app.OUTPUT_ROOT.glob("run-*")):
                break
            time.sleep(0.1)
    found = [re.search(r"cancelled after (\d+) of 256 pairs", m) for m in messages()]
    made = [int(f.group(1)) for f in found if f]
    assert made and made[-1] < 256, messages()
    assert not any(re.search(r"job \d+: finished", m) for m in messages() if "256" in m)
    assert list(app.OUTPUT_ROOT.glob("run-*")) == []


@pytest.fixture(scope="module")
def space_default(tmp_path_factory):
    """The Space as published: the embedded default and the released checkpoints, no STADYN_MODEL."""
    if not (REPO / "hf_stadyn" / "assets" / "default_model" / "config.json").is_file():
        pytest.skip("the embedded default model is not in this checkout")
    outputs = tmp_path_factory.mktemp("space-default-outputs")
    old = {k: os.environ.get(k) for k in (demo_mod.MODEL_ENV, "STADYN_SPACE_OUTPUT_DIR")}
    os.environ.pop(demo_mod.MODEL_ENV, None)
    os.environ["STADYN_SPACE_OUTPUT_DIR"] = str(outputs)
    app = _load_app()
    demo = app.build_demo()
    demo.launch(
        server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True, max_file_size="50mb"
    )
    try:
        yield demo, app
    finally:
        demo.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _shot(page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot; kept in STADYN_SPACE_SCREENSHOT_DIR (docs/ for the shipped ones) when set."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("STADYN_SPACE_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["STADYN_SPACE_SCREENSHOT_DIR"]) / name)


def test_space_in_a_real_browser(tmp_path, space_default, videos, caplog):
    """The three flows in Debian's chromium: the first screen's comparison (unticking a model removes its row),
    one video (the explanation, no layer estimate), a set of videos (the estimate and what it rests on); then a
    long set analysis whose page is closed is cancelled on the server."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); Playwright never downloads one")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    demo, app = space_default
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(demo.local_url, wait_until="domcontentloaded", timeout=60_000)
            # 1. the first screen: the precomputed comparison, default vs init vs the releases
            table = page.locator("#compare-markdown table").first
            table.wait_for(state="visible", timeout=60_000)
            text = table.inner_text()
            assert "embedded default" in text and "init:" in text and "trap-decorrelation" in text
            page.locator("#compare-figure img").first.wait_for(state="visible", timeout=60_000)
            _shot(page, tmp_path, "space_screenshot.png")
            page.locator("#compare-models label", has_text="trap-decorrelation").first.click()
            page.wait_for_function(
                "() => !document.querySelector('#compare-markdown table').innerText.includes('trap-decorrelation')",
                timeout=60_000,
            )
            # ... and picking another layer redraws the table for it
            page.locator("#compare-layer input").first.click()
            page.get_by_role("option", name="embeddings").click()
            page.wait_for_function(
                "() => document.querySelector('#compare-markdown').innerText.includes('Layer embeddings')",
                timeout=60_000,
            )
            # 2. one video
            page.get_by_role("tab", name="One video").click()
            page.locator("#tab-single input[type=file]").first.set_input_files(str(videos["clip"]), timeout=60_000)
            page.locator("#tab-single video").first.wait_for(state="attached", timeout=60_000)
            page.locator("#explain-button").click()
            single = page.locator("#single-markdown table").first
            single.wait_for(state="visible", timeout=120_000)
            assert "block_3" in single.inner_text()
            assert "One video gives no layer estimate" in page.locator("#single-markdown").inner_text()
            _shot(page, tmp_path, "space_single.png")
            # 3. a set of videos
            page.get_by_role("tab", name="A set of videos").click()
            paths = [str(videos[k]) for k in ("clip", "clip2", "portrait")]
            page.locator("#set-files input[type=file]").first.set_input_files(paths, timeout=60_000)
            page.locator("#set-files", has_text="portrait").first.wait_for(state="visible", timeout=60_000)
            page.locator("#analyze-button").click()
            report = page.locator("#report-markdown table").first
            report.wait_for(state="visible", timeout=120_000)
            assert "pre_classifier" in report.inner_text()
            assert "The intervals rest on 3 videos" in page.locator("#report-markdown").inner_text()
            page.locator("#layer-figure img").first.wait_for(state="visible", timeout=60_000)
            _shot(page, tmp_path, "space_set.png")
            # 4. a long analysis whose page is closed stops on the server
            with caplog.at_level(logging.INFO, logger="stadyn.space"):
                slider = page.locator("#tab-set input[type=number]").first
                slider.fill("256")
                slider.press("Enter")
                page.locator("#analyze-button").click()
                for _ in range(1200):  # bounded: 120 s
                    if any("started (256 pairs" in r.getMessage() for r in caplog.records):
                        break
                    time.sleep(0.1)
                page.close()
                for _ in range(1200):
                    if any(re.search(r"cancelled after \d+ of 256 pairs", r.getMessage()) for r in caplog.records):
                        break
                    time.sleep(0.1)
            msgs = [r.getMessage() for r in caplog.records if r.name == "stadyn.space"]
            assert any(re.search(r"cancelled after \d+ of 256 pairs", m) for m in msgs), msgs
        finally:
            browser.close()


def test_default_model_when_shipped(tmp_path, monkeypatch, videos):
    from hf_stadyn.models.auto import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip(f"the embedded default model is not in this checkout ({DEFAULT_MODEL_DIR})")
    monkeypatch.delenv(demo_mod.MODEL_ENV, raising=False)
    md, _, js = analyze_video(videos["clip"], 16, 0, out_dir=tmp_path)
    report = BiasReport.load(js)
    assert report.model_id == demo_mod.DEFAULT_MODEL_NAME and "**Model** `hf-stadyn default model`" in md
    assert (
        report.layers[report.last_layer].num_pairs["dynamic"] + report.layers[report.last_layer].num_pairs["static"]
        == 16
    )
