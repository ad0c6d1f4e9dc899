"""Debias study (issue 14, points 2-4): which training method gets a fine-tuned model out of a static trap?

(About 770 lines on purpose: one study, its job queue and its report share the settings and the run cache;
split, the pieces would have to pass the same half-dozen structures around.)

Scale and recipe = the StaticDropout study's (scripts/staticdropout_study.py, docs/staticdropout.md): a tiny
VideoMAE (hidden 64, 4 blocks, 8 frames of 32x32), pre-trained on StaDyn-Synth, then fine-tuned with a new
4-way motion head for 3 epochs (AdamW 1e-4, 3000 clips); 500 aligned + 500 conflicting test clips, 400
validation conflicting clips, 256 held-out probe pairs. Settings:

(a) ``a``  style-INVARIANT trap (shape / layout cue, 99 % agreement) on the joint-pre-trained model: the
    StaticDropout study's own pre-training function and setting;
(b) ``b``  style-SENSITIVE trap (colour / texture cue) on a model pre-trained the same way with that cue;
(c) ``c``  the paper's claim: an appearance-pre-trained (static-leaning) model fine-tuned on the motion split
    (no trap); motion accuracy after each epoch (a debiaser should reach more, or the same sooner);
(ts)       setting (a) with a TimeSformer pre-trained the same way: plain, StaticDropout and the method
    that was best on (a)'s validation set, 3 seeds.

Methods: plain, StaticDropout (the StaticDropout study's chosen settings: p 0.8, top 75 %, pre_classifier,
refresh each epoch until half), stylization augmentation, StillMix, shuffle-uniform, static-pair
decorrelation (cosine, cross_cov) (hf_stadyn.debias). Tuning on (a)'s validation conflicting clips with
tuning seeds 100, 101 (lambda in {2, 8}, stillmix_max in {0.5, 0.8}; shuffled_grad on, as in the issue's
feasibility run; StaticDropout and stylization keep the StaticDropout study's settings); (b), (c) and
TimeSformer reuse (a)'s choice; the "best" method (TimeSformer, loopholes) is the tuned one with the best
validation accuracy, fixed before the evaluation. Evaluation: paired seeds 0-7.

Per run: aligned / conflicting accuracy, follows cue, frozen conflicting clips (first frame repeated: only
the static cue) cue-following, shuffle sensitivity, the estimator's reading (dyn / stat %, share, s_D / s_S)
at pre_classifier and block_3 on the probe pairs, seconds per optimizer step, and loophole measures at
pre_classifier (linear probe real vs shuffled, linear appearance / motion decodability, appearance and
motion share of the feature variance and of the head's logits).

Outputs in --out (default outputs/debias_study): <setting>/pretrained/, <setting>/runs/<name>/run.json (the
cache: a rerun computes only what is missing), results.json, table.md::

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/debias_study.py --jobs 4          # full run (hours on 2 cores)
    PYTHONPATH=. python scripts/debias_study.py --summary-only                      # tables from the cache
    PYTHONPATH=. python scripts/debias_study.py --smoke --out /tmp/debias_smoke     # seconds; numbers meaningless
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import staticdropout_study as sds  # the StaticDropout study: scale, pre-training, stats

from hf_stadyn._io import atomic_write_json, atomic_write_text
from hf_stadyn.debias import ProbePairs, StaticDropoutConfig, measure_bias
from hf_stadyn.synth import SynthConfig, SynthDataset

logger = logging.getLogger("debias_study")

MOTIONS, A = sds.MOTIONS, sds.A
METHODS = ("plain", "static_dropout", "stylize", "stillmix", "shuffle_uniform", "decor_cosine", "decor_cross_cov")
NAMES = {"plain": "plain fine-tuning", "static_dropout": "StaticDropout", "stylize": "stylization augmentation",
         "stillmix": "StillMix", "shuffle_uniform": "shuffle-uniform", "decor_cosine": "decorrelation (cosine)",
         "decor_cross_cov": "decorrelation (cross_cov)"}  # fmt: skip
#: the StaticDropout study's chosen settings (docs/staticdropout.md), not re-tuned here
SD_SETTINGS = {"p": 0.8, "top_k_fraction": 0.75, "layer": "pre_classifier"}
LAMBDAS = (2.0, 8.0)  # a small grid: the machine is 2 shared cores
STILLMIX_MAX = (0.5, 0.8)
GOAL = {"conflicting_gain_points": 10.0, "aligned_loss_points": 2.0}
#: (c)'s fine-tuning budget (learning rate, epochs) is calibrated with plain fine-tuning alone on the tuning seeds,
#: before any method runs on (c): the first budget of this list (cheapest first) at which plain reaches C_TARGET
#: mean validation motion accuracy (a task it learns), else the list's best. With the trap's 3 epochs plain stays
#: at chance (25 %) on (c) at every rate; 12 epochs at 1e-3 is the budget that trains the motion model from scratch.
C_BUDGETS = ((1e-4, 3), (3e-4, 3), (1e-3, 3), (1e-3, 12))
C_TARGET = 0.5
#: an EXPLORATORY check of (c), run after its evaluation (``--c-explore``), on the tuning seeds only: are (a)'s
#: tuned penalty weights (8 for decorrelation, 2 for shuffle-uniform) what keeps the penalised methods at chance
#: on (c)? The same budget, smaller weights; plain fine-tuning's calibration runs are the paired reference.
C_EXPLORE = (("decor_cross_cov", 0.5), ("decor_cross_cov", 2.0), ("decor_cross_cov", 8.0), ("shuffle_uniform", 0.5))


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    title: str
    cue: str  # trap cue / cue the appearance is shown by
    recipe: str  # "joint" (motion, then motion x appearance) or "appearance" (appearance labels only)
    arch: str = "videomae"
    task: str = "trap"  # "trap" (aligned / conflicting tests) or "motion" (no shortcut; motion test set)


SETTINGS = {
    "a": Setting("a", "(a) style-invariant trap (shape / layout cue)", "invariant", "joint"),
    "b": Setting("b", "(b) style-sensitive trap (colour / texture cue)", "sensitive", "joint"),
    "c": Setting("c", "(c) appearance-pre-trained model on the motion split (no trap)", "invariant", "appearance",
                 task="motion"),
    "ts": Setting("ts", "TimeSformer, setting (a)", "invariant", "joint", arch="timesformer"),
}  # fmt: skip


def tensors(split: str, n: int, seed: int, cue: str, *, train: bool = True, variant: str = "aligned") -> dict:
    """As the StaticDropout study's ``_tensors`` (identical for ``cue="invariant"``), for any cue."""
    cfg = SynthConfig(motions=MOTIONS, num_appearances=A)
    return SynthDataset(split, n, cfg, seed=seed, trap_share=0.99, trap_cue=cue, test_variant=variant,
                        train=train).to_tensors()  # fmt: skip


# ------------------------------------------------------------------------------------------ pre-training
def pretrain(out: Path, s: Setting, scale: sds.Scale) -> Path:
    """The pre-trained model of setting ``s`` (cached in out/<key>/pretrained; one process trains it, the
    others wait on a file lock)."""
    import fcntl

    (out / s.key).mkdir(parents=True, exist_ok=True)
    with open(out / s.key / "pretrain.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _pretrain(out, s, scale)


def _pretrain(out: Path, s: Setting, scale: sds.Scale) -> Path:
    root = out / s.key
    if (s.cue, s.recipe, s.arch) == ("invariant", "joint", "videomae"):
        return sds.pretrain(root, scale)  # exactly the StaticDropout study's pre-training
    from hf_stadyn.training import ClassificationTrainingConfig, train_classification

    final = root / "pretrained" / "joint" / "model"
    if (final / "config.json").is_file():
        return final
    common = dict(batch_size=32, learning_rate=1e-3, warmup_ratio=0.05, track_bias=False, progress=False,
                  overwrite=True, save_total_limit=1, seed=0)  # fmt: skip
    t0 = time.perf_counter()
    n_test = max(scale.min_pretrain_test_clips, scale.test_clips)
    if s.recipe == "appearance":  # appearance labels only, from scratch: a static-leaning model
        t = tensors("appearance", scale.pretrain_clips, 100, s.cue)
        te = tensors("appearance", n_test, 100, s.cue, train=False)
        res = train_classification(
            ClassificationTrainingConfig(output_dir=str(root / "pretrained" / "joint"), model=s.arch,
                                         epochs=scale.motion_epochs, **common),
            sds._dataset(t, t["appearance"]), {"appearance": sds._dataset(te, te["appearance"])},
            label_names=[str(a) for a in range(A)],
        )  # fmt: skip
    else:
        t = tensors("motion", scale.pretrain_clips, 100, s.cue)
        te = tensors("motion", n_test, 100, s.cue, train=False)
        motion = train_classification(
            ClassificationTrainingConfig(output_dir=str(root / "pretrained" / "motion"), model=s.arch,
                                         epochs=scale.motion_epochs, **common),
            sds._dataset(t, t["motion"]), {"motion": sds._dataset(te, te["motion"])}, label_names=list(MOTIONS),
        )  # fmt: skip
        res = train_classification(
            ClassificationTrainingConfig(output_dir=str(root / "pretrained" / "joint"), model=str(motion.model_dir),
                                         epochs=scale.joint_epochs, **common),
            sds._dataset(t, t["motion"] * A + t["appearance"]),
            {"joint": sds._dataset(te, te["motion"] * A + te["appearance"])},
            label_names=[f"{m}/{a}" for m in MOTIONS for a in range(A)],
        )  # fmt: skip
    logger.info("pre-training %s: %s (%.0f s)", s.key, res.final, time.perf_counter() - t0)
    for d in (root / "pretrained" / "motion" / "checkpoints", root / "pretrained" / "joint" / "checkpoints"):
        shutil.rmtree(d, ignore_errors=True)
    atomic_write_json(root / "pretrained" / "time.json", {"seconds": time.perf_counter() - t0})
    return res.model_dir  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ shared data
_DATA: dict[tuple, dict[str, Any]] = {}


def data(s: Setting, scale: sds.Scale) -> dict[str, Any]:
    """Test / validation sets, probe pairs and loophole clips of setting ``s`` (built once per process)."""
    key = (s.cue, s.task, dataclasses.astuple(scale))
    if key in _DATA:
        return _DATA[key]
    d: dict[str, Any] = {}
    if s.task == "trap":
        for v in ("aligned", "conflicting"):
            t = tensors("trap", scale.test_clips, 999, s.cue, train=False, variant=v)
            d[v] = sds._dataset(t, t["motion"])
        tv = tensors("trap", scale.val_clips, 555, s.cue, train=False, variant="conflicting")
        d["validation"] = sds._dataset(tv, tv["motion"])
        probe = tensors("trap", scale.probe_pairs, 777, s.cue, train=False, variant="random")
        d["loophole"] = tensors("trap", scale.test_clips, 4242, s.cue, train=False, variant="random")
    else:
        t = tensors("motion", scale.test_clips, 999, s.cue, train=False)
        d["motion_test"] = sds._dataset(t, t["motion"])
        tv = tensors("motion", scale.val_clips, 555, s.cue, train=False)
        d["validation"] = sds._dataset(tv, tv["motion"])
        probe = tensors("motion", scale.probe_pairs, 777, s.cue, train=False)
        d["loophole"] = tensors("motion", scale.test_clips, 4242, s.cue, train=False)
    d["probe_pairs"] = ProbePairs(list(probe["frames"]), scale.probe_pairs, seed=0)
    _DATA[key] = d
    return d


# ------------------------------------------------------------------------------------------ measures
def _linear_probe(x: torch.Tensor, y: torch.Tensor, n_train: int) -> float:
    """Held-out accuracy of a multinomial logistic regression (standardised inputs, L2 1e-3, LBFGS)."""
    x = x.double()
    mu, sd = x[:n_train].mean(0), x[:n_train].std(0).clamp_min(1e-6)
    x = (x - mu) / sd
    k = int(y.max()) + 1
    w = torch.zeros(x.shape[1], k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x[:n_train] @ w + b, y[:n_train]) + 1e-3 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((x[n_train:] @ w + b).argmax(1) == y[n_train:]).double().mean())


def _variance_share(z: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of the total variance of ``z (N, C)`` explained by the class means of ``labels``."""
    z = z.double()
    total = ((z - z.mean(0)) ** 2).sum()
    between = sum((labels == k).double().sum() * ((z[labels == k].mean(0) - z.mean(0)) ** 2).sum()
                  for k in labels.unique())  # fmt: skip
    return float(between / total.clamp_min(1e-12))


@torch.no_grad()
def loophole_measures(model: Any, clips: dict[str, torch.Tensor]) -> dict[str, float]:
    """Linear decodability of real-vs-shuffled, appearance and motion at pre_classifier; class shares of the
    feature and logit variance (clips with independent motion and appearance; first half trains the probes)."""
    from hf_stadyn.probing import extract_features
    from hf_stadyn.training.data import shuffle_clip_frames

    model.eval()
    frames = clips["frames"]
    shuffled = torch.stack([shuffle_clip_frames(f, i, 7) for i, f in enumerate(frames)])
    feats, logits = [], []
    for src in (frames, shuffled):
        zs, ls = [], []
        for i in range(0, len(src), 100):
            px = model.prepare_pixel_values(src[i : i + 100])
            zs.append(extract_features(model, {"pixel_values": px}, ["pre_classifier"])["pre_classifier"])
            ls.append(model(pixel_values=px).logits.float())
        feats.append(torch.cat(zs))
        logits.append(torch.cat(ls))
    n = len(frames)
    h = n // 2
    # real vs shuffled: clips 0..h-1 (both copies) train, h..n-1 test
    x_rs = torch.cat([feats[0][:h], feats[1][:h], feats[0][h:], feats[1][h:]])
    y_rs = torch.cat([torch.zeros(h), torch.ones(h), torch.zeros(n - h), torch.ones(n - h)]).long()
    z, lg = feats[0], logits[0]
    app, mot = clips["appearance"].long(), clips["motion"].long()
    return {
        "real_vs_shuffled": _linear_probe(x_rs, y_rs, 2 * h),
        "appearance_decodable": _linear_probe(z, app, h),
        "motion_decodable": _linear_probe(z, mot, h),
        "appearance_feature_share": _variance_share(z, app),
        "motion_feature_share": _variance_share(z, mot),
        "appearance_logit_share": _variance_share(lg, app),
        "motion_logit_share": _variance_share(lg, mot),
    }


def _frozen(ds: Any) -> Any:
    """The clips of ``ds`` with the first frame repeated over time: only the static cue is left."""
    f = ds.frames[:, :1].expand_as(ds.frames).contiguous()
    return sds.ClipTensorDataset(f, ds.labels, **ds.extra)


# ------------------------------------------------------------------------------------------ one run
def method_kwargs(method: str, params: dict[str, Any], seed: int, scale: sds.Scale) -> dict[str, Any]:
    """ClassificationTrainingConfig keywords of ``method`` (hf_stadyn.debias contract)."""
    if method == "plain":
        return {}
    if method == "static_dropout":
        sd = StaticDropoutConfig(**SD_SETTINGS, num_probe_pairs=scale.probe_pairs, selection="top_k", seed=seed)
        return {"static_dropout": sd, "sd_refresh_every": None}
    if method == "stylize":
        return {"augment": "stylize"}
    if method == "stillmix":
        return {"augment": "stillmix", "stillmix_max": params["stillmix_max"]}
    if method == "shuffle_uniform":
        return {"shuffle_uniform": params["weight"]}
    if method in ("decor_cosine", "decor_cross_cov"):
        from hf_stadyn.debias import DecorrelationConfig

        form = "cosine" if method == "decor_cosine" else "cross_cov"
        cfg = DecorrelationConfig(weight=params["weight"], form=form, layer="pre_classifier",
                                  shuffled_grad=params.get("shuffled_grad", True), seed=seed)  # fmt: skip
        return {"decorrelation": cfg}
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def fine_tune(out: str, skey: str, name: str, method: str, params: dict[str, Any], seed: int, smoke: bool,
              shortcut: bool = True) -> dict[str, Any]:  # fmt: skip
    """Fine-tune setting ``skey``'s pre-trained model with ``method``; evaluate; cache run.json."""
    from hf_stadyn.models.auto import load_model
    from hf_stadyn.training import ClassificationTrainingConfig, evaluate_classifier, train_classification

    s, scale, root = SETTINGS[skey], sds.SMOKE if smoke else sds.Scale(), Path(out)
    run_dir = root / s.key / "runs" / name
    if (run_dir / "run.json").is_file():
        return json.loads((run_dir / "run.json").read_text())
    init = pretrain(root, s, scale)
    d = data(s, scale)
    split = "trap" if (s.task == "trap" and shortcut) else "motion"
    t = tensors(split, scale.trap_clips, 1000 + seed, s.cue)
    evals = ("aligned", "conflicting", "validation") if s.task == "trap" else ("motion_test", "validation")
    # during training (each epoch): (c) the motion test set; a trap: a cheap monitor (100 validation clips)
    v = d["validation"]
    monitor = sds.ClipTensorDataset(v.frames[:100], v.labels[:100], **{k: x[:100] for k, x in v.extra.items()})
    during = {"monitor": monitor} if s.task == "trap" else {"motion_test": d["motion_test"]}
    cfg = ClassificationTrainingConfig(
        output_dir=str(run_dir), model=str(init), epochs=params.get("ft_epochs", scale.ft_epochs), batch_size=32,
        learning_rate=params.get("ft_lr", scale.ft_lr),
        warmup_ratio=0.1, seed=seed, probe_pairs=scale.probe_pairs, progress=False, overwrite=True,
        save_every_epochs=params.get("ft_epochs", scale.ft_epochs), save_total_limit=1, track_bias=False,  # StaticDropout tracks anyway
        **method_kwargs(method, {k: v for k, v in params.items() if k not in ("ft_lr", "ft_epochs")}, seed, scale),
    )  # fmt: skip
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    res = train_classification(cfg, sds._dataset(t, t["motion"]), during, label_names=list(MOTIONS))
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    model = load_model(res.model_dir)
    row: dict[str, Any] = {"name": name, "setting": s.key, "method": method, "params": params, "seed": seed,
                           "shortcut": shortcut, "seconds": time.perf_counter() - t0, "train_seconds": res.train_seconds,
                           "steps": res.steps_done, "seconds_per_step": res.train_seconds / max(res.steps_done, 1),
                           "history": res.history, "load_at_start": load}  # fmt: skip
    for k in evals:
        r = evaluate_classifier(model, d[k], return_predictions=True)
        row[f"{k}_accuracy"] = r["accuracy"]
        if k in ("conflicting", "validation") and s.task == "trap":
            cue = d[k].extra["appearance"]  # label k <-> appearance k
            row[f"{k}_follows_cue"] = float((torch.tensor(r["predictions"]) == cue).float().mean())
    if s.task == "trap":
        fr = evaluate_classifier(model, _frozen(d["conflicting"]), return_predictions=True)
        row["frozen_accuracy"] = fr["accuracy"]
        row["frozen_follows_cue"] = float(
            (torch.tensor(fr["predictions"]) == d["conflicting"].extra["appearance"]).float().mean()
        )
    base = "aligned" if s.task == "trap" else "motion_test"
    shuf = evaluate_classifier(model, d[base], shuffle_frames=True, seed=0)["accuracy"]
    row["shuffled_accuracy"] = shuf
    row["shuffle_sensitivity"] = (row[f"{base}_accuracy"] - shuf) / max(row[f"{base}_accuracy"], 1e-9)
    bias = measure_bias(model, d["probe_pairs"], ["pre_classifier", "block_3"], batch_size=64)
    row["bias"] = {k: {"dynamic_pct": b.percent["dynamic"], "static_pct": b.percent["static"],
                       "static_share_pct": 100.0 * b.share["static"], "s_dynamic": b.s_dynamic,
                       "s_static": b.s_static} for k, b in bias.items()}  # fmt: skip
    row["loophole"] = loophole_measures(model, d["loophole"])
    row["wall_seconds"] = time.perf_counter() - t0
    atomic_write_json(run_dir / "run.json", row)
    logger.info("%s/%s: %s (%.0f s, %.3f s/step)", s.key, name,
                {k: round(row[f"{k}_accuracy"], 3) for k in evals}, row["wall_seconds"], row["seconds_per_step"])  # fmt: skip
    return row


def _pretrain_job(out: str, skey: str, smoke: bool) -> str:
    return str(pretrain(Path(out), SETTINGS[skey], sds.SMOKE if smoke else sds.Scale()))


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    _quiet()


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(name)s: %(message)s")
    for noisy in ("accelerate", "hf_stadyn.training.classification", "hf_stadyn.debias", "hf_stadyn.training"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Pool:
    """Runs jobs in order on ``jobs`` processes (1: in this process); results come back in order."""

    def __init__(self, jobs: int, threads: int) -> None:
        self.ex = None
        if jobs > 1:
            self.ex = cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                             initargs=(threads,))  # fmt: skip

    def map(self, fn: Any, calls: list[tuple]) -> list[Any]:
        return [f.result() for f in self.submit(fn, calls)]

    def submit(self, fn: Any, calls: list[tuple]) -> list[cf.Future]:
        """Queue ``calls`` (FIFO: the order is the priority); in-process jobs run right away."""
        futures = []
        for c in calls:
            if self.ex is None:
                f: cf.Future = cf.Future()
                f.set_result(fn(*c))
            else:
                f = self.ex.submit(fn, *c)
            futures.append(f)
        return futures


# ------------------------------------------------------------------------------------------ plan
def tuning_calls(out: str, smoke: bool) -> list[tuple]:
    scale = sds.SMOKE if smoke else sds.Scale()
    lambdas, mixes = ((2.0,), (0.5,)) if smoke else (LAMBDAS, STILLMIX_MAX)
    calls = []
    for seed in scale.tune_seeds:
        calls.append((out, "a", f"tune_plain_s{seed}", "plain", {}, seed, smoke))
        for mx in mixes:
            calls.append((out, "a", f"tune_stillmix_max{mx}_s{seed}", "stillmix", {"stillmix_max": mx}, seed, smoke))
        for m in ("shuffle_uniform", "decor_cosine", "decor_cross_cov"):
            for lam in lambdas:
                calls.append((out, "a", f"tune_{m}_l{lam}_s{seed}", m, {"weight": lam}, seed, smoke))
    return calls


def choose(rows: list[dict[str, Any]], smoke: bool) -> dict[str, Any]:
    """Per method the setting with the best mean validation conflicting accuracy over the tuning seeds."""
    by: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by.setdefault((r["method"], json.dumps(r["params"], sort_keys=True)), []).append(r)
    grid = [{"method": m, "params": json.loads(p), "validation_accuracy": statistics.fmean(x["validation_accuracy"] for x in rs),
             "validation_follows_cue": statistics.fmean(x["validation_follows_cue"] for x in rs), "n": len(rs)}
            for (m, p), rs in by.items()]  # fmt: skip
    chosen = {}
    for m in METHODS:
        cands = [g for g in grid if g["method"] == m]
        # StaticDropout and stylization keep the StaticDropout study's settings (not tuned here)
        chosen[m] = (
            max(cands, key=lambda g: g["validation_accuracy"])
            if cands
            else {"method": m, "params": {}, "validation_accuracy": None}
        )
    return {"grid": grid, "chosen": chosen}


def calibration_calls(out: str, smoke: bool) -> list[tuple]:
    scale = sds.SMOKE if smoke else sds.Scale()
    budgets = ((C_BUDGETS[-1][0], 1),) if smoke else C_BUDGETS
    calls = []
    for lr, ep in budgets:
        params = {"ft_lr": lr} if ep == scale.ft_epochs else {"ft_lr": lr, "ft_epochs": ep}
        tag = f"lr{lr:g}" if ep == scale.ft_epochs else f"lr{lr:g}_e{ep}"
        calls += [(out, "c", f"calib_plain_{tag}_s{seed}", "plain", params, seed, smoke) for seed in scale.tune_seeds]
    return calls


def calibrate(out: Path, pool: Pool, smoke: bool) -> dict[str, Any]:
    """(c)'s fine-tuning budget from plain fine-tuning on the tuning seeds (see C_BUDGETS); cached in
    calibration.json."""
    f = out / "calibration.json"
    if f.is_file():
        return json.loads(f.read_text())
    pool.map(_pretrain_job, [(str(out), "c", smoke)])
    rows = pool.map(fine_tune, calibration_calls(str(out), smoke))
    grid = []
    for key in dict.fromkeys(json.dumps(r["params"], sort_keys=True) for r in rows):
        rs = [r for r in rows if json.dumps(r["params"], sort_keys=True) == key]
        grid.append({"params": json.loads(key), "validation_accuracy": statistics.fmean(r["validation_accuracy"]
                     for r in rs), "n": len(rs)})  # fmt: skip
    ok = [g for g in grid if g["validation_accuracy"] >= C_TARGET]
    chosen = ok[0] if ok else max(grid, key=lambda g: g["validation_accuracy"])
    cal = {"c": {"grid": grid, "params": chosen["params"], "target": C_TARGET,
                 "rule": "the first (cheapest) fine-tuning budget whose plain fine-tuning reaches the target mean "
                         "validation motion accuracy on the tuning seeds, else the best"}}  # fmt: skip
    atomic_write_json(f, cal)
    return cal


def explore_calls(out: str, calibration: dict[str, Any], smoke: bool) -> tuple[list[tuple], list[tuple]]:
    """(c)'s exploratory weight check (C_EXPLORE; the smoke: its first entry) and the plain calibration runs
    with the same budget."""
    scale, budget = sds.SMOKE if smoke else sds.Scale(), dict(calibration["c"]["params"])
    plain = [c for c in calibration_calls(out, smoke) if c[4] == budget]
    calls = [(out, "c", f"explore_{m}_w{w:g}_s{seed}", m, {"weight": w, **budget}, seed, smoke)
             for m, w in (C_EXPLORE[:1] if smoke else C_EXPLORE) for seed in scale.tune_seeds]  # fmt: skip
    return calls, plain


def explore_c(out: Path, pool: Pool, calibration: dict[str, Any], smoke: bool) -> str:
    """Run (c)'s exploratory weight check; write and return c_explore.md (per tuning seed, not a result)."""
    calls, plain = explore_calls(str(out), calibration, smoke)
    rows = pool.map(fine_tune, plain + calls)
    by = {}
    for c, r in zip(plain + calls, rows, strict=True):
        key = "plain fine-tuning" if c[3] == "plain" else f"{NAMES[c[3]]}, weight {c[4]['weight']:g}"
        by.setdefault(key, []).append((c[5], r))
    budget = calibration["c"]["params"]
    lines = [
        "### (c) exploratory: smaller penalty weights (tuning seeds only; not part of the evaluation)",
        "",
        f"Budget as calibrated ({budget.get('ft_epochs', 'the default')} epochs at {budget['ft_lr']:g}); seeds "
        f"{', '.join(str(c[5]) for c in plain)} (the tuning seeds); plain = the calibration runs. "
        "Motion test accuracy (%) per seed at epochs 3 / 6 / 12, validation accuracy at the end, and the "
        "pre_classifier static share.",
        "",
        "| method | seed | epoch 3 | epoch 6 | epoch 12 | validation | pre_classifier static share % |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, rs in by.items():
        for seed, r in sorted(rs, key=lambda x: x[0]):
            at = [f"{100 * _epoch_acc(r, i - 1):.1f}" if len(r["history"]) >= i else "-" for i in (3, 6, 12)]
            lines.append(f"| {key} | {seed} | {' | '.join(at)} | {100 * r['validation_accuracy']:.1f} | "
                         f"{r['bias']['pre_classifier']['static_share_pct']:.1f} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "c_explore.md", text)
    return text


def evaluation_calls(out: str, smoke: bool, seeds: int, chosen: dict[str, Any], settings: list[str],
                     ts_seeds: int, calibration: dict[str, Any] | None = None) -> list[tuple]:  # fmt: skip
    calls = []
    best = best_method(chosen)
    for skey in settings:
        methods = ("plain", "static_dropout", best) if skey == "ts" else METHODS
        if smoke and skey not in ("a", "ts"):  # the smoke covers each code path once
            methods = ("plain", best)
        extra = dict(calibration["c"]["params"]) if skey == "c" and calibration else {}
        for seed in range(ts_seeds if skey == "ts" else seeds):
            for m in methods:
                calls.append((out, skey, f"{m}_s{seed}", m, {**chosen[m]["params"], **extra}, seed, smoke))
    for skey in settings:  # the references last: plain fine-tuning without the shortcut
        if SETTINGS[skey].task == "trap" and skey != "ts":
            calls += [(out, skey, f"no_shortcut_s{seed}", "plain", {}, seed, smoke, False) for seed in range(seeds)]
    return calls


def best_method(chosen: dict[str, Any]) -> str:
    """The tuned method with the best validation accuracy on (a): fixed before the evaluation."""
    tuned = [m for m in METHODS if m != "plain" and chosen[m]["validation_accuracy"] is not None]
    return max(tuned, key=lambda m: chosen[m]["validation_accuracy"])


# ------------------------------------------------------------------------------------------ statistics
def paired(a: dict[int, float], b: dict[int, float], m: int) -> dict[str, Any]:
    """Paired difference a - b over common seeds: mean, 95 % t interval, Bonferroni interval over ``m`` methods,
    two-sided paired t-test p-value, seeds where a > b."""
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    n = len(d)
    out = {"n": n, "mean": float(d.mean()) if n else float("nan"), "wins": int((d > 0).sum())}
    if n >= 2:
        se = d.std(ddof=1) / math.sqrt(n)
        for key, alpha in (("ci95", 0.05), ("ci_bonferroni", 0.05 / m)):
            h = float(stats.t.ppf(1 - alpha / 2, n - 1) * se)
            out[key] = [out["mean"] - h, out["mean"] + h]
        out["p"] = float(2 * stats.t.sf(abs(out["mean"]) / se, n - 1)) if se > 0 else (0.0 if d.mean() else 1.0)
    return out


def holm(ps: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values."""
    order = sorted(ps, key=ps.get)
    adj, running = {}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * ps[k]))
        adj[k] = running
    return adj


# ------------------------------------------------------------------------------------------ report
def _f(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    return sds.fmt_ci(values, scale, digits) if values else "n/a"


def _ci(p: dict[str, Any], key: str, scale: float = 100.0) -> str:
    if key not in p:
        return f"{scale * p['mean']:+.1f}"
    lo, hi = p[key]
    return f"{scale * p['mean']:+.1f} [{scale * lo:+.1f}, {scale * hi:+.1f}]"


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def pretrained_measures(out: Path, s: Setting, scale: sds.Scale) -> dict[str, Any]:
    """Decoding accuracy and estimator reading of the pre-trained model (cached)."""
    f = out / s.key / "pretrained" / "measures.json"
    if f.is_file():
        return json.loads(f.read_text())
    from hf_stadyn.models.auto import load_model
    from hf_stadyn.training import evaluate_classifier

    init = out / s.key / "pretrained" / "joint" / "model"
    if not (init / "config.json").is_file():
        return {}
    te = tensors("motion", scale.test_clips, 4242, s.cue, train=False)
    if s.recipe == "joint":
        dec = sds.decode_accuracy(init, te)
    else:
        dec = {"appearance": evaluate_classifier(load_model(init), sds._dataset(te, te["appearance"]))["accuracy"]}
    bias = measure_bias(load_model(init), data(s, scale)["probe_pairs"], ["pre_classifier", "block_3"], batch_size=64)
    m = {"decoding_accuracy": dec,
         "bias": {k: {"dynamic_pct": b.percent["dynamic"], "static_pct": b.percent["static"],
                      "static_share_pct": 100.0 * b.share["static"], "s_dynamic": b.s_dynamic, "s_static": b.s_static}
                  for k, b in bias.items()}}  # fmt: skip
    atomic_write_json(f, m)
    return m


def summarize_setting(s: Setting, rows: list[dict], planned: int, pre: dict[str, Any], best: str) -> dict[str, Any]:
    """Per-method means, paired differences vs plain (Bonferroni / Holm over the methods), the goal check."""
    ev = [r for r in rows if r["shortcut"]]
    methods = [m for m in METHODS if any(r["method"] == m for r in ev)]
    by = {m: {r["seed"]: r for r in ev if r["method"] == m} for m in methods}
    others = [m for m in methods if m != "plain"]
    n_cmp = max(len(others), 1)
    main_metric = "conflicting_accuracy" if s.task == "trap" else "motion_test_accuracy"

    def metric(m: str, fn: Any) -> dict[int, float]:
        return {k: fn(r) for k, r in by[m].items()}

    diffs: dict[str, dict[str, Any]] = {}
    if "plain" in by:
        for m in others:
            dd = {
                "main": paired(metric(m, lambda r: r[main_metric]), metric("plain", lambda r: r[main_metric]), n_cmp),
                "static_share": paired(metric(m, lambda r: r["bias"]["pre_classifier"]["static_share_pct"] / 100),
                                       metric("plain", lambda r: r["bias"]["pre_classifier"]["static_share_pct"] / 100),
                                       n_cmp),
                "seconds_per_step_ratio": statistics.median(
                    by[m][k]["seconds_per_step"] / by["plain"][k]["seconds_per_step"] for k in by[m] if k in by["plain"]
                ) if set(by[m]) & set(by["plain"]) else float("nan"),
            }  # fmt: skip
            if s.task == "trap":
                dd["aligned"] = paired(metric(m, lambda r: r["aligned_accuracy"]),
                                       metric("plain", lambda r: r["aligned_accuracy"]), n_cmp)  # fmt: skip
                dd["follows_cue"] = paired(metric(m, lambda r: r["conflicting_follows_cue"]),
                                           metric("plain", lambda r: r["conflicting_follows_cue"]), n_cmp)  # fmt: skip
            else:
                for e in _shown_epochs(len(by["plain"][next(iter(by["plain"]))]["history"])):
                    dd[f"epoch{e + 1}"] = paired(metric(m, lambda r, e=e: _epoch_acc(r, e)),
                                                 metric("plain", lambda r, e=e: _epoch_acc(r, e)), n_cmp)  # fmt: skip
                # "the same accuracy sooner": the mean over epochs (area under the learning curve)
                dd["curve_mean"] = paired(metric(m, _curve_mean), metric("plain", _curve_mean), n_cmp)
            diffs[m] = dd
        ps = {m: diffs[m]["main"].get("p", 1.0) for m in others}
        for m, p in holm(ps).items():
            diffs[m]["main"]["p_holm"] = p
    goal = {}
    if s.task == "trap":
        for m in others:
            d = diffs.get(m)
            if not d:
                continue
            if "ci_bonferroni" not in d["main"]:  # one seed: no interval, nothing to check
                goal[m] = dict.fromkeys(("conflicting_interval_above_10", "aligned_within_2", "static_share_lower",
                                         "met"))  # fmt: skip
                continue
            goal[m] = {
                "conflicting_interval_above_10": d["main"]["ci_bonferroni"][0] * 100 > GOAL["conflicting_gain_points"],
                "aligned_within_2": d["aligned"]["mean"] * 100 >= -GOAL["aligned_loss_points"],
                "static_share_lower": d["static_share"]["ci_bonferroni"][1] < 0,
            }
            goal[m]["met"] = all(goal[m].values())
    return {"setting": dataclasses.asdict(s), "runs_done": len(rows), "runs_planned": planned,
            "complete": len(rows) >= planned, "methods": methods, "diffs": diffs, "goal": goal, "pretrained": pre,
            "best_method_from_validation": best}  # fmt: skip


def _epoch_acc(r: dict[str, Any], e: int) -> float:
    return r["history"][e]["eval/motion_test/accuracy"]


def _curve_mean(r: dict[str, Any]) -> float:
    """Mean motion accuracy over the epochs (area under the learning curve / epochs)."""
    return statistics.fmean(_epoch_acc(r, e) for e in range(len(r["history"])))


def _shown_epochs(n_ep: int) -> list[int]:
    """Epoch indices the (c) tables show: 1, 2, 3, 6 and the last (all of them for short runs)."""
    return sorted({e for e in (0, 1, 2, 5, n_ep - 1) if 0 <= e < n_ep})


def render(s: Setting, summ: dict[str, Any], rows: list[dict]) -> list[str]:
    ev = [r for r in rows if r["shortcut"]]
    ref = [r for r in rows if not r["shortcut"]]
    methods, diffs = summ["methods"], summ["diffs"]
    L = [f"### {s.title}", "", f"Runs: {summ['runs_done']} of {summ['runs_planned']} planned"
         f"{'' if summ['complete'] else ' (INCOMPLETE: the figures below cover only the runs that finished)'}.", ""]  # fmt: skip

    def grp(m: str) -> list[dict]:
        return [r for r in ev if r["method"] == m]

    def bias_cells(rs: list[dict]) -> str:
        b, c = [r["bias"]["pre_classifier"] for r in rs], [r["bias"]["block_3"] for r in rs]
        return (f"{_mean([x['dynamic_pct'] for x in b]):.1f} / {_mean([x['static_pct'] for x in b]):.1f} "
                f"| {_mean([x['static_share_pct'] for x in b]):.1f} "
                f"| {_mean([x['s_dynamic'] for x in b]):.3f} / {_mean([x['s_static'] for x in b]):.3f} "
                f"| {_mean([x['dynamic_pct'] for x in c]):.1f} / {_mean([x['static_pct'] for x in c]):.1f} "
                f"| {_mean([x['s_dynamic'] for x in c]):.3f} / {_mean([x['s_static'] for x in c]):.3f}")  # fmt: skip

    def cost(m: str, rs: list[dict]) -> str:
        sps = statistics.median(r["seconds_per_step"] for r in rs)
        ratio = diffs.get(m, {}).get("seconds_per_step_ratio")
        return f"{1000 * sps:.0f} ms" + (f" ({ratio:.2f}x)" if ratio and not math.isnan(ratio) else "")

    bias_hdr = ("pre_classifier dyn / stat % | pre_classifier static share % | pre_classifier s_D / s_S "
                "| block_3 dyn / stat % | block_3 s_D / s_S | time per step (vs plain)")  # fmt: skip
    if s.task == "trap":
        L += [f"| method | seeds | aligned acc. (%) | conflicting acc. (%) | follows cue on conflicting (%) "
              f"| frozen clips follow cue (%) | shuffle sensitivity (%) | {bias_hdr} |", "|---" * 13 + "|"]  # fmt: skip
        for m in methods:
            rs = grp(m)
            L.append(f"| {NAMES[m]} | {len(rs)} | {_f([r['aligned_accuracy'] for r in rs])} "
                     f"| {_f([r['conflicting_accuracy'] for r in rs])} | {_f([r['conflicting_follows_cue'] for r in rs])} "
                     f"| {_f([r['frozen_follows_cue'] for r in rs])} | {_f([r['shuffle_sensitivity'] for r in rs])} "
                     f"| {bias_cells(rs)} | {cost(m, rs)} |")  # fmt: skip
        if ref:
            L.append(f"| reference: plain fine-tuning without shortcut | {len(ref)} "
                     f"| {_f([r['aligned_accuracy'] for r in ref])} | {_f([r['conflicting_accuracy'] for r in ref])} "
                     f"| {_f([r['conflicting_follows_cue'] for r in ref])} | {_f([r['frozen_follows_cue'] for r in ref])} "
                     f"| {_f([r['shuffle_sensitivity'] for r in ref])} | {bias_cells(ref)} | |")  # fmt: skip
    else:
        shown = _shown_epochs(len(ev[0]["history"]) if ev else 0)
        ep_hdr = " | ".join(f"motion acc. epoch {e + 1} (%)" for e in shown)
        L += [f"| method | seeds | {ep_hdr} | mean over epochs (%) | shuffle sensitivity (%) | {bias_hdr} |",
              "|---" * (10 + len(shown)) + "|"]  # fmt: skip
        for m in methods:
            rs = grp(m)
            eps = " | ".join(_f([_epoch_acc(r, e) for r in rs]) for e in shown)
            L.append(f"| {NAMES[m]} | {len(rs)} | {eps} | {_f([_curve_mean(r) for r in rs])} "
                     f"| {_f([r['shuffle_sensitivity'] for r in rs])} | {bias_cells(rs)} | {cost(m, rs)} |")  # fmt: skip
    pb = summ["pretrained"].get("bias")
    if pb:
        p, q = pb["pre_classifier"], pb["block_3"]
        dec = ", ".join(f"{k} {100 * v:.1f} %" for k, v in summ["pretrained"]["decoding_accuracy"].items())
        L += ["", f"Pre-trained model (before fine-tuning): decodes {dec}; pre_classifier dyn / stat "
              f"{p['dynamic_pct']:.1f} / {p['static_pct']:.1f} %, static share {p['static_share_pct']:.1f} %, s_D / s_S "
              f"{p['s_dynamic']:.3f} / {p['s_static']:.3f}; block_3 dyn / stat {q['dynamic_pct']:.1f} / "
              f"{q['static_pct']:.1f} %."]  # fmt: skip
    if diffs:
        L += ["", f"Paired differences vs plain fine-tuning (points; mean [95 % t interval] and [Bonferroni interval "
              f"over the {len(diffs)} methods], Holm-adjusted p of the paired t-test):", ""]  # fmt: skip
        if s.task == "trap":
            L += ["| method minus plain | conflicting acc. | Bonferroni | Holm p | seeds better | aligned acc. "
                  "| follows cue | static share at pre_classifier (Bonferroni) |", "|---" * 8 + "|"]  # fmt: skip
            for m, d in diffs.items():
                L.append(f"| {NAMES[m]} | {_ci(d['main'], 'ci95')} | {_ci(d['main'], 'ci_bonferroni')} "
                         f"| {d['main'].get('p_holm', float('nan')):.3f} | {d['main']['wins']} of {d['main']['n']} "
                         f"| {_ci(d['aligned'], 'ci95')} | {_ci(d['follows_cue'], 'ci95')} "
                         f"| {_ci(d['static_share'], 'ci_bonferroni')} |")  # fmt: skip
        else:
            eps = sorted((k for k in next(iter(diffs.values())) if k.startswith("epoch")), key=lambda k: int(k[5:]))
            L += ["| method minus plain | " + " | ".join(f"{e} (Bonferroni)" for e in eps) + " | mean over epochs "
                  "(Bonferroni) | Holm p (final) | seeds better (final) | static share at pre_classifier (Bonferroni) |",
                  "|---" * (len(eps) + 5) + "|"]  # fmt: skip
            for m, d in diffs.items():
                L.append(f"| {NAMES[m]} | " + " | ".join(_ci(d[e], "ci_bonferroni") for e in eps)
                         + f" | {_ci(d['curve_mean'], 'ci_bonferroni')} | {d['main'].get('p_holm', float('nan')):.3f} "
                         f"| {d['main']['wins']} of {d['main']['n']} | {_ci(d['static_share'], 'ci_bonferroni')} |")  # fmt: skip
    if summ["goal"]:
        L += ["", "Goal of issue 14 point 3 (stated in advance; checked per method): Bonferroni interval of the "
              "conflicting-accuracy gain over plain above +10 points, mean aligned accuracy within 2 points of plain, "
              "Bonferroni interval of the pre_classifier static share difference below 0.", "",
              "| method | gain interval above +10 | aligned within 2 | static share lower | goal met |",
              "|---|---|---|---|---|"]  # fmt: skip
        yn = {True: "yes", False: "no", None: "n/a (one seed)"}
        for m, g in summ["goal"].items():
            L.append(f"| {NAMES[m]} | {yn[g['conflicting_interval_above_10']]} | {yn[g['aligned_within_2']]} "
                     f"| {yn[g['static_share_lower']]} | **{yn[g['met']]}** |")  # fmt: skip
    L += ["", "Loophole measures at pre_classifier (mean over seeds; 500 held-out clips with independent motion and "
          "appearance, linear probes trained on one half and tested on the other):", "",
          "| method | real vs shuffled probe (%) | appearance decodable (%) | motion decodable (%) "
          "| appearance share of feature variance (%) | motion share of feature variance (%) "
          "| appearance share of logit variance (%) | motion share of logit variance (%) |", "|---" * 8 + "|"]  # fmt: skip
    keys = ("real_vs_shuffled", "appearance_decodable", "motion_decodable", "appearance_feature_share",
            "motion_feature_share", "appearance_logit_share", "motion_logit_share")  # fmt: skip
    for m in methods:
        rs = grp(m)
        L.append(f"| {NAMES[m]} | " + " | ".join(f"{100 * _mean([r['loophole'][k] for r in rs]):.1f}" for k in keys)
                 + " |")  # fmt: skip
    return L


def render_tuning(tuning: dict[str, Any]) -> list[str]:
    L = ["### Tuning on (a)'s validation conflicting clips (tuning seeds; mean)", "",
         "| method | settings | validation conflicting acc. (%) | validation follows cue (%) | chosen |",
         "|---|---|---|---|---|"]  # fmt: skip
    for g in sorted(tuning["grid"], key=lambda g: (METHODS.index(g["method"]), json.dumps(g["params"]))):
        ch = tuning["chosen"][g["method"]]["params"] == g["params"]
        L.append(f"| {NAMES[g['method']]} | {json.dumps(g['params']) if g['params'] else '-'} "
                 f"| {100 * g['validation_accuracy']:.1f} | {100 * g['validation_follows_cue']:.1f} | {'yes' if ch else ''} |")  # fmt: skip
    L += ["", f"Best method on the validation set (used for TimeSformer; fixed before the evaluation): "
          f"**{NAMES[best_method(tuning['chosen'])]}**."]  # fmt: skip
    return L


# ------------------------------------------------------------------------------------------ main
def collect(out: Path, calls: list[tuple]) -> dict[str, list[dict]]:
    """Cached run.json of the planned ``calls``, per setting."""
    rows: dict[str, list[dict]] = {}
    for c in calls:
        f = out / c[1] / "runs" / c[2] / "run.json"
        rows.setdefault(c[1], [])
        if f.is_file():
            rows[c[1]].append(json.loads(f.read_text()))
    return rows


def write_summary(out: Path, args: argparse.Namespace, tuning: dict[str, Any], calls: list[tuple], t0: float) -> str:
    scale = sds.SMOKE if args.smoke else sds.Scale()
    rows = collect(out, calls)
    best = best_method(tuning["chosen"])
    summaries, lines = {}, ["## Results", ""]
    for skey in args.settings:
        s = SETTINGS[skey]
        planned = sum(c[1] == skey for c in calls)
        pre = pretrained_measures(out, s, scale)
        rs = rows.get(skey, [])
        if not rs:
            lines += [f"### {s.title}", "", f"NOT RUN (0 of {planned} runs).", ""]
            summaries[skey] = {"runs_done": 0, "runs_planned": planned, "complete": False}
            continue
        summaries[skey] = summarize_setting(s, rs, planned, pre, best)
        lines += [*render(s, summaries[skey], rs), ""]
    lines += render_tuning(tuning)
    cal_file = out / "calibration.json"
    if "c" in args.settings and cal_file.is_file():
        cal = json.loads(cal_file.read_text())["c"]
        lines += ["", "### (c)'s fine-tuning budget, calibrated with plain fine-tuning on the tuning seeds (before "
                  "any method ran on (c))", "", "| learning rate | epochs | plain validation motion acc. (%) | chosen |",
                  "|---|---|---|---|"]  # fmt: skip
        ft_epochs = (sds.SMOKE if args.smoke else sds.Scale()).ft_epochs
        for g in cal["grid"]:
            lines.append(f"| {g['params']['ft_lr']:g} | {g['params'].get('ft_epochs', ft_epochs)} | "
                         f"{100 * g['validation_accuracy']:.1f} | {'yes' if g['params'] == cal['params'] else ''} |")  # fmt: skip
        lines += ["", f"Rule: {cal['rule']} (target {100 * cal['target']:.0f} %)."]
    all_rows = [r for rs in rows.values() for r in rs]
    compute = sum(r["wall_seconds"] for r in all_rows)
    lines += ["", f"Compute: {len(all_rows)} evaluation runs, {compute / 60:.1f} min of run time in all (training + "
              f"evaluation, summed over workers); median run {statistics.median(r['wall_seconds'] for r in all_rows):.0f} s. "
              f"This invocation: {(time.perf_counter() - t0) / 60:.1f} min, {args.jobs} worker(s) x {args.threads} "
              "thread(s)."]  # fmt: skip
    table = "\n".join(lines)
    atomic_write_json(out / "results.json", {"smoke": args.smoke, "seeds": args.seeds, "ts_seeds": args.ts_seeds,
                                             "scale": dataclasses.asdict(scale), "tuning": tuning, "settings": summaries,
                                             "runs": all_rows, "goal": GOAL, "lambdas": LAMBDAS,
                                             "stillmix_max": STILLMIX_MAX, "static_dropout": SD_SETTINGS})  # fmt: skip
    atomic_write_text(out / "table.md", table)
    return table


def tune(out: Path, pool: Pool, smoke: bool) -> dict[str, Any]:
    f = out / "tuning.json"
    if f.is_file():
        return json.loads(f.read_text())
    rows = pool.map(fine_tune, tuning_calls(str(out), smoke))
    tuning = choose(rows, smoke)
    atomic_write_json(f, tuning)
    return tuning


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out", default=None, help="output folder (default outputs/debias_study; --smoke: a temporary one)"
    )
    ap.add_argument("--seeds", type=int, default=8, help="paired evaluation seeds 0..N-1 (default 8)")
    ap.add_argument("--ts-seeds", type=int, default=3, help="TimeSformer seeds (default 3)")
    ap.add_argument("--settings", default="a,b,c,ts", help="settings in priority order (default a,b,c,ts)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    ap.add_argument("--pretrain-only", action="store_true", help="only the pre-training stages (no hf_stadyn.debias "
                    "methods needed)")  # fmt: skip
    ap.add_argument("--summary-only", action="store_true", help="write table.md / results.json from the cache")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one seed: seconds (numbers meaningless)")
    ap.add_argument("--c-explore", action="store_true", help="after the evaluation: (c)'s exploratory check of "
                    "smaller penalty weights on the tuning seeds (C_EXPLORE), written to c_explore.md")  # fmt: skip
    ap.add_argument("--only", default=None, metavar="NAME[,NAME]", help="only these evaluation runs (e.g. "
                    "stillmix_s0; names as in <setting>/runs/), after the pre-training and tuning they depend on; "
                    "rebuilds a released checkpoint (model_cards/*/training.json); no summary is written")  # fmt: skip
    args = ap.parse_args(argv)
    args.settings = [k.strip() for k in args.settings.split(",") if k.strip()]
    bad = [k for k in args.settings if k not in SETTINGS]
    if bad:
        ap.error(f"unknown setting(s) {', '.join(bad)}; choose from {', '.join(SETTINGS)}")
    if args.c_explore and ("c" not in args.settings or args.only is not None or args.summary_only):
        ap.error("--c-explore runs (c)'s exploratory fine-tuning after (c)'s evaluation: give it with setting c in "
                 "--settings and without --only or --summary-only")  # fmt: skip
    if args.smoke:
        args.seeds, args.ts_seeds, args.jobs, args.threads = 1, 1, 1, 1
        if "--settings" not in " ".join(argv if argv is not None else sys.argv):
            args.settings = ["a", "c", "ts"]  # (b) is (a)'s code path with another cue
        args.out = args.out or tempfile.mkdtemp(prefix="debias-smoke-")
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the study runs)", flush=True)
    torch.set_num_threads(args.threads)
    _quiet()
    out = Path(args.out or "outputs/debias_study")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pool = Pool(args.jobs, args.threads)
    if not args.summary_only:
        keys = list(dict.fromkeys(["a", *args.settings])) if args.pretrain_only else ["a"]
        pool.map(_pretrain_job, [(str(out), k, args.smoke) for k in keys])
        if args.pretrain_only:
            logger.info("pre-training done (%.0f s)", time.perf_counter() - t0)
            return 0
    tuning = tune(out, pool, args.smoke) if not args.summary_only else json.loads((out / "tuning.json").read_text())
    logger.info("chosen: %s", {m: c["params"] for m, c in tuning["chosen"].items()})
    calibration = None
    if "c" in args.settings:
        cal_file = out / "calibration.json"
        if args.summary_only:
            calibration = json.loads(cal_file.read_text()) if cal_file.is_file() else None
        else:
            calibration = calibrate(out, pool, args.smoke)
        if calibration:
            logger.info("(c) fine-tuning budget: %s", calibration["c"]["params"])
    calls = evaluation_calls(str(out), args.smoke, args.seeds, tuning["chosen"], args.settings, args.ts_seeds,
                             calibration)  # fmt: skip
    if args.only is not None:
        only = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(only) - {c[2] for c in calls})
        if unknown:
            ap.error(f"--only: no run named {', '.join(unknown)} in settings {','.join(args.settings)}; names look "
                     f"like {calls[0][2]}")  # fmt: skip
        runs = [c for c in calls if c[2] in only]
        pool.map(_pretrain_job, [(str(out), k, args.smoke) for k in dict.fromkeys(c[1] for c in runs)])
        for c, f in zip(runs, pool.submit(fine_tune, runs), strict=True):
            f.result()
            print(Path(c[0]) / c[1] / "runs" / c[2], flush=True)
        return 0
    if not args.summary_only:
        # one queue in priority order: (a)'s runs, the other settings' pre-training, their runs, the references
        first = [c for c in calls if c[1] == args.settings[0] and len(c) == 7]
        rest = [c for c in calls if c not in first]
        futs = pool.submit(fine_tune, first)
        pre = pool.submit(_pretrain_job, [(str(out), k, args.smoke) for k in args.settings[1:]])
        futs += pool.submit(fine_tune, rest)
        groups: dict[tuple, list[cf.Future]] = {}
        for c, f in zip(first + rest, futs, strict=True):
            groups.setdefault((c[1], len(c)), []).append(f)
        for fs in groups.values():  # queue order; the summary is rewritten after each group
            for f in fs:
                f.result()
            write_summary(out, args, tuning, calls, t0)
        for f in pre:
            f.result()
    table = write_summary(out, args, tuning, calls, t0)
    sys.stdout.write(table + "\n")
    if args.c_explore and calibration:
        sys.stdout.write("\n" + explore_c(out, pool, calibration, args.smoke))
    logger.info("done in %.0f s; results in %s", time.perf_counter() - t0, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
