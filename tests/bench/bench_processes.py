"""Many-process benchmark (issue 16 point 6): `stadyn probe` on 2 gloo processes against 1, same run, same report.

Runs the embedded default's probe three ways, each in fresh processes, rounds interleaved:

- ``1 x 1``: one process, one torch thread (the baseline);
- ``1 x 2``: one process, two torch threads (what one process gets from the same cores);
- ``2 x 1``: ``accelerate launch --multi_gpu --num_processes 2`` on CPU (gloo), one thread each: the pairs are
  sharded over the ranks and their statistics summed, as on several GPUs;

and prints pairs/s (wall time of the whole command, model load and start-up included; and net of start-up: the
same command with 8 pairs is timed too, and (N - 8) pairs / (wall - wall of 8 pairs) is the probing rate) and the
ratios against ``1 x 1`` measured in the same run, plus whether the 2-process report.json is byte-identical to
the 1-process one (it must be: tests/test_launch.py).

    python tests/bench/bench_processes.py                       # 3000 pairs (the default run's size x 2)
    python tests/bench/bench_processes.py --num_pairs 1500 --repeats 2 --json out.json
    python tests/bench/bench_processes.py --smoke               # 16 pairs, 1 x 1 and 2 x 1 only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL = 8  # pairs of the start-up run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cmd(kind: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    threads = "2" if kind == "1x2" else "1"
    env = {**os.environ, "OMP_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    if kind == "2x1":
        port = str(_free_port())
        env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
                  port, "-m", "hf_stadyn"]  # fmt: skip
        return [*launch, *args], env
    return [sys.executable, "-m", "hf_stadyn", *args], env


def run_once(kind: str, num_pairs: int, extra: list[str], out: Path, startup: bool = True) -> dict:
    walls = {SMALL: 0.0}
    for n in (SMALL, num_pairs) if startup else (num_pairs,):
        args = ["probe", "--num_pairs", str(n), "--use_cpu", "--disable_tqdm", "--seed", "0",
                "--output_dir", str(out / str(n)), *extra]  # fmt: skip
        cmd, env = _cmd(kind, args)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=7200)
        walls[n] = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{kind}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    net = walls[num_pairs] - walls[SMALL] if startup else 0.0
    return {"wall_s": walls[num_pairs], "startup_s": walls[SMALL], "net_pairs_per_s": (num_pairs - SMALL) / net
            if net > 0 else None, "report": (out / str(num_pairs) / "report.json").read_bytes()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--smoke", action="store_true", help="16 pairs, no 1 x 2 row, no start-up runs: checks that the benchmark runs"
    )
    ap.add_argument("--num_pairs", type=int, default=None, help="pairs per run (default 3000; smoke 48)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds (medians are reported)")
    ap.add_argument("--probe_args", default="", help='more stadyn probe options, e.g. --probe_args="--no_reference"')
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args(argv)
    n = args.num_pairs or (16 if args.smoke else 3000)
    if args.smoke:
        print("SMOKE RUN: 16 pairs, the ratios are meaningless (it only checks that the benchmark runs)", flush=True)
    kinds = ["1x1", "2x1"] if args.smoke else ["1x1", "1x2", "2x1"]
    extra = args.probe_args.split()
    tmp = Path(tempfile.mkdtemp(prefix="bench-processes-"))
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    try:
        for r in range(args.repeats):
            for k in kinds:
                runs[k].append(run_once(k, n, extra, tmp / f"{k}-{r}", startup=not args.smoke))
                print(f"round {r} {k}: {runs[k][-1]['wall_s']:.1f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = {}
    for k in kinds:
        net = [x["net_pairs_per_s"] for x in runs[k] if x["net_pairs_per_s"]]
        rows[k] = {"wall_s": statistics.median(x["wall_s"] for x in runs[k]),
                   "startup_s": statistics.median(x["startup_s"] for x in runs[k]),
                   "net_pairs_per_s": statistics.median(net) if net else None}  # fmt: skip
        rows[k]["pairs_per_s_wall"] = n / rows[k]["wall_s"]
    base = rows["1x1"]
    for k in kinds:
        rows[k]["ratio_wall_vs_1x1"] = base["wall_s"] / rows[k]["wall_s"]
        if rows[k]["net_pairs_per_s"] and base["net_pairs_per_s"]:
            rows[k]["ratio_net_vs_1x1"] = rows[k]["net_pairs_per_s"] / base["net_pairs_per_s"]
    same = all(x["report"] == runs["1x1"][0]["report"] for k in kinds for x in runs[k] if k != "1x2")
    print(f"\nstadyn probe, embedded default, {n} pairs, {os.cpu_count()} CPUs, {args.repeats} round(s) (medians)")
    print(f"{'processes x threads':<21}{'wall s':>8}{'start-up s':>12}{'pairs/s wall':>14}{'pairs/s net':>13}"
          f"{'x 1x1 wall':>12}{'x 1x1 net':>11}")  # fmt: skip
    for k, row in rows.items():
        net_s = f"{row['net_pairs_per_s']:.2f}" if row["net_pairs_per_s"] else "-"
        rn = f"{row['ratio_net_vs_1x1']:.2f}" if "ratio_net_vs_1x1" in row else "-"
        print(f"{k:<21}{row['wall_s']:>8.1f}{row['startup_s']:>12.1f}{row['pairs_per_s_wall']:>14.2f}{net_s:>13}"
              f"{row['ratio_wall_vs_1x1']:>12.2f}{rn:>11}")  # fmt: skip
    print(f"2-process report.json byte-identical to 1 process: {'yes' if same else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"num_pairs": n, "repeats": args.repeats, "cpus": os.cpu_count(),
                                               "rows": rows, "reports_identical": same, "smoke": args.smoke},
                                              indent=2))  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
