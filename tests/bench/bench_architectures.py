"""Every supported video architecture: its tiny-config reading and probing throughput over a bare forward.

Run:  python tests/bench/bench_architectures.py [--threads 1] [--json out.json]   # the README table (manual)
      python tests/bench/bench_architectures.py --smoke --json out.json           # seconds (CI)

For each architecture hf_stadyn probes and can build offline on a CPU (VideoMAE and TimeSformer with
hf_stadyn's tiny configs, 8 x 32 x 32, hidden 64, 4 blocks; ViViT, V-JEPA 2, VideoPrism and X-CLIP, each
as classifier / video tower and as bare encoder, with :func:`hf_stadyn.models.generic.tiny_upstream_config`,
4 x 32 x 32, hidden 32, 2 blocks), a random initialisation (seed 0) is saved with ``save_pretrained`` and
read back with ``load_model`` (as ``stadyn probe --model DIR`` does), then:

- the reading at initialisation: share % dynamic / static (95 % jackknife intervals) of the last probe
  layer on 256 clip pairs of 64 StaDyn-Synth motion clips at the model's frame count and size (seed 0);
  plus the trained row: the embedded default (a tiny VideoMAE trained on StaDyn-Synth motion) on its pairs;
- probing throughput relative to the bare forward: the same batch of 2B = 16 clips through the plain
  forward and through the probing forward (hooks pooling every probe layer, ``extract_features``), the
  two routes run in each of 31 rounds, in alternating order (machine load affects them alike); ratio =
  the median over rounds of forward time / probing time (1.0 = probing every layer is free);
- pairs/s of the whole engine (``probe()``: pairs made, normalised, one forward per batch, estimator).

``--smoke``: 16 pairs of 8 clips, B = 2, 2 rounds (numbers meaningless; it checks the benchmark runs).
PE-video is not in the table: its frame encoder is a timm model (timm needs torchvision, neither is a
dependency here); see docs/architectures.md. ``--json PATH`` writes every figure to PATH.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: (row name, how it is built): "own:<kind>" = hf_stadyn's class and tiny config, else a tiny upstream name.
ARCHS = [
    ("VideoMAE", "own:videomae"),
    ("TimeSformer", "own:timesformer"),
    ("ViViT", "vivit"),
    ("ViViT encoder", "vivit_encoder"),
    ("V-JEPA 2", "vjepa2"),
    ("V-JEPA 2 encoder", "vjepa2_encoder"),
    ("VideoPrism", "videoprism"),
    ("VideoPrism encoder", "videoprism_encoder"),
    ("X-CLIP video tower", "xclip"),
    ("X-CLIP vision tower", "xclip_vision"),
]


def build_folder(key: str, folder: Path) -> Path:
    """A random initialisation (seed 0) of ``key`` saved with save_pretrained in ``folder``."""
    from hf_stadyn.models import (
        StadynTimesformerForVideoClassification,
        StadynVideoMAEForVideoClassification,
        tiny_timesformer_config,
        tiny_videomae_config,
    )
    from hf_stadyn.models.generic import probe_class_for, tiny_upstream_config

    torch.manual_seed(0)
    if key == "own:videomae":
        model = StadynVideoMAEForVideoClassification(tiny_videomae_config(num_labels=4))
    elif key == "own:timesformer":
        model = StadynTimesformerForVideoClassification(tiny_timesformer_config(num_labels=4))
    else:
        config = tiny_upstream_config(key, num_labels=4)
        model = probe_class_for(config)(config)
    model.save_pretrained(folder)
    return folder


def synth_clips(spec: dict, num_clips: int) -> list:
    from hf_stadyn.synth import SynthConfig, SynthDataset

    size = spec["image_size"] if isinstance(spec["image_size"], int) else min(spec["image_size"])
    cfg = SynthConfig(num_frames=int(spec["num_frames"]), size=int(size))
    return list(
        SynthDataset(split="motion", num_clips=num_clips, config=cfg, seed=0, train=False)
        .to_tensors()["frames"]
        .numpy()
    )


def time_routes(model, batch_pairs: int, rounds: int, spec: dict) -> dict[str, float]:
    """Median seconds of the bare forward and of the probing forward on the same 2B clips, and the median
    of the per-round ratios (paired: each round runs both routes, in alternating order)."""
    from hf_stadyn.probing import extract_features
    from hf_stadyn.probing.hooks import eval_mode

    g = torch.Generator().manual_seed(0)
    t, s = int(spec["num_frames"]), spec["image_size"]
    h, w = (s, s) if isinstance(s, int) else tuple(s)
    clips = torch.randint(0, 256, (2 * batch_pairs, t, h, w, 3), generator=g, dtype=torch.uint8)
    inputs = model.probe_inputs({"clip_a": clips[:batch_pairs], "clip_b": clips[batch_pairs:]})
    specs = model.probe_layer_specs()
    routes = {"forward": lambda: model(**inputs), "probe": lambda: extract_features(model, inputs, specs)}
    times: dict[str, list[float]] = {"forward": [], "probe": []}
    with eval_mode(model), torch.inference_mode():
        for fn in routes.values():  # warm-up
            fn()
        for i in range(rounds):
            for name in ("forward", "probe") if i % 2 == 0 else ("probe", "forward"):
                t0 = time.perf_counter()
                routes[name]()
                times[name].append(time.perf_counter() - t0)
    ratio = statistics.median(f / p for f, p in zip(times["forward"], times["probe"]))
    return {**{f"{k}_s": statistics.median(v) for k, v in times.items()}, "throughput_ratio": ratio}


def reading(model, clips: list, num_pairs: int, batch_pairs: int) -> dict:
    from hf_stadyn.probing import probe
    from hf_stadyn.report.headline import share_interval, share_percent

    pairs = model.pairs_from_videos(clips, seed=0, num_pairs=num_pairs)
    t0 = time.perf_counter()
    res = probe(model, pairs, batch_size=batch_pairs, progress=False, place=False)
    seconds = time.perf_counter() - t0
    last = list(res.layers)[-1]
    lb = res.layers[last]
    out = {"last_layer": last, "layers": list(res.layers), "pairs_per_s": num_pairs / seconds}
    for factor in ("dynamic", "static"):
        iv = share_interval(lb, factor)
        out[f"share_{factor}"] = share_percent(lb, factor)
        out[f"ci_{factor}"] = None if iv is None else [iv.low, iv.high]
    return out


def fmt(row: dict, factor: str) -> str:
    ci = row[f"ci_{factor}"]
    v = row[f"share_{factor}"]
    return f"{v:.1f}" if ci is None else f"{v:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmark runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    num_pairs, num_clips, batch, rounds = (16, 8, 2, 2) if args.smoke else (256, 64, 8, 31)

    from hf_stadyn.models.auto import load_model
    from hf_stadyn.models.generic import model_family

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        todo = [(name, key, False) for name, key in ARCHS] + [("VideoMAE (embedded default, trained)", None, True)]
        for name, key, trained in todo:
            model = (
                load_model(None) if trained else load_model(build_folder(key, Path(tmp) / str(key).replace(":", "_")))
            )
            spec = model.probe_input_spec()
            row = {"architecture": name, "family": model_family(model), "class": type(model).__name__,
                   "trained": trained, "num_frames": spec["num_frames"], "image_size": spec["image_size"],
                   "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip
            clips = synth_clips(spec, num_clips)
            reading(model, clips[:8], 16, batch)  # warm-up: first-call costs stay out of pairs/s
            row.update(reading(model, clips, num_pairs, batch))
            row.update(time_routes(model, batch, rounds, spec))
            rows.append(row)
            print(f"{name}: done", file=sys.stderr)

    if args.smoke:
        print("SMOKE RUN: tiny sizes, the numbers are meaningless (it checks that the benchmark runs).")
    print(
        f"{num_pairs} pairs of {num_clips} StaDyn-Synth motion clips per model, seed 0; timing: {2 * batch} clips, "
        f"{rounds} paired rounds (median ratio), {args.threads} thread(s)"
    )
    print("| architecture | class | trained | last layer | dynamic % [95% CI] | static % [95% CI] | "
          "bare forward ms | probing / bare forward throughput | pairs/s |")  # fmt: skip
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['architecture']} | {r['class']} | {'yes' if r['trained'] else 'init'} | {r['last_layer']} | "
            f"{fmt(r, 'dynamic')} | {fmt(r, 'static')} | {1000 * r['forward_s']:.1f} | {r['throughput_ratio']:.2f} | "
            f"{r['pairs_per_s']:.0f} |"
        )
    if args.json:
        doc = {
            "smoke": args.smoke, "num_pairs": num_pairs, "num_clips": num_clips, "batch_pairs": batch,
            "rounds": rounds, "threads": args.threads, "rows": rows,
            "ratios": {r["architecture"]: r["throughput_ratio"] for r in rows},
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
