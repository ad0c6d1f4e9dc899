"""``stadyn probe``: per-layer and per-channel static/dynamic report of a video model.

With no arguments it probes the embedded default model (a tiny VideoMAE trained on StaDyn-Synth motion
classes, shipped inside the package) on synthetic videos, next to the same architecture at
initialisation, and writes ``stadyn-report/`` (report.json, report.md, PNG figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_STATE_DIR = ".probe_state"


_EPILOG = """examples:
  stadyn probe                                              # the embedded default on synthetic videos
  stadyn probe --model ./my-videomae --videos clips/ --num_pairs 3000 --output_dir report/
  stadyn probe --model MCG-NJU/videomae-base-finetuned-kinetics --dataset ./my_dataset --video_column video
  stadyn probe ... --resume_from_checkpoint                 # continue an interrupted run in --output_dir
  stadyn probe --model_factory my_cnn.py:build --layers layer3:cthw,layer4:cthw --videos clips/   # any torch module

options follow the stadyn convention (--snake_case, --output_dir, --disable_tqdm, --use_cpu, --bf16/--fp16);
the names of the previous release (--output, --num-pairs, --batch-size, --no-progress, --device,
--mixed-precision, --num-workers, --resume, --video-column, --synth-clips, --dynamic-pairs,
--no-reference) still work for one release, with a deprecation message."""

#: old option -> its replacement words (docs: the epilog above; cli/_types.rewrite_deprecated).
RENAMED: dict[str, list[str] | None] = {
    "--output": ["--output_dir"],
    "--no-progress": ["--disable_tqdm"],
    "--num-workers": ["--dataloader_num_workers"],
    "--resume": ["--resume_from_checkpoint"],
}


def _old_values(name: str, value: str | None) -> list[str] | None:
    """``--device X`` and ``--mixed-precision X`` of the previous release -> the switches that replace them."""
    if name == "--device":
        return ["--use_cpu"] if value == "cpu" else []
    if name == "--mixed-precision":
        return {"bf16": ["--bf16"], "fp16": ["--fp16"]}.get(str(value), [])
    return None


def rewrite_argv(argv: list[str]) -> list[str]:
    """The previous release's option names -> the current ones (each with a deprecation message)."""
    from hf_stadyn.cli._types import rewrite_deprecated

    return rewrite_deprecated(argv, RENAMED, extra=_old_values)


def register(sub: argparse._SubParsersAction) -> None:
    from hf_stadyn.cli._types import nonneg_int, positive_int

    p = sub.add_parser(
        "probe",
        help="measure static vs dynamic information per layer and channel (the main job)",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default=None,
        help="Hub model id or local folder of any video architecture hf-stadyn probes (VideoMAE, TimeSformer, ViViT, "
        "V-JEPA 2, VideoPrism, X-CLIP, PE-video, VidEoMT, a hf-stadyn two-stream AVOS model; docs/architectures.md); "
        "default: the embedded model",
    )
    p.add_argument(
        "--model_factory",
        default=None,
        metavar="FILE.py:FUNCTION",
        help="probe any torch module: FUNCTION() in FILE.py returns it (with --layers name:layout,...; the file "
        "defines INPUT_SPEC and optionally forward_fn, see examples/probe_custom_3dcnn.py). SECURITY: this RUNS "
        "FILE.py's code, as python FILE.py would; give only your own or reviewed files",
    )
    p.add_argument("--revision", default=None, help="Hub revision of --model (default: main)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--videos", nargs="+", default=None, metavar="PATH", help="a folder of videos or video files")
    src.add_argument(
        "--dataset", default=None, help="a datasets folder (save_to_disk, or a StaDyn-Synth export) or a Hub dataset id"
    )
    src.add_argument(
        "--synth",
        default=None,
        choices=("motion", "appearance", "trap"),
        help="render StaDyn-Synth clips of this split in memory (default when no videos are given: motion)",
    )
    p.add_argument(
        "--video_column", default="video", help="video column of --dataset, file paths or bytes (default: %(default)s)"
    )
    p.add_argument("--split", default="train", help="split of a Hub --dataset (default: %(default)s)")
    p.add_argument(
        "--streaming",
        action="store_true",
        help="read --dataset as a stream (datasets' streaming=True: a Hub id, or a local folder / file of Parquet), "
        "never materialised: pairs come from its first rows in order, deterministic from --seed, resumable "
        "(docs/scaling.md)",
    )
    p.add_argument(
        "--pairs_per_video",
        type=positive_int,
        default=None,
        help="with --streaming: consecutive pairs that share one streamed video, decoded once (default: 4)",
    )
    p.add_argument(
        "--synth_clips", type=positive_int, default=128, help="StaDyn-Synth clips for --synth (default: %(default)s)"
    )
    p.add_argument(
        "--layers",
        default=None,
        help="comma-separated layer names (default: all probe layers); with --model_factory name:layout pairs, "
        "module names and layouts (cthw, thwc, tokens, tokens_cls, frames, frame_tokens, vector), e.g. "
        "layer3:cthw,layer4:cthw",
    )
    p.add_argument(
        "--num_pairs",
        type=int,
        default=None,
        help="pairs to probe, about half per factor (default: 3000; 1500 for the embedded default run; a two-stream "
        "model: every frame, at most 3000)",
    )
    p.add_argument(
        "--batch_size",
        type=positive_int,
        default=32,
        help="pairs per forward, 2x clips per batch; does not change the numbers (default: %(default)s)",
    )
    p.add_argument(
        "--window",
        type=_window_arg,
        default="auto",
        help="source frames a clip spans: 'auto' (the model's sampling rate x frames where it declares one, else 64, "
        "fitted to each video) or an int (shortened to shorter videos, logged); docs/method.md §1.1 "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--loop",
        action="store_true",
        help="loop the window over videos shorter than the model's frame count (warned, counted in the report) "
        "instead of repeating their frames in order",
    )
    p.add_argument(
        "--dynamic_pairs",
        default="styles",
        choices=("styles", "appearance-free"),
        help="dynamic pairs: the clip in two styles (the paper's) or, experimental, the stylized clip and an "
        "appearance-free rendering of it (a noise texture carried along its optical flow: the members share motion "
        "only; docs/ground_truth.md) (default: %(default)s)",
    )
    p.add_argument(
        "--skip_bad_videos",
        action="store_true",
        help="probe the videos that open and skip the others (listed in the report); by default the run stops "
        "before probing and lists every bad file",
    )
    p.add_argument(
        "--seed",
        type=nonneg_int,
        default=0,
        help="seed of every random choice: pairs, styles, reference (default: %(default)s)",
    )
    p.add_argument("--threshold", type=float, default=0.5, help="tau of the channel categories (default: %(default)s)")
    p.add_argument("--use_cpu", action="store_true", help="run on the CPU even when a GPU is visible")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU)")
    prec.add_argument("--fp16", action="store_true", help="float16 autocast (GPU)")
    p.add_argument(
        "--dataloader_num_workers",
        type=nonneg_int,
        default=0,
        help="DataLoader workers making pairs; does not change the numbers (default: %(default)s)",
    )
    ref = p.add_mutually_exclusive_group()
    ref.add_argument(
        "--reference",
        dest="reference",
        action="store_true",
        default=None,
        help="also probe the same architecture at initialisation (default: on for the embedded model only)",
    )
    ref.add_argument("--no_reference", dest="reference", action="store_false", help="do not probe the reference")
    p.add_argument(
        "--target_ci",
        type=float,
        default=None,
        metavar="W",
        help="stop once every probed layer's shares are known to +-W points (95 %%, sequential rule over fixed looks, "
        "docs/method.md §5); --num_pairs is then the most pairs probed; the report says why and when it stopped",
    )
    p.add_argument(
        "--stop_layers",
        default=None,
        help="comma-separated layers that must meet --target_ci (default: every probed layer)",
    )
    p.add_argument("--output_dir", "-o", default="stadyn-report", help="output folder (default: %(default)s)")
    p.add_argument(
        "--resume_from_checkpoint",
        nargs="?",
        const="last",
        default=None,
        metavar="last",
        help="continue the interrupted run whose state is in --output_dir (the value, if given, must be 'last' "
        "or that folder)",
    )
    p.add_argument(
        "--save_every_pairs",
        type=positive_int,
        default=200,
        help="save the resume state after at most this many pairs per process, and on SIGTERM/Ctrl-C "
        "(default: %(default)s)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing report in --output_dir")
    p.add_argument("--disable_tqdm", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)


def _window_arg(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--window must be 'auto' or a positive int, got {value!r}") from None


#: bytes of memory one probed pair costs the run at most (index bookkeeping of the engine and the
#: per-pair window/factor summaries; features are pooled per batch and not kept). An upper bound on
#: --num_pairs is derived from it and the memory available (psutil), so a typo never ends in MemoryError.
_BYTES_PER_PAIR = 512


def max_num_pairs() -> int:
    """The largest --num_pairs this machine's available memory carries (a quarter of it, at _BYTES_PER_PAIR)."""
    try:
        import psutil  # type: ignore[import-untyped]

        available = int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil missing or unsupported platform
        available = 4 * 1024**3
    return max(4, available // 4 // _BYTES_PER_PAIR)


def _check_args(args: argparse.Namespace) -> None:
    """Every check that needs neither the model nor the videos (docs: README "Reliability")."""

    from hf_stadyn.cli._types import check_output_dir

    def bad(msg: str) -> None:
        raise ValueError(msg)

    if args.model is not None and getattr(args, "model_factory", None) is not None:
        bad("--model and --model_factory exclude each other; give one model")
    args.num_pairs_default = args.num_pairs is None
    if args.num_pairs is None:
        embedded_default = args.model is None and not (args.videos or args.dataset)
        args.num_pairs = 1500 if embedded_default else 3000

    if args.num_pairs < 4:
        bad(f"--num_pairs must be >= 4 (at least 2 pairs per factor), got {args.num_pairs}")
    limit = max_num_pairs()
    if args.num_pairs > limit:
        bad(
            f"--num_pairs {args.num_pairs} is more than this machine's memory carries ({limit}); "
            "give fewer pairs (3000 is the default)"
        )
    if args.pairs_per_video is not None and not args.streaming:
        bad("--pairs_per_video applies to --streaming; give --streaming or drop it")
    if args.streaming:
        if not args.dataset:
            bad("--streaming reads a --dataset as a stream; give --dataset ID_OR_FOLDER")
        if args.skip_bad_videos:
            bad("--skip_bad_videos needs the whole dataset checked first, which --streaming avoids; drop one of them")
        if args.dynamic_pairs == "appearance-free":
            bad("--dynamic_pairs appearance-free is not available with --streaming; drop one of them")
        args.pairs_per_video = args.pairs_per_video or 4
    if args.window != "auto" and args.window < 1:
        bad(f"--window must be 'auto' or >= 1, got {args.window}")
    if not -1.0 <= args.threshold <= 1.0:
        bad(f"--threshold must lie in [-1, 1], got {args.threshold}")
    if args.target_ci is not None and not 0.0 < args.target_ci < 100.0:
        bad(f"--target_ci must be a half-width in share points in (0, 100), got {args.target_ci}")
    if args.stop_layers is not None and args.target_ci is None:
        bad("--stop_layers needs --target_ci (the half-width those layers must reach)")
    resume = args.resume_from_checkpoint
    if resume is not None and resume not in ("last", "true", "True") and Path(resume) != Path(args.output_dir):
        bad(
            f"--resume_from_checkpoint {resume!r}: a probe resumes from the state in --output_dir; pass it alone "
            "(or 'last') and the same --output_dir"
        )
    args.resume = resume is not None
    if args.resume and args.overwrite:
        bad("--resume_from_checkpoint and --overwrite exclude each other")
    args.mixed_precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "no"
    out = Path(args.output_dir)
    check_output_dir(out)
    if out.is_dir() and any(out.iterdir()) and not (args.resume or args.overwrite):
        bad(
            f"--output_dir {out} is not empty; pass --overwrite to replace it or --resume_from_checkpoint to "
            "continue a run there"
        )
    if args.resume and not (out / _STATE_DIR).is_dir():
        bad(f"--resume_from_checkpoint: {out} holds no interrupted run ({_STATE_DIR}/); start it without the flag")
    for v in args.videos or []:
        if not Path(v).exists():
            raise FileNotFoundError(f"--videos: {v} does not exist; give existing video files or folders")


def _check_factor_counts(pairs: Any, num_pairs: int) -> None:
    """At least 2 pairs of each factor among the first ``num_pairs``, checked before any probing.

    Pair ``i``'s factor is a pure function of (seed, i) (``PairDataset``: static when
    ``default_rng([seed, i]).random() < static_fraction``, docs/method.md §1), so the counts are known
    from the seed alone: a run never fails at random for lack of pairs of one factor.
    """
    import numpy as np

    seed, frac = getattr(pairs, "seed", None), getattr(pairs, "static_fraction", None)
    if seed is None or frac is None or frac in (0.0, 1.0):
        return
    counts = [0, 0]  # static, dynamic among the first i pairs; stop as soon as both reach 2 (exact, cheap)
    i = 0
    while min(counts) < 2 and i < num_pairs:
        counts[0 if np.random.default_rng([int(seed), i]).random() < frac else 1] += 1
        i += 1
    if min(counts) >= 2:
        return
    have = list(counts)
    need = num_pairs
    while min(counts) < 2 and need < num_pairs + 10_000:
        counts[0 if np.random.default_rng([int(seed), need]).random() < frac else 1] += 1
        need += 1
    raise ValueError(
        f"--num_pairs {num_pairs} with --seed {seed} gives {have[0]} static and {have[1]} dynamic pairs; the "
        f"estimator needs at least 2 of each: use --num_pairs {need} or more"
    )


def _synth_config(args: argparse.Namespace, t: int, size: int):
    """StaDyn-Synth scene settings: the model's own training classes (``synth_config`` in the ``training.json``
    next to the weights: the embedded default and the released checkpoints in model_cards/), else the defaults."""
    import json

    from hf_stadyn.models.auto import DEFAULT_MODEL_DIR
    from hf_stadyn.synth import SynthConfig

    extra: dict[str, Any] = {}
    folder = DEFAULT_MODEL_DIR if args.model is None else Path(args.model)
    info = folder / "training.json"
    if info.is_file():
        try:
            extra = json.loads(info.read_text()).get("synth_config") or {}
        except (json.JSONDecodeError, AttributeError):
            extra = {}
        known = {f.name for f in dataclasses.fields(SynthConfig)} - {"num_frames", "size"}
        extra = {k: tuple(v) if isinstance(v, list) else v for k, v in extra.items() if k in known}
    return SynthConfig(num_frames=t, size=size, **extra)


def _pairs(args: argparse.Namespace, model: Any, spec: dict[str, Any]):
    """The pair dataset for the chosen video source, made by the model's own probe adapter.

    Clip models get clip pairs at their frame count and size (docs/method.md §1.1); two-stream models get
    per-frame RGB + flow pairs (docs/method.md §1.2).
    """
    size = (
        spec["image_size"]
        if isinstance(spec["image_size"], int) or spec["image_size"] is None
        else min(spec["image_size"])
    )
    t = spec["num_frames"]
    make = model.pairs_from_videos
    common = dict(seed=args.seed, num_pairs=args.num_pairs)
    two_stream = "streams" in spec  # per-frame pairs: no temporal window
    window = _window_kwargs(args, spec) if not two_stream else {}
    if args.videos:
        paths = [Path(v) for v in args.videos]
        pairs = make(args.video_files, **common, **window)
        return pairs, {
            "source": "videos",
            "videos": [str(p) for p in paths],
            "skipped_videos": args.skipped_videos,
        }
    if args.dataset and args.streaming:
        from hf_stadyn.pairs import StreamingPairDataset

        if two_stream:
            raise ValueError("--streaming gives clip pairs; a two-stream model reads frame pairs: drop --streaming")
        w = int(args.window) if args.window != "auto" else int(spec.get("window") or 64)
        rows = getattr(args.loaded_dataset, "stadyn_num_rows", None)
        need = -(-args.num_pairs // args.pairs_per_video)
        if rows is not None and rows < need:
            raise ValueError(
                f"--dataset {args.dataset} streams {rows} videos; --num_pairs {args.num_pairs} with "
                f"--pairs_per_video {args.pairs_per_video} needs {need}: lower --num_pairs or raise --pairs_per_video"
            )
        pairs = StreamingPairDataset(
            args.loaded_dataset, args.num_pairs, pairs_per_video=args.pairs_per_video, num_frames=t, size=size,
            window=w, seed=args.seed, video_column=args.video_column,
        )  # fmt: skip
        return pairs, {
            "source": "dataset",
            "dataset": args.dataset,
            "video_column": args.video_column,
            "streaming": True,
            "pairs_per_video": args.pairs_per_video,
            "stream_rows": pairs.num_videos,
        }
    if args.dataset:
        ds = args.loaded_dataset
        pairs = make(ds, video_column=args.video_column, **common, **window)
        return pairs, {
            "source": "dataset",
            "dataset": args.dataset,
            "video_column": args.video_column,
            "skipped_videos": args.skipped_videos,
        }
    from hf_stadyn.synth import SynthDataset

    split = args.synth or "motion"
    synth_t = t if t > 1 else 8  # a two-stream model reads frames; render 8-frame clips for it
    synth_size = size if size is not None else 64
    cfg = _synth_config(args, synth_t, synth_size)
    synth = SynthDataset(split=split, num_clips=args.synth_clips, config=cfg, seed=args.seed, train=False)
    clips = synth.to_tensors()["frames"].numpy()
    # A synthetic clip is exactly T frames long: the fitted window is the whole clip.
    return (
        make(list(clips), **common, **window),
        {"source": "stadyn-synth", "split": split, "clips": args.synth_clips, "synth_seed": args.seed},
    )


def _window_kwargs(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    """PairDataset window arguments (docs/method.md §1.1): "auto" = the model's window (sampling rate x frames,
    ``spec["window"]``) where it declares one, else 64, fitted to each video; an int is fitted too, logged."""
    kw: dict[str, Any] = {"loop": bool(args.loop)}
    if args.window == "auto":
        kw["window"] = "auto"
        if spec.get("window"):
            kw["default_window"] = int(spec["window"])
    else:
        kw["window"] = int(args.window)
    return kw


def _window_settings(args: argparse.Namespace, spec: dict[str, Any], pairs: Any) -> dict[str, Any]:
    """What the report records about the temporal window (requested, policy, fitted per video, looped count)."""
    if getattr(args, "streaming", False) and "streams" not in spec:
        return {
            "window": int(pairs.window),
            "window_policy": "streamed: 'auto' is the model's window or 64, fitted to each video as it is read",
        }
    if "streams" in spec or not hasattr(pairs, "window_summary"):
        return {"window": None, "window_policy": "per-frame pairs (no temporal window)"}
    summary = pairs.window_summary(args.num_pairs)
    if summary["shortened_videos"] and args.window != "auto":
        logger.warning(
            "--window %s is longer than %d of %d videos; their clips span the whole video (fitted window min %d)",
            args.window, summary["shortened_videos"], summary["num_videos"], summary["fitted_window"]["min"],
        )  # fmt: skip
    if summary["short_videos"] and not args.loop:
        logger.warning(
            "%d of %d videos have fewer frames than the model's %d: their frames repeat in order (--loop loops them)",
            summary["short_videos"], summary["num_videos"], spec["num_frames"],
        )  # fmt: skip
    if args.window != "auto":
        policy = f"explicit {summary['window']}, shortened to shorter videos"
    elif spec.get("window"):
        policy = f"auto: the model's sampling rate x frames ({summary['window']}), fitted to each video"
    else:
        policy = f"auto: the default ({summary['window']}), fitted to each video"
    if args.loop:
        policy += "; videos shorter than the model's frame count loop"
    fitted = summary["fitted_window"]
    return {
        # the window the clips actually span (one value when every video fits it alike), not the request
        "window": fitted["max"] if fitted["min"] == fitted["max"] else summary["window"],
        "window_requested": args.window,
        "window_default": summary["window"],
        "window_policy": policy,
        "fitted_window": summary["fitted_window"],
        "shortened_videos": summary["shortened_videos"],
        "short_videos": summary["short_videos"],
        "looped_videos": summary["looped_videos"],
        "loop": bool(args.loop),
    }


def _check_sources(args: argparse.Namespace) -> None:
    """Before the model is loaded: every listed video opens and has >= 2 decodable frames (header and first
    frames only, :func:`hf_stadyn.video.check_videos`), and ``--dataset`` loads. Bad videos stop the run here,
    all named at once, unless ``--skip_bad_videos`` (then they are left out and recorded in the report)."""
    from hf_stadyn.video.sources import check_video_source, load_video_dataset

    args.video_files = []
    args.skipped_videos, args.loaded_dataset = [], None
    # the check takes seconds: its bar only on a terminal, so a refusal stays one line in logs and pipes
    progress = not args.disable_tqdm and sys.stderr.isatty()
    if args.videos:
        paths = [str(v) for v in args.videos]
        source = paths[0] if len(paths) == 1 and Path(paths[0]).is_dir() else paths
        kept, args.skipped_videos = check_video_source(source, skip_bad=args.skip_bad_videos, progress=progress)
        args.video_files = kept  # the folder or list as given, or the videos left after skipping
    if args.dataset and args.streaming:
        from hf_stadyn.video.sources import open_video_stream

        args.loaded_dataset = open_video_stream(
            args.dataset, split=args.split, video_column=args.video_column, name="--dataset"
        )
    elif args.dataset:
        ds = load_video_dataset(args.dataset, split=args.split, video_column=args.video_column, name="--dataset")
        args.loaded_dataset, args.skipped_videos = check_video_source(
            ds, video_column=args.video_column, skip_bad=args.skip_bad_videos, progress=progress
        )


def _reference_model(model: Any, seed: int):
    """The same architecture at initialisation (seeded), for the reference reading; its inputs are prepared
    as the model's (the checkpoint's processor settings)."""
    import torch

    from hf_stadyn.probing.adapter import ModuleAdapter

    if isinstance(model, ModuleAdapter):
        return model.rebuild_reference(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ref = type(model)(model.config)
    if callable(getattr(ref, "set_probe_processor", None)):
        ref.set_probe_processor(getattr(model, "probe_processor", None))
    return ref.eval()


def _load(args: argparse.Namespace) -> tuple[Any, str]:
    """The model to probe (``--model`` / the embedded default, or ``--model_factory``) and its report id."""
    from hf_stadyn.models.auto import load_model

    if getattr(args, "model_factory", None):
        from hf_stadyn.probing.adapter import ModuleAdapter

        # the factory builds (or loads) the model as it likes; --seed seeds only the reference (build_reference)
        return ModuleAdapter.from_factory(args.model_factory, args.layers), args.model_factory
    if args.model is None:
        return load_model(None), "hf-stadyn/embedded-default (tiny VideoMAE, StaDyn-Synth motion)"
    return load_model(args.model, revision=args.revision), str(args.model)


def _engine_args(model: Any) -> tuple[Any, dict[str, Any]]:
    """``probe()``'s model and the keyword arguments that go with it (a factory's module, layers, forward_fn)."""
    from hf_stadyn.probing.adapter import ModuleAdapter

    if isinstance(model, ModuleAdapter):
        return model.model, {"layers": model.probe_layer_specs(), "forward_fn": model.forward_fn}
    return model, {}


def _model_settings(model: Any, layers: list[str] | None) -> dict[str, Any]:
    """The family's name and the probed layers' layouts, for the report (docs/architectures.md)."""
    from hf_stadyn.models.generic import model_family
    from hf_stadyn.probing.adapter import ModuleAdapter

    if isinstance(model, ModuleAdapter):
        family = f"{type(model.model).__name__} (model factory)"
    else:
        family = model_family(model)
    specs = model.probe_layer_specs()
    return {"model_family": family, "layouts": {k: str(specs[k].layout) for k in (layers or specs) if k in specs}}


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    _check_sources(args)
    import torch
    from accelerate import Accelerator

    embedded = args.model is None and not getattr(args, "model_factory", None)
    if args.disable_tqdm:
        import transformers

        transformers.utils.logging.disable_progress_bar()
    model, model_id = _load(args)
    spec = model.probe_input_spec()
    two_stream = "streams" in spec
    if two_stream and args.num_pairs_default:
        args.num_pairs = None  # every frame is one pair; probe them all (at most the default below)
    pairs, source = _pairs(args, model, spec)
    if args.num_pairs is None:
        args.num_pairs = min(len(pairs), 3000)
    if args.num_pairs > len(pairs):
        raise ValueError(f"--num_pairs {args.num_pairs} exceeds the {len(pairs)} pairs available")
    _check_factor_counts(pairs, args.num_pairs)
    if args.dynamic_pairs == "appearance-free":
        if two_stream:
            raise ValueError(
                "--dynamic_pairs appearance-free applies to clip models; a two-stream model reads frame pairs"
            )
        from hf_stadyn.pairs.appearance_free import AppearanceFreePairs

        pairs = AppearanceFreePairs(pairs, seed=args.seed, members="b")
    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    if getattr(args, "model_factory", None):
        layers = None  # the factory's adapter holds the --layers mapping
    if layers is not None:
        unknown = [name for name in layers if name not in model.probe_layers()]
        if unknown:
            raise ValueError(f"--layers: unknown layer(s) {unknown}; this model has {list(model.probe_layers())}")
    if args.mixed_precision != "no" and (args.use_cpu or not torch.cuda.is_available()):
        raise ValueError(f"--{args.mixed_precision} needs a GPU; none is visible (or --use_cpu is given): drop it")
    accelerator = Accelerator(cpu=args.use_cpu, mixed_precision=args.mixed_precision)

    out = Path(args.output_dir)
    if args.overwrite and out.is_dir() and accelerator.is_main_process:
        shutil.rmtree(out)
    accelerator.wait_for_everyone()
    created = not out.exists()
    try:
        return _probe_and_report(args, model, model_id, embedded, spec, pairs, source, layers, accelerator, out)
    except BaseException as e:
        state = out / _STATE_DIR
        if state.is_dir() and any(state.rglob("*")):
            # probing began: the resume state is kept, whatever the failure (docs: README "Reliability");
            # after Ctrl-C / SIGTERM cli/__init__ says how to continue
            if not isinstance(e, KeyboardInterrupt):
                print(
                    f"stadyn probe: the resume state is kept in {state}; fix the cause and rerun the same command "
                    "with --resume_from_checkpoint to continue",
                    file=sys.stderr,
                )
        elif created:
            shutil.rmtree(out, ignore_errors=True)  # nothing was probed: leave nothing behind
        raise


#: options that change the numbers, in the order the recorded command lists them (report.json's
#: ``extra.command``); output folder, progress, resume, batch size and workers never change them.
_NUMBER_OPTIONS = (
    "model", "model_factory", "revision", "videos", "dataset", "video_column", "split", "synth", "synth_clips", "layers", "num_pairs",
    "window", "loop", "dynamic_pairs", "skip_bad_videos", "seed", "threshold", "bf16", "fp16", "reference",
    "target_ci", "stop_layers",
)  # fmt: skip


def canonical_command(args: argparse.Namespace) -> str:
    """The ``stadyn probe`` command that reproduces the numbers, from the parsed options (no paths of outputs,
    no progress, resume, batch-size or worker flags, so it is the same for every run that gives the same bytes)."""
    words = ["stadyn", "probe"]
    defaults = {"video_column": "video", "split": "train", "synth_clips": 128, "window": "auto", "seed": 0,
                "threshold": 0.5, "dynamic_pairs": "styles"}  # fmt: skip
    for name in _NUMBER_OPTIONS:
        value = getattr(args, name, None)
        if value is None or value is False or defaults.get(name, object()) == value:
            continue
        if name == "num_pairs" and getattr(args, "num_pairs_default", False):
            continue
        flag = "--" + name
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    if getattr(args, "reference", None) is False:
        words.append("--no_reference")
    return " ".join(words)


def _print_estimate(info: dict[str, Any]) -> None:
    """The engine's cost estimate after the first batches: on stderr when the rest takes 20 s or more."""
    from hf_stadyn.probing.engine import _estimate_message

    line = _estimate_message(info)
    if info["seconds_left"] >= 20:
        print(f"stadyn probe: {line}", file=sys.stderr)
    else:
        logger.info(line)


def _probe_and_report(args, model, model_id, embedded, spec, pairs, source, layers, accelerator, out: Path) -> int:
    from hf_stadyn.models.auto import DEFAULT_MODEL_DIR
    from hf_stadyn.probing.engine import probe_models
    from hf_stadyn.report import BiasReport

    state = out / _STATE_DIR
    common = dict(
        layers=layers, num_pairs=args.num_pairs, batch_size=args.batch_size, threshold=args.threshold,
        accelerator=accelerator, num_workers=args.dataloader_num_workers, progress=not args.disable_tqdm,
        resume=args.resume, save_every_pairs=args.save_every_pairs,
        run_identity={"command": canonical_command(args), "model": model_id, "revision": args.revision},
    )  # fmt: skip
    target, engine_kw = _engine_args(model)
    models = {"model": target}
    want_ref = args.reference if args.reference is not None else embedded
    if want_ref:  # read in the same data pass as the model (docs/scaling.md "Reference in one pass")
        models["reference"] = _engine_args(_reference_model(model, args.seed))[0]
    if args.target_ci is not None:
        common["target_ci"] = args.target_ci
        if args.stop_layers:
            common["stop_layers"] = [x.strip() for x in args.stop_layers.split(",") if x.strip()]
    name = model_id.split(" (")[0]
    name = name if len(name) <= 40 else f"...{name[-37:]}"
    desc = f"probing {name}" + (" + reference (one pass)" if want_ref else "")
    results = probe_models(models, pairs, checkpoint_dir=state, desc=desc, on_estimate=_print_estimate,
                           **{**common, **engine_kw})  # fmt: skip
    result = results["model"]
    used = result.num_pairs  # fewer than --num_pairs when --target_ci stopped the run
    reference = None
    reference_info: dict[str, Any] | None = None
    if want_ref:
        ref = results["reference"]
        reference = ref.layers
        reference_info = {
            "kind": "same architecture at initialisation",
            "seed": args.seed,
            "pair_fingerprint": ref.settings.get("pair_fingerprint"),
        }
    pair_settings = {
        **source,
        "num_pairs": used,
        "num_frames": spec["num_frames"],
        "image_size": spec["image_size"],
        **_window_settings(argparse.Namespace(**{**vars(args), "num_pairs": used}), spec, pairs),
        "processor": spec.get("processor"),
        **_model_settings(model, layers),
        "fingerprint": result.settings.get("pair_fingerprint"),
        "model_fingerprint": result.settings.get("model_fingerprint"),
        "chunking": result.settings.get("chunking"),
        "num_videos": result.settings.get("num_videos"),
        "interval_notes": result.settings.get("interval_notes", []),
        "styles": [getattr(s, "name", None) or type(s).__name__ for s in pairs.styles],
        "static_fraction": pairs.static_fraction,
        "dynamic_pairs": getattr(pairs, "settings", None) or "styles",
        "threshold": args.threshold,
        "mixed_precision": args.mixed_precision,
    }
    extra: dict[str, Any] = {"command": canonical_command(args)}
    stopping = result.settings.get("stopping")
    if stopping is not None:  # only with --target_ci: other reports keep their bytes
        last = stopping["history"][-1]
        keep = (
            "rule",
            "target_ci",
            "layers",
            "min_pairs",
            "growth",
            "max_pairs",
            "looks",
            "look_confidence",
            "stopped",
        )
        pair_settings["stopping"] = {
            **{k: stopping[k] for k in keep},
            "half_widths": {m: last[m]["half_widths"] for m in results},  # at the stop, per model and layer
        }
        extra["stopping_history"] = stopping["history"]  # every look's half-widths and sequential intervals
    report = BiasReport.from_results(
        result.layers,
        model_id=model_id,
        revision=args.revision,
        pair_settings=pair_settings,
        seed=args.seed,
        reference=reference,
        reference_info=reference_info,
        extra=extra,
    )
    if accelerator.is_main_process:
        files = report.save(out)
        shutil.rmtree(state, ignore_errors=True)
        last = report.last_layer
        lb = result.layers[last]
        print(
            f"probed {used} pairs ({lb.num_pairs['dynamic']} dynamic, {lb.num_pairs['static']} static) "
            f"on {len(result.layers)} layers of {model_id}"
        )
        if stopping is not None:
            print(
                f"stopping rule (--target_ci {args.target_ci:g}): {stopping['stopped']['reason']} after {used} of at "
                f"most {args.num_pairs} pairs; the sequential 95 % intervals at the stop (report.json "
                "extra.stopping_history) hold whatever look it stopped at; the table's are a plain run's of these pairs"
            )
        for line in report.summary_lines():  # the same table as report.md (share % with intervals first)
            print(line)
        for note in result.settings.get("interval_notes", []):
            print(f"note: {note}")
        print(f"wrote {', '.join(sorted(p.name for p in files.values()))} to {out}")
    if embedded:
        logger.info("embedded default model: %s", DEFAULT_MODEL_DIR)
    return 0
