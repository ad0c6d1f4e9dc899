"""StaDyn-Synth splits as a map-style torch ``Dataset`` rendered on the fly (docs/method.md §9).

Splits:
    ``motion``      label = motion class, appearance class uniform at random.
    ``appearance``  label = appearance class, motion class uniform at random.
    ``trap``        label = motion class; the static cue (the appearance class shown by the attributes
                    that ``trap_cue`` selects) equals the label's class in a share ``trap_share`` of the
                    training clips and is the other way round in the rest. Test sets (``train=False``)
                    come in three variants: ``aligned`` (cue always agrees), ``conflicting`` (cue always
                    shows another class) and ``random`` (cue uniform, agreeing by chance).

Clip ``i`` depends only on ``(seed, train, i)`` and the settings: its random choices come from
``numpy.random.SeedSequence(seed, spawn_key=(train_or_test, i, ...))``. Train and test sets built from
the same seed therefore never share clips, and the three test variants of a trap share every clip's
motion, trajectory, background and noise; only the static cue differs.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import CUES, SPLITS, TEST_VARIANTS, SynthConfig
from .render import SynthClip, render_clip

__all__ = ["SynthDataset"]

logger = logging.getLogger(__name__)

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # Weyl sequence step: low-discrepancy agree/conflict assignment


class SynthDataset(torch.utils.data.Dataset):
    """A StaDyn-Synth split rendered on demand; item ``i`` depends only on ``(seed, train, i)``.

    Args:
        split: "motion", "appearance" or "trap" (see the module docstring).
        num_clips: number of clips ``N`` (>= 1).
        config: scene settings (:class:`SynthConfig`); default ``SynthConfig()``.
        seed: non-negative int; every random choice flows from it.
        trap_share: share of *training* trap clips whose cue agrees with the label, in [0, 1]. The
            agreeing clips are spread evenly over the indices (a Weyl sequence), so every prefix of
            the dataset meets the share to within a few clips.
        trap_cue: which attributes carry the appearance class: "invariant" (object shape + background
            layout family: survive stylization), "sensitive" (object colour + texture: a stylizer
            changes them) or "both". The other attributes are random. For the appearance split it
            selects what the label is shown by.
        test_variant: for ``train=False`` trap sets: "aligned", "conflicting" or "random".
        train: training set (trap share applies) or test set (test variant applies).
        instance_masks: also return the per-frame instance map (``instances``, video instance
            segmentation; docs/vis.md). Off by default, so items and tensors stay as before.

    Items are dicts:
        ``frames``  ``(T, H, W, 3)`` uint8 tensor
        ``mask``    ``(T, H, W)`` bool tensor (union of the objects)
        ``label``, ``motion``, ``appearance``, ``index``: int
        ``cue_agrees``: bool, whether the appearance class equals the label's cue class
        (``label % num_appearances``); always True in the appearance split, where the cue is the label.
        ``instances`` (with ``instance_masks=True``): ``(T, H, W)`` uint8, 0 background, ``k + 1`` object
        ``k`` (:class:`~hf_stadyn.synth.SynthClip`), and ``camouflaged``: ``(num_objects,)`` bool tensor.
    """

    def __init__(
        self,
        split: str = "motion",
        num_clips: int = 1000,
        config: SynthConfig | None = None,
        seed: int = 0,
        *,
        trap_share: float = 0.99,
        trap_cue: str = "invariant",
        test_variant: str = "aligned",
        train: bool = True,
        instance_masks: bool = False,
    ) -> None:
        config = SynthConfig() if config is None else config
        if not isinstance(config, SynthConfig):
            raise ValueError(f"config must be a SynthConfig, got {type(config).__name__}")
        config.validate()  # fields may have been changed after construction
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        if isinstance(num_clips, bool) or not isinstance(num_clips, (int, np.integer)) or num_clips < 1:
            raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not isinstance(trap_share, (int, float)) or not 0.0 <= float(trap_share) <= 1.0:
            raise ValueError(f"trap_share must be a number in [0, 1], got {trap_share!r}")
        if trap_cue not in CUES:
            raise ValueError(f"unknown trap_cue {trap_cue!r}; choose from {', '.join(CUES)}")
        if test_variant not in TEST_VARIANTS:
            raise ValueError(f"unknown test_variant {test_variant!r}; choose from {', '.join(TEST_VARIANTS)}")
        if not isinstance(train, bool):
            raise ValueError(f"train must be a bool, got {train!r}")
        if not isinstance(instance_masks, bool):
            raise ValueError(f"instance_masks must be a bool, got {instance_masks!r}")
        if split == "trap":
            if config.num_appearances < config.num_motions:
                raise ValueError(
                    f"the trap split needs at least as many appearance classes as motion classes so each label has "
                    f"its own cue; got num_appearances={config.num_appearances} < {config.num_motions} motions"
                )
            if config.num_appearances < 2:
                raise ValueError("the trap split needs num_appearances >= 2 so that a cue can conflict with the label")
        if config.camouflage and trap_cue == "sensitive" and split in ("appearance", "trap"):
            raise ValueError(
                "camouflage hides the object's colour and texture, so the 'sensitive' cue would not be visible; "
                "use trap_cue='invariant' or 'both', or turn camouflage off"
            )
        self.split = split
        self.num_clips = int(num_clips)
        self.config = config
        self.seed = int(seed)
        self.trap_share = float(trap_share)
        self.trap_cue = trap_cue
        self.test_variant = test_variant
        self.train = train
        self.instance_masks = instance_masks
        self._stream = 0 if train else 1
        self._offset = float(
            np.random.SeedSequence(self.seed, spawn_key=(self._stream,)).generate_state(1)[0] / 2.0**32
        )

    # ------------------------------------------------------------------ classes
    @property
    def label_names(self) -> list[str]:
        """Class names in label order (motion names, or appearance names for the appearance split)."""
        if self.split == "appearance":
            return self.config.appearance_names(self.trap_cue)
        return list(self.config.motions)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return self.num_clips

    # ------------------------------------------------------------------ sampling
    def _check_index(self, index: int) -> int:
        if isinstance(index, torch.Tensor):
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        index = int(index)
        if index < 0:
            index += self.num_clips
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        return index

    def agrees_in_training(self, index: int) -> bool:
        """Whether training trap clip ``index`` shows the label's cue (the Weyl sequence draw)."""
        return ((self._offset + (index + 1) * _GOLDEN) % 1.0) < self.trap_share

    def classes(self, index: int) -> dict[str, Any]:
        """The label, motion and appearance class of clip ``index`` without rendering it."""
        index = self._check_index(index)
        u = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self._stream, index, 0))).random(3)
        M, A = self.config.num_motions, self.config.num_appearances
        first, other_draw = int(u[0] * M), u[2]
        if self.split == "appearance":
            appearance = min(int(u[0] * A), A - 1)
            motion = min(int(u[1] * M), M - 1)
            return {"label": appearance, "motion": motion, "appearance": appearance, "cue_agrees": True}
        motion = min(first, M - 1)
        target = motion % A
        if self.split == "motion":
            appearance = min(int(u[1] * A), A - 1)
        else:  # trap
            if self.train:
                agree = self.agrees_in_training(index)
            elif self.test_variant == "aligned":
                agree = True
            elif self.test_variant == "conflicting":
                agree = False
            else:
                agree = None
            if agree is None:
                appearance = min(int(u[1] * A), A - 1)
            elif agree:
                appearance = target
            else:
                appearance = (target + 1 + min(int(other_draw * (A - 1)), A - 2)) % A
        return {"label": motion, "motion": motion, "appearance": appearance, "cue_agrees": appearance == target}

    def clip(self, index: int) -> tuple[SynthClip, dict[str, Any]]:
        """Render clip ``index``: the :class:`SynthClip` and its classes (see :meth:`classes`)."""
        index = self._check_index(index)
        cls = self.classes(index)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self._stream, index, 1)))
        clip = render_clip(self.config, cls["motion"], cls["appearance"], rng, cue=self.trap_cue)
        return clip, cls

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        clip, cls = self.clip(index)
        item = {
            "frames": torch.from_numpy(clip.frames),
            "mask": torch.from_numpy(clip.masks),
            "label": cls["label"],
            "motion": cls["motion"],
            "appearance": cls["appearance"],
            "cue_agrees": cls["cue_agrees"],
            "index": index,
        }
        if self.instance_masks:
            item["instances"] = torch.from_numpy(clip.instances)
            item["camouflaged"] = torch.tensor(_camouflaged(clip, self.config))
        return item

    def to_tensors(self, progress: bool = False) -> dict[str, torch.Tensor]:
        """Render every clip into stacked tensors, for fast in-memory training.

        Returns:
            ``frames`` ``(N, T, H, W, 3)`` uint8, ``mask`` ``(N, T, H, W)`` bool, and ``label``,
            ``motion``, ``appearance`` ``(N,)`` int64, ``cue_agrees`` ``(N,)`` bool; with
            ``instance_masks=True`` also ``instances`` ``(N, T, H, W)`` uint8 and ``camouflaged``
            ``(N, num_objects)`` bool.
        """
        T, S = self.config.num_frames, self.config.size
        frames = np.empty((self.num_clips, T, S, S, 3), dtype=np.uint8)
        masks = np.empty((self.num_clips, T, S, S), dtype=bool)
        ints = np.empty((self.num_clips, 3), dtype=np.int64)
        agrees = np.empty(self.num_clips, dtype=bool)
        inst = np.empty((self.num_clips, T, S, S), dtype=np.uint8) if self.instance_masks else None
        camo = np.empty((self.num_clips, self.config.num_objects), dtype=bool) if self.instance_masks else None
        for i in tqdm(range(self.num_clips), desc=f"rendering {self.split} clips", disable=not progress):
            clip, cls = self.clip(i)
            frames[i], masks[i] = clip.frames, clip.masks
            ints[i] = (cls["label"], cls["motion"], cls["appearance"])
            agrees[i] = cls["cue_agrees"]
            if inst is not None and camo is not None and clip.instances is not None:
                inst[i], camo[i] = clip.instances, _camouflaged(clip, self.config)
        out = {
            "frames": torch.from_numpy(frames),
            "mask": torch.from_numpy(masks),
            "label": torch.from_numpy(ints[:, 0].copy()),
            "motion": torch.from_numpy(ints[:, 1].copy()),
            "appearance": torch.from_numpy(ints[:, 2].copy()),
            "cue_agrees": torch.from_numpy(agrees),
        }
        if inst is not None and camo is not None:
            out["instances"], out["camouflaged"] = torch.from_numpy(inst), torch.from_numpy(camo)
        return out

    def settings(self) -> dict[str, Any]:
        """JSON-serialisable description of this split (what :func:`generate` records)."""
        out = {
            "split": self.split,
            "num_clips": self.num_clips,
            "seed": self.seed,
            "train": self.train,
            "trap_share": self.trap_share,
            "trap_cue": self.trap_cue,
            "test_variant": self.test_variant,
            "label_names": self.label_names,
            "config": self.config.to_dict(),
        }
        if self.instance_masks:  # only then, so files written without instance maps keep their bytes
            out["instance_masks"] = True
        return out

    def __repr__(self) -> str:
        extra = ""
        if self.split == "trap":
            extra = f", trap_share={self.trap_share}" if self.train else f", test_variant={self.test_variant!r}"
        return (
            f"SynthDataset(split={self.split!r}, num_clips={self.num_clips}, seed={self.seed}, train={self.train}, "
            f"trap_cue={self.trap_cue!r}{extra}, classes={self.num_classes})"
        )


def _camouflaged(clip: SynthClip, config: SynthConfig) -> list[bool]:
    """Which objects of a clip are camouflaged, in drawing order (``k`` is instance ``k + 1``)."""
    return [bool(o.get("camouflaged", config.camouflage)) for o in clip.meta["objects"]]
