"""hf-stadyn demo Space: how much static (appearance) vs dynamic (motion) information a video model's
layers carry, measured on a video you upload (Kowal et al., TPAMI, arXiv 2211.01783).

All the logic is :func:`hf_stadyn.demo.analyze_video`; this file only builds the Gradio page.

Settings (environment variables / Space variables):
    STADYN_MODEL             Hub id or local folder of the model to probe (default: the embedded default model).
    STADYN_SPACE_OUTPUT_DIR  where each request writes its outputs (default: <tmp>/stadyn-space); a request's
                             folder is removed as soon as its answer is delivered or its client leaves.
    GRADIO_SERVER_NAME       interface to listen on (default 127.0.0.1; Spaces set 0.0.0.0).
    GRADIO_SERVER_PORT       port (default 7860).

Under load (docs/space.md): one analysis runs at a time (``CONCURRENCY``), at most ``QUEUE_MAX_SIZE``
requests wait; a request beyond that is refused at once with Gradio's one-line "Queue is full" answer
(HTTP 503), never a traceback. A client that disconnects or cancels has its queued request dropped or
its running analysis stopped within one batch of pairs (:class:`hf_stadyn.demo.AnalysisCancelled`).

Run locally:  ``python spaces_app/app.py``  then open http://127.0.0.1:7860
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import functools
import importlib.util
import itertools
import logging
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
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
    AnalysisCancelled,
    DemoLimits,
    analyze_video,
    check_num_pairs,
    check_video,
    load_demo_model,
    make_example_videos,
)

logger = logging.getLogger("stadyn.space")

#: Each request writes its outputs into its own folder under this root, removed when the request ends.
OUTPUT_ROOT = Path(os.environ.get("STADYN_SPACE_OUTPUT_DIR") or Path(tempfile.gettempdir()) / "stadyn-space")
#: Folders older than this (left by a killed process) are removed when a request starts.
OUTPUT_MAX_AGE_S = 3600.0
#: Analyses computing at once (each holds the decoded video and one batch of activations).
CONCURRENCY = 1
#: Requests waiting in Gradio's queue; one more gets "Queue is full" (HTTP 503) at once.
QUEUE_MAX_SIZE = 16
#: Gradio's ``delete_cache`` (every 10 min, files older than 1 h): bounds the copies of uploads and
#: answers that Gradio keeps to serve them (a user has an hour to download report.json).
GRADIO_DELETE_CACHE = (600, 3600)
#: How often a waiting request looks at its analysis (and yields, so that Gradio sees a client that left).
POLL_S = 0.25
#: Longest analysis; past it the request is stopped with a clear error.
RUN_TIME_LIMIT_S = 900.0

_WORK_SLOTS = threading.BoundedSemaphore(CONCURRENCY)
_JOB_IDS = itertools.count(1)

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


class _Job:
    """One analysis, run in its own thread so that the request (a generator) can notice its client leaving.

    The output folder is removed by whichever of the request and the thread finishes last: after the
    answer is delivered (Gradio has copied the files into its cache by then), or after a cancelled
    analysis has stopped.
    """

    def __init__(self, root: Path) -> None:
        self.id = next(_JOB_IDS)
        self.stop = threading.Event()
        self.done = threading.Event()
        self.result: tuple[str, str, str] | None = None
        self.error: BaseException | None = None
        self.pairs_made, self.num_pairs = 0, 0
        self.started = False
        self.out_dir = Path(tempfile.mkdtemp(prefix=f"run-{self.id}-", dir=root))
        self._holders = 2  # the request and the thread
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            shutil.rmtree(self.out_dir, ignore_errors=True)

    def _on_pair(self, made: int, total: int) -> None:
        self.pairs_made, self.num_pairs = made, total

    def run(self, video: str, num_pairs: int, seed: int, model: Any, limits: DemoLimits) -> None:
        self.num_pairs = num_pairs
        try:
            # a cancelled analysis gives its slot back within one batch; this wait ends then or on stop
            while not _WORK_SLOTS.acquire(timeout=POLL_S):
                if self.stop.is_set():
                    raise AnalysisCancelled("analysis cancelled while waiting for a free slot")
            try:
                self.started = True
                logger.info("job %d: started (%d pairs)", self.id, num_pairs)
                self.result = analyze_video(
                    video, num_pairs, seed, model=model, out_dir=self.out_dir, limits=limits,
                    cancel=self.stop.is_set, on_pair=self._on_pair,
                )  # fmt: skip
                if self.stop.is_set():  # the client left while the report was being written: nobody to answer
                    raise AnalysisCancelled("analysis cancelled while its report was written")
                logger.info("job %d: finished", self.id)
            finally:
                _WORK_SLOTS.release()
        except AnalysisCancelled as e:
            self.error = e
            logger.info("job %d: cancelled after %d of %d pairs (%s)", self.id, self.pairs_made, num_pairs, e)
        except (ValueError, FileNotFoundError) as e:
            self.error = e
            logger.info("job %d: refused: %s", self.id, e)
        except Exception as e:  # anything else: logged in full here, one line to the user
            self.error = e
            logger.exception("job %d: failed", self.id)
        finally:
            self.done.set()
            self.release()

    def status(self) -> str:
        if not self.started:
            return "Waiting for the previous analysis to stop..."
        if self.pairs_made:
            return f"Analyzing: {self.pairs_made} of {self.num_pairs} pairs made..."
        return "Reading the video..."


def _user_error(job: _Job) -> gr.Error:
    e = job.error
    if isinstance(e, (ValueError, FileNotFoundError)):
        return gr.Error(str(e), title="Cannot analyze this video")
    if isinstance(e, AnalysisCancelled):
        return gr.Error("The analysis was cancelled.", title="Cancelled")
    return gr.Error(
        f"The analysis failed unexpectedly ({type(e).__name__}); the Space log has the details. "
        "Try again, or with another video.",
        title="Analysis failed",
    )


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

    def analyze(video: str | None, num_pairs: float, seed: float) -> Iterator[tuple[Any, Any, Any]]:
        """The request: checks, then the analysis in a thread, polled every POLL_S (bounded by RUN_TIME_LIMIT_S).

        Each poll yields (a status line, or gr.skip()), which is where Gradio notices a client that
        disconnected and closes this generator: the ``finally`` then stops the analysis.
        """
        if not video:
            raise gr.Error("Upload a video first (or pick an example below).")
        seed_i = int(seed) if seed is not None and float(seed).is_integer() else seed
        pairs_i = int(num_pairs) if num_pairs is not None and float(num_pairs).is_integer() else num_pairs
        try:  # the cheap checks, before any thread or folder (the analysis repeats them)
            pairs_i = check_num_pairs(pairs_i, limits)
            if isinstance(seed_i, bool) or not isinstance(seed_i, int) or seed_i < 0:
                raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
            check_video(video, limits)
        except (ValueError, FileNotFoundError) as e:
            raise gr.Error(str(e), title="Cannot analyze this video") from None
        # Yield once before any work: Gradio keeps a generator's iterator (the handle /cancel and a lost
        # client close) only from its first yield on; a cancel that comes earlier finds nothing to close.
        yield "Starting...", gr.skip(), gr.skip()
        OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
        _prune_outputs(OUTPUT_ROOT, OUTPUT_MAX_AGE_S)
        job = _Job(OUTPUT_ROOT)
        worker = threading.Thread(
            target=job.run, args=(video, pairs_i, seed_i, model, limits), name=f"stadyn-job-{job.id}", daemon=True
        )
        worker.start()
        try:
            shown = None
            for _ in range(math.ceil(RUN_TIME_LIMIT_S / POLL_S)):
                if job.done.wait(POLL_S):
                    break
                status = job.status()
                yield (status if status != shown else gr.skip()), gr.skip(), gr.skip()
                shown = status
            else:
                raise gr.Error(
                    f"The analysis took longer than {RUN_TIME_LIMIT_S:g} s and was stopped; try fewer pairs or a "
                    "shorter video.",
                    title="Too long",
                )
            if job.error is not None or job.result is None:
                raise _user_error(job)
            yield job.result
        finally:  # answered, failed, or the client left (GeneratorExit): stop the work, drop the folder
            if not job.done.is_set():
                logger.info("job %d: stopping (request ended: client gone, cancelled or timed out)", job.id)
            job.stop.set()
            job.release()

    caps = (
        f"Limits: {limits.max_file_mb:g} MB, {limits.max_duration_s:g} s, {limits.max_width}x{limits.max_height} "
        f"pixels, {limits.min_pairs}-{limits.max_pairs} pairs."
    )
    if model is None:
        caps += f" Model: `{os.environ.get(MODEL_ENV) or 'hf-stadyn default model'}`."
    with gr.Blocks(
        title="hf-stadyn: static vs dynamic", analytics_enabled=False, delete_cache=GRADIO_DELETE_CACHE
    ) as demo:
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
            analyze,
            inputs=[video, num_pairs, seed],
            outputs=[report_md, figure, report_json],
            api_name="analyze",
            concurrency_limit=CONCURRENCY,
        )
    # the queue's bounds are part of the page: a launch elsewhere (tests, a Space) gets the same ones
    return demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY)


demo = build_demo()

if __name__ == "__main__":
    if not logging.getLogger().handlers:  # the Space log shows each job's start and end
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("stadyn").setLevel(logging.INFO)
    try:  # load the model once before the first request (each request would wait for it otherwise)
        load_demo_model(None)
    except (ValueError, OSError) as e:
        logger.warning("the model could not be loaded at start-up; requests will say why: %s", e)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        max_file_size=f"{int(DEFAULT_LIMITS.max_file_mb)}mb",
        show_error=True,
    )
