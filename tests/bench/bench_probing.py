"""Probing benchmark: cost of pooling every layer with forward hooks, against the plain forward and
against the ``output_hidden_states`` route (keep all hidden states, then average them).

Run:  python tests/bench/bench_probing.py [--threads 2]              # the full run (manual)
      python tests/bench/bench_probing.py --smoke --json out.json   # seconds (CI)

Also prints all-layer probing throughput over a bare forward's (target >= 0.9) and the time of one
pass per probed layer (as the research code does) over one pass for all layers.
Prints, for a small random-init VideoMAE (hidden 256, 8 blocks, 16 x 112 x 112, B = 8) and the tiny
TimeSformer (B = 32), the median time per batch of each route as a ratio to the plain forward (the
routes are interleaved round by round so machine load affects them alike), and the peak resident
memory of a fresh process running each route (MB above the plain forward's own peak) with the bytes
of layer tensors each route holds until the forward returns.
``--smoke``: VideoMAE hidden 32, 2 blocks, 8 x 32 x 32, B = 2; TimeSformer B = 2; one repeat, 1 thread,
the fresh-process memory figure for the VideoMAE hooks route only (numbers meaningless; it checks that
the benchmark still runs). ``--json PATH`` also writes the times,
ratios and memory figures to PATH.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def build(kind: str, smoke: bool = False):
    from hf_stadyn.models import (
        StadynTimesformerForVideoClassification,
        StadynVideoMAEConfig,
        StadynVideoMAEForVideoClassification,
        tiny_timesformer_config,
    )

    torch.manual_seed(0)
    if kind == "videomae" and smoke:
        cfg = StadynVideoMAEConfig(
            num_labels=10, num_frames=8, image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64,
        )  # fmt: skip
        return StadynVideoMAEForVideoClassification(cfg).eval(), torch.randn(2, 8, 3, 32, 32)
    if kind == "videomae":
        cfg = StadynVideoMAEConfig(
            num_labels=10, num_frames=16, image_size=112, patch_size=16, hidden_size=256, num_hidden_layers=8,
            num_attention_heads=4, intermediate_size=1024,
        )  # fmt: skip
        return StadynVideoMAEForVideoClassification(cfg).eval(), torch.randn(8, 16, 3, 112, 112)
    cfg = tiny_timesformer_config(num_labels=10)
    return StadynTimesformerForVideoClassification(cfg).eval(), torch.randn(2 if smoke else 32, 8, 3, 32, 32)


def run_mode(model, x, mode: str) -> int:
    """Run one route; return the bytes of layer tensors it held until the forward returned."""
    if mode == "plain":
        with torch.inference_mode():
            model(pixel_values=x)
        return 0
    if mode == "hooks":
        feats = model.pooled_features(x)
        return sum(v.numel() * v.element_size() for v in feats.values())
    if mode == "per_layer":
        # the research code's route: one full forward pass per probed layer
        held = 0
        for layer in model.probe_layers():
            feats = model.pooled_features(x, layers=[layer])
            held = max(held, sum(v.numel() * v.element_size() for v in feats.values()))
        return held
    # hidden states: all kept until the forward returns, then averaged
    with torch.inference_mode():
        out = model(pixel_values=x, output_hidden_states=True)
    feats = [h.mean(1) for h in out.hidden_states]
    return sum(h.numel() * h.element_size() for h in out.hidden_states) + sum(f.numel() * 4 for f in feats)


def model_layers(kind: str, smoke: bool = False) -> list[str]:
    return list(build(kind, smoke)[0].probe_layers())


def timing(kind: str, repeats: int, smoke: bool = False) -> dict:
    model, x = build(kind, smoke)
    modes = ("plain", "hooks", "hidden", "per_layer")
    for mode in modes:  # warm-up
        run_mode(model, x, mode)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode in modes:
            t0 = time.perf_counter()
            run_mode(model, x, mode)
            times[mode].append(time.perf_counter() - t0)
    return {m: statistics.median(v) for m, v in times.items()}


def peak_rss_child(kind: str, mode: str, smoke: bool = False) -> None:
    model, x = build(kind, smoke)
    run_mode(model, x, "plain")  # allocator warm-up at the same batch
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    held = run_mode(model, x, mode)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"extra_peak_mb": (peak - base) / 1024, "held_mb": held / 2**20}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--child", nargs=2, metavar=("KIND", "MODE"))
    ap.add_argument("--smoke", action="store_true", help="tiny models, one repeat: seconds (numbers meaningless)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = ap.parse_args()
    if args.smoke:
        args.threads, args.repeats = 1, 1
    torch.set_num_threads(args.threads)
    if args.child:
        peak_rss_child(*args.child, smoke=args.smoke)
        return
    if args.smoke:
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the benchmark runs)")
    result: dict = {"smoke": args.smoke, "threads": args.threads}
    for kind in ("videomae", "timesformer"):
        t = timing(kind, args.repeats, args.smoke)
        base = t["plain"]
        print(f"{kind}: plain forward {base * 1e3:.1f} ms per batch")
        print(f"  hooks (all {kind} probe layers) / plain = {t['hooks'] / base:.3f}")
        print(f"  output_hidden_states + mean     / plain = {t['hidden'] / base:.3f}")
        n_layers = len(model_layers(kind, args.smoke))
        print(f"  throughput, all-layer probing / bare forward = {base / t['hooks']:.3f} (target >= 0.9)")
        print(f"  one pass per layer ({n_layers} layers) / one pass for all = {t['per_layer'] / t['hooks']:.2f}")
        row: dict = {
            "plain_seconds": base,
            "ratios": {"hooks_over_plain": t["hooks"] / base, "hidden_over_plain": t["hidden"] / base,
                       "per_layer_over_hooks": t["per_layer"] / t["hooks"]},
            "memory": {},
        }  # fmt: skip
        result[kind] = row
        if args.smoke and kind != "videomae":
            continue  # smoke: the fresh-process memory route once (each child pays ~8 s of imports again)
        for mode in ("hooks",) if args.smoke else ("hooks", "hidden"):
            out = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--child", kind, mode]
                + (["--smoke"] if args.smoke else []),
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            row["memory"][mode] = r
            print(
                f"  {mode:6s}: layer tensors held {r['held_mb']:.3f} MB; "
                f"peak RSS above the plain forward's peak {r['extra_peak_mb']:.1f} MB"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
