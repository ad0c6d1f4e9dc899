"""StaticDropout study: does dropping static channels get a fine-tuned model out of a static-bias trap?

The setting docs/method.md §6 names for the method: fine-tuning a model whose channels already encode both
factors on data with a static shortcut.

1. Pre-training (once, cached): a tiny VideoMAE (hidden 64, 4 blocks, 8 frames of 32x32) learns
   StaDyn-Synth motion classes (4 directions, random appearance), then joint motion x appearance
   labels (16 classes), where the appearance class is shown by the style-INVARIANT cue (object shape
   + background layout; colour and texture random). Its motion and appearance decoding accuracies
   are reported.
2. Fine-tuning (new 4-way head, labels = motion) on the bias trap: the invariant cue agrees with the
   label on 99 % of the training clips. Test sets: aligned (cue agrees) and conflicting (cue shows
   another class) clips. A reference fine-tune on clips without a shortcut (the motion split) shows
   what motion alone reaches.
3. Methods, each with the same paired seeds (seed = fine-tuning init, data order, trap sample, masks):
   plain fine-tuning, ordinary dropout at the StaticDropout layer (same rate), StaticDropout (top-k
   by rho_S - rho_D, refreshed on a schedule), dropout of the same number of random channels, and
   stylization augmentation (training clips restyled with the pair styles).
4. Tuning: StaticDropout's settings (p, layer, static-set size, refresh schedule) are chosen on a
   separate validation set of conflicting clips with tuning seeds disjoint from the evaluation seeds;
   the random-channel and dropout controls use the chosen layer, rate and size.
5. Per run: accuracy on aligned / conflicting test clips, how often a conflicting clip is classified
   as its cue's class, shuffle sensitivity (relative accuracy drop on aligned clips with shuffled
   frames), and the dynamic / static % and raw scores s_D, s_S at the StaticDropout layer and the last
   block on fixed probe pairs.

Outputs in --out: results.json (every run), table.md (the docs table), pretrained/, runs/<method>_s<k>/
(bias_history.jsonl / .png of each run). Everything is seeded; rerunning gives the same numbers on the
same machine and library versions. About 20-40 minutes on 2 CPU cores::

    PYTHONPATH=. python scripts/staticdropout_study.py --out outputs/staticdropout_study
    PYTHONPATH=. python scripts/staticdropout_study.py --smoke --out /tmp/sd_smoke   # seconds (CI), numbers meaningless

The full run is manual. ``--smoke`` (alias ``--quick``, which used to be a ~3 min run of 600 clips): one
evaluation seed, one tuning seed, 64 pre-training clips, 32 trap clips, 16 test / validation clips and
probe pairs, one epoch each, every method and the reference fine-tune; without ``--out`` it writes into a
new temporary folder (printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hf_stadyn._io import atomic_write_json, atomic_write_text
from hf_stadyn.debias import ProbePairs, StaticDropoutConfig, measure_bias
from hf_stadyn.models.auto import load_model
from hf_stadyn.synth import SynthConfig, SynthDataset
from hf_stadyn.training import ClassificationTrainingConfig, evaluate_classifier, train_classification
from hf_stadyn.training.classification import ClipTensorDataset

logger = logging.getLogger("staticdropout_study")

MOTIONS = ("left", "right", "up", "down")
A = 4  # appearance classes
METHODS = ("plain", "dropout", "static_dropout", "random_channels", "stylize")
CONTROLS = ("plain", "dropout", "random_channels", "stylize")


@dataclasses.dataclass
class Scale:
    pretrain_clips: int = 4000
    motion_epochs: int = 12
    joint_epochs: int = 8
    trap_clips: int = 3000
    test_clips: int = 500
    val_clips: int = 400
    ft_epochs: int = 3
    ft_lr: float = 1e-4
    probe_pairs: int = 256
    tune_seeds: tuple[int, ...] = (100, 101)
    min_pretrain_test_clips: int = 200  # held-out clips of the pre-training: max(this, test_clips)


#: ``--smoke``: every step at a tiny size (seconds; the numbers are meaningless).
SMOKE = Scale(pretrain_clips=64, motion_epochs=1, joint_epochs=1, trap_clips=32, test_clips=16, val_clips=16,
              ft_epochs=1, probe_pairs=16, tune_seeds=(100,), min_pretrain_test_clips=16)  # fmt: skip


def _tensors(split: str, n: int, seed: int, *, train: bool = True, variant: str = "aligned") -> dict[str, torch.Tensor]:
    cfg = SynthConfig(motions=MOTIONS, num_appearances=A)
    return SynthDataset(split, n, cfg, seed=seed, trap_share=0.99, trap_cue="invariant", test_variant=variant,
                        train=train).to_tensors()  # fmt: skip


def _dataset(t: dict[str, torch.Tensor], labels: torch.Tensor) -> ClipTensorDataset:
    return ClipTensorDataset(t["frames"], labels, motion=t["motion"], appearance=t["appearance"])


# ------------------------------------------------------------------------------------------ stats
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 24: 2.064, 29: 2.045}  # fmt: skip


def _t975(df: int) -> float:
    if df in _T975:
        return _T975[df]
    keys = sorted(k for k in _T975 if k <= df)
    return _T975[keys[-1]] if df < 30 else 1.96


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval (half-width 0 for a single value)."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, m, m
    h = _t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - h, m + h


def fmt_ci(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    m, lo, hi = mean_ci([v * scale for v in values])
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


# ------------------------------------------------------------------------------------------ pretraining
def pretrain(out: Path, scale: Scale) -> Path:
    """Motion labels first (from scratch), then joint motion x appearance labels; cached in out/pretrained."""
    final = out / "pretrained" / "joint" / "model"
    if (final / "config.json").is_file():
        logger.info("using the cached pre-trained model %s", final)
        return final
    t = _tensors("motion", scale.pretrain_clips, seed=100)
    te = _tensors("motion", max(scale.min_pretrain_test_clips, scale.test_clips), seed=100, train=False)
    common = dict(batch_size=32, learning_rate=1e-3, warmup_ratio=0.05, track_bias=False, progress=False,
                  overwrite=True, save_total_limit=1, seed=0)  # fmt: skip
    t0 = time.perf_counter()
    motion = train_classification(
        ClassificationTrainingConfig(output_dir=str(out / "pretrained" / "motion"), epochs=scale.motion_epochs, **common),
        _dataset(t, t["motion"]), {"motion": _dataset(te, te["motion"])}, label_names=list(MOTIONS),
    )  # fmt: skip
    logger.info("pre-training on motion: %s (%.0f s)", motion.final, time.perf_counter() - t0)
    joint_names = [f"{m}/{a}" for m in MOTIONS for a in range(A)]
    joint = train_classification(
        ClassificationTrainingConfig(output_dir=str(out / "pretrained" / "joint"), model=str(motion.model_dir),
                                     epochs=scale.joint_epochs, **common),
        _dataset(t, t["motion"] * A + t["appearance"]), {"joint": _dataset(te, te["motion"] * A + te["appearance"])},
        label_names=joint_names,
    )  # fmt: skip
    logger.info("pre-training on motion x appearance: %s (%.0f s in all)", joint.final, time.perf_counter() - t0)
    for d in (out / "pretrained" / "motion" / "checkpoints", out / "pretrained" / "joint" / "checkpoints"):
        shutil.rmtree(d, ignore_errors=True)
    atomic_write_json(out / "pretrained" / "time.json", {"seconds": time.perf_counter() - t0})
    return joint.model_dir  # type: ignore[return-value]


def decode_accuracy(model_dir: Path, te: dict[str, torch.Tensor]) -> dict[str, float]:
    model = load_model(model_dir)
    r = evaluate_classifier(model, _dataset(te, te["motion"] * A + te["appearance"]), return_predictions=True)
    p = torch.tensor(r["predictions"])
    return {
        "joint": r["accuracy"],
        "motion": float((p // A == te["motion"]).float().mean()),
        "appearance": float((p % A == te["appearance"]).float().mean()),
    }


def channel_selectivity(
    model_dir: Path, layer: str, static_set: list[int], te: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """How much of each factor the static set holds: per channel eta^2 (share of the channel's variance
    explained by the motion / appearance class, on clips with independent motion and appearance)."""
    from hf_stadyn.probing import extract_features

    model = load_model(model_dir)
    z = torch.cat([
        extract_features(model, {"pixel_values": model.prepare_pixel_values(te["frames"][i : i + 100])}, [layer])[layer]
        for i in range(0, len(te["frames"]), 100)
    ]).double().numpy()  # fmt: skip

    def eta2(labels: np.ndarray) -> np.ndarray:
        total = z.var(0)
        between = sum((labels == k).mean() * (z[labels == k].mean(0) - z.mean(0)) ** 2 for k in np.unique(labels))
        return between / np.maximum(total, 1e-12)

    e_mot, e_app = eta2(te["motion"].numpy()), eta2(te["appearance"].numpy())
    sel = np.zeros(z.shape[1], dtype=bool)
    sel[static_set] = True
    k = int(sel.sum())
    oracle = np.argsort(-(e_app - e_mot))[:k]
    return {
        "num_channels": int(z.shape[1]),
        "num_static": k,
        "static_eta_appearance": float(e_app[sel].mean()),
        "static_eta_motion": float(e_mot[sel].mean()),
        "other_eta_appearance": float(e_app[~sel].mean()),
        "other_eta_motion": float(e_mot[~sel].mean()),
        "share_of_appearance_in_static_set": float(e_app[sel].sum() / e_app.sum()),
        "oracle_eta_appearance": float(e_app[oracle].mean()),
        "oracle_eta_motion": float(e_mot[oracle].mean()),
        "channels_with_eta_appearance_above_0.2": int((e_app > 0.2).sum()),
        "channels_with_eta_motion_above_0.2": int((e_mot > 0.2).sum()),
    }


# ------------------------------------------------------------------------------------------ one run
def fine_tune(
    out: Path, name: str, init: Path, seed: int, method: str, sd: StaticDropoutConfig | None, scale: Scale,
    tests: dict[str, Any], probe_pairs: ProbePairs, sd_refresh_every: int | None, shortcut: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Fine-tune ``init`` on the trap (or on shortcut-free clips) with ``method``; evaluate."""
    run_dir = out / "runs" / name
    result_file = run_dir / "run.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    data_seed = 1000 + seed
    t = _tensors("trap" if shortcut else "motion", scale.trap_clips, seed=data_seed)
    train = _dataset(t, t["motion"])
    kw: dict[str, Any] = {}
    layer = sd.layer if sd is not None else "pre_classifier"
    if method == "dropout":
        if layer == "pre_classifier":
            kw["dropout"] = sd.p if sd is not None else 0.5
        else:  # ordinary dropout at the same block: an empty static set with p_other
            kw["static_dropout"] = dataclasses.replace(sd, selection="none", p_other=sd.p, p=0.0)
    elif method in ("static_dropout", "random_channels"):
        assert sd is not None
        kw["static_dropout"] = dataclasses.replace(sd, selection="top_k" if method == "static_dropout" else "random",
                                                   seed=seed)  # fmt: skip
        kw["sd_refresh_every"] = sd_refresh_every
    elif method == "stylize":
        kw["augment"] = "stylize"
    cfg = ClassificationTrainingConfig(
        output_dir=str(run_dir), model=str(init), epochs=scale.ft_epochs, batch_size=32, learning_rate=scale.ft_lr,
        warmup_ratio=0.1, seed=seed, probe_pairs=scale.probe_pairs, progress=False, overwrite=True,
        save_every_epochs=scale.ft_epochs, save_total_limit=1, **kw,
    )  # fmt: skip
    t0 = time.perf_counter()
    res = train_classification(cfg, train, {k: v for k, v in tests.items() if k in ("aligned", "conflicting", "validation")},
                               label_names=list(MOTIONS))  # fmt: skip
    seconds = time.perf_counter() - t0
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    model = load_model(res.model_dir)
    row: dict[str, Any] = {"name": name, "method": method, "seed": seed, "shortcut": shortcut, "seconds": seconds,
                           "train_seconds": res.train_seconds}  # fmt: skip
    for split in ("aligned", "conflicting", "validation"):
        if split not in tests:
            continue
        r = evaluate_classifier(model, tests[split], return_predictions=True)
        row[f"{split}_accuracy"] = r["accuracy"]
        if split in ("conflicting", "validation"):
            cue = tests[split].extra["appearance"]  # the cue's class (label k <-> appearance k here)
            row[f"{split}_follows_cue"] = float((torch.tensor(r["predictions"]) == cue).float().mean())
    shuf = evaluate_classifier(model, tests["aligned"], shuffle_frames=True, seed=0)["accuracy"]
    row["aligned_shuffled_accuracy"] = shuf
    row["shuffle_sensitivity"] = (row["aligned_accuracy"] - shuf) / max(row["aligned_accuracy"], 1e-9)
    layers = list(dict.fromkeys([layer, "pre_classifier", "block_3"]))
    bias = measure_bias(model, probe_pairs, layers, batch_size=64)
    row["bias"] = {k: {"dynamic_pct": b.percent["dynamic"], "static_pct": b.percent["static"],
                       "s_dynamic": b.s_dynamic, "s_static": b.s_static} for k, b in bias.items()}  # fmt: skip
    row["static_channels"] = res.static_channels
    row["wall_seconds"] = time.perf_counter() - t0  # training + evaluation
    atomic_write_json(result_file, row)
    logger.info("%s: aligned %.3f conflicting %.3f shuffle-sens %.2f (%.0f s)", name, row["aligned_accuracy"],
                row["conflicting_accuracy"], row["shuffle_sensitivity"], seconds)  # fmt: skip
    return row


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None,
                    help="output folder (default outputs/staticdropout_study; with --smoke a temporary one)")  # fmt: skip
    ap.add_argument("--seeds", type=int, default=5, help="paired evaluation seeds (default 5)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--smoke", "--quick", action="store_true",
                    help="tiny sizes, one seed: seconds (numbers meaningless)")  # fmt: skip
    ap.add_argument("--no-tuning", action="store_true", help="skip tuning; use p 0.5, top 25 %%, pre_classifier")
    args = ap.parse_args(argv)
    if args.smoke:
        args.threads = 1
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("accelerate", "hf_stadyn.training.classification", "hf_stadyn.debias"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    scale = SMOKE if args.smoke else Scale()
    if args.smoke:
        args.seeds = 1
        args.out = args.out or tempfile.mkdtemp(prefix="staticdropout-smoke-")
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the study runs)", flush=True)
    out = Path(args.out or "outputs/staticdropout_study")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    # ---- data shared by all runs
    test_seed = 999
    tests: dict[str, Any] = {}
    for variant in ("aligned", "conflicting"):
        t = _tensors("trap", scale.test_clips, seed=test_seed, train=False, variant=variant)
        tests[variant] = _dataset(t, t["motion"])
    tv = _tensors("trap", scale.val_clips, seed=555, train=False, variant="conflicting")
    tests["validation"] = _dataset(tv, tv["motion"])
    probe_src = _tensors("trap", scale.probe_pairs, seed=777, train=False, variant="random")
    probe_pairs = ProbePairs(list(probe_src["frames"]), scale.probe_pairs, seed=0)

    # ---- 1. pre-training
    init = pretrain(out, scale)
    te = _tensors("motion", scale.test_clips, seed=4242, train=False)
    pre_decode = decode_accuracy(init, te)
    pre_model = load_model(init)
    pre_bias = {k: {"dynamic_pct": b.percent["dynamic"], "static_pct": b.percent["static"], "s_dynamic": b.s_dynamic,
                    "s_static": b.s_static, "categories": b.category_counts}
                for k, b in measure_bias(pre_model, probe_pairs, ["pre_classifier", "block_2", "block_3"]).items()}  # fmt: skip
    logger.info("pre-trained model decodes %s; bias %s", pre_decode, pre_bias)

    # ---- 2. tuning StaticDropout on the validation set (tuning seeds, not the evaluation seeds)
    steps_per_epoch = math.ceil(scale.trap_clips / 32)
    grid: list[tuple[str, StaticDropoutConfig, int | None]] = []
    if args.no_tuning or args.smoke:
        grid.append(
            (
                "p0.5_k25_pre_epoch",
                StaticDropoutConfig(p=0.5, top_k_fraction=0.25, num_probe_pairs=scale.probe_pairs),
                None,
            )
        )
    else:
        for p, frac, layer, refresh, tag in (
            (0.5, 0.25, "pre_classifier", None, "epoch"),
            (0.9, 0.5, "pre_classifier", None, "epoch"),
            (0.8, 0.75, "pre_classifier", None, "epoch"),
            (0.5, 0.25, "pre_classifier", 20, "20steps"),
            (0.9, 0.5, "pre_classifier", 20, "20steps"),
            (0.5, 0.25, "pre_classifier", 0, "once"),
            (0.5, 0.5, "block_3", None, "epoch"),
        ):  # fmt: skip
            cfg = StaticDropoutConfig(p=p, top_k_fraction=frac, layer=layer, num_probe_pairs=scale.probe_pairs)
            grid.append((f"p{p}_k{int(frac * 100)}_{layer}_{tag}", cfg, refresh))
    tuning, tuning_rows = [], []
    for tag, cfg, refresh in grid:
        rows = [fine_tune(out, f"tune_{tag}_s{s}", init, s, "static_dropout", cfg, scale, tests, probe_pairs, refresh)
                for s in scale.tune_seeds]  # fmt: skip
        tuning_rows += rows
        tuning.append({"setting": tag, "config": cfg.to_dict(), "refresh_every": refresh,
                       "validation_accuracy": statistics.fmean(r["validation_accuracy"] for r in rows)})  # fmt: skip
    plain_rows = [fine_tune(out, f"tune_plain_s{s}", init, s, "plain", None, scale, tests, probe_pairs, None)
                  for s in scale.tune_seeds]  # fmt: skip
    tuning_rows += plain_rows
    plain_val = statistics.fmean(r["validation_accuracy"] for r in plain_rows)
    best = max(tuning, key=lambda r: r["validation_accuracy"])
    sd_cfg = StaticDropoutConfig.from_dict(best["config"])
    sd_refresh = best["refresh_every"]
    logger.info(
        "tuning: best %s (validation conflicting %.3f; plain %.3f)",
        best["setting"],
        best["validation_accuracy"],
        plain_val,
    )

    # ---- 3. the comparison, paired seeds
    rows: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        for method in METHODS:
            rows.append(fine_tune(out, f"{method}_s{seed}", init, seed, method, sd_cfg, scale, tests, probe_pairs,
                                  sd_refresh))  # fmt: skip
        rows.append(fine_tune(out, f"no_shortcut_s{seed}", init, seed, "plain", None, scale, tests, probe_pairs, None,
                              shortcut=False))  # fmt: skip

    # ---- 4. summary
    by = {m: [r for r in rows if r["method"] == m and r["shortcut"]] for m in METHODS}
    ref = [r for r in rows if not r["shortcut"]]
    # where the factors sit: the static set StaticDropout selects on the pre-trained model
    from hf_stadyn.debias import select_static_channels

    pre_lb = measure_bias(pre_model, probe_pairs, [sd_cfg.layer])[sd_cfg.layer]
    pre_set = select_static_channels(pre_lb, sd_cfg).tolist()
    selectivity = channel_selectivity(init, sd_cfg.layer, pre_set, te)
    logger.info("channel selectivity at %s: %s", sd_cfg.layer, selectivity)
    summary = {
        "pretrained": {"decoding_accuracy": pre_decode, "bias": pre_bias, "selectivity": selectivity},
        "tuning": {"grid": tuning, "plain_validation_accuracy": plain_val, "chosen": best},
        "static_dropout": {
            **sd_cfg.to_dict(),
            "refresh_every": sd_refresh if sd_refresh is not None else steps_per_epoch,
        },
        "scale": dataclasses.asdict(scale),
        "seeds": args.seeds,
        "runs": rows,
        "seconds": time.perf_counter() - t_start,
        "compute_seconds": _compute_seconds(out, rows, tuning_rows),
        "threads": args.threads,
        "smoke": args.smoke,
    }
    atomic_write_json(out / "results.json", summary)
    table = render_table(by, ref, sd_cfg, sd_refresh, steps_per_epoch, pre_decode, pre_bias, tuning, plain_val, summary)
    atomic_write_text(out / "table.md", table)
    sys.stdout.write(table + "\n")
    logger.info("done in %.0f s; results in %s", time.perf_counter() - t_start, out)
    return 0


def _compute_seconds(out: Path, rows: list[dict[str, Any]], tuning_rows: list[dict[str, Any]]) -> float | None:
    """Pre-training plus every run (training and evaluation), whichever invocation computed them."""
    f = out / "pretrained" / "time.json"
    if not f.is_file():
        return None
    total = json.loads(f.read_text())["seconds"]
    return total + sum(r.get("wall_seconds", r["seconds"]) for r in rows + tuning_rows)


def render_table(by, ref, sd_cfg, sd_refresh, steps_per_epoch, pre_decode, pre_bias, tuning, plain_val, summary) -> str:
    layer = sd_cfg.layer
    names = {"plain": "plain fine-tuning", "dropout": f"dropout p={sd_cfg.p} (all channels)",
             "static_dropout": "StaticDropout", "random_channels": "random channels (same number)",
             "stylize": "stylization augmentation"}  # fmt: skip
    lines = [
        f"| method | aligned acc. (%) | conflicting acc. (%) | follows cue on conflicting (%) | shuffle sensitivity (%) "
        f"| {layer} dyn / stat % | {layer} s_D / s_S |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        rs = by[m]
        b = [r["bias"][layer] for r in rs]
        lines.append(
            f"| {names[m]} | {fmt_ci([r['aligned_accuracy'] for r in rs])} | {fmt_ci([r['conflicting_accuracy'] for r in rs])} "
            f"| {fmt_ci([r['conflicting_follows_cue'] for r in rs])} | {fmt_ci([r['shuffle_sensitivity'] for r in rs])} "
            f"| {statistics.fmean(x['dynamic_pct'] for x in b):.1f} / {statistics.fmean(x['static_pct'] for x in b):.1f} "
            f"| {statistics.fmean(x['s_dynamic'] for x in b):.3f} / {statistics.fmean(x['s_static'] for x in b):.3f} |"
        )  # fmt: skip
    if ref:
        b = [r["bias"][layer] for r in ref]
        lines.append(
            f"| reference: plain fine-tuning without shortcut | {fmt_ci([r['aligned_accuracy'] for r in ref])} "
            f"| {fmt_ci([r['conflicting_accuracy'] for r in ref])} | {fmt_ci([r['conflicting_follows_cue'] for r in ref])} "
            f"| {fmt_ci([r['shuffle_sensitivity'] for r in ref])} "
            f"| {statistics.fmean(x['dynamic_pct'] for x in b):.1f} / {statistics.fmean(x['static_pct'] for x in b):.1f} "
            f"| {statistics.fmean(x['s_dynamic'] for x in b):.3f} / {statistics.fmean(x['s_static'] for x in b):.3f} |"
        )  # fmt: skip
    pb = pre_bias.get(layer, pre_bias["pre_classifier"])
    lines.append(f"| pre-trained model (before fine-tuning) | | | | | {pb['dynamic_pct']:.1f} / {pb['static_pct']:.1f} "
                 f"| {pb['s_dynamic']:.3f} / {pb['s_static']:.3f} |")  # fmt: skip
    lines += ["", "Paired differences in conflicting-clip accuracy (points, mean [95 % interval] over seeds):", "",
              "| StaticDropout minus | difference | seeds where StaticDropout is better |", "|---|---|---|"]  # fmt: skip
    sd_rows = {r["seed"]: r for r in by["static_dropout"]}
    for c in CONTROLS:
        pairs = [
            (sd_rows[r["seed"]]["conflicting_accuracy"], r["conflicting_accuracy"])
            for r in by[c]
            if r["seed"] in sd_rows
        ]
        diffs = [a - b for a, b in pairs]
        wins = sum(d > 0 for d in diffs)
        lines.append(f"| {names[c]} | {fmt_ci(diffs)} | {wins} of {len(diffs)} |")
    refresh = "never (measured once before fine-tuning)" if sd_refresh == 0 else (
        f"every {sd_refresh} steps" if sd_refresh else f"every epoch ({steps_per_epoch} steps)")  # fmt: skip
    lines += [
        "",
        f"StaticDropout settings chosen on the validation set: p = {sd_cfg.p}, layer {sd_cfg.layer}, static set = "
        f"top {sd_cfg.top_k_fraction:.0%} of channels by rho_S - rho_D, refreshed {refresh} until half of training. "
        f"Pre-trained model: decodes motion {100 * pre_decode['motion']:.1f} %, appearance "
        f"{100 * pre_decode['appearance']:.1f} %.",
        "",
        f"Tuning (validation conflicting accuracy, mean over tuning seeds; plain fine-tuning {100 * plain_val:.1f} %):",
        "",
        "| setting | validation conflicting acc. (%) |",
        "|---|---|",
    ]
    lines += [f"| {t['setting']} | {100 * t['validation_accuracy']:.1f} |" for t in tuning]
    sel = summary["pretrained"]["selectivity"]
    lines += [
        "",
        f"Where the factors sit at {layer} of the pre-trained model (eta^2 = share of a channel's variance explained "
        "by the class, on clips with independent motion and appearance; mean over channels):",
        "",
        "| channels | eta^2 appearance | eta^2 motion |",
        "|---|---|---|",
        f"| static set selected by StaticDropout ({sel['num_static']} of {sel['num_channels']}) "
        f"| {sel['static_eta_appearance']:.3f} | {sel['static_eta_motion']:.3f} |",
        f"| the other channels | {sel['other_eta_appearance']:.3f} | {sel['other_eta_motion']:.3f} |",
        f"| oracle: the {sel['num_static']} most appearance-selective channels "
        f"| {sel['oracle_eta_appearance']:.3f} | {sel['oracle_eta_motion']:.3f} |",
        "",
        f"The static set holds {100 * sel['share_of_appearance_in_static_set']:.0f} % of the summed appearance eta^2; "
        f"{sel['channels_with_eta_appearance_above_0.2']} of {sel['num_channels']} channels have appearance "
        f"eta^2 > 0.2 and {sel['channels_with_eta_motion_above_0.2']} have motion eta^2 > 0.2.",
    ]
    cs = summary.get("compute_seconds")
    lines += [
        "",
        f"Compute time (pre-training + all runs): {cs / 60:.1f} min" if cs else "",
        f"This invocation: {summary['seconds'] / 60:.1f} min with {summary['threads']} torch thread(s).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
