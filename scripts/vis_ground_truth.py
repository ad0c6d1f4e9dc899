#!/usr/bin/env python
"""A video instance segmentation (VIS) ground truth: a tiny VidEoMT trained on StaDyn-Synth on the CPU.

1. Render StaDyn-Synth motion clips with two objects each and their per-frame instance maps
   (``SynthDataset(..., instance_masks=True)``); each object is camouflaged (textured like the
   background, so only motion reveals it) with probability ``--train_camouflage`` in training and
   ``--test_camouflage`` in the test set.
2. Train a tiny ``VideomtForUniversalSegmentation`` (``hf_stadyn.training.vis.tiny_videomt_config``)
   from scratch with the video set loss of ``hf_stadyn.training.vis`` (Hungarian matching per clip).
3. Segmentation quality on the test set: video mask AP (YouTube-VIS style), per-instance J, recall at
   spatio-temporal IoU 0.5, for all, camouflaged and visible instances, on the moving test clips and
   on *frozen* copies (the first frame repeated: no motion), at initialisation and after training.
4. Probe the trained model next to its initialisation on the same fixed pairs of test clips
   (``hf_stadyn.models.vis.load_vis_adapter`` + ``hf_stadyn.probing.probe``): s_D, s_S and shares with
   95 % intervals per layer, and the paired difference trained - init.

    OMP_NUM_THREADS=1 python scripts/vis_ground_truth.py --out outputs/vis_ground_truth   # ~10-15 min, 1 thread
    python scripts/vis_ground_truth.py --smoke --out /tmp/vis_smoke                     # seconds, meaningless

Writes ``results.json``, ``vis_ground_truth.md`` and the two models (``init/``, ``model/``) under ``--out``;
docs/vis.md quotes the full run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="output folder (default: outputs/vis_ground_truth; --smoke: a temp)")
    ap.add_argument("--train_clips", type=int, default=1000)
    ap.add_argument("--test_clips", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--num_objects", type=int, default=2)
    ap.add_argument("--train_camouflage", type=float, default=0.3, help="share of camouflaged objects in training")
    ap.add_argument("--test_camouflage", type=float, default=0.5, help="share of camouflaged objects in the test set")
    ap.add_argument("--probe_pairs", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, numbers meaningless")
    args = ap.parse_args(argv)
    if args.smoke:
        args.train_clips, args.test_clips, args.epochs, args.probe_pairs, args.batch_size = 16, 8, 1, 8, 4
    return args


def _frozen(frames: torch.Tensor, instances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every clip's first frame repeated over T (no motion), with its instance map likewise."""
    t = frames.shape[1]
    return frames[:, :1].expand_as(frames).contiguous(), instances[:, :1].expand(-1, t, -1, -1).contiguous()


def _reading(result: Any) -> dict[str, Any]:
    out = {}
    for name, lb in result.layers.items():
        iv = lb.intervals
        out[name] = {
            "s_dynamic": lb.s_dynamic, "s_static": lb.s_static,
            "share_dynamic": 100 * lb.share["dynamic"], "share_static": 100 * lb.share["static"],
            "s_dynamic_ci": [iv["s_dynamic"].low, iv["s_dynamic"].high] if "s_dynamic" in iv else None,
            "s_static_ci": [iv["s_static"].low, iv["s_static"].high] if "s_static" in iv else None,
        }  # fmt: skip
    return out


def _fmt(x: float) -> str:
    return "nan" if x != x else f"{x:.3f}"


def _markdown(res: dict[str, Any]) -> str:
    lines = ["# VIS ground truth: a tiny VidEoMT on StaDyn-Synth", ""]
    if res["settings"]["smoke"]:
        lines += ["SMOKE RUN: numbers meaningless.", ""]
    lines += ["## Segmentation quality (test set)", "",
              "| model | clips | AP | AP50 | J (all) | J camouflaged | J visible | recall50 camouflaged | recall50 visible |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for model in ("init", "trained"):
        for clips in ("moving", "frozen"):
            e = res["eval"][model][clips]
            lines.append(
                f"| {model} | {clips} | {_fmt(e['AP'])} | {_fmt(e['AP50'])} | {_fmt(e['J'])} | "
                f"{_fmt(e['J_camouflaged'])} | {_fmt(e['J_visible'])} | {_fmt(e['recall50_camouflaged'])} | "
                f"{_fmt(e['recall50_visible'])} |"
            )
    e = res["eval"]["trained"]["moving"]
    lines += ["", f"{e['num_instances']} test instances: {e['num_camouflaged']} camouflaged, {e['num_visible']} visible.",
              "", "## Probe reading (same pairs, 95 % intervals)", "",
              "| layer | init s_D | init s_S | trained s_D | trained s_S | trained - init s_D | trained - init s_S |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip

    def ci(v: dict[str, Any], key: str) -> str:
        c = v.get(f"{key}_ci")
        return f"{v[key]:.3f} [{c[0]:.3f}, {c[1]:.3f}]" if c else f"{v[key]:.3f}"

    def diff(d: dict[str, Any], key: str) -> str:
        x = d.get(key)
        return f"{x['estimate']:+.3f} [{x['low']:+.3f}, {x['high']:+.3f}]" if x else "-"

    for layer, tr in res["probe"]["trained"].items():
        ini, d = res["probe"]["init"][layer], res["probe"]["difference"].get(layer, {})
        lines.append(
            f"| {layer} | {ci(ini, 's_dynamic')} | {ci(ini, 's_static')} | {ci(tr, 's_dynamic')} | "
            f"{ci(tr, 's_static')} | {diff(d, 's_dynamic')} | {diff(d, 's_static')} |"
        )
    s = res["settings"]
    lines += ["", f"Command: `{s['command']}`; {s['seconds_total']:.0f} s wall, {s['cpu_seconds_total']:.0f} s CPU, "
              f"{s['threads']} thread(s).", ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the pipeline runs)")
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp(prefix="vis_smoke_")) if args.smoke else
                                           Path("outputs/vis_ground_truth"))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)

    from transformers import VideomtForUniversalSegmentation

    from hf_stadyn.metric import paired_difference
    from hf_stadyn.models.vis import load_vis_adapter
    from hf_stadyn.pairs import ProbePairs
    from hf_stadyn.probing import probe
    from hf_stadyn.synth import SynthConfig, SynthDataset
    from hf_stadyn.training.vis import VisTrainingConfig, evaluate_vis, tiny_videomt_config, train_vis

    start, cpu_start = time.perf_counter(), time.process_time()
    common = dict(num_objects=args.num_objects)
    train = SynthDataset("motion", args.train_clips, SynthConfig(**common, camouflage_share=args.train_camouflage),
                         seed=args.seed, instance_masks=True).to_tensors()  # fmt: skip
    test = SynthDataset("motion", args.test_clips, SynthConfig(**common, camouflage_share=args.test_camouflage),
                        seed=args.seed, train=False, instance_masks=True).to_tensors()  # fmt: skip
    frozen = _frozen(test["frames"], test["instances"])
    t_render = time.perf_counter() - start

    torch.manual_seed(args.seed)
    model = VideomtForUniversalSegmentation(tiny_videomt_config(image_size=32, num_frames=8))
    model.save_pretrained(out / "init")

    def evaluate(m: Any) -> dict[str, Any]:
        return {
            "moving": evaluate_vis(m, test["frames"], test["instances"], test["camouflaged"]),
            "frozen": evaluate_vis(m, frozen[0], frozen[1], test["camouflaged"]),
        }

    ev_init = evaluate(model)
    cfg = VisTrainingConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            warmup_steps=5 if args.smoke else 50)  # fmt: skip
    t0 = time.perf_counter()
    history = train_vis(model, train["frames"], train["instances"], cfg, progress=sys.stderr.isatty())
    t_train = time.perf_counter() - t0
    model.save_pretrained(out / "model")
    ev_trained = evaluate(model)

    pairs = ProbePairs(list(test["frames"]), num_pairs=args.probe_pairs, seed=args.seed)
    readings, results = {}, {}
    t0 = time.perf_counter()
    for name, folder in (("init", out / "init"), ("trained", out / "model")):
        results[name] = probe(load_vis_adapter(folder), pairs, batch_size=16, progress=False)
        readings[name] = _reading(results[name])
    t_probe = time.perf_counter() - t0
    diff: dict[str, Any] = {}
    for layer in results["trained"].layers:
        try:
            diff[layer] = {
                q: paired_difference(results["trained"].layers[layer], results["init"].layers[layer], q).to_dict()
                for q in ("s_dynamic", "s_static")
            }
        except ValueError as e:  # fewer than 2 usable chunks (smoke sizes)
            diff[layer] = {"note": str(e)}
    readings["difference"] = diff
    argv_text = " ".join(["python", "scripts/vis_ground_truth.py", *(argv if argv is not None else sys.argv[1:])])
    res = {
        "settings": {
            **{k: v for k, v in vars(args).items()}, "command": f"OMP_NUM_THREADS={args.threads} {argv_text}",
            "training": cfg.to_dict(), "model_config": {k: v for k, v in model.config.to_dict().items()
                                                        if k in ("hidden_size", "num_hidden_layers", "num_blocks",
                                                                 "num_queries", "patch_size", "image_size",
                                                                 "num_upscale_blocks", "num_register_tokens")},
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "seconds_render": t_render, "seconds_train": t_train, "seconds_probe": t_probe,
            "seconds_total": time.perf_counter() - start, "cpu_seconds_total": time.process_time() - cpu_start,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "history": history,
        "eval": {"init": ev_init, "trained": ev_trained},
        "probe": readings,
        "pair_fingerprint": results["trained"].settings["pair_fingerprint"],
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (out / "vis_ground_truth.md").write_text(_markdown(res))
    e = ev_trained["moving"]
    print(f"trained: AP {e['AP']:.3f}, J {e['J']:.3f} (camouflaged {_fmt(e['J_camouflaged'])}, "
          f"visible {_fmt(e['J_visible'])}); {res['settings']['seconds_total']:.0f} s")  # fmt: skip
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
