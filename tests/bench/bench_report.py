"""Report benchmark: serialising and saving a VideoMAE-base-sized BiasReport (13 layers x 768 channels).

Run:  PYTHONPATH=. python tests/bench/bench_report.py                          # the full run (manual)
      PYTHONPATH=. python tests/bench/bench_report.py --smoke --json out.json   # seconds (CI)
Prints the time of ``BiasReport.to_json`` against the stdlib baseline ``json.dumps(report.to_dict(),
indent=2)`` measured in the same run (ratio), the JSON size of both, ``from_json`` time, and the time
of ``save`` (JSON + markdown + 3 PNGs) against writing the JSON alone.
``--smoke``: 2 layers x 16 channels, 40 pairs, one repeat (numbers meaningless; it checks that the
benchmark still runs). ``--json PATH`` also writes the times and ratios to PATH.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def build(layers: int = 13, c: int = 768, pairs: int = 400):
    from hf_stadyn.metric import StaticDynamicEstimator
    from hf_stadyn.report import BiasReport

    rng = np.random.default_rng(0)
    est = StaticDynamicEstimator()
    f = np.arange(pairs) % 2
    for i in range(layers):
        za = rng.normal(size=(pairs, c)).astype(np.float32)
        zb = (0.5 * za + rng.normal(size=(pairs, c))).astype(np.float32)
        est.update(za, zb, f, layer=f"hidden_states.{i}")
    res = est.compute()
    return BiasReport.from_results(res, model_id="bench/videomae-base", reference=res, seed=0)


def best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (numbers meaningless)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = ap.parse_args()
    from hf_stadyn.report import BiasReport

    if args.smoke:
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the benchmark runs)")
    report = build(layers=2, c=16, pairs=40) if args.smoke else build()
    reps, save_reps = (1, 1) if args.smoke else (5, 3)
    text = report.to_json()
    t_ours = best(report.to_json, reps)
    t_std = best(lambda: json.dumps(report.to_dict(), indent=2), reps)
    t_load = best(lambda: BiasReport.from_json(text), reps)
    std_size = len(json.dumps(report.to_dict(), indent=2))
    with tempfile.TemporaryDirectory() as d:
        t_json_only = best(lambda: report.save(Path(d) / "a", figures=False), repeats=save_reps)
        t_save = best(lambda: report.save(Path(d) / "b"), repeats=save_reps)
    print(f"to_json            {1e3 * t_ours:8.1f} ms  ({len(text) / 1e6:.2f} MB)")
    print(
        f"json.dumps indent2 {1e3 * t_std:8.1f} ms  ({std_size / 1e6:.2f} MB)   ratio ours/stdlib = {t_ours / t_std:.2f}"
    )
    print(f"from_json          {1e3 * t_load:8.1f} ms")
    print(f"save (json+md)     {1e3 * t_json_only:8.1f} ms")
    print(f"save (+3 PNGs)     {1e3 * t_save:8.1f} ms   ratio = {t_save / t_json_only:.1f}")
    if args.json:
        result = {
            "smoke": args.smoke,
            "seconds": {"to_json": t_ours, "json_dumps": t_std, "from_json": t_load, "save_json_md": t_json_only,
                        "save_with_figures": t_save},
            "bytes": {"to_json": len(text), "json_dumps": std_size},
            "ratios": {"to_json_over_stdlib": t_ours / t_std, "save_with_figures_over_json_only": t_save / t_json_only},
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
