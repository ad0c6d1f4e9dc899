"""Probing benchmark: cost of pooling every layer with forward hooks, against the plain forward and
against the ``output_hidden_states`` route (keep all hidden states, then average them).

Run:  python tests/bench/bench_probing.py [--threads 2]

Also prints all-layer probing throughput over a bare forward's (target >= 0.9) and the time of one
pass per probed layer (as the research code does) over one pass for all layers.
Prints, for a small random-init VideoMAE (hidden 256, 8 blocks, 16 x 112 x 112, B = 8) and the tiny
TimeSformer (B = 32), the median time per batch of each route as a ratio to the plain forward (the
routes are interleaved round by round so machine load affects them alike), and the peak resident
memory of a fresh process running each route (MB above the plain forward's own peak) with the bytes
of layer tensors each route holds until the forward returns.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def build(kind: str):
    from hf_stadyn.models import (
        StadynTimesformerForVideoClassification,
        StadynVideoMAEConfig,
        StadynVideoMAEForVideoClassification,
        tiny_timesformer_config,
    )

    torch.manual_seed(0)
    if kind == "videomae":
        cfg = StadynVideoMAEConfig(
            num_labels=10, num_frames=16, image_size=112, patch_size=16, hidden_size=256, num_hidden_layers=8,
            num_attention_heads=4, intermediate_size=1024,
        )  # fmt: skip
        return StadynVideoMAEForVideoClassification(cfg).eval(), torch.randn(8, 16, 3, 112, 112)
    cfg = tiny_timesformer_config(num_labels=10)
    return StadynTimesformerForVideoClassification(cfg).eval(), torch.randn(32, 8, 3, 32, 32)


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


def model_layers(kind: str) -> list[str]:
    return list(build(kind)[0].probe_layers())


def timing(kind: str, repeats: int) -> dict:
    model, x = build(kind)
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


def peak_rss_child(kind: str, mode: str) -> None:
    model, x = build(kind)
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        peak_rss_child(*args.child)
        return
    for kind in ("videomae", "timesformer"):
        t = timing(kind, args.repeats)
        base = t["plain"]
        print(f"{kind}: plain forward {base * 1e3:.1f} ms per batch")
        print(f"  hooks (all {kind} probe layers) / plain = {t['hooks'] / base:.3f}")
        print(f"  output_hidden_states + mean     / plain = {t['hidden'] / base:.3f}")
        n_layers = len(model_layers(kind))
        print(f"  throughput, all-layer probing / bare forward = {base / t['hooks']:.3f} (target >= 0.9)")
        print(f"  one pass per layer ({n_layers} layers) / one pass for all = {t['per_layer'] / t['hooks']:.2f}")
        for mode in ("hooks", "hidden"):
            out = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--child", kind, mode],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"  {mode:6s}: layer tensors held {r['held_mb']:.3f} MB; "
                f"peak RSS above the plain forward's peak {r['extra_peak_mb']:.1f} MB"
            )


if __name__ == "__main__":
    main()
