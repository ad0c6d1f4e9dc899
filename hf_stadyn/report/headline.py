"""The headline of a reading, written one way everywhere: the share 100 * pi_F with its interval.

The continuous share 100 * pi_F (docs/method.md §3) is the quantity with a jackknife interval
(docs/method.md §5), so it leads wherever a reading is shown: the CLI table, ``report.md``, figures,
model cards and the Space. The paper's floored dims % (``floor(pi_F * C) / C``) moves in steps of
100 / C and can fall outside that interval; it stays beside the share, labelled "dims % (paper)",
never with an interval of its own.

Numbers and their interval bounds are rounded to the same number of decimals, and correct rounding is
monotone, so a shown headline always lies inside its shown interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hf_stadyn.metric import LayerBias

from .compare import share_interval

if TYPE_CHECKING:  # pragma: no cover
    from .core import BiasReport

__all__ = ["DIMS_LABEL", "SHARE_DIGITS", "headline_markdown", "share_percent", "share_text", "summary_lines"]

#: How the floored dims % is labelled wherever it is shown next to the share.
DIMS_LABEL = "dims % (paper)"
#: Decimals of the share % and of its interval bounds.
SHARE_DIGITS = 1


def share_percent(lb: LayerBias, factor: str) -> float:
    """The headline value 100 * pi_F of ``factor`` ("dynamic", "static" or "residual")."""
    return 100.0 * float(lb.share[factor])


def share_text(lb: LayerBias, factor: str, digits: int = SHARE_DIGITS) -> str:
    """``"23.6 [22.9, 24.3]"``: the share % of ``factor`` and its interval (no brackets when it has none)."""
    v = share_percent(lb, factor)
    iv = share_interval(lb, factor)
    if iv is None:
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def headline_markdown(lb: LayerBias) -> str:
    """One markdown sentence: bold share % with intervals, then the dims % (paper) and the raw scores."""
    conf = f"{100 * lb.confidence:g} %"
    ci = f" ({conf} intervals)" if share_interval(lb, "dynamic") is not None else ""
    return (
        f"**{share_text(lb, 'dynamic')} % dynamic / {share_text(lb, 'static')} % static** share{ci}; "
        f"{DIMS_LABEL}: {lb.percent['dynamic']:.1f} / {lb.percent['static']:.1f}; "
        f"s_D = {lb.s_dynamic:.3f}, s_S = {lb.s_static:.3f}"
    )


def summary_lines(report: BiasReport) -> list[str]:
    """The per-layer table the CLI prints: share % with intervals first, dims % (paper) and scores beside.

    With a reference reading, the reference's share % and the paired (or independent) delta of the
    dynamic and static share follow on each row.
    """
    first = next(iter(report.layers.values()))
    conf = f"{100 * first.confidence:g}%"
    width = max(16, *(len(n) for n in report.layers))
    head = (
        f"{'layer':<{width}} {'dynamic % [' + conf + ' CI]':>22} {'static % [' + conf + ' CI]':>22} "
        f"{DIMS_LABEL + ' D/S':>20} {'s_D':>7} {'s_S':>7}"
    )
    deltas = report.reference_deltas() if report.reference is not None else {}
    if report.reference is not None:
        head += f"   {'ref dyn / stat %':>16}   {'d dynamic % [CI]':>22}   {'d static % [CI]':>22}"
    lines = [head]
    for name, lb in report.layers.items():
        dims = f"{lb.percent['dynamic']:.1f} / {lb.percent['static']:.1f}"
        line = (
            f"{name:<{width}} {share_text(lb, 'dynamic'):>22} {share_text(lb, 'static'):>22} {dims:>20} "
            f"{lb.s_dynamic:>7.3f} {lb.s_static:>7.3f}"
        )
        r = report.reference.get(name) if report.reference is not None else None
        if r is not None:
            ref = f"{share_percent(r, 'dynamic'):.1f} / {share_percent(r, 'static'):.1f}"
            d = deltas[name]
            line += f"   {ref:>16}   {delta_text(d, 'share_dynamic'):>22}   {delta_text(d, 'share_static'):>22}"
        lines.append(line)
    if report.reference is not None:
        paired, note = report.reference_pairing()
        lines.append(
            "deltas: model minus reference, "
            + (
                "paired (jackknife of the difference over the same chunks)"
                if paired
                else f"independent errors ({note})"
            )
        )
    return lines


def delta_text(d: dict[str, float], key: str, digits: int = SHARE_DIGITS) -> str:
    """``"+9.3 [+8.1, +10.5]"`` from a :meth:`BiasReport.reference_deltas` row (no brackets without bounds)."""
    low, high = d.get(f"{key}_low"), d.get(f"{key}_high")
    if low is None or high is None:
        return f"{d[key]:+.{digits}f}"
    return f"{d[key]:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
