"""The report's three PNG figures: share per layer, channel categories per layer, rho_S vs rho_D per channel.

Each ``figure_*`` function draws one :class:`matplotlib.figure.Figure` (Agg canvas, ``FIGURE_SIZE``
inches) from a :class:`~hf_stadyn.report.BiasReport`; :func:`save_figures` writes them atomically.
:class:`BiasReport` exposes them as methods (``report.figure_layers()``, ``report.save_figures(...)``).
How the numbers drawn here are defined: docs/method.md §3-5.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hf_stadyn._io import atomic_path
from hf_stadyn.metric import CATEGORIES, LayerBias

from .compare import share_interval
from .headline import DIMS_LABEL
from .schema import _out_dir

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .core import BiasReport

__all__ = [
    "DEFAULT_DPI",
    "FIGURE_CATEGORIES",
    "FIGURE_LAYERS",
    "FIGURE_SIZE",
    "figure_categories",
    "figure_channels",
    "figure_files",
    "figure_layers",
    "rho_figure_name",
    "save_figures",
]

FIGURE_LAYERS = "bias_layers.png"
FIGURE_CATEGORIES = "bias_channels.png"
FIGURE_SIZE = (8.0, 4.5)  # inches; PNGs are FIGURE_SIZE * dpi pixels (800 x 450 at the default dpi)
DEFAULT_DPI = 100

_COLORS = {
    "dynamic": "#3b75af",
    "static": "#ef8636",
    "residual": "#b8b8b8",
    "joint": "#8c6bb1",
    "none": "#d9d9d9",
}


def rho_figure_name(layer: str) -> str:
    """File name of the rho_S vs rho_D scatter of ``layer`` (a file-system-safe slug)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", layer).strip("._") or "layer"
    return f"bias_rho_{slug}.png"


def figure_layers(report: BiasReport, dpi: int = DEFAULT_DPI) -> Figure:
    """Grouped bars per layer: the dynamic / static / residual share 100 * pi_F, with interval error bars.

    Each bar starts at 0 and shows one share, so its error bar (the jackknife interval of that share,
    docs/method.md §5) is drawn on the quantity the bar shows. A short black tick on each dynamic and
    static bar marks the paper's floored dims %. With a reference, its bars are drawn hatched beside.
    """
    fig, ax = _new_figure(dpi)
    names = report.layer_names
    x = np.arange(len(names), dtype=float)
    groups: list[tuple[dict[str, LayerBias], str | None, str]] = [(report.layers, None, "")]
    if report.reference is not None:
        groups.append((report.reference, "//", " (reference)"))
    width = 0.8 / (3 * len(groups))
    top = 0.0
    for g, (layers, hatch, suffix) in enumerate(groups):
        for j, k in enumerate(("dynamic", "static", "residual")):
            pos = x - 0.4 + width * (g * 3 + j + 0.5)
            top = max(top, _share_bars(ax, layers, names, pos, width, k, hatch, suffix, dims_label=g == 0 and j == 0))
    ax.set_ylabel("share 100 * pi_F (%)")
    ax.set_ylim(0, min(100.0, max(10.0, 1.12 * top)))
    ax.set_title(_wrap_title(f"Static/dynamic share per layer: {report.model_id}"), fontsize=10)
    rotated = _layer_ticks(ax, x, names)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.subplots_adjust(left=0.08, right=0.76, bottom=0.22 if rotated else 0.1, top=0.9)
    return fig


def _share_bars(ax, layers, names, x, width, factor, hatch, label_suffix, dims_label: bool) -> float:
    """Bars of one factor's share at ``x`` (layers ``layers`` lacks are skipped); returns the highest top drawn."""
    present = [i for i, n in enumerate(names) if n in layers]
    if not present:
        return 0.0
    xs = x[present]
    lbs = [layers[names[i]] for i in present]
    vals = np.array([100.0 * lb.share[factor] for lb in lbs])
    ax.bar(
        xs,
        vals,
        width,
        color=_COLORS[factor],
        hatch=hatch,
        edgecolor="white",
        linewidth=0.5,
        label=factor + label_suffix,
    )
    err = np.array([_err(lb, factor) for lb in lbs]).T  # (2, n)
    ok = ~np.isnan(err[0])
    if ok.any():
        ax.errorbar(xs[ok], vals[ok], yerr=err[:, ok], fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    highest = float(np.nanmax(vals + np.where(ok, err[1], 0.0)))
    if factor != "residual":
        dims = np.array([lb.percent[factor] for lb in lbs])
        ax.hlines(
            dims,
            xs - width / 2,
            xs + width / 2,
            colors="black",
            linewidth=1.2,
            label=DIMS_LABEL if dims_label else None,
        )
    return highest


def figure_categories(report: BiasReport, dpi: int = DEFAULT_DPI) -> Figure:
    """Stacked bars per layer: % of channels in each category (dynamic, static, joint, none)."""
    fig, ax = _new_figure(dpi)
    names = report.layer_names
    x = np.arange(len(names), dtype=float)
    bottom = np.zeros(len(names))
    for k in CATEGORIES:
        vals = np.array([100.0 * report.layers[n].category_counts[k] / report.layers[n].num_channels for n in names])
        label = "none (residual)" if k == "none" else k
        ax.bar(x, vals, 0.7, bottom=bottom, color=_COLORS[k], edgecolor="white", linewidth=0.5, label=label)
        bottom += vals
    for xi, n in zip(x, names):
        dead = report.layers[n].dead_channels
        if dead:
            ax.annotate(f"{dead} dead", (xi, 100.0), ha="center", va="bottom", fontsize=6)
    ax.set_ylabel("channels (%)")
    ax.set_ylim(0, 108)
    tau = {report.layers[n].threshold for n in names}
    tau_s = ", ".join(f"{t:g}" for t in sorted(tau))
    ax.set_title(_wrap_title(f"Channel categories (tau = {tau_s}): {report.model_id}"), fontsize=10)
    rotated = _layer_ticks(ax, x, names)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.subplots_adjust(left=0.08, right=0.8, bottom=0.22 if rotated else 0.1, top=0.9)
    return fig


def figure_channels(report: BiasReport, layer: str | None = None, dpi: int = DEFAULT_DPI) -> Figure:
    """Scatter of rho_S (y) vs rho_D (x) per channel of ``layer`` (default: the last) with tau lines.

    Channels are coloured by category; the reference's channels (if any) are grey crosses.
    """
    name = report._check_layer(layer)
    lb = report.layers[name]
    fig, ax = _new_figure(dpi)
    if report.reference is not None and name in report.reference:
        r = report.reference[name]
        ax.scatter(
            r.rho_dynamic,
            r.rho_static,
            s=10,
            marker="x",
            color="#8a8a8a",
            linewidths=0.6,
            label="reference",
            zorder=1,
        )
    cats = np.asarray(lb.categories, dtype=object)
    for k in CATEGORIES:
        m = cats == k
        if m.any():
            ax.scatter(
                lb.rho_dynamic[m],
                lb.rho_static[m],
                s=12,
                color=_COLORS[k] if k != "none" else "#6f6f6f",
                label=f"{k} ({int(m.sum())})",
                zorder=2,
            )
    ax.axvline(lb.threshold, color="black", linestyle="--", linewidth=0.8)
    ax.axhline(lb.threshold, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("rho_D (dynamic)")
    ax.set_ylabel("rho_S (static)")
    ax.set_title(_wrap_title(f"Channel scores, layer {name} (tau = {lb.threshold:g}): {report.model_id}"), fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.subplots_adjust(left=0.1, right=0.78, bottom=0.12, top=0.9)
    return fig


def save_figures(
    report: BiasReport,
    out_dir: str | os.PathLike,
    scatter_layers: Sequence[str] | None = None,
    dpi: int = DEFAULT_DPI,
) -> dict[str, Path]:
    """Write the PNG figures (Agg backend) atomically; returns ``{caption: path}``.

    Args:
        report: the report to draw.
        out_dir: folder to write into (created if needed).
        scatter_layers: layers to draw the rho scatter for (default: the last layer).
        dpi: resolution; images are ``FIGURE_SIZE * dpi`` pixels.
    """
    if not (isinstance(dpi, int) and 10 <= dpi <= 600):
        raise ValueError(f"dpi must be an integer in [10, 600], got {dpi!r}.")
    files = figure_files(report, scatter_layers)
    out = _out_dir(out_dir)
    paths: dict[str, Path] = {}
    for caption, fname in files.items():
        if fname == FIGURE_LAYERS:
            fig = figure_layers(report, dpi)
        elif fname == FIGURE_CATEGORIES:
            fig = figure_categories(report, dpi)
        else:
            fig = figure_channels(report, _scatter_layer_of(report, fname, scatter_layers), dpi)
        with atomic_path(out / fname) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
        paths[caption] = out / fname
    return paths


def figure_files(report: BiasReport, scatter_layers: Sequence[str] | None = None) -> dict[str, str]:
    """``{caption: file name}`` of the figures :meth:`save_figures` writes (for relative links)."""
    if isinstance(scatter_layers, str):
        raise ValueError(f"scatter_layers must be a list of layer names, got the string {scatter_layers!r}.")
    layers = [report.last_layer] if scatter_layers is None else [report._check_layer(n) for n in scatter_layers]
    files = {"Share per layer": FIGURE_LAYERS, "Channel categories per layer": FIGURE_CATEGORIES}
    for n in dict.fromkeys(layers):
        fname = rho_figure_name(n)
        if fname in files.values():
            raise ValueError(
                f"scatter layers {list(layers)} map to the same file name {fname!r}; draw them one at a time."
            )
        files[f"rho_S vs rho_D, layer {n}"] = fname
    return files


def _scatter_layer_of(report: BiasReport, fname: str, scatter_layers: Sequence[str] | None) -> str:
    layers = [report.last_layer] if scatter_layers is None else list(scatter_layers)
    return next(n for n in layers if rho_figure_name(n) == fname)


# -- helpers ---------------------------------------------------------------------------------------


def _wrap_title(text: str, width: int = 70) -> str:
    """Break a long figure title (long model ids) over lines so it is not clipped."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _err(lb: LayerBias, factor: str) -> tuple[float, float]:
    """Lower and upper error-bar lengths of the share of ``factor`` (NaN when it has no interval)."""
    iv = share_interval(lb, factor)
    if iv is None:
        return (math.nan, math.nan)
    v = 100.0 * lb.share[factor]
    return (max(v - iv.low, 0.0), max(iv.high - v, 0.0))


def _new_figure(dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGURE_SIZE, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    return fig, ax


def _layer_ticks(ax, x: np.ndarray, names: list[str]) -> bool:
    """Layer names as x tick labels, rotated when long or many; returns whether they are rotated."""
    ax.set_xticks(x)
    rotate = len(names) > 6 or max(len(n) for n in names) > 10
    ax.set_xticklabels(names, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=7)
    ax.set_xlim(-0.6, len(names) - 0.4)
    return rotate
