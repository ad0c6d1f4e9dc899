"""Locate, register and load the ``static_dynamic_bias`` evaluate module shipped with hf_stadyn.

``evaluate.load`` resolves a bare name only from the current directory, the Hub, or its modules
cache (``$HF_MODULES_CACHE/evaluate_modules/metrics/evaluate-metric--<name>/<hash>/``). Offline,
:func:`register_metric` (CLI: ``stadyn register-metric``) copies the shipped module into that cache so
that ``evaluate.load("static_dynamic_bias")`` works from any working directory;
:func:`load_metric` loads it by path and needs no registration.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["METRIC_NAME", "load_metric", "metric_path", "modules_cache_dir", "register_metric"]

METRIC_NAME = "static_dynamic_bias"
_FILES = (f"{METRIC_NAME}.py", "README.md")


def metric_path() -> Path:
    """The folder of the shipped evaluate module (contains ``static_dynamic_bias.py`` and README.md)."""
    return Path(__file__).resolve().parent / METRIC_NAME


def modules_cache_dir() -> Path:
    """``HF_MODULES_CACHE`` as evaluate computes it (``$HF_HOME/modules`` by default)."""
    env = os.environ.get("HF_MODULES_CACHE")
    if env:
        return Path(env).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "huggingface"
    )
    return Path(hf_home).expanduser() / "modules"


def register_metric(cache_dir: str | os.PathLike | None = None) -> Path:
    """Copy the module into evaluate's modules cache under the key evaluate looks up for a bare name.

    Idempotent: the folder is named by the SHA-256 of the module script, like evaluate's own cache.
    Returns the folder written. Needs no network.
    """
    src = metric_path()
    script = (src / f"{METRIC_NAME}.py").read_bytes()
    digest = hashlib.sha256(script).hexdigest()
    root = Path(cache_dir) if cache_dir is not None else modules_cache_dir()
    parent = root / "evaluate_modules" / "metrics" / f"evaluate-metric--{METRIC_NAME}"
    dest = parent / digest
    if dest.is_dir() and all((dest / f).is_file() for f in _FILES):
        os.utime(dest)  # evaluate picks the newest cached version
        return dest
    parent.mkdir(parents=True, exist_ok=True)
    for init in (root / "evaluate_modules", root / "evaluate_modules" / "metrics", parent):
        (init / "__init__.py").touch(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:8]}.", dir=parent))
    try:
        for f in _FILES:
            shutil.copyfile(src / f, tmp / f)
        (tmp / "__init__.py").touch()
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def load_metric(**kwargs: Any):
    """``evaluate.load`` of the shipped module by path (works offline, from any directory).

    Keyword arguments go to ``evaluate.load`` (e.g. ``keep_in_memory=True``).
    """
    import evaluate

    return evaluate.load(str(metric_path()), **kwargs)
