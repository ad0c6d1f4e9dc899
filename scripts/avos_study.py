#!/usr/bin/env python
"""AVOS study: two-stream fusion / cross-connection variants on StaDyn-Synth (docs/method.md §7).

(About 600 lines on purpose: one study script, run, statistics and rendering read together.)

For each variant and seed: train on normal + camouflage clips; evaluate J, F, mIoU, the success curve
(share of frames with IoU >= tau, tau = 0.5 .. 0.9) and its AUC on held-out normal and camouflage clips,
also at several probability thresholds; probe every fusion layer with two-stream pairs (unit categories
and layer-level shares, at initialisation and after training); and mask the top dynamic and static units
of one fusion layer against random units of the same number.

Held-out frames are split by clip (seeded): the *selection* half chooses the unit categories (probing),
the *masking* half measures what masking them costs, so the units are never chosen on the frames they are
judged on. Segmentation scores use all held-out clips.

Statistics: every variant sees the same seeds (data, initialisation, shuffling, pairs), so variants are
compared by paired differences over seeds: mean difference with a 95 % t interval on n - 1 degrees of
freedom, a two-sided paired t test, and Holm's correction over the 6 variant pairs of each metric. Unit
masking compares each top-K drop with the random-unit drop of the same run (paired over seeds), Holm over
all variant x mode x category comparisons.

Reproducible (every random choice flows from the seeds) and sized for a CPU::

    python scripts/avos_study.py --threads 1 --seeds 5 --out outputs/avos_study   # ~20 runs of ~40 s CPU each
    python scripts/avos_study.py --smoke --out /tmp/avos_smoke                     # seconds, numbers meaningless

``--smoke`` (alias ``--quick``): seeds 0, 1; 6 training / 4 held-out clips, one epoch, 24 probe pairs,
2 random draws; without ``--out`` it writes into a new temporary folder (printed), never into docs/.
The full runs are manual; CI runs the smoke size (tests/test_smoke_scripts.py).

Writes ``avos_study.json`` (every number) and ``avos_study.md`` (the tables of docs/avos.md) to --out.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "FusionSeg-like (concat, no cross)": ("concat", "none"),
    "RTNet-like (convex gated, bidirectional)": ("convex", "bidirectional"),
    "MATNet-like (gated, motion->appearance)": ("gated", "motion_to_appearance"),
    "gated bidirectional cross + gated fusion": ("gated", "gated_bidirectional"),
}
SHORT = {
    "FusionSeg-like (concat, no cross)": "FusionSeg",
    "RTNet-like (convex gated, bidirectional)": "RTNet",
    "MATNet-like (gated, motion->appearance)": "MATNet",
    "gated bidirectional cross + gated fusion": "gated-bx",
}
MODES = ("normal", "camouflage")
PROB_THRESHOLDS = (0.3, 0.5, 0.7)
CONFIDENCE = 0.95


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def parse_seeds(seeds: str, seed_list: str | None) -> list[int]:
    """``--seeds N`` = seeds 0 .. N-1; ``--seed-list 3,4,9`` = exactly those."""
    if seed_list:
        out = [int(s) for s in seed_list.split(",") if s.strip()]
    else:
        n = int(seeds)
        if n < 1:
            raise ValueError(f"--seeds must be a positive count, got {seeds!r}")
        out = list(range(n))
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct, got {out}")
    return out


def split_clips(frames, seed: int, mode: str):
    """Split held-out frames by clip into a selection half and a masking half (seeded; no clip in both)."""
    import torch

    ids = np.unique(frames.clip_id.numpy())
    rng = np.random.default_rng([int(seed), 101, MODES.index(mode)])
    perm = rng.permutation(ids)
    sel = set(perm[: len(ids) // 2].tolist())
    is_sel = torch.tensor([int(c) in sel for c in frames.clip_id.tolist()])
    return frames.subset(torch.nonzero(is_sel)[:, 0]), frames.subset(torch.nonzero(~is_sel)[:, 0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="output folder (default outputs/avos_study; --smoke: a temporary one)")
    ap.add_argument("--seeds", default="5", help="number of seeds: 0 .. N-1 (data, init, shuffling, pairs)")
    ap.add_argument("--seed-list", default=None, help="explicit comma-separated seeds (overrides --seeds)")
    ap.add_argument("--train-clips", type=int, default=240, help="training clips, half of them camouflaged")
    ap.add_argument("--test-clips", type=int, default=60, help="held-out clips per mode (half select, half mask)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--probe-pairs", type=int, default=1000)
    ap.add_argument("--mask-layer", default="fusion2", help="fusion layer for unit masking")
    ap.add_argument("--mask-fraction", type=float, default=0.25)
    ap.add_argument("--random-draws", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", "--quick", action="store_true", help="tiny run in seconds (numbers meaningless)")
    ap.add_argument(
        "--render", nargs="+", default=None, metavar="JSON",
        help="only re-render avos_study.md (and a merged avos_study.json) from saved JSONs, e.g. seeds run in "
        "separate processes (runs are identified by variant and seed)",
    )  # fmt: skip
    ap.add_argument(
        "--doc", default=None, metavar="MD",
        help="with --render: also replace the text between the avos-study markers of this page (docs/avos.md)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="avos-study-smoke-") if args.smoke else "outputs/avos_study"
    if args.render:
        import json

        from hf_stadyn._io import atomic_write_json, atomic_write_text

        merged = merge_results([json.loads(Path(f).read_text()) for f in args.render])
        md = render_markdown(merged)
        atomic_write_json(Path(args.out) / "avos_study.json", merged)
        atomic_write_text(Path(args.out) / "avos_study.md", md)
        if args.doc:
            splice_doc(Path(args.doc), md)
        print(md)
        return 0

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
        predict_avos,
        probe_avos,
        train_avos,
    )
    from hf_stadyn.training.seg_metrics import SegmentationMetrics

    if args.smoke:
        args.train_clips, args.test_clips, args.epochs, args.probe_pairs, args.random_draws = 6, 4, 1, 24, 2
        args.seed_list = args.seed_list or "0,1"
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the study runs)", flush=True)
    seeds = parse_seeds(args.seeds, args.seed_list)
    out = Path(args.out)
    t_start, cpu_start = time.perf_counter(), _cpu_seconds()
    results: dict = {
        "settings": {**vars(args), "seeds": seeds, "variants": {k: list(v) for k, v in VARIANTS.items()},
                     "prob_thresholds": list(PROB_THRESHOLDS), "confidence": CONFIDENCE,
                     "command": "python scripts/avos_study.py " + " ".join(sys.argv[1:] if argv is None else argv)},
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads},
        "runs": [],
    }  # fmt: skip

    def model_config(fusion: str, cross: str):
        return tiny_avos_config(fusion, cross, hidden_sizes=(16, 24, 32, 48), embedding_size=16, decoder_hidden_size=32)

    def fusion_units(res: dict) -> dict:
        return {
            name: {
                "category_percent": lb.category_percent,
                "percent": lb.percent,
                "share": lb.share,
                "s_dynamic": lb.s_dynamic,
                "s_static": lb.s_static,
                "num_channels": lb.num_channels,
            }
            for name, lb in res.items()
        }

    def sweep(model, data) -> dict:
        probs = predict_avos(model, data).numpy()
        res = {}
        for th in PROB_THRESHOLDS:
            m = SegmentationMetrics(threshold=th)
            m.update(probs, data.mask.numpy(), clip_ids=data.clip_id.tolist())
            res[f"{th:.2f}"] = m.compute().to_dict()
        return res

    for seed in seeds:
        n_camo = args.train_clips // 2
        train = AVOSFrames.concat([
            build_avos_frames(args.train_clips - n_camo, seed=seed),
            build_avos_frames(n_camo, seed=seed + 1000, camouflage=True),
        ])  # fmt: skip
        tests = {m: build_avos_frames(args.test_clips, seed=seed, train=False, camouflage=m == "camouflage")
                 for m in MODES}  # fmt: skip
        halves = {m: split_clips(tests[m], seed, m) for m in MODES}  # (selection, masking)
        select_frames = AVOSFrames.concat([halves[m][0] for m in MODES])
        for label, (fusion, cross) in VARIANTS.items():
            t0, c0 = time.perf_counter(), _cpu_seconds()
            model = build_avos_model(model_config(fusion, cross), seed=seed)
            fusion_layers = [n for n in model.probe_layers() if n.startswith("fusion")]
            at_init = probe_avos(model, select_frames, num_pairs=args.probe_pairs, batch_size=50, seed=seed,
                                 layers=fusion_layers)  # fmt: skip
            tr = train_avos(model, train, AVOSTrainingArguments(epochs=args.epochs, batch_size=32, seed=seed))
            scores = {m: sweep(model, d) for m, d in tests.items()}
            trained = probe_avos(model, select_frames, num_pairs=args.probe_pairs, batch_size=50, seed=seed,
                                 layers=fusion_layers)  # fmt: skip
            masking = {}
            for mode in MODES:
                data = halves[mode][1]
                base = evaluate_avos(model, data).J
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
                "split": {m: {"select_clips": int(len(np.unique(halves[m][0].clip_id))),
                              "mask_clips": int(len(np.unique(halves[m][1].clip_id)))} for m in MODES},
                "train": tr.to_dict(),
                "eval": {m: s["0.50"] for m, s in scores.items()},
                "eval_sweep": scores,
                "units_init": fusion_units(at_init),
                "units_trained": fusion_units(trained),
                "unit_masking": masking,
                "wall_seconds": time.perf_counter() - t0,
                "cpu_seconds": _cpu_seconds() - c0,
            }  # fmt: skip
            results["runs"].append(run)
            n, c = run["eval"]["normal"], run["eval"]["camouflage"]
            print(
                f"[seed {seed}] {label}: normal J {n['J']:.3f} AUC {n['auc']:.3f} | camouflage J {c['J']:.3f} "
                f"F {c['F']:.3f} AUC {c['auc']:.3f} | {run['wall_seconds']:.0f} s wall, {run['cpu_seconds']:.0f} s CPU",
                flush=True,
            )
            atomic_write_json(out / "avos_study.partial.json", results)
    results["wall_seconds"] = time.perf_counter() - t_start
    results["cpu_seconds"] = _cpu_seconds() - cpu_start
    md = render_markdown(results)
    atomic_write_json(out / "avos_study.json", results)
    atomic_write_text(out / "avos_study.md", md)
    print(md)
    print(f"total: {results['wall_seconds']:.0f} s wall, {results['cpu_seconds']:.0f} s CPU; results in {out}")
    return 0


# ------------------------------------------------------------------------------------ statistics
def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and its t interval (n - 1 degrees of freedom) over seeds; NaN bounds for one seed."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if v.size < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def paired_test(a, b, confidence: float = CONFIDENCE) -> dict:
    """Paired difference a - b over the same seeds: mean, t interval and two-sided paired t-test p value."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    m, lo, hi = t_interval(d, confidence)
    if d.size < 2:
        p = float("nan")
    elif d.std(ddof=1) == 0:
        p = 1.0 if m == 0 else 0.0
    else:
        p = float(2 * stats.t.sf(abs(m) / (d.std(ddof=1) / np.sqrt(d.size)), d.size - 1))
    return {"mean": m, "low": lo, "high": hi, "p": p, "n": int(d.size)}


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p values (family-wise error control); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out.tolist()


# ------------------------------------------------------------------------------------ rendering
def _f(x: float, digits: int = 3, sign: bool = False) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _ci(values, digits: int = 3) -> str:
    m, lo, hi = t_interval(values)
    return _f(m, digits) if not np.isfinite(lo) else f"{_f(m, digits)} [{_f(lo, digits)}, {_f(hi, digits)}]"


def _diff_cell(t: dict, p_holm: float, digits: int = 3) -> str:
    star = " *" if np.isfinite(p_holm) and p_holm < 1 - CONFIDENCE else ""
    return (
        f"{_f(t['mean'], digits, True)} [{_f(t['low'], digits, True)}, {_f(t['high'], digits, True)}] "
        f"p={_f(p_holm, 2)}{star}"
    )


def _by_variant(runs: list[dict]) -> dict[str, list[dict]]:
    labels = list(dict.fromkeys(r["variant"] for r in runs))
    out = {lab: sorted((r for r in runs if r["variant"] == lab), key=lambda r: r["seed"]) for lab in labels}
    seeds = [[r["seed"] for r in rs] for rs in out.values()]
    if any(s != seeds[0] for s in seeds):
        raise ValueError(f"variants were run on different seeds {seeds}; paired comparisons need the same seeds")
    return out


def _sweep(r: dict, mode: str, key: str, prob: str = "0.50") -> float:
    ev = r["eval_sweep"][mode][prob]
    if key.startswith("S@"):
        return float(ev["success"][key[2:]])
    return float(ev[key])


def paired_columns(by: dict[str, list[dict]], metrics: list[tuple[str, object]]) -> list[tuple[list[dict], list]]:
    """Per metric: the paired tests of every variant pair (a - b) and their Holm-adjusted p values."""
    pairs = list(itertools.combinations(list(by), 2))
    cols = []
    for _, get in metrics:
        tests = [paired_test([get(r) for r in by[a]], [get(r) for r in by[b]]) for a, b in pairs]
        cols.append((tests, holm([t["p"] for t in tests])))
    return cols


def supported_statements(by: dict[str, list[dict]], metrics: list[tuple[str, object]]) -> list[str]:
    """One sentence per metric: the variant differences that survive Holm at 5 %, or that none does."""
    pairs = list(itertools.combinations(list(by), 2))
    out = []
    for (name, get), (tests, adj) in zip(metrics, paired_columns(by, metrics)):
        means = {lab: float(np.mean([get(r) for r in by[lab]])) for lab in by}
        best = max(means, key=means.get)
        sig = []
        for (a, b), t, q in zip(pairs, tests, adj):
            if np.isfinite(q) and q < 1 - CONFIDENCE:
                hi, lo = (a, b) if t["mean"] > 0 else (b, a)
                d = abs(t["mean"])
                ci = sorted((abs(t["low"]), abs(t["high"])))
                sig.append(
                    f"{SHORT.get(hi, hi)} > {SHORT.get(lo, lo)} by {d:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] (p={q:.2f})"
                )
        head = f"- **{name}**: highest mean {SHORT.get(best, best)} ({means[best]:.3f}). "
        if sig:
            out.append(head + "Supported at the 5 % family-wise level (Holm): " + "; ".join(sig) + ". No other pair.")
        else:
            out.append(
                head + "No variant pair differs at the 5 % family-wise level (Holm); the ranking is not supported."
            )
    return out


def paired_rows(by: dict[str, list[dict]], metrics: list[tuple[str, object]]) -> list[str]:
    """Markdown rows of paired variant differences; Holm over the variant pairs within each metric (column)."""
    pairs = list(itertools.combinations(list(by), 2))
    cols = paired_columns(by, metrics)
    rows = []
    for k, (a, b) in enumerate(pairs):
        cells = [_diff_cell(tests[k], adj[k]) for tests, adj in cols]
        rows.append(f"| {SHORT.get(a, a)} − {SHORT.get(b, b)} | " + " | ".join(cells) + " |")
    return rows


DOC_BEGIN, DOC_END = "<!-- avos-study:begin (scripts/avos_study.py --render ... --doc) -->", "<!-- avos-study:end -->"


def splice_doc(path: Path, md: str) -> None:
    """Replace the generated tables between the two markers of ``path`` with ``md``."""
    text = path.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise ValueError(f"{path} has no avos-study markers; add {DOC_BEGIN!r} and {DOC_END!r} around the tables")
    head, rest = text.split(DOC_BEGIN, 1)
    tail = rest.split(DOC_END, 1)[1]
    path.write_text(head + DOC_BEGIN + "\n\n" + md.strip() + "\n\n" + DOC_END + tail)


def merge_results(parts: list[dict]) -> dict:
    """Join study JSONs (the same settings, other seeds): runs keyed by (variant, seed), the first one kept."""
    if not parts:
        raise ValueError("merge_results needs at least one study JSON")
    keep = ("train_clips", "test_clips", "epochs", "probe_pairs", "mask_layer", "mask_fraction", "random_draws")
    base = parts[0]["settings"]
    for p in parts[1:]:
        diff = [k for k in keep if p["settings"].get(k) != base.get(k)]
        if diff:
            raise ValueError(f"study JSONs differ in {diff}; only runs of the same settings can be merged")
    runs: dict = {}
    for p in parts:
        for r in p["runs"]:
            runs.setdefault((r["variant"], r["seed"]), r)
    seeds = sorted({s for p in parts for s in p["settings"]["seeds"]})
    out = {
        "settings": {**base, "seeds": seeds, "commands": [p["settings"].get("command") for p in parts]},
        "environment": parts[0]["environment"],
        "runs": sorted(runs.values(), key=lambda r: (r["seed"], list(VARIANTS).index(r["variant"]))),
    }
    if len(parts) == 1:
        out["settings"].pop("commands")
        for k in ("wall_seconds", "cpu_seconds"):
            if k in parts[0]:
                out[k] = parts[0][k]
    else:
        out["cpu_seconds"] = float(sum(r["cpu_seconds"] for r in out["runs"]))
    return out


def complete_runs(results: dict) -> tuple[list[dict], list[int]]:
    """The runs of the seeds every variant finished (a partial JSON of an interrupted study renders too)."""
    runs = results["runs"]
    labels = set(results["settings"]["variants"])
    seeds = [s for s in results["settings"]["seeds"] if {r["variant"] for r in runs if r["seed"] == s} >= labels]
    return [r for r in runs if r["seed"] in seeds], seeds


def render_markdown(results: dict) -> str:
    st = results["settings"]
    runs, seeds = complete_runs(results)
    if not runs:
        raise ValueError("no seed has finished every variant yet; nothing to render")
    by = _by_variant(runs)
    labels = list(by)
    n = len(seeds)
    conf = f"{100 * CONFIDENCE:.0f} %"
    cmds = st.get("commands") or [st.get("command", "python scripts/avos_study.py")]
    lines = [
        "Command"
        + ("s" if len(cmds) > 1 else "")
        + ": "
        + "; ".join(f"`{c}`" for c in cmds)
        + f"; seeds {', '.join(map(str, seeds))} "
        f"(n = {n}). Cells: mean over seeds [{conf} t interval, {n - 1} df].",
        "",
        "#### Segmentation on held-out StaDyn-Synth clips (predictions binarised at 0.5)",
        "",
        "| variant | normal J | normal AUC | camouflage J | camouflage F | camouflage mIoU | camouflage AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    cols = [("normal", "J"), ("normal", "auc"), ("camouflage", "J"), ("camouflage", "F"), ("camouflage", "mIoU"),
            ("camouflage", "auc")]  # fmt: skip
    for lab in labels:
        cells = [_ci([_sweep(r, m, k) for r in by[lab]]) for m, k in cols]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")

    lines += [
        "",
        f"#### Paired differences between variants (row A − B, same seeds; mean [{conf} t interval], "
        "Holm-adjusted p over the 6 variant pairs of each column; * = below 0.05)",
        "",
        "| A − B | camouflage J | camouflage AUC | camouflage mIoU | normal J | normal AUC |",
        "|---|---|---|---|---|---|",
    ]
    main_metrics = [
        ("camouflage J", lambda r: _sweep(r, "camouflage", "J")),
        ("camouflage AUC", lambda r: _sweep(r, "camouflage", "auc")),
        ("camouflage mIoU", lambda r: _sweep(r, "camouflage", "mIoU")),
        ("normal J", lambda r: _sweep(r, "normal", "J")),
        ("normal AUC", lambda r: _sweep(r, "normal", "auc")),
    ]
    lines += paired_rows(by, main_metrics)

    taus = ["0.50", "0.60", "0.70", "0.80", "0.90"]
    probs = [f"{t:.2f}" for t in st.get("prob_thresholds", PROB_THRESHOLDS)]
    lines += [
        "",
        "#### Threshold sweep: success rate (share of frames with IoU >= tau) and AUC; mIoU with predictions "
        "binarised at several probability thresholds",
        "",
        "| variant | mode | " + " | ".join(f"S@{t}" for t in taus) + " | AUC | "
        + " | ".join(f"mIoU@p{p}" for p in probs) + " |",
        "|---|---|" + "---|" * (len(taus) + 1 + len(probs)),
    ]  # fmt: skip
    for mode in MODES:
        for lab in labels:
            cells = [_ci([_sweep(r, mode, f"S@{t}") for r in by[lab]], 2) for t in taus]
            cells.append(_ci([_sweep(r, mode, "auc") for r in by[lab]], 3))
            cells += [_ci([_sweep(r, mode, "mIoU", p) for r in by[lab]], 3) for p in probs]
            lines.append(f"| {SHORT.get(lab, lab)} | {mode} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "#### Paired differences on camouflage clips across the sweep (Holm over the 6 variant pairs of each column)",
        "",
        "| A − B | S@0.50 | S@0.70 | S@0.90 | " + " | ".join(f"mIoU@p{p}" for p in probs) + " |",
        "|---|---|---|---|" + "---|" * len(probs),
    ]
    sweep_metrics = [
        (f"camouflage S@{t}", lambda r, t=t: _sweep(r, "camouflage", f"S@{t}")) for t in ("0.50", "0.70", "0.90")
    ]
    sweep_metrics += [(f"camouflage mIoU@p{p}", lambda r, p=p: _sweep(r, "camouflage", "mIoU", p)) for p in probs]
    lines += paired_rows(by, sweep_metrics)

    layers = list(runs[0]["units_trained"])
    lines += [
        "",
        "#### Fusion-layer units, dynamic / static / joint % (trained; at initialisation in brackets; mean over seeds)",
        "",
        "| variant | " + " | ".join(layers) + " |",
        "|---|" + "---|" * len(layers),
    ]
    cats = ("dynamic", "static", "joint")
    for lab in labels:
        rs = by[lab]
        cells = []
        for layer in layers:
            t = [np.mean([r["units_trained"][layer]["category_percent"][c] for r in rs]) for c in cats]
            i = [np.mean([r["units_init"][layer]["category_percent"][c] for r in rs]) for c in cats]
            cells.append(f"{t[0]:.0f} / {t[1]:.0f} / {t[2]:.0f} ({i[0]:.0f} / {i[1]:.0f} / {i[2]:.0f})")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "#### Layer-level shares 100·π_D / 100·π_S (docs/method.md §3, continuous) of the fusion layers, trained "
        f"(mean ± {conf} t half-width over seeds)",
        "",
        "| variant | " + " | ".join(layers) + " |",
        "|---|" + "---|" * len(layers),
    ]

    def pm(values) -> str:
        m, lo, hi = t_interval(values)
        return f"{m:.1f}" if not np.isfinite(lo) else f"{m:.1f}±{(hi - lo) / 2:.1f}"

    for lab in labels:
        rs = by[lab]
        cells = [
            pm([100 * r["units_trained"][layer]["share"]["dynamic"] for r in rs])
            + " / "
            + pm([100 * r["units_trained"][layer]["share"]["static"] for r in rs])
            for layer in layers
        ]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")

    split = runs[0].get("split", {})
    sel = "/".join(str(split[m]["select_clips"]) for m in MODES) if split else "?"
    msk = "/".join(str(split[m]["mask_clips"]) for m in MODES) if split else "?"
    lines += [
        "",
        f"#### Unit masking at {st['mask_layer']}: extra J drop of zeroing the top {100 * st['mask_fraction']:.0f} % "
        f"dynamic or static units over zeroing as many random units ({st['random_draws']} draws per run)",
        "",
        f"Units are ranked on the selection clips ({sel} normal/camouflage clips per seed) and masked on the other "
        f"held-out clips ({msk}). Cells: drop(top) − drop(random), mean [{conf} t interval] over seeds, Holm-adjusted "
        f"p over all {2 * len(MODES) * len(labels)} rows x columns; * = below 0.05.",
        "",
        "| variant | mode | J (masking clips) | random drop | top dynamic − random | top static − random |",
        "|---|---|---|---|---|---|",
    ]
    tests, keys = [], []
    for lab in labels:
        for mode in MODES:
            for cat in ("dynamic", "static"):
                um = [r["unit_masking"][f"{mode}/{cat}"] for r in by[lab]]
                tests.append(paired_test([u["drop"] for u in um], [u["random_drop_mean"] for u in um]))
                keys.append((lab, mode, cat))
    adj = dict(zip(keys, holm([t["p"] for t in tests])))
    tmap = dict(zip(keys, tests))
    for lab in labels:
        for mode in MODES:
            um = [r["unit_masking"][f"{mode}/dynamic"] for r in by[lab]]
            cells = [_ci([u["baseline"] for u in um]), _ci([u["random_drop_mean"] for u in um])]
            cells += [_diff_cell(tmap[(lab, mode, c)], adj[(lab, mode, c)]) for c in ("dynamic", "static")]
            lines.append(f"| {SHORT.get(lab, lab)} | {mode} | " + " | ".join(cells) + " |")
    sig_rows = [
        f"{SHORT.get(k[0], k[0])} {k[1]} top {k[2]} ({tmap[k]['mean']:+.3f} J vs random)"
        for k in keys
        if np.isfinite(adj[k]) and adj[k] < 1 - CONFIDENCE
    ]
    lines += [
        "",
        "#### What the intervals support (generated from the tables above)",
        "",
        *supported_statements(by, main_metrics),
        *supported_statements(by, sweep_metrics),
        "- **Unit masking**: "
        + (
            "the top-K drop differs from the random-unit drop (Holm, 5 %) for: "
            + "; ".join(sig_rows)
            + ". No other row."
            if sig_rows
            else "no top-K drop differs from the random-unit drop at the 5 % family-wise level (Holm)."
        ),
    ]
    if len(seeds) < len(st["seeds"]):
        lines += ["", f"Partial: {len(seeds)} of the {len(st['seeds'])} requested seeds had finished every variant."]
    cpu = results.get("cpu_seconds")
    if cpu is not None:
        per = [r["cpu_seconds"] for r in runs]
        lines += [
            "",
            f"Cost: {cpu:.0f} s CPU in total ({min(per):.0f}-{max(per):.0f} s per variant and seed, "
            f"{results['environment']['threads']} thread(s))"
            + (f"; {results['wall_seconds']:.0f} s wall." if "wall_seconds" in results else "."),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
