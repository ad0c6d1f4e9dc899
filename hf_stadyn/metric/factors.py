"""The factor vocabulary: the two factors a probe pair can share (docs/method.md §1).

A *static* pair shares appearance and varies in motion; a *dynamic* pair shares motion and varies in
appearance. Everywhere in hf_stadyn a factor is the int ``DYNAMIC`` (0) or ``STATIC`` (1), named
``FACTORS[f]`` (``"dynamic"`` / ``"static"``). This module is the one place that defines them; other
packages import them from :mod:`hf_stadyn.metric`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DYNAMIC", "FACTORS", "STATIC", "factor_name", "parse_factors"]

DYNAMIC = 0
STATIC = 1
#: Factor names, indexed by the factor int: ``FACTORS[DYNAMIC] == "dynamic"``.
FACTORS = ("dynamic", "static")

_ALIASES = {"dynamic": DYNAMIC, "d": DYNAMIC, "static": STATIC, "s": STATIC}


def factor_name(factor: int) -> str:
    """``0`` -> ``"dynamic"``, ``1`` -> ``"static"``; raises ``ValueError`` for any other value."""
    if isinstance(factor, (int, np.integer)) and not isinstance(factor, bool) and int(factor) in (DYNAMIC, STATIC):
        return FACTORS[int(factor)]
    raise ValueError(f"factor must be {DYNAMIC} (dynamic) or {STATIC} (static), got {factor!r}.")


def parse_factors(factors: Any, batch: int, *, name: str = "factors") -> np.ndarray:
    """Turn factor labels into an int array ``(batch,)`` of DYNAMIC (0) / STATIC (1).

    Accepts strings ``"dynamic"``/``"static"`` (also ``"d"``/``"s"``, any case), ints 0/1, bools
    (True = static), a torch tensor or numpy array of those, or a single label applied to the whole
    batch. Raises ``ValueError`` for anything else, naming the offending position.
    """
    if isinstance(factors, (str, int, np.integer)) and not isinstance(factors, bool):
        factors = [factors] * batch
    try:
        import torch

        if isinstance(factors, torch.Tensor):
            factors = factors.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(factors, dtype=object).reshape(-1)
    if arr.shape[0] != batch:
        raise ValueError(
            f"{name} has {arr.shape[0]} labels but the features have {batch} pairs; give one factor label per pair."
        )
    out = np.empty(batch, dtype=np.int64)
    for i, f in enumerate(arr):
        if isinstance(f, (bool, np.bool_)):
            out[i] = STATIC if f else DYNAMIC
        elif isinstance(f, (int, np.integer)) and int(f) in (DYNAMIC, STATIC):
            out[i] = int(f)
        elif isinstance(f, str) and f.strip().lower() in _ALIASES:
            out[i] = _ALIASES[f.strip().lower()]
        else:
            raise ValueError(
                f"{name}[{i}] = {f!r} is not a known factor label; use 'dynamic' or 'static' "
                f"(or 0 = dynamic, 1 = static)."
            )
    return out
