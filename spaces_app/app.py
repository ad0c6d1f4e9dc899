"""hf-stadyn demo Space: how much static (appearance) vs dynamic (motion) information a video model's
layers carry, measured on a video you upload (Kowal et al., TPAMI, arXiv 2211.01783).

All the logic is :func:`hf_stadyn.demo.analyze_video`; this file only builds the Gradio page.

Settings (environment variables / Space variables):
    STADYN_MODEL        Hub id or local folder of the model to probe (default: the embedded default model).
    GRADIO_SERVER_NAME  interface to listen on (default 127.0.0.1; Spaces set 0.0.0.0).
    GRADIO_SERVER_PORT  port (default 7860).

Run locally:  ``python spaces_app/app.py``  then open http://127.0.0.1:7860
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import functools
import importlib.util
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

if importlib.util.find_spec("hf_stadyn") is None:  # run from a checkout without installing
    _ROOT = Path(__file__).resolve().parent.parent
    if (_ROOT / "hf_stadyn" / "__init__.py").is_file():
        sys.path.insert(0, str(_ROOT))

from hf_stadyn.demo import (
    DEFAULT_LIMITS,
    DEFAULT_NUM_PAIRS,
    MODEL_ENV,
    DemoLimits,
    analyze_video,
    make_example_videos,
)

#: Outputs of each request go to a folder under this root; folders older than this are removed.
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "stadyn-space"
OUTPUT_MAX_AGE_S = 3600.0

INTRO = """# Static vs dynamic information in a video model

Upload a short video. The app makes **pairs** of clips from it: a *dynamic* pair is one clip in two
different styles (motion shared, appearance changed); a *static* pair is a stylized clip and the same
clip with its frames shuffled (appearance shared, motion changed). It then measures, layer by layer,
how much of the model's representation is shared within each kind of pair: the **dynamic** (motion)
and **static** (appearance) share 100 * pi_F, with the paper's floored dims % beside it, as in Kowal et al., *Quantifying and Learning Static
vs. Dynamic Information in Deep Spatiotemporal Networks* (TPAMI, [arXiv 2211.01783](https://arxiv.org/abs/2211.01783)),
computed with [hf-stadyn](https://arxiv.org/abs/2211.01783).
"""


def _prune_outputs(root: Path, max_age_s: float) -> None:
    if not root.is_dir():
        return
    now = time.time()
    for d in root.iterdir():
        try:
            if d.is_dir() and now - d.stat().st_mtime > max_age_s:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


@functools.lru_cache(maxsize=1)
def _examples() -> tuple[tuple[str], ...]:
    """Synthetic example videos written once at start-up (none if the generator is unavailable)."""
    try:
        folder = Path(tempfile.gettempdir()) / "stadyn-space-examples"
        return tuple((str(p),) for p in make_example_videos(folder, seed=0))
    except (ImportError, ValueError, OSError) as e:  # examples are optional; the app works without them
        logging.getLogger(__name__).warning("no example videos: %s", e)
        return ()


def build_demo(model: Any = None, limits: DemoLimits = DEFAULT_LIMITS, examples: bool = True) -> gr.Blocks:
    """The Gradio page. ``model``: see :func:`hf_stadyn.demo.load_demo_model` (None: STADYN_MODEL or default)."""

    def analyze(video: str | None, num_pairs: float, seed: float, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio's idiom)
        if not video:
            raise gr.Error("Upload a video first (or pick an example below).")
        OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
        _prune_outputs(OUTPUT_ROOT, OUTPUT_MAX_AGE_S)
        out_dir = tempfile.mkdtemp(prefix="run-", dir=OUTPUT_ROOT)
        try:
            seed_i = int(seed) if seed is not None and float(seed).is_integer() else seed
            pairs_i = int(num_pairs) if num_pairs is not None and float(num_pairs).is_integer() else num_pairs
            return analyze_video(video, pairs_i, seed_i, model=model, out_dir=out_dir, limits=limits, progress=True)
        except (ValueError, FileNotFoundError) as e:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise gr.Error(str(e), title="Cannot analyze this video") from None

    caps = (
        f"Limits: {limits.max_file_mb:g} MB, {limits.max_duration_s:g} s, {limits.max_width}x{limits.max_height} "
        f"pixels, {limits.min_pairs}-{limits.max_pairs} pairs."
    )
    if model is None:
        caps += f" Model: `{os.environ.get(MODEL_ENV) or 'hf-stadyn default model'}`."
    with gr.Blocks(title="hf-stadyn: static vs dynamic", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                video = gr.Video(sources=["upload"], format=None, include_audio=True, label="Video", height=320)
                num_pairs = gr.Slider(
                    limits.min_pairs,
                    limits.max_pairs,
                    value=min(max(DEFAULT_NUM_PAIRS, limits.min_pairs), limits.max_pairs),
                    step=1,
                    label="Number of pairs",
                    info="more pairs: tighter intervals, longer run",
                )
                seed = gr.Number(0, precision=0, minimum=0, label="Seed", info="same seed, same pairs")
                button = gr.Button("Analyze", variant="primary", elem_id="analyze-button")
                gr.Markdown(caps)
                if examples:
                    rows = _examples()
                    if rows:
                        gr.Examples([list(r) for r in rows], inputs=[video], label="Synthetic examples (StaDyn-Synth)")
            with gr.Column(scale=3):
                figure = gr.Image(type="filepath", label="Share per layer", interactive=False, elem_id="layer-figure")
                report_json = gr.File(label="report.json", interactive=False, elem_id="report-json")
        report_md = gr.Markdown(elem_id="report-markdown")
        button.click(
            analyze, inputs=[video, num_pairs, seed], outputs=[report_md, figure, report_json], api_name="analyze"
        )
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.queue(max_size=16, default_concurrency_limit=1).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        max_file_size=f"{int(DEFAULT_LIMITS.max_file_mb)}mb",
        show_error=True,
    )
