"""Benchmark: training-step time of each debiasing method over plain fine-tuning, measured in one run.

Run from the repository root::

    OMP_NUM_THREADS=1 PYTHONPATH=. python tests/bench/bench_debias.py --threads 1     # the recorded figures
    PYTHONPATH=. python tests/bench/bench_debias.py --smoke --json out.json           # seconds (CI)

Every method trains its own copy of the same tiny VideoMAE (hidden 64, 4 blocks, 8x32x32, batch 32: the
debias study's scale) on the same uint8 clips. One step is what StadynTrainer does for that method: the
augmentation of the batch's clips (stylize / StillMix; none otherwise), ``prepare_pixel_values``, the loss
terms' ``prepare``, the forward, the loss terms (the static-pair losses run their one shared shuffled
forward there), backward and AdamW. Rounds time every method back to back, in an order rotated each round,
so that load from other processes hits all alike; a method's ratio is the median over rounds of its step
time over plain's in the same round (the interquartile range shows the noise). The StaticDropout refresh
(a bias measurement) is not in the step: bench_staticdropout.py times it.

Methods: plain, StaticDropout (p 0.8 on 75 % of the channels at pre_classifier, the study's setting),
stylize, StillMix, shuffle-uniform, decorrelation (cosine; cosine with the shuffled branch detached;
cross_cov; cosine at block_3) and decorrelation + shuffle-uniform (one shared extra forward).
``--smoke``: batch 4, 2 rounds of 1 step, 1 thread (numbers meaningless; it checks that the benchmark
runs). ``--json PATH`` also writes the times and ratios to PATH.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

METHODS = (
    "plain",
    "static_dropout",
    "stylize",
    "stillmix",
    "shuffle_uniform",
    "decorrelation_cosine",
    "decorrelation_cosine_detached",
    "decorrelation_cross_cov",
    "decorrelation_cosine_block_3",
    "decorrelation_and_shuffle_uniform",
)


class _Clips(torch.utils.data.Dataset):
    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"frames": torch.from_numpy(self.frames[i]), "label": 0}


def _setup(method: str, clips: np.ndarray, seed: int = 0) -> tuple[Any, list[Any], Any]:
    """(model, loss terms, augment or None) of one method."""
    from hf_stadyn.debias import (
        DecorrelationConfig,
        StaticDropoutConfig,
        StillMixAugment,
        apply_static_dropout,
        debias_loss_terms,
    )
    from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config
    from hf_stadyn.training import StylizeAugment

    torch.manual_seed(seed)
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(num_labels=4)).train()
    terms: list[Any] = []
    augment: Any = None
    if method == "static_dropout":
        c = model.config.hidden_size
        apply_static_dropout(model, StaticDropoutConfig(p=0.8, top_k_fraction=0.75), static_channels=range(c * 3 // 4))
    elif method == "stylize":
        augment = StylizeAugment(p=1.0, seed=seed)
    elif method == "stillmix":
        augment = StillMixAugment(max_mix=0.5, seed=seed, source=_Clips(clips))
    elif method == "shuffle_uniform":
        terms = debias_loss_terms(None, 1.0, seed=seed)
    elif method.startswith("decorrelation"):
        form = "cross_cov" if "cross_cov" in method else "cosine"
        layer = "block_3" if "block_3" in method else "pre_classifier"
        dec = DecorrelationConfig(weight=2.0, form=form, layer=layer, shuffled_grad="detached" not in method)
        terms = debias_loss_terms(dec, 1.0 if "shuffle_uniform" in method else 0.0, seed=seed)
    return model, terms, augment


def _steps(state: dict[str, Any], clips: np.ndarray, y: torch.Tensor, n: int, start: int) -> float:
    model, terms, augment, opt = state["model"], state["terms"], state["augment"], state["opt"]
    t0 = time.perf_counter()
    for k in range(n):
        step = start + k
        batch = clips
        if augment is not None:
            batch = np.stack([augment(c, index=i, epoch=step) for i, c in enumerate(clips)])
        inputs = {"pixel_values": model.prepare_pixel_values(batch), "labels": y}
        for t in terms:
            t.prepare(model, inputs, step)
        out = model(**inputs)
        loss = out.loss
        for t in terms:
            loss = loss + t(model, inputs, out)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5, help="steps per round and method")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of: " + ", ".join(METHODS))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (numbers meaningless)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    args = ap.parse_args()
    warmup = 2
    if args.smoke:
        args.batch_size, args.rounds, args.steps, args.threads, warmup = 4, 2, 1, 1, 1
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it only checks that the benchmark runs)")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or "plain" not in methods:
        raise SystemExit(f"--methods: unknown {unknown} (known: {', '.join(METHODS)}); plain must be included.")
    torch.set_num_threads(args.threads)

    from hf_stadyn.synth import SynthConfig, SynthDataset

    ds = SynthDataset("trap", num_clips=args.batch_size, config=SynthConfig(num_frames=8, size=32), seed=0)
    clips = ds.to_tensors()["frames"].numpy()  # (B, 8, 32, 32, 3) uint8
    y = torch.arange(args.batch_size) % 4
    states: dict[str, dict[str, Any]] = {}
    for m in methods:
        model, terms, augment = _setup(m, clips)
        states[m] = {"model": model, "terms": terms, "augment": augment,
                     "opt": torch.optim.AdamW(model.parameters(), lr=1e-4)}  # fmt: skip
        _steps(states[m], clips, y, warmup, 0)
    forwards = {m: 0 for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    step = warmup
    for r in range(args.rounds):
        order = methods[r % len(methods) :] + methods[: r % len(methods)]
        for m in order:
            times[m].append(_steps(states[m], clips, y, args.steps, step))
        step += args.steps
    for m in methods:
        terms = states[m]["terms"]
        forwards[m] = terms[0].forward.extra_forwards if terms else 0
    med = {m: statistics.median(v) for m, v in times.items()}
    ratios, spread = {}, {}
    for m in methods:
        paired = sorted(a / b for a, b in zip(times[m], times["plain"]))
        ratios[m] = statistics.median(paired)
        spread[m] = (paired[len(paired) // 4], paired[(3 * len(paired)) // 4])
    total_steps = warmup + args.rounds * args.steps
    print(f"tiny VideoMAE (hidden 64, 4 blocks, 8x32x32, batch {args.batch_size}), {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds x {args.steps} steps per method")  # fmt: skip
    print(f"  {'method':36s} {'ms/step':>8s} {'x plain':>8s}  interquartile   extra forwards/step")
    for m in methods:
        lo, hi = spread[m]
        print(f"  {m:36s} {1000 * med[m]:8.1f} {ratios[m]:8.3f}  {lo:.3f}-{hi:.3f}    {forwards[m] / total_steps:.0f}")
    if args.json:
        result = {
            "smoke": args.smoke, "threads": torch.get_num_threads(), "batch_size": args.batch_size,
            "rounds": args.rounds, "steps": args.steps, "step_seconds": med,
            "extra_forwards_per_step": {m: forwards[m] / total_steps for m in methods},
            "interquartile": {m: list(v) for m, v in spread.items()},
            "ratios": {f"{m}_over_plain": ratios[m] for m in methods if m != "plain"},
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
