"""StaDyn-Synth rendering benchmark: in-memory clips/s against decoding the same clips from mp4.

Run:  python tests/bench/bench_synth.py [--clips 2000] [--threads 1]   # the full run (manual)
      python tests/bench/bench_synth.py --smoke --json out.json       # seconds (CI)
Prints clips/s for ``SynthDataset.to_tensors`` (8 x 32 x 32, default config), for ``generate``
(render + h264 encode + mask npz + metadata) and for decoding the written mp4 files with
``hf_stadyn.video.read_video``; the ratios say how much faster the in-memory path is than reading
the same clips from disk (the baseline, measured in the same run).
``--smoke``: 8 clips in memory, 4 files (numbers meaningless; it checks that the benchmark still runs).
``--json PATH`` also writes the rates and ratios to PATH.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000, help="clips rendered in memory")
    parser.add_argument("--files", type=int, default=200, help="clips written to and decoded from mp4")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="8 clips, 4 files: seconds (numbers meaningless)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args()
    if args.smoke:
        args.clips, args.files = 8, 4
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the benchmark runs)")

    import torch

    torch.set_num_threads(args.threads)
    from hf_stadyn.synth import SynthConfig, SynthDataset, generate, load_synth
    from hf_stadyn.video import read_video

    cfg = SynthConfig()
    SynthDataset("motion", 4 if args.smoke else 50, cfg, seed=1).to_tensors()  # warm-up
    rows = {}
    for split in ("motion", "trap"):
        ds = SynthDataset(split, args.clips, cfg, seed=0)
        t0 = time.perf_counter()
        ds.to_tensors()
        rows[f"render {split} (in memory)"] = args.clips / (time.perf_counter() - t0)
    camo = SynthDataset("motion", args.clips, SynthConfig(camouflage=True, num_objects=3), seed=0)
    t0 = time.perf_counter()
    camo.to_tensors()
    rows["render camouflage, 3 objects"] = args.clips / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = generate(f"{tmp}/motion", split="motion", num_clips=args.files, config=cfg, seed=0)
        rows["generate (files)"] = args.files / (time.perf_counter() - t0)
        paths = load_synth(out)["video"]
        t0 = time.perf_counter()
        for p in paths:
            read_video(p)
        decode = args.files / (time.perf_counter() - t0)
    print(f"{'path':34s} {'clips/s':>10s} {'x decode':>9s}")
    for name, rate in rows.items():
        print(f"{name:34s} {rate:10.0f} {rate / decode:9.2f}")
    print(f"{'decode mp4 (baseline)':34s} {decode:10.0f} {1.0:9.2f}")
    if args.json:
        result = {"smoke": args.smoke, "clips": args.clips, "files": args.files, "decode_clips_per_s": decode,
                  "clips_per_s": rows, "ratios": {name: rate / decode for name, rate in rows.items()}}  # fmt: skip
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
