"""The bias-history figure: layer biases versus training step (from :class:`~hf_stadyn.debias.BiasTracker`).

:func:`plot_bias_history` draws what :class:`hf_stadyn.debias.BiasTracker` records during training:
per layer the share of dynamic / static dimensions (docs/method.md §3) and the raw scores, and with
StaticDropout (docs/method.md §6) the size and turnover of the static set. ``BiasTracker.plot`` calls it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hf_stadyn._io import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from hf_stadyn.debias.tracking import BiasRecord

__all__ = ["plot_bias_history"]


def plot_bias_history(history: Sequence[BiasRecord], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Write the bias-versus-step figure of ``history`` to ``path`` (PNG, atomically).

    Panels, left to right: the share 100 * pi_F per layer (dynamic solid, static dashed), raw scores
    s_D / s_S per layer, and, when any record carries StaticDropout state, the static set's size and
    how many channels it kept from the previous set. Layers absent from a record are skipped there.

    Args:
        history: the tracker's records (``BiasTracker.history``), in step order.
        path: where to write the PNG (its folder is created).
        title: optional figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(name for r in history for name in r.layers))
    has_sd = any(r.static_dropout is not None for r in history)
    ncols = 3 if has_sd else 2
    fig, axes = plt.subplots(1, ncols, figsize=(4.6 * ncols, 3.6), squeeze=False)
    ax_pct, ax_raw = axes[0][0], axes[0][1]
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    for i, name in enumerate(layers):
        col = colors[i % len(colors)]
        xs = [r.step for r in history if name in r.layers]
        dyn = [r.layers[name]["share_percent"]["dynamic"] for r in history if name in r.layers]
        sta = [r.layers[name]["share_percent"]["static"] for r in history if name in r.layers]
        ax_pct.plot(xs, dyn, "-o", color=col, ms=3, label=f"{name} dynamic")
        ax_pct.plot(xs, sta, "--s", color=col, ms=3, label=f"{name} static")
        sd_ = [r.layers[name]["s_dynamic"] for r in history if name in r.layers]
        ss_ = [r.layers[name]["s_static"] for r in history if name in r.layers]
        ax_raw.plot(xs, sd_, "-o", color=col, ms=3, label=f"{name} s_D")
        ax_raw.plot(xs, ss_, "--s", color=col, ms=3, label=f"{name} s_S")
    ax_pct.set_xlabel("optimizer step")
    ax_pct.set_ylabel("share of dimensions (%)")
    ax_pct.set_title("dynamic (solid) / static (dashed)")
    ax_pct.legend(fontsize=7)
    ax_raw.set_xlabel("optimizer step")
    ax_raw.set_ylabel("raw score")
    ax_raw.set_title("s_D (solid) / s_S (dashed)")
    ax_raw.legend(fontsize=7)
    if has_sd:
        ax = axes[0][2]
        xs = [r.step for r in history if r.static_dropout is not None]
        size = [r.static_dropout["num_static"] for r in history if r.static_dropout is not None]
        kept = [
            (r.static_dropout["kept"] if r.static_dropout.get("kept") is not None else math.nan)
            for r in history
            if r.static_dropout is not None
        ]
        ax.step(xs, size, where="post", label="static set size")
        ax.plot(xs, kept, "o", ms=4, label="kept from previous set")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("channels")
        ax.set_title("StaticDropout static set")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
