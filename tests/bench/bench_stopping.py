"""Stopping-rule benchmark (issue 16 point 2): pairs needed for +-1 and +-0.5 share points against the fixed 3000.

Run:  python tests/bench/bench_stopping.py [--json out.json]          # the full run (manual, ~10 min on 1 core)
      python tests/bench/bench_stopping.py --smoke --json out.json    # seconds (CI)

Runs ``stadyn probe`` (the console's code, in this process) on the embedded default model and its synthetic
videos with the default settings (the reference at initialisation included, read in the same pass; the rule
waits for every layer of both), once with a fixed ``--num_pairs 3000`` and once per target with
``--num_pairs 3000 --target_ci W``; prints, per target, the pairs the rule used, why it stopped, its largest
sequential half-width, the wall time against the fixed run's (same process, one after the other), and whether
the stopped report agrees with the fixed one (every layer's three shares: the two 95 % intervals overlap). Also
prints the simulated coverage of the rule's stopped intervals next to a naive peek (stop at the first look, every
50 pairs, whose ordinary interval is narrow enough) at the same target (hf_stadyn.metric.stopping.simulate_stopping).
``--smoke``: 16 synthetic clips, 160 pairs, one layer, targets 8 and 4 points, 20 simulated runs (numbers
meaningless; it checks that the benchmark still runs). ``--json PATH`` writes every figure to PATH.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

SHARES = ("share_dynamic", "share_static", "share_residual")


def _probe(out: Path, extra: list[str]) -> tuple[dict, float]:
    from accelerate.state import AcceleratorState

    from hf_stadyn.cli import main

    AcceleratorState._reset_state(reset_partial_state=True)
    t0 = time.perf_counter()
    code = main(["probe", "--output_dir", str(out), "--disable_tqdm", "--use_cpu", *extra])
    seconds = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"stadyn probe {' '.join(extra)} exited {code}")
    return json.loads((out / "report.json").read_text()), seconds


def _agree(a: dict, b: dict) -> tuple[bool, int]:
    """Every layer's three shares: do the two reports' 95 % intervals overlap? (all agree, cases compared)"""
    ok, n = True, 0
    la = {row["layer"]: row for row in a["layers"]}
    for row in b["layers"]:
        other = la[row["layer"]]
        for q in SHARES:
            x, y = row["intervals"][q], other["intervals"][q]
            n += 1
            ok &= not (x["high"] < y["low"] or y["high"] < x["low"])
    return bool(ok), n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the benchmark runs")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--max_pairs", type=int, default=None, help="the fixed run's pairs (default 3000; smoke 160)")
    ap.add_argument(
        "--probe_args",
        default="",
        help='more stadyn probe options for every run, e.g. --probe_args="--synth_clips 1024" (with =)',
    )
    ap.add_argument("--stop_layers", default=None, help="--stop_layers of the target runs (default: every layer)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from hf_stadyn.metric.stopping import StoppingRule, simulate_stopping

    smoke = args.smoke
    max_pairs = args.max_pairs or (160 if smoke else 3000)
    targets = (8.0, 4.0) if smoke else (1.0, 0.5)
    common = ["--num_pairs", str(max_pairs), "--seed", "0"]
    if smoke:
        common += ["--synth_clips", "16", "--layers", "block_3"]
    common += args.probe_args.split()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fixed, fixed_s = _probe(Path(tmp) / "fixed", common)
        print(f"fixed: {max_pairs} pairs in {fixed_s:.1f} s ({' '.join(common)})")
        for w in targets:
            stop_layers = ["--stop_layers", args.stop_layers] if args.stop_layers else []
            rep, sec = _probe(Path(tmp) / f"ci{w}", [*common, "--target_ci", str(w), *stop_layers])
            stop = rep["pair_settings"]["stopping"]
            worst = max(v for part in stop["half_widths"].values() for v in part.values() if v is not None)
            agree, cases = _agree(fixed, rep)
            row = {
                "target_ci": w,
                "pairs": stop["stopped"]["num_pairs"],
                "reason": stop["stopped"]["reason"],
                "sequential_half_width": worst,
                "seconds": sec,
                "time_over_fixed": sec / fixed_s,
                "agrees_with_fixed": agree,
                "cases_compared": cases,
            }
            rows.append(row)
            print(
                f"+-{w:g} points: {row['pairs']} of {max_pairs} pairs ({row['reason']}; largest sequential half-width "
                f"{worst:.2f}), {sec:.1f} s = {row['time_over_fixed']:.2f} x the fixed run; intervals agree with the "
                f"fixed run's: {agree} ({cases} shares)"
            )
    reps = 20 if smoke else 200
    sim = {}
    for w in (4.0,) if smoke else (2.0, 1.0):
        rule = StoppingRule(target_ci=w, max_pairs=3000)
        ours = simulate_stopping(rule, replications=reps, seed=0)
        naive = simulate_stopping(None, replications=reps, seed=0, naive_target=w, naive_every=50)
        sim[str(w)] = {"rule": ours, "naive": naive}
        print(
            f"simulated, +-{w:g}: rule covers {ours['coverage_sequential']:.3f} (sequential) / "
            f"{ours['coverage_ordinary']:.3f} (ordinary) with {ours['mean_pairs']:.0f} pairs; naive peek covers "
            f"{naive['coverage_ordinary']:.3f} with {naive['mean_pairs']:.0f} pairs ({reps} runs)"
        )
    if smoke:
        print("SMOKE RUN: the numbers are meaningless; it checks that the benchmark still runs")
    doc = {
        "smoke": smoke,
        "max_pairs": max_pairs,
        "probe_args": common,
        "stop_layers": args.stop_layers,
        "fixed_seconds": fixed_s,
        "rows": rows,
        "simulation": sim,
        "ratios": {f"pairs_fixed_over_stopped_{r['target_ci']:g}": max_pairs / r["pairs"] for r in rows},
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
