"""Can a tiny video transformer learn StaDyn-Synth, and does the bias trap trap it?

Run:  python tests/bench/bench_synth_learn.py motion      [--clips 6000 --epochs 16 --seed 0]
      python tests/bench/bench_synth_learn.py appearance  [--cue invariant]
      python tests/bench/bench_synth_learn.py trap        [--cue invariant --share 0.99]
      python tests/bench/bench_synth_learn.py trap --smoke --json out.json   # seconds (CI)

Trains a random-init VideoMAE (image 32, patch 8, tubelet 2, hidden 64, 4 layers) from scratch on
in-memory clips (8 x 32 x 32, default SynthConfig) with AdamW + one-cycle, batch 32, one CPU thread,
and prints test accuracy with chance level as the baseline; for the trap it prints aligned and
conflicting accuracy and how often the model follows the static cue instead of the motion. Also
prints the confusion matrix. A few minutes per run on one core (the full runs are manual).
``--smoke``: 64 training clips, 32 test clips, one epoch, batch 16 (numbers meaningless; it checks that
the benchmark still runs). ``--json PATH`` also writes the accuracies and ratios to PATH.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", choices=("motion", "appearance", "trap"))
    parser.add_argument("--clips", type=int, default=6000)
    parser.add_argument("--test-clips", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="model init and batch order")
    parser.add_argument("--cue", default="invariant", choices=("invariant", "sensitive", "both"))
    parser.add_argument("--share", type=float, default=0.99, help="trap share of the training set")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="64 clips, 1 epoch: seconds (numbers meaningless)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args()
    bs = 32
    if args.smoke:
        args.clips, args.test_clips, args.epochs, bs = 64, 32, 1, 16
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the benchmark runs)")

    import torch
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification
    from transformers.utils import logging as hf_logging

    from hf_stadyn.synth import SynthConfig, SynthDataset

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    cfg = SynthConfig()
    kw = {"trap_cue": args.cue}
    train = SynthDataset(args.split, args.clips, cfg, seed=0, trap_share=args.share, **kw)
    variants = ("aligned", "conflicting") if args.split == "trap" else ("aligned",)
    tests = {
        v: SynthDataset(args.split, args.test_clips, cfg, seed=0, train=False, test_variant=v, **kw) for v in variants
    }

    def prep(frames: torch.Tensor) -> torch.Tensor:  # (N, T, H, W, 3) uint8 -> (N, T, 3, H, W) in [-1, 1]
        return frames.permute(0, 1, 4, 2, 3).float().div(127.5).sub(1.0)

    tr = train.to_tensors()
    x, y = prep(tr["frames"]), tr["label"]
    torch.manual_seed(args.seed)
    model = VideoMAEForVideoClassification(
        VideoMAEConfig(
            image_size=32,
            patch_size=8,
            num_frames=8,
            tubelet_size=2,
            hidden_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=128,
            num_labels=train.num_classes,
        )
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    n = len(y)
    steps = args.epochs * (n // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=g)
        model.train()
        for b in range(n // bs):
            idx = perm[b * bs : (b + 1) * bs]
            loss = torch.nn.functional.cross_entropy(model(pixel_values=x[idx]).logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    print(
        f"{args.split} (cue {args.cue}): trained {args.epochs} epochs on {n} clips in "
        f"{time.perf_counter() - t0:.0f} s, last loss {loss.item():.3f}"
    )
    model.eval()
    chance = 100.0 / train.num_classes
    result: dict = {"smoke": args.smoke, "split": args.split, "cue": args.cue, "chance_percent": chance,
                    "last_loss": loss.item(), "accuracy_percent": {}, "ratios": {}}  # fmt: skip
    for name, ds in tests.items():
        te = ds.to_tensors()
        with torch.no_grad():
            pred = torch.cat(
                [model(pixel_values=prep(te["frames"][i : i + 256])).logits.argmax(-1) for i in range(0, len(ds), 256)]
            )
        acc = (pred == te["label"]).float().mean().item() * 100
        result["accuracy_percent"][name] = acc
        result["ratios"][f"{name}_accuracy_over_chance"] = acc / chance
        line = f"  {name:12s} accuracy {acc:5.1f} %  (chance {chance:.1f} %, ratio {acc / chance:.1f}x)"
        if args.split == "trap":
            follows = (pred == te["appearance"]).float().mean().item() * 100  # label k has cue class k
            line += f"  follows the static cue {follows:5.1f} %"
            result.setdefault("follows_cue_percent", {})[name] = follows
        print(line)
        cm = torch.zeros(ds.num_classes, ds.num_classes, dtype=torch.long)
        cm.index_put_((te["label"], pred), torch.ones_like(pred), accumulate=True)
        print("  confusion (rows = true):", ", ".join(ds.label_names))
        print("\n".join("   " + " ".join(f"{v:4d}" for v in row) for row in cm.tolist()))
        result.setdefault("confusion", {})[name] = cm.tolist()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
