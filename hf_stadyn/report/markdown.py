"""The report as markdown: per-layer shares (the headline) and raw scores, channel categories, reference deltas.

:func:`render_markdown` is what :meth:`BiasReport.to_markdown <hf_stadyn.report.BiasReport.to_markdown>`
returns (``report.md``, and the bias section of model cards). The quantities in the tables are defined
in docs/method.md §3-5.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from hf_stadyn.metric import CATEGORIES, LayerBias

from .headline import DIMS_LABEL, delta_text, share_text

if TYPE_CHECKING:  # pragma: no cover
    from .core import BiasReport

__all__ = ["render_markdown"]


def render_markdown(
    report: BiasReport, figures: Mapping[str, str] | None = None, heading_level: int = 1, title: bool = True
) -> str:
    """Markdown tables: per-layer shares and scores, channel categories, reference deltas.

    Args:
        report: the report to render.
        figures: optional ``{caption: relative path}`` of images to link under "Figures".
        heading_level: level of the title heading (sections are one level deeper).
        title: start with the title heading (off when embedding in a model card).
    """
    h = "#" * max(1, int(heading_level))
    hh = h + "#"
    first = next(iter(report.layers.values()))
    conf = f"{100 * first.confidence:g}%"
    lines = [f"{h} Static/dynamic bias: `{report.model_id}`", ""] if title else []
    rev = f" at revision `{report.revision}`" if report.revision else ""
    lines.append(
        f"Model `{report.model_id}`{rev}, {len(report.layers)} probed layer(s); hf-stadyn "
        f"{report.versions.get('hf_stadyn') or '?'} (method: Kowal et al., TPAMI, arXiv 2211.01783)."
    )
    lines.append("")
    lines += [
        f"{hh} Layer estimate",
        "",
        f"| layer | C | pairs D / S | dynamic % [{conf} CI] | static % [{conf} CI] | residual % | "
        f"{DIMS_LABEL} D / S / R | s_D [{conf} CI] | s_S [{conf} CI] |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, lb in report.layers.items():
        dims = f"{lb.percent['dynamic']:.1f} / {lb.percent['static']:.1f} / {lb.percent['residual']:.1f}"
        lines.append(
            f"| {_md(name)} | {lb.num_channels} | {lb.num_pairs['dynamic']} / {lb.num_pairs['static']} | "
            f"{share_text(lb, 'dynamic')} | {share_text(lb, 'static')} | {share_text(lb, 'residual')} | {dims} | "
            f"{_with_ci(lb, 's_dynamic')} | {_with_ci(lb, 's_static')} |"
        )
    lines += [
        "",
        "dynamic / static / residual % = the share 100 * pi_F (softmax of s_D, s_S and a residual score fixed "
        "at 1, so each factor stays within about 14-42 %); compare models relatively and read the raw scores "
        f"s_D, s_S next to it. {DIMS_LABEL} = floor(pi_F * C) / C, the paper's convention, moves in steps of "
        "100 / C and has no interval of its own. Intervals: " + _interval_note(report, first),
        "",
        f"{hh} Channel categories",
        "",
        "| layer | tau | dynamic | static | joint | none | dead |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, lb in report.layers.items():
        cells = " | ".join(f"{lb.category_counts[k]} ({lb.category_percent[k]:.1f} %)" for k in CATEGORIES)
        lines.append(f"| {_md(name)} | {lb.threshold:g} | {cells} | {lb.dead_channels} |")
    lines += [
        "",
        "Counts of channels with rho_D, rho_S above/below tau (strict); % over all C channels. Dead "
        '(zero-variance) channels are counted as "none" and listed apart.',
        "",
    ]
    if report.reference is not None:
        lines += _reference_markdown(report, hh)
    if report.pair_settings or report.seed is not None:
        lines += [f"{hh} Pairs and seeds", ""]
        for k, v in report.pair_settings.items():
            lines.append(f"- {k}: `{json.dumps(v)}`")
        lines.append(f"- seed: `{json.dumps(report.seed)}`")
        lines.append("")
    if figures:
        lines += [f"{hh} Figures", ""]
        for caption, path in figures.items():
            lines += [f"![{caption}]({path})", ""]
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items() if v)
    if versions:
        lines += [f"Library versions: {versions}.", ""]
    return "\n".join(lines)


def _reference_markdown(report: BiasReport, hh: str) -> list[str]:
    assert report.reference is not None
    desc = report.reference_info.get("description") or report.reference_info.get("kind") or "reference"
    deltas = report.reference_deltas()
    paired, why = report.reference_pairing()
    conf = f"{100 * next(iter(report.layers.values())).confidence:g}%"
    how = (
        "both were read on the same pairs, so the intervals are a jackknife of the difference over the same "
        "chunks (paired)"
        if paired
        else f"the intervals use independent standard errors ({why}), which is conservative when both were read "
        "on the same pairs"
    )
    lines = [
        f"{hh} Compared with the reference: {_md(str(desc))}",
        "",
        "The same architecture at initialisation is the baseline; the informative reading is the move away "
        f"from it. Deltas are trained minus reference, in percentage points of the share, with {conf} "
        f"intervals; {how}. z = delta / its standard error.",
        "",
        f"| layer | reference dynamic % | reference static % | d dynamic % [{conf} CI] | d static % [{conf} CI] | "
        f"d s_D (z) | d s_S (z) | d {DIMS_LABEL} D / S | d dynamic ch. | d static ch. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in report.layers:
        r = report.reference.get(name)
        if r is None:
            lines.append(f"| {_md(name)} | - | - | - | - | - | - | - | - | - |")
            continue
        d = deltas[name]
        lines.append(
            f"| {_md(name)} | {share_text(r, 'dynamic')} | {share_text(r, 'static')} | "
            f"{delta_text(d, 'share_dynamic')} | {delta_text(d, 'share_static')} | "
            f"{_delta_z(d, 's_dynamic')} | {_delta_z(d, 's_static')} | "
            f"{d['percent_dynamic']:+.1f} / {d['percent_static']:+.1f} | "
            f"{d['channels_dynamic']:+d} | {d['channels_static']:+d} |"
        )
    lines.append("")
    return lines


# -- helpers ---------------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _with_ci(lb: LayerBias, key: str) -> str:
    value = getattr(lb, key)
    iv = lb.intervals.get(key)
    if iv is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def _interval_note(report: BiasReport, lb: LayerBias) -> str:
    """Which jackknife the intervals are (chunks by source video or by pair index, K when known), or why none."""
    if not any(x.intervals for x in report.layers.values()):
        videos = report.pair_settings.get("num_videos")
        why = f" (the pairs come from {videos} video(s))" if isinstance(videos, int) else ""
        return f"none: fewer than 2 jackknife chunks hold pairs{why}; the numbers are point estimates."
    unit = {"video": "chunks of source videos", "pair": "chunks of pair indices"}.get(
        str(report.pair_settings.get("chunking")), "pair chunks"
    )
    k = getattr(lb, "num_chunks_used", 0)
    return f"leave-one-chunk-out jackknife over {unit}" + (f" (K = {k}, t quantile on K - 1 df)." if k else ".")


def _delta_z(d: Mapping[str, float], key: str) -> str:
    z = d.get(f"z_{key}")
    return f"{d[key]:+.3f}" + (f" ({z:+.1f})" if z is not None else "")
