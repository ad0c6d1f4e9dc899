"""Writing StaDyn-Synth splits to disk (mp4 + masks + metadata) and loading them with ``datasets``.

Folder layout written by :func:`generate`::

    out_dir/
      metadata.jsonl        one JSON row per clip (columns below); video/mask paths relative to out_dir
      synth.json            the settings that produced the folder (split, seed, config, label names)
      README.md             dataset card whose YAML ``configs`` point ``datasets`` at metadata.jsonl
      videos/clip_000000.mp4
      masks/clip_000000.npz  array ``mask``: (T, H, W) bool (and, with ``instance_masks=True``, array
                             ``instances``: (T, H, W) uint8, 0 background, k + 1 object k)

Columns: ``video``, ``mask`` (path strings), ``index``, ``label``, ``label_name``, ``motion``,
``motion_name``, ``appearance``, ``appearance_name``, ``cue_agrees``, ``background``, ``camouflage``,
``num_frames``, ``height``, ``width``, ``fps`` and ``objects`` (per object: shape, color, texture,
centers ``(T, 2)`` as [x, y] in pixels, scales ``(T,)``).

Videos stay path strings: ``datasets``' Video feature needs torchcodec, so decode them with
``hf_stadyn.video.read_video``. Any of these loads the folder offline::

    load_synth(out_dir)                                                  # absolute paths
    datasets.load_dataset("json", data_files=f"{out_dir}/metadata.jsonl", split="train")
    datasets.load_dataset(out_dir, split="train")                        # via README.md configs
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from hf_stadyn._io import current_umask

from .._io import atomic_write_json, atomic_write_text
from .config import SynthConfig
from .dataset import SynthDataset

__all__ = ["FORMAT_VERSION", "generate", "load_instance_masks", "load_masks", "load_synth"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_METADATA = "metadata.jsonl"
# libx264 gave different bytes for the same frames with threaded encoding, and now and then with its
# macroblock-tree rate control on these tiny frames; with both off, the same seed gives the same bytes.
_X264_REPRODUCIBLE = {"threads": "1", "x264-params": "mbtree=0"}
_SETTINGS = "synth.json"

_CARD = """---
configs:
- config_name: default
  data_files:
  - split: {split_name}
    path: {metadata}
tags:
- video
- synthetic
- stadyn-synth
---

# StaDyn-Synth: {split} split ({split_name})

Controlled-factor synthetic videos written by `hf_stadyn.synth.generate` (hf-stadyn {version}):
{num_clips} clips of {num_frames} frames at {size}x{size}, {fps:g} fps, seed {seed}.
{description}

Labels ({num_classes}): {label_names}.

Load offline with `hf_stadyn.synth.load_synth("<this folder>")` or
`datasets.load_dataset("json", data_files="<this folder>/{metadata}", split="train")`.
The `video` and `mask` columns are paths relative to this folder; masks are `.npz` files holding a
`mask` array of shape (T, H, W), bool. The full settings are in `{settings}`.
"""


def _describe(ds: SynthDataset) -> str:
    cfg = ds.config
    cue = {
        "invariant": "object shape + background layout",
        "sensitive": "object colour + texture",
        "both": "object shape, colour, texture + background layout",
    }[ds.trap_cue]
    parts = []
    if ds.split == "motion":
        parts.append("Label = motion class; appearance random.")
    elif ds.split == "appearance":
        parts.append(f"Label = appearance class, shown by {cue}; motion random.")
    else:
        if ds.train:
            parts.append(
                f"Bias trap: label = motion class; the static cue ({cue}) agrees with the label in "
                f"{100 * ds.trap_share:g} % of clips."
            )
        else:
            parts.append(f"Bias trap, test variant '{ds.test_variant}': label = motion class; static cue: {cue}.")
    if cfg.camouflage:
        parts.append("Camouflage: objects are textured like the background, so only motion reveals them.")
    elif cfg.camouflage_share:
        parts.append(
            f"Each object is camouflaged (textured like the background) with probability {cfg.camouflage_share:g}."
        )
    if cfg.num_objects > 1:
        parts.append(f"{cfg.num_objects} objects per clip, all with the clip's motion.")
    return " ".join(parts)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {str(out)!r} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(
            f"output folder {str(out)!r} is not empty; choose an empty or new folder, or pass overwrite=True "
            "(--overwrite) to replace it"
        )


def generate(
    out_dir: str | os.PathLike,
    split: str = "motion",
    num_clips: int = 100,
    config: SynthConfig | None = None,
    seed: int = 0,
    *,
    trap_share: float = 0.99,
    trap_cue: str = "invariant",
    test_variant: str = "aligned",
    train: bool = True,
    fps: float = 8.0,
    crf: int = 18,
    overwrite: bool = False,
    progress: bool = False,
    instance_masks: bool = False,
) -> Path:
    """Render a StaDyn-Synth split and write it as mp4 files, mask files and ``datasets`` metadata.

    The folder is built under a temporary name next to ``out_dir`` and renamed into place at the
    end, so an interrupted run leaves nothing half-written at ``out_dir``.

    Args:
        out_dir: destination folder; must be new or empty unless ``overwrite``.
        split, num_clips, config, seed, trap_share, trap_cue, test_variant, train: as in
            :class:`SynthDataset`; clip ``i`` of the folder is item ``i`` of that dataset.
        fps: frame rate written into the mp4 files.
        crf: libx264 quality (0 = lossless luma; chroma is still stored at half resolution).
        overwrite: replace a non-empty ``out_dir``.
        progress: show a tqdm progress bar.
        instance_masks: also store each clip's instance map (array ``instances`` of the mask file,
            :func:`load_instance_masks`; video instance segmentation, docs/vis.md). Off by default:
            the files are then byte for byte those of earlier releases.

    Returns:
        The folder path.

    Example:
        >>> path = generate("synth_trap", split="trap", num_clips=200, seed=0)  # doctest: +SKIP
        >>> load_synth(path)[0]["label_name"]  # doctest: +SKIP
    """
    from .. import __version__
    from ..video import write_video

    ds = SynthDataset(
        split, num_clips, config, seed, trap_share=trap_share, trap_cue=trap_cue, test_variant=test_variant, train=train,
        instance_masks=instance_masks,
    )  # fmt: skip
    if not isinstance(fps, (int, float)) or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an int in 0..51 (libx264 quality), got {crf!r}")
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        cfg = ds.config
        app_names = cfg.appearance_names(ds.trap_cue)
        (tmp / "videos").mkdir()
        (tmp / "masks").mkdir()
        lines = []
        for i in tqdm(range(ds.num_clips), desc=f"writing {split} clips", disable=not progress):
            clip, cls = ds.clip(i)
            video_rel, mask_rel = f"videos/clip_{i:06d}.mp4", f"masks/clip_{i:06d}.npz"
            write_video(tmp / video_rel, clip.frames, fps=fps, crf=crf, options=_X264_REPRODUCIBLE)
            if instance_masks and clip.instances is not None:
                np.savez_compressed(tmp / mask_rel, mask=clip.masks, instances=clip.instances)
            else:
                np.savez_compressed(tmp / mask_rel, mask=clip.masks)
            row: dict[str, Any] = {
                "video": video_rel,
                "mask": mask_rel,
                "index": i,
                "label": cls["label"],
                "label_name": ds.label_names[cls["label"]],
                "motion": cls["motion"],
                "motion_name": cfg.motions[cls["motion"]],
                "appearance": cls["appearance"],
                "appearance_name": app_names[cls["appearance"]],
                "cue_agrees": bool(cls["cue_agrees"]),
                "background": clip.meta["background"],
                "camouflage": cfg.camouflage,
                "num_frames": cfg.num_frames,
                "height": cfg.size,
                "width": cfg.size,
                "fps": float(fps),
                "objects": clip.meta["objects"],
            }
            lines.append(json.dumps(row))
        atomic_write_text(tmp / _METADATA, "\n".join(lines) + "\n")
        settings = {
            "format_version": FORMAT_VERSION,
            "hf_stadyn_version": __version__,
            "fps": float(fps),
            "crf": crf,
            **ds.settings(),
        }
        atomic_write_json(tmp / _SETTINGS, settings)
        split_name = "train" if train else "test"
        atomic_write_text(
            tmp / "README.md",
            _CARD.format(
                split=split,
                split_name=split_name,
                metadata=_METADATA,
                settings=_SETTINGS,
                version=__version__,
                num_clips=ds.num_clips,
                num_frames=cfg.num_frames,
                size=cfg.size,
                fps=float(fps),
                seed=ds.seed,
                description=_describe(ds),
                num_classes=ds.num_classes,
                label_names=", ".join(ds.label_names),
            ),
        )
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0o700; give it the user's mode
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %d %s clips to %s", ds.num_clips, split, out)
    return out


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` onto ``dst`` (absent, empty, or to be replaced)."""
    if dst.is_dir() and any(dst.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
        os.replace(dst, old / "d")
        try:
            os.replace(src, dst)
        except BaseException:
            os.replace(old / "d", dst)  # put the previous folder back
            shutil.rmtree(old, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    if dst.is_dir():
        dst.rmdir()
    os.replace(src, dst)


def _read_rows(folder: Path) -> list[dict[str, Any]]:
    meta = folder / _METADATA
    if not folder.is_dir():
        raise FileNotFoundError(f"StaDyn-Synth folder {str(folder)!r} does not exist; create one with `stadyn synth`")
    if not meta.is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} is not a StaDyn-Synth folder: it has no {_METADATA}; create one with `stadyn synth`"
        )
    rows = []
    with open(meta, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{meta}: line {n} is not valid JSON ({e}); regenerate the folder") from e
    if not rows:
        raise ValueError(f"{meta} has no rows; regenerate the folder with `stadyn synth`")
    return rows


def load_synth(out_dir: str | os.PathLike, *, absolute_paths: bool = True):
    """Load a folder written by :func:`generate` as a ``datasets.Dataset`` (in memory, no cache files).

    Args:
        out_dir: the folder.
        absolute_paths: turn the ``video`` and ``mask`` columns into absolute path strings.

    Returns:
        ``datasets.Dataset`` with the columns listed in this module's docstring; its ``info.description``
        holds the ``synth.json`` settings as JSON.

    Raises:
        FileNotFoundError: no such folder, or it has no ``metadata.jsonl``.
        ValueError: the metadata is malformed.
    """
    import datasets

    folder = Path(out_dir)
    rows = _read_rows(folder)
    for i, row in enumerate(rows):
        for key in ("video", "mask"):
            if not isinstance(row.get(key), str):
                raise ValueError(f"{folder / _METADATA}: row {i} has no {key!r} path; regenerate the folder")
            if absolute_paths:
                row[key] = str((folder / row[key]).resolve())
    settings_path = folder / _SETTINGS
    description = settings_path.read_text(encoding="utf-8") if settings_path.is_file() else ""
    return datasets.Dataset.from_list(rows, info=datasets.DatasetInfo(description=description))


def load_masks(path: str | os.PathLike) -> np.ndarray:
    """Read one mask file written by :func:`generate`: ``(T, H, W)`` bool."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file {str(path)!r} does not exist")
    try:
        with np.load(path) as z:
            mask = z["mask"]
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{str(path)!r} is not a StaDyn-Synth mask file (npz with a 'mask' array): {e}") from e
    if mask.dtype != bool or mask.ndim != 3:
        raise ValueError(f"{str(path)!r}: expected a (T, H, W) bool mask, got {mask.dtype} {mask.shape}")
    return mask


def load_instance_masks(path: str | os.PathLike) -> np.ndarray:
    """Read the instance map of a mask file written by :func:`generate` with ``instance_masks=True``:
    ``(T, H, W)`` uint8, 0 background, ``k + 1`` object ``k``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file {str(path)!r} does not exist")
    try:
        with np.load(path) as z:
            if "instances" not in z.files:
                raise ValueError(
                    f"{str(path)!r} has no instance map; write the folder with generate(..., instance_masks=True)"
                )
            inst = z["instances"]
    except (OSError, ValueError) as e:
        if "instance" in str(e):
            raise
        raise ValueError(f"{str(path)!r} is not a StaDyn-Synth mask file (npz with a 'mask' array): {e}") from e
    if inst.dtype != np.uint8 or inst.ndim != 3:
        raise ValueError(f"{str(path)!r}: expected a (T, H, W) uint8 instance map, got {inst.dtype} {inst.shape}")
    return inst
