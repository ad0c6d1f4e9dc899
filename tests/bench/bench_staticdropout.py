"""Benchmark: training-step time with StaticDropout over ordinary dropout, and the refresh cost.

Run from the repository root::

    PYTHONPATH=. python tests/bench/bench_staticdropout.py            # tiny VideoMAE, 8x32x32, batch 32
    PYTHONPATH=. python tests/bench/bench_staticdropout.py --layer block_3 --threads 1
    PYTHONPATH=. python tests/bench/bench_staticdropout.py --smoke --json out.json   # seconds (CI)

Both variants train the same tiny VideoMAE (one optimizer step = forward, backward, AdamW) with the
regulariser at the same place (default: the classifier input): ``nn.Dropout(p)`` (the baseline)
and ``StaticDropout(p)`` on a quarter of the channels. Rounds alternate between the two so that load
from other processes hits both alike; the ratio is the median step time of StaticDropout over the
median of dropout (target <= 1.03). The refresh (re-measuring the bias on the probe pairs and
re-selecting the static set) is timed apart and reported per refresh, in training steps, and as the
overhead of one refresh per epoch. The full runs are manual. ``--smoke``: batch 4, 2 rounds of 1 step,
8 probe pairs, 1 thread (numbers meaningless; it checks that the benchmark still runs). ``--json PATH``
also writes the times and ratios to PATH.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def _model(layer: str, kind: str, p: float, seed: int = 0):
    from hf_stadyn.debias import StaticDropoutConfig, apply_static_dropout
    from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config

    torch.manual_seed(seed)
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(num_labels=4))
    c = model.config.hidden_size
    if kind == "dropout":
        if layer == "pre_classifier":
            model.feature_dropout = nn.Dropout(p)
        else:  # the same hook point as StaticDropout, with ordinary dropout
            drop = nn.Dropout(p)
            model.add_module("bench_dropout", drop)
            block = model.get_submodule(model.probe_layer_specs()[layer].module)
            block.register_forward_hook(
                lambda m, a, out: drop(out) if torch.is_tensor(out) else (drop(out[0]), *out[1:])
            )
    else:
        apply_static_dropout(model, StaticDropoutConfig(p=p, layer=layer), static_channels=list(range(0, c, 4)))
    model.train()
    return model


def _steps(model, opt, x, y, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        loss = model(pixel_values=x, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layer", default="pre_classifier", help="pre_classifier (default) or block_0..block_3")
    ap.add_argument("--p", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--steps", type=int, default=10, help="steps per round")
    ap.add_argument("--probe-pairs", type=int, default=256)
    ap.add_argument(
        "--steps-per-epoch", type=int, default=94, help="for the per-epoch refresh overhead (3000 clips / 32)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (numbers meaningless)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = ap.parse_args()
    module_reps, warmup, refreshes = 2000, 3, 3
    if args.smoke:
        args.batch_size, args.rounds, args.steps, args.probe_pairs, args.threads = 4, 2, 1, 8, 1
        module_reps, warmup, refreshes = 20, 1, 1
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the benchmark runs)")
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(args.batch_size, 8, 32, 32, 3), dtype=np.uint8)
    models = {k: _model(args.layer, k, args.p) for k in ("dropout", "static_dropout")}
    x = models["dropout"].prepare_pixel_values(clips)
    y = torch.from_numpy(rng.integers(0, 4, size=args.batch_size))
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    for k in models:  # warm-up
        _steps(models[k], opts[k], x, y, warmup)
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.rounds):
        order = ("dropout", "static_dropout") if r % 2 == 0 else ("static_dropout", "dropout")
        for k in order:
            times[k].append(_steps(models[k], opts[k], x, y, args.steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    # each round times both variants back to back: the median of the per-round ratios is robust to load
    # that drifts between rounds; the interquartile range shows the noise
    paired = sorted(s / d for s, d in zip(times["static_dropout"], times["dropout"]))
    ratio = statistics.median(paired)
    lo, hi = paired[len(paired) // 4], paired[(3 * len(paired)) // 4]
    module = _module_overhead(args.layer, args.p, args.batch_size, module_reps)

    # the refresh: measure the bias on fixed probe pairs and re-select the static set
    from hf_stadyn.debias import BiasTracker, ProbePairs, StaticDropoutConfig

    model = models["static_dropout"]
    pair_clips = [rng.integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8) for _ in range(10 if args.smoke else 64)]
    pairs = ProbePairs(pair_clips, args.probe_pairs, seed=0)
    t0 = time.perf_counter()
    for i in range(len(pairs)):
        pairs[i]
    build = time.perf_counter() - t0
    cfg = StaticDropoutConfig(p=args.p, layer=args.layer, num_probe_pairs=args.probe_pairs)
    tracker = BiasTracker(pairs, static_dropout=cfg, layers=[args.layer])
    tracker.refresh(model, 0)  # warm-up
    refresh = statistics.median(_timed(lambda s=s: tracker.refresh(model, s)) for s in range(1, 1 + refreshes))

    print(f"tiny VideoMAE (8x32x32, batch {args.batch_size}), regulariser at {args.layer}, p={args.p}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(
        f"  step time, ordinary dropout : {1000 * med['dropout']:.1f} ms (median of {args.rounds} rounds x {args.steps})"
    )
    print(f"  step time, StaticDropout    : {1000 * med['static_dropout']:.1f} ms")
    print(
        f"  ratio StaticDropout / dropout = {ratio:.3f}  (median of {len(paired)} paired rounds, interquartile "
        f"{lo:.3f}-{hi:.3f}; ratio of the medians {med['static_dropout'] / med['dropout']:.3f}; target <= 1.03)"
    )
    print(f"  the modules alone (forward + backward on {module['shape']}): dropout {module['dropout']:.1f} us, "
          f"StaticDropout {module['static_dropout']:.1f} us per call")  # fmt: skip
    print(f"  refresh ({args.probe_pairs} probe pairs, estimator + selection): {refresh:.2f} s = "
          f"{refresh / med['static_dropout']:.1f} training steps; once per epoch of {args.steps_per_epoch} steps adds "
          f"{100 * refresh / (args.steps_per_epoch * med['static_dropout']):.1f} %")  # fmt: skip
    print(f"  (rendering the {args.probe_pairs} probe pairs once, cached afterwards: {build:.2f} s)")
    if args.json:
        result = {
            "smoke": args.smoke, "layer": args.layer, "threads": torch.get_num_threads(),
            "step_seconds": med, "module_us": {k: v for k, v in module.items() if k != "shape"},
            "refresh_seconds": refresh, "probe_pairs_build_seconds": build,
            "ratios": {"static_dropout_over_dropout": ratio, "ratio_of_medians": med["static_dropout"] / med["dropout"],
                       "refresh_in_steps": refresh / med["static_dropout"]},
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def _module_overhead(layer: str, p: float, batch: int, reps: int = 2000) -> dict[str, Any]:
    """Microseconds per forward + backward of each module on the layer's activation shape."""
    from hf_stadyn.debias import StaticDropout

    shape = (batch, 64) if layer == "pre_classifier" else (batch, 64, 64)  # (B, C) or (B, N, C) tokens
    mods = {
        "dropout": nn.Dropout(p).train(),
        "static_dropout": StaticDropout(64, p=p, static_channels=range(0, 64, 4)).train(),
    }
    out: dict[str, Any] = {"shape": shape}
    x = torch.randn(*shape, requires_grad=True)
    for name, mod in mods.items():
        for _ in range(50):
            mod(x).sum().backward()
        t0 = time.perf_counter()
        for _ in range(reps):
            mod(x).sum().backward()
        out[name] = 1e6 * (time.perf_counter() - t0) / reps
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
