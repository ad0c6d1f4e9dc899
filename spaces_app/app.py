"""hf-stadyn demo Space: how much static (appearance) vs dynamic (motion) information a video model's
layers carry (Kowal et al., TPAMI, arXiv 2211.01783). Three flows, one tab each:

1. **Compare models** (the first screen): the layer readings of the embedded default, the same architecture at
   initialisation and the released checkpoints on one StaDyn-Synth pair set, side by side with intervals,
   precomputed by ``python scripts/space_readings.py`` into ``readings.json`` and recomputable on demand
   (:mod:`hf_stadyn.demo.compare`).
2. **One video**: what one video can say: per layer, feature movement under frame shuffling vs restyling, and the
   prediction under shuffling (:func:`hf_stadyn.demo.single.explain_video`); no layer estimate.
3. **A set of videos**: the layer estimate of a chosen model on several uploaded videos, saying how many videos
   and pairs its intervals rest on (:func:`hf_stadyn.demo.videoset.analyze_videos`).

All the logic is in :mod:`hf_stadyn.demo`; this file only builds the Gradio page.

Settings (environment variables / Space variables):
    STADYN_MODEL             Hub id or local folder of the Space's default model (default: the embedded default).
    STADYN_SPACE_ALLOW_HUB   1: visitors may give a Hub model id (safetensors only, no remote code, size-capped
                             by STADYN_SPACE_MAX_MODEL_MB, default 400).
    STADYN_SPACE_OUTPUT_DIR  where each request writes its outputs (default: <tmp>/stadyn-space); a request's
                             folder is removed as soon as its answer is delivered or its client leaves.
    GRADIO_SERVER_NAME       interface to listen on (default 127.0.0.1; Spaces set 0.0.0.0).
    GRADIO_SERVER_PORT       port (default 7860).

Under load (docs/space.md): one computation runs at a time (``CONCURRENCY``, shared by the three flows), at most
``QUEUE_MAX_SIZE`` requests wait; a request beyond that is refused at once with Gradio's one-line "Queue is full"
answer (HTTP 503), never a traceback. A client that disconnects or cancels has its queued request dropped or its
running work stopped within one batch (:class:`hf_stadyn.demo.AnalysisCancelled`).

Run locally:  ``python spaces_app/app.py``  then open http://127.0.0.1:7860
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import functools
import importlib.util
import io
import itertools
import logging
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
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
    check_num_pairs,
    check_video,
    load_demo_model,
    make_example_videos,
)
from hf_stadyn.demo.compare import compare_models, comparison_figure, comparison_markdown, load_readings
from hf_stadyn.demo.models import DEFAULT_CHOICE, hub_allowed, model_choices
from hf_stadyn.demo.single import explain_video
from hf_stadyn.demo.videoset import MAX_VIDEOS, MIN_VIDEOS, analyze_videos

logger = logging.getLogger("stadyn.space")

HERE = Path(__file__).resolve().parent
#: The released checkpoints the Space offers (copied by ``scripts/space_readings.py --copy_models``).
MODELS_DIR = HERE / "models"
#: The precomputed first screen (``python scripts/space_readings.py``).
READINGS_PATH = HERE / "readings.json"
#: Pairs and clips of an on-demand recomputation of the comparison (seconds on a CPU for the tiny models).
RECOMPUTE_PAIRS, RECOMPUTE_CLIPS = 300, 100
#: Each request writes its outputs into its own folder under this root, removed when the request ends.
OUTPUT_ROOT = Path(os.environ.get("STADYN_SPACE_OUTPUT_DIR") or Path(tempfile.gettempdir()) / "stadyn-space")
#: Folders older than this (left by a killed process) are removed when a request starts.
OUTPUT_MAX_AGE_S = 3600.0
#: Computations running at once (each holds decoded videos and one batch of activations).
CONCURRENCY = 1
#: Requests waiting in Gradio's queue; one more gets "Queue is full" (HTTP 503) at once.
QUEUE_MAX_SIZE = 16
#: Gradio's ``delete_cache`` (every 10 min, files older than 1 h): bounds the copies of uploads and answers.
GRADIO_DELETE_CACHE = (600, 3600)
#: How often a waiting request looks at its work (and yields, so that Gradio sees a client that left).
POLL_S = 0.25
#: Longest computation; past it the request is stopped with a clear error.
RUN_TIME_LIMIT_S = 900.0

_WORK_SLOTS = threading.BoundedSemaphore(CONCURRENCY)
_JOB_IDS = itertools.count(1)

INTRO = """# Static vs dynamic information in a video model

How much of a video model's representation encodes **dynamic** (motion) and how much **static** (appearance)
information, layer by layer: the share 100 * pi_F of each factor with its 95 % interval, as in Kowal et al.,
*Quantifying and Learning Static vs. Dynamic Information in Deep Spatiotemporal Networks* (TPAMI,
[arXiv 2211.01783](https://arxiv.org/abs/2211.01783)), computed with hf-stadyn. The estimate compares *pairs* of
clips: a *dynamic* pair is one clip in two styles (motion shared), a *static* pair a clip and its frame-shuffled
copy (appearance shared). It needs many pairs whose motion and appearance vary: a set of videos, not one.
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
    """One computation, run in its own thread so that the request (a generator) can notice its client leaving.

    ``work(out_dir, cancel, on_pair)`` returns the answer. The output folder is removed by whichever of the
    request and the thread finishes last: after the answer is delivered (Gradio has copied the files into its
    cache by then), or after a cancelled computation has stopped.
    """

    def __init__(self, root: Path, what: str, work: Callable[[Path, Callable[[], bool], Any], Any]) -> None:
        self.id = next(_JOB_IDS)
        self.what, self.work = what, work
        self.stop = threading.Event()
        self.done = threading.Event()
        self.result: Any = None
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

    def run(self) -> None:
        try:
            # a cancelled computation gives its slot back within one batch; this wait ends then or on stop
            while not _WORK_SLOTS.acquire(timeout=POLL_S):
                if self.stop.is_set():
                    raise AnalysisCancelled("analysis cancelled while waiting for a free slot")
            try:
                self.started = True
                logger.info("job %d: started (%s)", self.id, self.what)
                self.result = self.work(self.out_dir, self.stop.is_set, self._on_pair)
                if self.stop.is_set():  # the client left while the answer was being written: nobody to answer
                    raise AnalysisCancelled("analysis cancelled while its report was written")
                logger.info("job %d: finished", self.id)
            finally:
                _WORK_SLOTS.release()
        except AnalysisCancelled as e:
            self.error = e
            logger.info("job %d: cancelled after %d of %d pairs (%s)", self.id, self.pairs_made, self.num_pairs, e)
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
        return "Reading the videos and the model..."


def _user_error(job: _Job) -> gr.Error:
    e = job.error
    if isinstance(e, (ValueError, FileNotFoundError)):
        return gr.Error(str(e), title="Cannot analyze this")
    if isinstance(e, AnalysisCancelled):
        return gr.Error("The analysis was cancelled.", title="Cancelled")
    return gr.Error(
        f"The analysis failed unexpectedly ({type(e).__name__}); the Space log has the details. "
        "Try again, or with another video.",
        title="Analysis failed",
    )


def _run(what: str, work: Callable, num_outputs: int, num_pairs: int = 0) -> Iterator[tuple[Any, ...]]:
    """Run ``work`` as a :class:`_Job`, polled every POLL_S (bounded by RUN_TIME_LIMIT_S); yields status, then the answer.

    Each poll yields (a status line in the first output, or gr.skip()), which is where Gradio notices a client
    that disconnected and closes this generator: the ``finally`` then stops the work.
    """
    skips = (gr.skip(),) * (num_outputs - 1)
    # Yield once before any work: Gradio keeps a generator's iterator (the handle /cancel and a lost client
    # close) only from its first yield on; a cancel that comes earlier finds nothing to close.
    yield ("Starting...", *skips)
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    _prune_outputs(OUTPUT_ROOT, OUTPUT_MAX_AGE_S)
    job = _Job(OUTPUT_ROOT, what, work)
    job.num_pairs = num_pairs
    worker = threading.Thread(target=job.run, name=f"stadyn-job-{job.id}", daemon=True)
    worker.start()
    try:
        shown = None
        for _ in range(math.ceil(RUN_TIME_LIMIT_S / POLL_S)):
            if job.done.wait(POLL_S):
                break
            status = job.status()
            yield ((status if status != shown else gr.skip()), *skips)
            shown = status
        else:
            raise gr.Error(
                f"The analysis took longer than {RUN_TIME_LIMIT_S:g} s and was stopped; try fewer pairs or shorter "
                "videos.",
                title="Too long",
            )
        if job.error is not None or job.result is None:
            raise _user_error(job)
        yield tuple(job.result)
    finally:  # answered, failed, or the client left (GeneratorExit): stop the work, drop the folder
        if not job.done.is_set():
            logger.info("job %d: stopping (request ended: client gone, cancelled or timed out)", job.id)
        job.stop.set()
        job.release()


@functools.lru_cache(maxsize=1)
def _examples() -> tuple[str, ...]:
    """Synthetic example videos written once at start-up (none if the generator is unavailable)."""
    try:
        folder = Path(tempfile.gettempdir()) / "stadyn-space-examples"
        return tuple(str(p) for p in make_example_videos(folder, seed=0))
    except (ImportError, ValueError, OSError) as e:  # examples are optional; the app works without them
        logging.getLogger(__name__).warning("no example videos: %s", e)
        return ()


def _readings() -> dict[str, Any] | None:
    try:
        return load_readings(READINGS_PATH)
    except (OSError, ValueError) as e:
        logger.warning("no precomputed readings (%s); the first screen computes them on demand", e)
        return None


def _choice(model: str | None, hub_id: str | None) -> str:
    hub_id = (hub_id or "").strip()
    if hub_id:
        if not hub_allowed():
            raise ValueError("this Space does not load Hub models; pick a listed model.")
        return f"hub:{hub_id}"
    return model or DEFAULT_CHOICE


def _int(x: Any) -> Any:
    return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and float(x).is_integer() else x


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return seed


def build_demo(model: Any = None, limits: DemoLimits = DEFAULT_LIMITS, examples: bool = True) -> gr.Blocks:
    """The Gradio page. ``model``: a loaded model or folder that replaces the *default* choice (tests); None:
    STADYN_MODEL or the embedded default."""
    choices = model_choices(MODELS_DIR)
    if model is not None:
        choices = {DEFAULT_CHOICE: f"{model}" if isinstance(model, (str, os.PathLike)) else "the given model"}
    elif os.environ.get(MODEL_ENV):
        choices[DEFAULT_CHOICE] = f"{os.environ[MODEL_ENV]} (STADYN_MODEL)"
    dropdown = [(label, key) for key, label in choices.items()]

    def resolve(choice: str) -> Any:
        return model if (model is not None and choice == DEFAULT_CHOICE) else choice

    # -- 1. compare models ----------------------------------------------------------------------------
    initial = _readings()
    if initial is not None and (model is not None or os.environ.get(MODEL_ENV)):
        # the precomputed "default" row is the embedded default, not the model this Space was given
        initial["models"].pop(DEFAULT_CHOICE, None)
    layers = list(next(iter(initial["models"].values()))["layers"]) if initial else []
    first_layer = "block_3" if "block_3" in layers else (layers[-1] if layers else None)

    def show(readings: dict | None, picked: list[str], layer: str | None) -> tuple[str, Any]:
        if not readings:
            return "No readings yet: pick models and press *Recompute*.", None
        if not picked:
            return "Pick at least one model.", None
        try:
            md = comparison_markdown(readings, picked, layer or first_layer or "")
        except ValueError as e:
            return str(e), None
        from PIL import Image

        buf = comparison_figure(readings, picked, layer, io.BytesIO())
        buf.seek(0)
        source = readings.get("command") or "recomputed on demand in this Space"
        return f"{md}\nSource: `{source}` (hf-stadyn {readings.get('hf_stadyn_version')}).\n", Image.open(buf)

    def recompute(picked: list[str], layer: str | None) -> Iterator[tuple[Any, ...]]:
        if not picked:
            raise gr.Error("Pick at least one model first.")
        picked = list(picked)

        def work(out: Path, cancel: Callable[[], bool], on_pair: Any) -> tuple[Any, ...]:
            r = compare_models(
                picked, models_dir=MODELS_DIR, num_clips=RECOMPUTE_CLIPS,
                num_pairs=RECOMPUTE_PAIRS, cancel=cancel,
            )  # fmt: skip
            lay = layer if layer in next(iter(r["models"].values()))["layers"] else None
            lay = lay or list(next(iter(r["models"].values()))["layers"])[-1]
            md, fig = show(r, picked, lay)
            return md, fig, r

        yield from _run(f"compare {len(picked)} models, {RECOMPUTE_PAIRS} pairs", work, 3, RECOMPUTE_PAIRS)

    # -- 2. one video -----------------------------------------------------------------------------------
    def explain(video: str | None, choice: str, hub_id: str, seed: float) -> Iterator[tuple[Any, ...]]:
        if not video:
            raise gr.Error("Upload a video first (or pick an example below).")
        try:
            seed_i = _check_seed(_int(seed))
            check_video(video, limits)
            picked = _choice(choice, hub_id)
        except (ValueError, FileNotFoundError) as e:
            raise gr.Error(str(e), title="Cannot analyze this video") from None

        def work(out: Path, cancel: Callable[[], bool], on_pair: Any) -> tuple[Any, ...]:
            return explain_video(
                video, resolve(picked), seed_i, models_dir=MODELS_DIR, out_dir=out, limits=limits, cancel=cancel
            )

        yield from _run(f"one video, {picked}", work, 2)

    # -- 3. a set of videos -------------------------------------------------------------------------------
    def analyze(
        videos: list[str] | None, num_pairs: float, seed: float, choice: str | None = None, hub_id: str | None = None
    ) -> Iterator[tuple[Any, ...]]:
        paths = [str(getattr(v, "name", v)) for v in (videos or [])]
        if not paths:
            raise gr.Error(f"Upload {MIN_VIDEOS} to {MAX_VIDEOS} videos first (or use the examples below).")
        try:  # the cheap checks, before any thread or folder (the analysis repeats them)
            pairs_i = check_num_pairs(_int(num_pairs), limits)
            seed_i = _check_seed(_int(seed))
            if len(paths) < MIN_VIDEOS:
                raise ValueError(
                    f"{len(paths)} video(s) given; a layer estimate needs at least {MIN_VIDEOS} videos (its interval "
                    "resamples whole videos). Upload more, or use the *One video* tab for a single video."
                )
            if len(paths) > MAX_VIDEOS:
                raise ValueError(f"{len(paths)} videos given; the demo takes at most {MAX_VIDEOS}. Upload fewer.")
            for p in paths:
                check_video(p, limits)
            picked = _choice(choice, hub_id)
        except (ValueError, FileNotFoundError) as e:
            raise gr.Error(str(e), title="Cannot analyze these videos") from None

        def work(out: Path, cancel: Callable[[], bool], on_pair: Any) -> tuple[Any, ...]:
            return analyze_videos(
                paths, pairs_i, seed_i, resolve(picked), models_dir=MODELS_DIR, out_dir=out, limits=limits,
                cancel=cancel, on_pair=on_pair,
            )  # fmt: skip

        yield from _run(f"{pairs_i} pairs, {len(paths)} videos, {picked}", work, 3, pairs_i)

    caps = (
        f"Limits per video: {limits.max_file_mb:g} MB, {limits.max_duration_s:g} s, {limits.max_width}x"
        f"{limits.max_height} pixels."
    )
    set_caps = f"{caps} {MIN_VIDEOS}-{MAX_VIDEOS} videos, {limits.min_pairs}-{limits.max_pairs} pairs."
    hub_note = "Hub model id (owner/name; safetensors only, no remote code)"

    with gr.Blocks(
        title="hf-stadyn: static vs dynamic", analytics_enabled=False, delete_cache=GRADIO_DELETE_CACHE
    ) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Compare models", id="compare", elem_id="tab-compare"):
                state = gr.State(initial)
                cmp_md0, cmp_fig0 = show(initial, list(initial["models"]) if initial else [], first_layer)
                with gr.Row():
                    picked = gr.CheckboxGroup(
                        [(label, key) for key, label in choices.items()],
                        value=[k for k in choices if initial and k in initial["models"]] or list(choices)[:2],
                        label="Models",
                        elem_id="compare-models",
                    )
                    layer = gr.Dropdown(layers, value=first_layer, label="Layer", elem_id="compare-layer")
                recompute_button = gr.Button(
                    f"Recompute on demand ({RECOMPUTE_PAIRS} pairs, {RECOMPUTE_CLIPS} clips)",
                    elem_id="compare-recompute",
                )
                cmp_md = gr.Markdown(cmp_md0, elem_id="compare-markdown")
                cmp_fig = gr.Image(cmp_fig0, type="pil", label="Share per model", elem_id="compare-figure")
            with gr.Tab("One video", id="single", elem_id="tab-single"):
                with gr.Row():
                    with gr.Column(scale=2):
                        video = gr.Video(sources=["upload"], format=None, include_audio=True, label="Video", height=280)
                        model1 = gr.Dropdown(dropdown, value=DEFAULT_CHOICE, label="Model", elem_id="single-model")
                        hub1 = gr.Textbox(label=hub_note, visible=hub_allowed(), elem_id="single-hub")
                        seed1 = gr.Number(0, precision=0, minimum=0, label="Seed", info="same seed, same shuffles")
                        explain_button = gr.Button("Explain this video", variant="primary", elem_id="explain-button")
                        gr.Markdown(caps)
                        rows = _examples() if examples else ()
                        if rows:
                            gr.Examples([[r] for r in rows], inputs=[video], label="Synthetic examples (StaDyn-Synth)")
                    with gr.Column(scale=3):
                        single_json = gr.File(label="single_video.json", interactive=False, elem_id="single-json")
                single_md = gr.Markdown(elem_id="single-markdown")
            with gr.Tab("A set of videos", id="set", elem_id="tab-set"):
                with gr.Row():
                    with gr.Column(scale=2):
                        files = gr.File(
                            file_count="multiple", file_types=["video"], type="filepath", label="Videos",
                            elem_id="set-files",
                        )  # fmt: skip
                        model2 = gr.Dropdown(dropdown, value=DEFAULT_CHOICE, label="Model", elem_id="set-model")
                        hub2 = gr.Textbox(label=hub_note, visible=hub_allowed(), elem_id="set-hub")
                        num_pairs = gr.Slider(
                            limits.min_pairs, limits.max_pairs,
                            value=min(max(2 * DEFAULT_NUM_PAIRS, limits.min_pairs), limits.max_pairs), step=1,
                            label="Number of pairs", info="more pairs: tighter intervals, longer run",
                        )  # fmt: skip
                        seed2 = gr.Number(0, precision=0, minimum=0, label="Seed", info="same seed, same pairs")
                        button = gr.Button("Analyze the set", variant="primary", elem_id="analyze-button")
                        gr.Markdown(set_caps)
                        if rows:
                            gr.Examples([[list(rows)]], inputs=[files], label="Synthetic examples (3 clips)")
                    with gr.Column(scale=3):
                        figure = gr.Image(
                            type="filepath", label="Share per layer", interactive=False, elem_id="layer-figure"
                        )
                        report_json = gr.File(label="report.json", interactive=False, elem_id="report-json")
                report_md = gr.Markdown(elem_id="report-markdown")

        picked.change(show, [state, picked, layer], [cmp_md, cmp_fig], concurrency_limit=None, api_name="show")
        layer.change(show, [state, picked, layer], [cmp_md, cmp_fig], concurrency_limit=None, api_name=False)
        recompute_button.click(
            recompute, [picked, layer], [cmp_md, cmp_fig, state], api_name="recompute", concurrency_limit=CONCURRENCY,
            concurrency_id="work",
        )  # fmt: skip
        explain_button.click(
            explain, [video, model1, hub1, seed1], [single_md, single_json], api_name="explain",
            concurrency_limit=CONCURRENCY, concurrency_id="work",
        )  # fmt: skip
        button.click(
            analyze, [files, num_pairs, seed2, model2, hub2], [report_md, figure, report_json], api_name="analyze",
            concurrency_limit=CONCURRENCY, concurrency_id="work",
        )  # fmt: skip
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
