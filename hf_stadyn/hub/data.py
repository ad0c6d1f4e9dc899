"""A Hub dataset as a local ``save_to_disk`` folder, for readers that take folders (``stadyn train --data ID``)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

__all__ = ["hub_dataset_folder"]


def hub_dataset_folder(repo_id: str, *, name: str = "--data", config: str | None = None) -> Path:
    """``datasets.load_dataset(repo_id[, config])`` saved with ``save_to_disk`` into a temporary folder (removed at
    exit); returns the folder. The default config of StaDyn-Synth (``motion``: ``train`` and ``test``) is what
    ``stadyn train --data hf-stadyn/stadyn-synth`` trains and evaluates on.

    Raises:
        FileNotFoundError / ConnectionError: one line, as :func:`hf_stadyn.video.sources.load_video_dataset`.
    """
    import datasets

    from hf_stadyn.video.sources import _load_hub_dataset

    ds = _load_hub_dataset(repo_id, None, name)  # type: ignore[arg-type]  # None: every split if config is None else datasets.load_dataset(repo_id, config)
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({"train": ds})
    out = Path(tempfile.mkdtemp(prefix="stadyn-hub-data-"))
    atexit.register(shutil.rmtree, out, True)
    ds.save_to_disk(str(out / "data"))
    return out / "data"
