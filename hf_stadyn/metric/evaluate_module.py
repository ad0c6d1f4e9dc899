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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "METRIC_NAME",
    "check_module_batch",
    "interval_problem",
    "load_metric",
    "metric_path",
    "modules_cache_dir",
    "nan_intervals",
    "register_metric",
]

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


# -- input checks and interval notes of the module (here, not in the script, so a registered copy of the
# -- script gets fixes with the package) ---------------------------------------------------------------


def _as_features(x: Any, name: str) -> np.ndarray:
    """``(B, C)`` float64 from one features input; a one-line ``ValueError`` naming ``name`` otherwise."""
    if x is None:
        raise ValueError(f"{name} is missing; give the pooled features of each pair, a (pairs, channels) array.")
    if isinstance(x, (str, bytes)):
        raise ValueError(f"{name} must be a (pairs, channels) array of numbers, got a {type(x).__name__}.")
    if hasattr(x, "detach"):  # a torch tensor, possibly on an accelerator
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (ValueError, TypeError):
        rows = x if isinstance(x, (Sequence, np.ndarray)) else None
        lengths = set()
        if rows is not None:
            for r in rows:
                lengths.add(len(r) if hasattr(r, "__len__") and not isinstance(r, (str, bytes)) else -1)
        if len(lengths) > 1 and -1 not in lengths:
            raise ValueError(
                f"{name} is ragged (rows of {sorted(lengths)} values); every pair member needs the same number "
                "of channels C."
            ) from None
        raise ValueError(
            f"{name} must be a (pairs, channels) array of numbers; it holds {_first_non_number(x)}."
        ) from None
    if arr.size == 0 and arr.ndim <= 2 and (arr.ndim < 2 or arr.shape[0] == 0):
        return arr.reshape(0, arr.shape[1] if arr.ndim == 2 else 0)
    if arr.ndim != 2:
        hint = (
            "one row of C values per pair (for a single pair, [[...]])"
            if arr.ndim < 2
            else "pool the feature maps / tokens to one vector per clip first"
        )
        raise ValueError(f"{name} has shape {tuple(arr.shape)}; expected (pairs, channels): {hint}.")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); check the model's numerics (e.g. fp16 "
            "overflow) before computing."
        )
    return arr


def _first_non_number(x: Any) -> str:
    """A short description of the first value of ``x`` that is not a number (for one-line errors)."""
    try:
        flat = np.asarray(x, dtype=object).ravel()
    except (ValueError, TypeError):
        return "values that are not numbers"
    for v in flat:
        try:
            float(v)
        except (TypeError, ValueError):
            text = repr(v)
            return f"{text[:40] + '...' if len(text) > 40 else text} ({type(v).__name__}), not a number"
    return "values that are not numbers"


def check_module_batch(features_a: Any, features_b: Any, factors: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate one batch of the evaluate module; returns ``(a (B, C), b (B, C), factor names (B,))``.

    Factors may be the strings "static"/"dynamic" (also "s"/"d", any case), the ints 1 (static) / 0
    (dynamic) as :mod:`hf_stadyn.metric.factors` defines them, numpy integers, bools (True = static), a
    numpy array or torch tensor of those, or one label for the whole batch. Every error is one line
    naming the input, with the expected and the given type or shape (never the whole array).
    """
    from .factors import FACTORS, parse_factors

    a = _as_features(features_a, "features_a")
    b = _as_features(features_b, "features_b")
    if a.shape != b.shape:
        raise ValueError(
            f"features_a has shape {tuple(a.shape)} but features_b has shape {tuple(b.shape)}; both need one row "
            "of C values per pair (same pairs, same channels)."
        )
    if factors is None:
        raise ValueError(
            "factors is missing; give one label per pair: 'static' / 'dynamic' (or 1 = static, 0 = dynamic)."
        )
    idx = parse_factors(factors, a.shape[0])
    return a, b, [FACTORS[int(i)] for i in idx]


def interval_problem(factors: Sequence[str], num_chunks: int) -> str:
    """Why the jackknife gave no intervals for these pairs (chunks by pair position, as the module uses).

    The jackknife needs at least 2 chunks holding pairs, and at least 2 pairs of each factor left after
    leaving out any one chunk (docs/method.md §5). Returns a sentence that says what to change.
    """
    from .factors import FACTORS

    n = len(factors)
    if num_chunks < 2:
        return f"num_chunks = {num_chunks}; the jackknife needs at least 2 chunks: pass num_chunks >= 2 (default 10)"
    used = min(num_chunks, n)
    if used < 2:
        return f"only {n} pair(s), so fewer than 2 of the {num_chunks} chunks hold pairs: give more pairs"
    worst = []
    for name in FACTORS:
        per_chunk = [0] * num_chunks
        for i, f in enumerate(factors):
            if f == name:
                per_chunk[i % num_chunks] += 1
        total = sum(per_chunk)
        if total - max(per_chunk) < 2:
            worst.append(f"{total} {name}")
    what = " and ".join(worst) if worst else "the given"
    smaller = f", or a smaller num_chunks (now {num_chunks})" if num_chunks > 2 else ""
    return (
        f"with {what} pair(s), leaving one of the {used} chunks out (pair i is in chunk i % {num_chunks}) leaves "
        f"fewer than 2 pairs of a factor: give more pairs of each factor, spread over the chunks{smaller}"
    )


def nan_intervals(out: dict[str, Any]) -> dict[str, dict[str, float]]:
    """NaN intervals (``low``/``high``/``stderr``) around the point estimates of a result dict without intervals."""
    nan = float("nan")
    points = {"s_dynamic": out["s_dynamic"], "s_static": out["s_static"]}
    for k in ("dynamic", "static", "residual"):
        points[f"percent_{k}"] = points[f"share_{k}"] = 100.0 * out["share"][k]
    return {k: {"estimate": float(v), "low": nan, "high": nan, "stderr": nan} for k, v in points.items()}
