"""Train a tiny two-stream AVOS segmenter on StaDyn-Synth, then probe its streams and fusion layers.

What it does (docs/method.md §1.2, §7, §9):

1. ``hf_stadyn.training.avos.train_avos_on_synth`` renders StaDyn-Synth frames with their optical
   flow and object masks (half in camouflage mode, where only motion reveals the object), trains an
   AVOS model (an appearance stream on RGB, a motion stream on colour-coded flow, fused per level),
   evaluates J / F on normal and camouflage test clips and saves the model and ``metrics.json``;
2. renders a few StaDyn-Synth videos and makes per-frame two-stream pairs from them
   (``hf_stadyn.TwoStreamPairDataset``: dynamic pairs restyle the RGB frame with the flow kept,
   static pairs keep the frame and jitter the flow image's colours);
3. probes every stream stage and fusion layer with the one probing engine (``hf_stadyn.probe``) and
   prints the fusion-layer readings: how much of the joint representation encodes motion (dynamic)
   and appearance (static).

Run (well under a minute on a laptop CPU)::

    python examples/avos_two_stream.py --out runs/avos_example
    python examples/avos_two_stream.py --fusion gated --train-clips 200 --epochs 5 --size 64

Every random choice (rendered clips, model init, data order, pairs) comes from ``--seed``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hf_stadyn  # the front door: its names load on first use, so --help stays instant


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="runs/avos_example", help="output folder (model, metrics, probe videos)")
    p.add_argument("--fusion", default="concat", choices=("concat", "gated", "convex"), help="fusion variant")
    p.add_argument("--size", type=int, default=32, help="frame side in pixels")
    p.add_argument("--num-frames", type=int, default=8, help="frames per rendered clip")
    p.add_argument("--train-clips", type=int, default=8, help="training clips (half in camouflage mode)")
    p.add_argument("--test-clips", type=int, default=4, help="clips per test set (normal, camouflage)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--probe-videos", type=int, default=3, help="videos rendered for the probe pairs")
    p.add_argument("--num-pairs", type=int, default=24, help="two-stream pairs probed (<= videos x frames)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    # imported here, after the arguments are parsed, so --help does not wait for torch / transformers
    from hf_stadyn.training.avos import AVOSSynthRecipe, train_avos_on_synth

    model_dir = out / "model"

    # 1. train: the recipe behind `stadyn train --task avos`, here at toy size
    recipe = AVOSSynthRecipe(
        fusion=args.fusion,
        hidden_sizes=(8, 16, 24, 32),
        size=args.size,
        num_frames=args.num_frames,
        train_clips=args.train_clips,
        test_clips=args.test_clips,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    metrics = train_avos_on_synth(recipe, model_dir)  # writes config.json, model.safetensors, metrics.json
    for mode, scores in metrics["eval"].items():
        print(f"{mode:<11} J {scores['J']:.3f}  F {scores['F']:.3f}")

    # 2. the probe pairs: per-frame RGB + flow pairs from a few fresh videos (test seed: not the
    #    training clips). generate_synth writes <folder>/videos/*.mp4; the pair dataset finds them.
    synth = hf_stadyn.SynthConfig(num_frames=args.num_frames, size=args.size)
    videos = hf_stadyn.generate_synth(out / "probe_videos", split="motion", num_clips=args.probe_videos,
                                      config=synth, seed=args.seed, train=False, overwrite=True)  # fmt: skip
    pairs = hf_stadyn.TwoStreamPairDataset(str(videos), size=args.size, seed=args.seed)
    num_pairs = min(args.num_pairs, len(pairs))

    # 3. probe the saved model (load_model reads the folder like any other) on every tapped layer
    model = hf_stadyn.load_model(model_dir)
    result = hf_stadyn.probe(model, pairs, num_pairs=num_pairs, batch_size=8, cpu=True, progress=False)

    print(f"probed {num_pairs} two-stream pairs on {len(result.layers)} layers ({', '.join(result.layers)})")
    print(f"{'fusion layer':<14} {'dynamic %':>9} {'static %':>9} {'s_D':>7} {'s_S':>7} {'pairs D/S':>10}")
    for name, lb in result.layers.items():
        if name.startswith("fusion"):
            n = f"{lb.num_pairs['dynamic']}/{lb.num_pairs['static']}"
            print(
                f"{name:<14} {lb.percent['dynamic']:>9.1f} {lb.percent['static']:>9.1f} "
                f"{lb.s_dynamic:>7.3f} {lb.s_static:>7.3f} {n:>10}"
            )
    print(f"model and metrics.json in {model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
