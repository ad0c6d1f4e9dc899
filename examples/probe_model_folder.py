"""Probe a local video model folder on a folder of videos and write a bias report.

What it does (docs/method.md §1.1, §3, §4):

1. loads a VideoMAE / TimeSformer folder written with ``save_pretrained`` (default: the small model
   embedded in hf-stadyn, a tiny VideoMAE trained on StaDyn-Synth motion classes);
2. takes a folder of videos (default: renders a few StaDyn-Synth clips into ``<out>/videos``);
3. builds static/dynamic clip pairs at the model's frame count and size (``hf_stadyn.PairDataset``);
4. runs the one probing engine (``hf_stadyn.probe``) over every probed layer;
5. writes ``report.json``, ``report.md`` and figures (``hf_stadyn.BiasReport``) and prints the
   per-layer table.

Run (well under a minute on a laptop CPU)::

    python examples/probe_model_folder.py --out runs/probe_example
    python examples/probe_model_folder.py --model path/to/my_videomae --videos path/to/videos --num-pairs 512

Every random choice (rendered clips, pairs, styles) comes from ``--seed``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import hf_stadyn  # the front door: its names load on first use, so --help stays instant


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=None, help="save_pretrained folder or Hub id (default: the embedded model)")
    p.add_argument("--videos", default=None, help="folder of videos (default: render StaDyn-Synth clips)")
    p.add_argument("--out", default="runs/probe_example", help="output folder for the report")
    p.add_argument("--num-clips", type=int, default=6, help="StaDyn-Synth clips to render when --videos is not given")
    p.add_argument("--num-pairs", type=int, default=64, help="probe pairs (half static, half dynamic on average)")
    p.add_argument("--window", type=int, default=8, help="source frames each clip spans")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seed of the rendered clips and the pairs")
    p.add_argument("--no-figures", action="store_true", help="write report.json / report.md only (faster)")
    return p.parse_args(argv)


def render_videos(folder: Path, num_clips: int, num_frames: int, size: int, seed: int, embedded: bool) -> Path:
    """Write ``num_clips`` StaDyn-Synth clips (mp4, ``num_frames`` frames of ``size`` x ``size``) into ``folder``."""
    from hf_stadyn.models.auto import DEFAULT_MODEL_DIR

    # The embedded model was trained on four motion classes and four appearances (its training.json);
    # render the same kind of scene for it so its readings mean something. Other models: the defaults.
    extra = {}
    info = DEFAULT_MODEL_DIR / "training.json"
    if embedded and info.is_file():
        extra = json.loads(info.read_text(encoding="utf-8")).get("synth_config", {})
        extra = {k: tuple(v) if isinstance(v, list) else v for k, v in extra.items()}
    config = hf_stadyn.SynthConfig(num_frames=num_frames, size=size, **extra)
    # generate_synth writes <folder>/videos/*.mp4 plus masks and metadata; PairDataset finds the mp4s.
    return hf_stadyn.generate_synth(folder, split="motion", num_clips=num_clips, config=config, seed=seed,
                                    train=False, overwrite=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)

    # 1. the model: any folder save_pretrained wrote (or a Hub id); load_model picks the hf_stadyn class.
    #    None loads the embedded default (hf_stadyn.models.auto.DEFAULT_MODEL_DIR).
    model = hf_stadyn.load_model(args.model)
    model_id = args.model or "hf-stadyn embedded default (tiny VideoMAE, StaDyn-Synth motion)"
    spec = model.probe_input_spec()  # {"num_frames": T, "image_size": S, "mean", "std"}
    num_frames, size = spec["num_frames"], spec["image_size"]
    size = size if isinstance(size, int) else min(size)

    # 2. the videos
    videos = Path(args.videos) if args.videos else render_videos(out / "videos", args.num_clips, num_frames, size,
                                                                  args.seed, args.model is None)  # fmt: skip

    # 3. the pairs: each item holds both members of a pair (clip_a, clip_b) and its factor
    #    (dynamic: same frames in two styles; static: same style, frames shuffled), drawn from --seed
    pairs = hf_stadyn.PairDataset(str(videos), num_frames=num_frames, size=size, window=args.window,
                                  seed=args.seed, num_pairs=args.num_pairs)  # fmt: skip

    # 4. probe every layer the model offers; one forward per batch feeds both members of each pair
    result = hf_stadyn.probe(model, pairs, batch_size=args.batch_size, cpu=True, progress=False)

    # 5. the report (deterministic JSON, markdown, figures)
    report = hf_stadyn.BiasReport.from_results(
        result.layers,
        model_id=model_id,
        pair_settings={
            "videos": str(videos),
            "num_pairs": args.num_pairs,
            "num_frames": num_frames,
            "image_size": size,
            "window": args.window,
            "batch_size": args.batch_size,
        },
        seed=args.seed,
    )
    files = report.save(out, figures=not args.no_figures)

    print(f"probed {result.num_pairs} pairs on {len(result.layers)} layers of {model_id}")
    print(f"{'layer':<16} {'dynamic %':>9} {'static %':>9} {'residual %':>10} {'s_D':>7} {'s_S':>7} {'pairs D/S':>10}")
    for name, lb in result.layers.items():
        n = f"{lb.num_pairs['dynamic']}/{lb.num_pairs['static']}"
        print(
            f"{name:<16} {lb.percent['dynamic']:>9.1f} {lb.percent['static']:>9.1f} {lb.percent['residual']:>10.1f} "
            f"{lb.s_dynamic:>7.3f} {lb.s_static:>7.3f} {n:>10}"
        )
    print(f"wrote {files['json']} and {files['markdown']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
