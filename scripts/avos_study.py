#!/usr/bin/env python
"""AVOS study: two-stream fusion / cross-connection variants on StaDyn-Synth (docs/method.md §7).

For each variant and seed: train on normal + camouflage clips, evaluate J, F, mIoU and the
success-curve AUC on held-out normal and camouflage clips, probe every fusion layer with two-stream
pairs (dynamic / static / joint unit %, at initialisation and after training), and mask the top
dynamic and static units of one fusion layer against random units of the same number.

Reproducible (every random choice flows from --seeds) and sized for 2 CPU cores::

    python scripts/avos_study.py --out outputs/avos_study            # about 10 min on 2 free cores
    python scripts/avos_study.py --quick --out /tmp/avos_quick        # smoke run, under a minute

Writes ``avos_study.json`` (every number) and ``avos_study.md`` (the tables of docs/avos.md) to --out.
"""

from __future__ import annotations

import argparse
import logging
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "FusionSeg-like (concat, no cross)": ("concat", "none"),
    "RTNet-like (convex gated, bidirectional)": ("convex", "bidirectional"),
    "MATNet-like (gated, motion->appearance)": ("gated", "motion_to_appearance"),
    "gated bidirectional cross + gated fusion": ("gated", "gated_bidirectional"),
}


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/avos_study", help="output folder")
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds (data, init, shuffling, pairs)")
    ap.add_argument("--train-clips", type=int, default=240, help="training clips, half of them camouflaged")
    ap.add_argument("--test-clips", type=int, default=40, help="test clips per mode")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--probe-pairs", type=int, default=1000)
    ap.add_argument("--mask-layer", default="fusion2", help="fusion layer for unit masking")
    ap.add_argument("--mask-fraction", type=float, default=0.25)
    ap.add_argument("--random-draws", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (numbers meaningless)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    from hf_stadyn._io import atomic_write_json, atomic_write_text
    from hf_stadyn.models.configuration_avos import tiny_avos_config
    from hf_stadyn.probing.unit_masking import unit_masking
    from hf_stadyn.training.avos import (
        AVOSFrames,
        AVOSTrainingArguments,
        build_avos_frames,
        build_avos_model,
        evaluate_avos,
        probe_avos,
        train_avos,
    )

    if args.quick:
        args.train_clips, args.test_clips, args.epochs, args.probe_pairs, args.random_draws = 8, 3, 1, 40, 2
        args.seeds = args.seeds.split(",")[0]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out)
    t_start, cpu_start = time.perf_counter(), _cpu_seconds()
    results: dict = {
        "settings": {**vars(args), "seeds": seeds, "variants": {k: list(v) for k, v in VARIANTS.items()}},
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads},
        "runs": [],
    }

    def model_config(fusion: str, cross: str):
        return tiny_avos_config(fusion, cross, hidden_sizes=(16, 24, 32, 48), embedding_size=16, decoder_hidden_size=32)

    def fusion_units(res: dict) -> dict:
        return {
            name: {
                "category_percent": lb.category_percent,
                "percent": lb.percent,
                "s_dynamic": lb.s_dynamic,
                "s_static": lb.s_static,
                "num_channels": lb.num_channels,
            }
            for name, lb in res.items()
        }

    for seed in seeds:
        n_camo = args.train_clips // 2
        train = AVOSFrames.concat([
            build_avos_frames(args.train_clips - n_camo, seed=seed),
            build_avos_frames(n_camo, seed=seed + 1000, camouflage=True),
        ])  # fmt: skip
        tests = {m: build_avos_frames(args.test_clips, seed=seed, train=False, camouflage=m == "camouflage")
                 for m in ("normal", "camouflage")}  # fmt: skip
        probe_frames = AVOSFrames.concat([tests["normal"], tests["camouflage"]])
        for label, (fusion, cross) in VARIANTS.items():
            t0, c0 = time.perf_counter(), _cpu_seconds()
            model = build_avos_model(model_config(fusion, cross), seed=seed)
            fusion_layers = [n for n in model.probe_layers() if n.startswith("fusion")]
            at_init = probe_avos(model, probe_frames, num_pairs=args.probe_pairs, batch_size=50, seed=seed,
                                 layers=fusion_layers)  # fmt: skip
            tr = train_avos(model, train, AVOSTrainingArguments(epochs=args.epochs, batch_size=32, seed=seed))
            scores = {m: evaluate_avos(model, d) for m, d in tests.items()}
            trained = probe_avos(model, probe_frames, num_pairs=args.probe_pairs, batch_size=50, seed=seed,
                                 layers=fusion_layers)  # fmt: skip
            masking = {}
            for mode in ("normal", "camouflage"):
                data = tests[mode]
                base = scores[mode].J
                for cat in ("dynamic", "static"):
                    r = unit_masking(
                        model, args.mask_layer, trained[args.mask_layer],
                        lambda m, d=data: evaluate_avos(m, d).J,
                        category=cat, fraction=args.mask_fraction, num_random=args.random_draws, seed=seed,
                        baseline=base,
                    )  # fmt: skip
                    masking[f"{mode}/{cat}"] = r.to_dict()
            run = {
                "variant": label,
                "fusion": fusion,
                "cross_connection": cross,
                "seed": seed,
                "train": tr.to_dict(),
                "eval": {m: s.to_dict() for m, s in scores.items()},
                "units_init": fusion_units(at_init),
                "units_trained": fusion_units(trained),
                "unit_masking": masking,
                "wall_seconds": time.perf_counter() - t0,
                "cpu_seconds": _cpu_seconds() - c0,
            }
            results["runs"].append(run)
            n, c = scores["normal"], scores["camouflage"]
            print(
                f"[seed {seed}] {label}: normal J {n.J:.3f} F {n.F:.3f} AUC {n.auc:.3f} | camouflage J {c.J:.3f} "
                f"F {c.F:.3f} AUC {c.auc:.3f} | {run['wall_seconds']:.0f} s",
                flush=True,
            )
    results["wall_seconds"] = time.perf_counter() - t_start
    results["cpu_seconds"] = _cpu_seconds() - cpu_start
    md = render_markdown(results)
    atomic_write_json(out / "avos_study.json", results)
    atomic_write_text(out / "avos_study.md", md)
    print(md)
    print(f"total: {results['wall_seconds']:.0f} s wall, {results['cpu_seconds']:.0f} s CPU; results in {out}")
    return 0


def _ms(values: list[float], digits: int = 3) -> str:
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) / np.sqrt(v.size):.{digits}f}"


def render_markdown(results: dict) -> str:
    runs = results["runs"]
    seeds = results["settings"]["seeds"]
    labels = list(dict.fromkeys(r["variant"] for r in runs))
    by = {lab: [r for r in runs if r["variant"] == lab] for lab in labels}
    se = " (mean ± s.e. over seeds " + ", ".join(map(str, seeds)) + ")" if len(seeds) > 1 else ""
    lines = [f"#### Segmentation on held-out StaDyn-Synth clips{se}", ""]
    lines.append("| variant | normal J | normal F | normal AUC | camouflage J | camouflage F | camouflage AUC |")
    lines.append("|---|---|---|---|---|---|---|")
    for lab in labels:
        rs = by[lab]
        cells = [_ms([r["eval"][m][k] for r in rs]) for m in ("normal", "camouflage") for k in ("J", "F", "auc")]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    layers = list(runs[0]["units_trained"])
    lines += ["", "#### Fusion-layer units, dynamic / static / joint % (trained; at initialisation in brackets)", ""]
    lines.append("| variant | " + " | ".join(layers) + " |")
    lines.append("|---|" + "---|" * len(layers))
    for lab in labels:
        rs = by[lab]
        cells = []
        for layer in layers:
            t = [
                np.mean([r[key][layer]["category_percent"][c] for r in rs])
                for key in ("units_trained",)
                for c in ("dynamic", "static", "joint")
            ]
            i = [
                np.mean([r["units_init"][layer]["category_percent"][c] for r in rs])
                for c in ("dynamic", "static", "joint")
            ]
            cells.append(f"{t[0]:.0f} / {t[1]:.0f} / {t[2]:.0f} ({i[0]:.0f} / {i[1]:.0f} / {i[2]:.0f})")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    lines += ["", "#### Layer-level dynamic / static % (docs/method.md §3) of the fusion layers (trained)", ""]
    lines.append("| variant | " + " | ".join(layers) + " |")
    lines.append("|---|" + "---|" * len(layers))
    for lab in labels:
        rs = by[lab]
        cells = [
            f"{np.mean([r['units_trained'][layer]['percent']['dynamic'] for r in rs]):.1f} / "
            f"{np.mean([r['units_trained'][layer]['percent']['static'] for r in rs]):.1f}"
            for layer in layers
        ]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    st = results["settings"]
    lines += [
        "",
        f"#### Unit masking at {st['mask_layer']}: J drop when the top {100 * st['mask_fraction']:.0f} % dynamic or "
        f"static units are zeroed, vs the same number of random units ({st['random_draws']} draws per seed)",
        "",
        "| variant | mode | J | drop, top dynamic | drop, top static | drop, random (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for lab in labels:
        rs = by[lab]
        for mode in ("normal", "camouflage"):
            base = _ms([r["unit_masking"][f"{mode}/dynamic"]["baseline"] for r in rs])
            dd = _ms([r["unit_masking"][f"{mode}/dynamic"]["drop"] for r in rs])
            sd = _ms([r["unit_masking"][f"{mode}/static"]["drop"] for r in rs])
            rd = _ms(
                [
                    np.mean([r["unit_masking"][f"{mode}/{c}"]["random_drop_mean"] for c in ("dynamic", "static")])
                    for r in rs
                ]
            )
            lines.append(f"| {lab} | {mode} | {base} | {dd} | {sd} | {rd} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
