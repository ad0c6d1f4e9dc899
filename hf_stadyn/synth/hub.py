"""StaDyn-Synth as a Hub dataset: every split, with masks and a dataset card, through ``datasets``' ``push_to_hub``.

Layout of the dataset repo (one ``datasets`` config per split family; ``motion`` is the default)::

    motion       train, test                                  label = motion class
    appearance   train, test                                  label = appearance class (shown by the cue)
    trap         train, test_aligned, test_conflicting,       label = motion class; the static cue agrees
                 test_random                                  with it in ``trap_share`` of the train clips

Columns: ``video`` (the mp4 bytes ``stadyn synth --output_dir`` writes, byte for byte), ``mask`` ((T, H, W)
bool, the union of the objects), ``label`` (ClassLabel), ``label_name``, ``motion``, ``motion_name``,
``appearance``, ``appearance_name``, ``cue_agrees``, ``background``, ``index``, ``num_frames``, ``height``,
``width``, ``fps`` and ``objects`` (JSON text: per object shape, colour, texture, centers, scales).

``datasets.load_dataset(repo_id)`` gives the motion config; ``stadyn probe --dataset ID`` and
``stadyn train --data ID`` read it (its ``video`` column of bytes, its ``label`` column).
"""

from __future__ import annotations

import json
import logging
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import SynthConfig

__all__ = ["CONFIGS", "push_synth_to_hub", "synth_hub_splits"]

logger = logging.getLogger(__name__)

#: config -> [(split name, generate() keyword arguments)]
CONFIGS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "motion": [("train", {"train": True}), ("test", {"train": False})],
    "appearance": [("train", {"train": True}), ("test", {"train": False})],
    "trap": [
        ("train", {"train": True}),
        ("test_aligned", {"train": False, "test_variant": "aligned"}),
        ("test_conflicting", {"train": False, "test_variant": "conflicting"}),
        ("test_random", {"train": False, "test_variant": "random"}),
    ],
}
_CUE_TEXT = {
    "invariant": "object shape + background layout (kept by stylization)",
    "sensitive": "object colour + texture (changed by stylization)",
    "both": "object shape, colour, texture + background layout",
}


def _split_dataset(folder: Path, split_settings: dict[str, Any]):
    import datasets
    import numpy as np

    from .export import load_masks, load_synth

    ds = load_synth(folder)
    names = list(split_settings["label_names"])
    rows: dict[str, list[Any]] = {k: [] for k in ("video", "mask", "objects")}
    for row in ds:
        rows["video"].append(Path(row["video"]).read_bytes())
        rows["mask"].append(np.asarray(load_masks(row["mask"]), dtype=bool))
        rows["objects"].append(json.dumps(row["objects"]))
    t, h, w = rows["mask"][0].shape
    keep = ("index", "label_name", "motion", "motion_name", "appearance", "appearance_name", "cue_agrees",
            "background", "num_frames", "height", "width", "fps")  # fmt: skip
    data: dict[str, list[Any]] = {**rows, "label": list(ds["label"]), **{k: list(ds[k]) for k in keep}}
    features = datasets.Features(
        {
            "video": datasets.Value("binary"),
            "mask": datasets.Array3D(shape=(t, h, w), dtype="bool"),
            "objects": datasets.Value("string"),
            "label": datasets.ClassLabel(names=names),
            **{k: ds.features[k] for k in keep},
        }
    )
    return datasets.Dataset.from_dict(data, features=features)


def synth_hub_splits(
    num_clips: int = 100,
    num_test_clips: int | None = None,
    config: SynthConfig | None = None,
    seed: int = 0,
    *,
    trap_share: float = 0.99,
    trap_cue: str = "invariant",
    fps: float = 8.0,
    crf: int = 18,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Render every StaDyn-Synth split: ``({config: datasets.DatasetDict}, {config: {split: settings}})``.

    Each split is written with :func:`~hf_stadyn.synth.generate` (so its mp4 bytes equal the local export of the
    same settings) and read back; ``num_test_clips`` (default: ``max(1, num_clips // 4)``) clips per test split.
    """
    import datasets

    from .export import generate

    config = config or SynthConfig()
    n_test = max(1, num_clips // 4) if num_test_clips is None else int(num_test_clips)
    out: dict[str, Any] = {}
    settings: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="stadyn-synth-hub-") as tmp:
        for name, splits in CONFIGS.items():
            parts = {}
            settings[name] = {}
            for split, kw in splits:
                folder = generate(
                    Path(tmp) / f"{name}-{split}", split=name, num_clips=num_clips if kw["train"] else n_test,
                    config=config, seed=seed, trap_share=trap_share, trap_cue=trap_cue, fps=fps, crf=crf,
                    progress=progress, **kw,
                )  # fmt: skip
                st = json.loads((folder / "synth.json").read_text(encoding="utf-8"))
                settings[name][split] = st
                parts[split] = _split_dataset(folder, st)
            out[name] = datasets.DatasetDict(parts)
    return out, settings


def _card(repo_id: str, settings: Mapping[str, Mapping[str, Any]], command: str | None) -> str:
    from huggingface_hub import DatasetCardData

    from hf_stadyn import __version__
    from hf_stadyn.hub.sections import CARD_BEGIN, CARD_END, PAPER_URL

    first = settings["motion"]["train"]
    cfg = first["config"]
    trap = settings["trap"]["train"]
    data = DatasetCardData(
        license="apache-2.0",
        pretty_name="StaDyn-Synth",
        tags=["video", "synthetic", "stadyn-synth", "hf-stadyn", "static-dynamic-bias"],
        task_categories=["video-classification"],
        size_categories=["n<1K"] if first["num_clips"] < 1000 else ["1K<n<10K"],
    )
    rows = []
    for name, splits in settings.items():
        for split, st in splits.items():
            rows.append(f"| {name} | {split} | {st['num_clips']} | {', '.join(st['label_names'])} |")
    lines = [
        "# StaDyn-Synth",
        "",
        "Synthetic videos whose **static** (appearance) and **dynamic** (motion) factors are known, made to measure "
        f"and to reduce static bias in video models ([Kowal et al., TPAMI]({PAPER_URL}); hf-stadyn {__version__}).",
        "",
        "## How it is generated",
        "",
        f"Each clip is rendered by `hf_stadyn.synth` from seed `{first['seed']}`: {cfg['num_frames']} frames of "
        f"{cfg['size']}x{cfg['size']} pixels at {first['fps']:g} fps (libx264, crf {first['crf']}), "
        f"{cfg['num_objects']} object(s) moving with one of the motions {', '.join(cfg['motions'])} over a "
        "textured background, plus per-pixel noise. Clip `i` of a split depends only on the seed, train/test and "
        "`i`: train and test clips never coincide, and the three trap test variants share every clip's motion, "
        "trajectory, background and noise, only the static cue differs.",
        "",
        "- **Cue**: the appearance class is shown by "
        f"{_CUE_TEXT.get(trap['trap_cue'], trap['trap_cue'])} (`trap_cue={trap['trap_cue']}`).",
        f"- **motion**: label = motion class, appearance random. **appearance**: label = appearance class. "
        f"**trap**: label = motion class; in `train` the cue agrees with the label in {100 * trap['trap_share']:g} % "
        "of the clips; `test_aligned` always agrees, `test_conflicting` never, `test_random` by chance.",
        "",
        "| config | split | clips | labels |",
        "|---|---|---|---|",
        *rows,
        "",
        "## Columns",
        "",
        "`video` (mp4 bytes), `mask` ((T, H, W) bool, the objects' union), `label` and `label_name`, `motion` / "
        "`appearance` (ids and names), `cue_agrees`, `background`, `index`, `num_frames`, `height`, `width`, `fps`, "
        "`objects` (JSON: per object shape, colour, texture, centers (T, 2) as [x, y] pixels, scales).",
        "",
        "## Use",
        "",
        "```python",
        "import datasets",
        f'motion = datasets.load_dataset("{repo_id}")               # the default config: motion',
        f'trap = datasets.load_dataset("{repo_id}", "trap")',
        "```",
        "",
        "```bash",
        f"stadyn probe --model MCG-NJU/videomae-base --dataset {repo_id}",
        f"stadyn train --data {repo_id} --output_dir runs/motion",
        "```",
        "",
    ]
    if command:
        lines += ["## Rebuild", "", "```bash", command, "```", ""]
    lines += ["The full settings of every split are in `stadyn_synth.json`.", ""]
    body = "\n".join(lines)
    return f"---\n{data.to_yaml()}\n---\n\n{CARD_BEGIN}\n{body}{CARD_END}\n"


def push_synth_to_hub(
    repo_id: str,
    num_clips: int = 100,
    num_test_clips: int | None = None,
    config: SynthConfig | None = None,
    seed: int = 0,
    *,
    trap_share: float = 0.99,
    trap_cue: str = "invariant",
    fps: float = 8.0,
    crf: int = 18,
    token: str | None = None,
    private: bool | None = None,
    command: str | list[str] | None = None,
    progress: bool = False,
) -> str:
    """Render every split (:func:`synth_hub_splits`) and push them with ``DatasetDict.push_to_hub``, one config
    each (``motion`` the default), then merge the dataset card into the README ``datasets`` wrote (its
    ``configs`` / ``dataset_info`` metadata kept) and upload ``stadyn_synth.json``. Returns the last commit URL.
    """
    from huggingface_hub import HfApi, hf_hub_download

    from hf_stadyn.hub.merge import merge_card
    from hf_stadyn.hub.publish import _check_repo_id

    repo_id = _check_repo_id(repo_id)
    splits, settings = synth_hub_splits(
        num_clips, num_test_clips, config, seed, trap_share=trap_share, trap_cue=trap_cue, fps=fps, crf=crf,
        progress=progress,
    )  # fmt: skip
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    for name, dd in splits.items():
        dd.push_to_hub(repo_id, config_name=name, set_default=name == "motion", token=token,
                       commit_message=f"StaDyn-Synth: {name} splits")  # fmt: skip
    if isinstance(command, list):
        command = shlex.join(command)
    existing = Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", token=token)).read_text("utf-8")
    readme = merge_card(existing, _card(repo_id, settings, command))
    from huggingface_hub import CommitOperationAdd

    ops = [
        CommitOperationAdd("README.md", readme.encode()),
        CommitOperationAdd("stadyn_synth.json", (json.dumps(settings, indent=1, sort_keys=True) + "\n").encode()),
    ]
    info = api.create_commit(repo_id, ops, commit_message="StaDyn-Synth: dataset card", repo_type="dataset")
    logger.info("pushed StaDyn-Synth to %s", repo_id)
    return info.commit_url
