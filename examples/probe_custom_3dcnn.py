"""Probe your own torch module with ``stadyn probe --model_factory``: a small 3D CNN, no hf-stadyn class.

This file is both the model factory and a script. As a factory (``build`` returns the module,
``INPUT_SPEC`` says what one input is; ``forward_fn`` is left at its default, normalised
``(B, 3, T, H, W)`` clips, the 3D-CNN convention)::

    stadyn probe --model_factory examples/probe_custom_3dcnn.py:build \\
        --layers stem:cthw,layer1:cthw,layer2:cthw,head:vector --synth motion --num_pairs 64 --reference

(``--reference`` probes ``build_reference()``, the same architecture at initialisation.) As a script it
runs that command on rendered StaDyn-Synth clips::

    python examples/probe_custom_3dcnn.py --out runs/custom_3dcnn

``--model_factory`` RUNS the file's code, as ``python FILE`` would: give it only your own or reviewed
files. The report is the same as for a transformers model (report.json / report.md / figures), with
``model_family`` "Tiny3DCNN (model factory)" and each layer's layout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

#: What one input is: T frames of S x S pixels, normalised as (x / 255 - mean) / std.
INPUT_SPEC = {"num_frames": 8, "image_size": 32, "mean": [0.45, 0.45, 0.45], "std": [0.225, 0.225, 0.225]}
#: The layers to probe and their layouts (module names of ``Tiny3DCNN().named_modules()``).
LAYERS = "stem:cthw,layer1:cthw,layer2:cthw,head:vector"


class Tiny3DCNN(nn.Module):
    """Clips ``(B, 3, T, H, W)`` -> logits ``(B, num_classes)``; stage outputs are ``(B, C, T', H', W')``."""

    def __init__(self, num_classes: int = 4, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(3, width, (3, 5, 5), padding=(1, 2, 2), stride=(1, 2, 2)), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Conv3d(width, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv3d(width, 2 * width, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten())  # (B, 2 * width): the classifier input
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.layer2(self.layer1(self.stem(x)))))


def build() -> nn.Module:
    """The model to probe. Load your trained weights here (``model.load_state_dict(torch.load(...))``); this
    example stands them in with a fixed initialisation (seed 1234), the same on every run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        return Tiny3DCNN()


def build_reference() -> nn.Module:
    """The same architecture at initialisation (``stadyn probe --reference``; ``--seed`` seeds it)."""
    return Tiny3DCNN()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/custom_3dcnn", help="report folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clips, the pairs and the reference")
    parser.add_argument("--num-pairs", type=int, default=64, help="pairs to probe (default: %(default)s)")
    parser.add_argument("--synth-clips", type=int, default=16, help="StaDyn-Synth clips (default: %(default)s)")
    args = parser.parse_args()

    from hf_stadyn.cli import main as stadyn

    return stadyn([
        "probe", "--model_factory", f"{Path(__file__).resolve()}:build", "--layers", LAYERS,
        "--synth", "motion", "--synth_clips", str(args.synth_clips), "--num_pairs", str(args.num_pairs),
        "--seed", str(args.seed), "--reference", "--output_dir", args.out, "--overwrite", "--disable_tqdm",
    ])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
