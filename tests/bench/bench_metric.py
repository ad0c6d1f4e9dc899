"""Estimator benchmark: update throughput (pairs/s) and peak memory versus the number of pairs.

Run:  python tests/bench/bench_metric.py                          # the full run (manual)
      python tests/bench/bench_metric.py --smoke --json out.json   # every code path in seconds (CI)
Prints update throughput at C = 768 and 2048 (batch 256, numpy float32 input, as pooled features
arrive from a probe) and the peak resident memory of a process that streams N = 1,000 vs N = 100,000
pairs through the estimator (each N in its own fresh process; the ratio must stay near 1).
``--smoke``: C = 16 and 64, 2 repeats, N = 100 vs 1,000 at C = 64 (numbers meaningless; it checks
that the benchmark still runs). ``--json PATH`` also writes the figures and the ratio to PATH.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def throughput(c: int, batch: int = 256, repeats: int = 40) -> float:
    from hf_stadyn.metric import StaticDynamicEstimator

    rng = np.random.default_rng(0)
    za = rng.normal(size=(batch, c)).astype(np.float32)
    zb = rng.normal(size=(batch, c)).astype(np.float32)
    f = rng.integers(0, 2, size=batch)
    est = StaticDynamicEstimator()
    est.update(za, zb, f, layer="l")  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        est.update(za, zb, f, layer="l")
    return batch * repeats / (time.perf_counter() - t0)


def stream(n: int, c: int, batch: int = 250) -> dict:
    from hf_stadyn.metric import StaticDynamicEstimator

    rng = np.random.default_rng(1)
    est = StaticDynamicEstimator()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for start in range(0, n, batch):
        b = min(batch, n - start)
        za = rng.normal(size=(b, c)).astype(np.float32)
        zb = (0.5 * za + rng.normal(size=(b, c))).astype(np.float32)
        est.update(za, zb, rng.integers(0, 2, size=b), layer="l")
    res = est.compute()["l"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"n": n, "peak_rss_mb": peak / 1024, "growth_mb": (peak - base) / 1024, "pairs": sum(res.num_pairs.values())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--channels", type=int, default=None, help="channels of the streaming run (default 2048)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (numbers meaningless)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = ap.parse_args()
    if args.child is not None:
        import torch

        print(json.dumps(stream(args.child, args.channels or 2048)))
        return
    import torch

    torch.set_num_threads(1)
    widths, repeats, sizes = ((16, 64), 2, (100, 1_000)) if args.smoke else ((768, 2048), 40, (1_000, 100_000))
    channels = args.channels or (64 if args.smoke else 2048)
    if args.smoke:
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the benchmark runs)")
    print("== estimator update throughput (1 thread, batch 256, float32 input) ==")
    result: dict = {"smoke": args.smoke, "throughput_pairs_per_s": {}, "streaming": []}
    for c in widths:
        rate = throughput(c, repeats=repeats)
        result["throughput_pairs_per_s"][str(c)] = rate
        print(f"C = {c:5d}: {rate:12,.0f} pairs/s")
    print(f"== peak memory while streaming pairs (C = {channels}, batches of 250) ==")
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--channels", str(channels)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(
            f"N = {n:7,d}: peak RSS {rows[-1]['peak_rss_mb']:.1f} MB (growth during streaming {rows[-1]['growth_mb']:.1f} MB)"
        )
    ratio = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(f"peak RSS ratio N={sizes[1]:,} / N={sizes[0]:,}: {ratio:.3f}")
    result["streaming"] = rows
    result["ratios"] = {"peak_rss_large_over_small": ratio}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
