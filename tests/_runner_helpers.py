"""Small models and in-memory pair sets shared by the runner tests (and their subprocess workers)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Tiny3DCNN(nn.Module):
    """A two-stage 3D CNN taking (B, 3, T, H, W) float clips."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.stage1 = nn.Sequential(nn.Conv3d(3, 8, (3, 3, 3), padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv3d(8, 12, (3, 3, 3), stride=(1, 2, 2), padding=1), nn.ReLU())
        self.head = nn.Linear(12, 4)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stage2(self.stage1(x))
        return self.head(h.mean(dim=(2, 3, 4)))


def to_cnn_input(clips: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W)."""
    return clips.permute(0, 4, 1, 2, 3).float() / 255.0


class InMemoryPairs(torch.utils.data.Dataset):
    """Deterministic pairs: item i depends only on (seed, i)."""

    def __init__(self, n: int, seed: int = 0, t: int = 4, size: int = 12, interrupt_at: int | None = None):
        self.n, self.seed, self.t, self.size, self.interrupt_at = n, seed, t, size, interrupt_at

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if self.interrupt_at is not None and i == self.interrupt_at:
            raise KeyboardInterrupt(f"simulated interruption at pair {i}")
        rng = np.random.default_rng([self.seed, i])
        clip = rng.integers(0, 256, size=(self.t, self.size, self.size, 3), dtype=np.uint8)
        factor = int(rng.integers(0, 2))
        if factor == 1:  # static: same frames, shuffled
            other = clip[np.roll(np.arange(self.t), 1)]
        else:  # dynamic: same order, another "style" (inverted colours)
            other = 255 - clip
        return {
            "clip_a": torch.from_numpy(clip),
            "clip_b": torch.from_numpy(other.copy()),
            "factor": factor,
            "index": i,
        }


LAYERS = {"stage1": "cthw", "stage2": "cthw"}
