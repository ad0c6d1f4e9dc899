"""Differences between two readings: paired (same pairs, same chunks) or independent (docs/method.md §5).

Two readings of the same pairs are correlated: the pairs that make model A read "dynamic" tend to make
model B read so too. Their difference is then far better known than two independent standard errors
say, and the right interval is a jackknife *of the difference* over the same chunks: the K
leave-one-chunk-out replicates of A minus those of B (``LayerBias.replicates``), with a t quantile on
K - 1 degrees of freedom (:func:`hf_stadyn.metric.paired_difference`). That needs the two readings to
have used the same pairs, which the pair-set fingerprint of each report checks
(``pair_settings["fingerprint"]``; the reference reading's is ``reference_info["pair_fingerprint"]``).

When the pairs differ (or a reading has no replicates, as reports written before schema 2), the
difference can only be given with independent errors, se = sqrt(se_A^2 + se_B^2), which is
conservative for positively correlated readings and exact for independent ones.

Quantities (per layer): ``share_dynamic``, ``share_static``, ``share_residual`` (the continuous share
100 * pi_F, in %) and the raw scores ``s_dynamic``, ``s_static``.

:func:`compare_reports` is what :meth:`BiasReport.compare <hf_stadyn.report.BiasReport.compare>` returns.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hf_stadyn.metric import Interval, LayerBias, paired_difference

if TYPE_CHECKING:  # pragma: no cover
    from .core import BiasReport

__all__ = [
    "COMPARISON_SCHEMA",
    "QUANTITIES",
    "BiasComparison",
    "PairSetMismatchError",
    "compare_readings",
    "compare_reports",
    "delta",
    "share_interval",
]

logger = logging.getLogger(__name__)

COMPARISON_SCHEMA = "hf-stadyn/bias-comparison"
#: Compared quantities: shares in % (100 * pi_F), then the raw scores.
QUANTITIES = ("share_dynamic", "share_static", "share_residual", "s_dynamic", "s_static")
_FACTORS = ("dynamic", "static", "residual")


class PairSetMismatchError(ValueError):
    """Two readings that were not made on the same pairs were asked for a paired difference."""


# -- one quantity of one layer -------------------------------------------------------------------------


def value(lb: LayerBias, quantity: str) -> float:
    """The point value of ``quantity`` for ``lb``: 100 * pi_F for ``share_*``, s_F for ``s_*``."""
    if quantity.startswith("share_"):
        return 100.0 * float(lb.share[quantity.removeprefix("share_")])
    if quantity in ("s_dynamic", "s_static"):
        return float(getattr(lb, quantity))
    raise ValueError(f"unknown quantity {quantity!r}; use one of {list(QUANTITIES)}.")


def share_interval(lb: LayerBias, factor: str) -> Interval | None:
    """The interval of the share 100 * pi_F of ``factor`` (key ``share_<f>``, or ``percent_<f>`` in old reports)."""
    return lb.intervals.get(f"share_{factor}") or lb.intervals.get(f"percent_{factor}")


def interval(lb: LayerBias, quantity: str) -> Interval | None:
    """The jackknife interval of ``quantity`` for ``lb`` (None when the reading has none)."""
    if quantity.startswith("share_"):
        return share_interval(lb, quantity.removeprefix("share_"))
    return lb.intervals.get(quantity)


def replicates(lb: LayerBias, quantity: str) -> np.ndarray | None:
    """The K leave-one-chunk-out values of ``quantity`` (``LayerBias.replicates``), or None when absent."""
    reps = getattr(lb, "replicates", None) or {}
    r = reps.get(quantity)
    if r is None or len(r) < 2:
        return None
    return np.asarray(r, dtype=np.float64)


def can_pair(a: LayerBias, b: LayerBias) -> str | None:
    """None when ``a`` and ``b`` carry replicates over the same number of chunks, else why not (one line)."""
    ra, rb = replicates(a, "s_dynamic"), replicates(b, "s_dynamic")
    if ra is None or rb is None:
        which = "both readings" if ra is None and rb is None else ("the first" if ra is None else "the second")
        return f"{which} of layer {a.layer!r} carry no jackknife replicates (a report from before schema 2?)"
    if len(ra) != len(rb):
        return f"layer {a.layer!r} has {len(ra)} vs {len(rb)} jackknife chunks (different --num-chunks?)"
    return None


def _paired(a: LayerBias, b: LayerBias, quantity: str, confidence: float) -> Interval:
    """Jackknife of the difference over the same chunks (:func:`hf_stadyn.metric.paired_difference`)."""
    return paired_difference(a, b, quantity, confidence=confidence)


def _implied_quantile(iv: Interval) -> float:
    """The quantile an interval was built with, (high - low) / (2 se) (t on K - 1 df, or the normal one)."""
    return (iv.high - iv.low) / (2.0 * iv.stderr) if iv.stderr > 0 else 0.0


def _independent(a: LayerBias, b: LayerBias, quantity: str) -> Interval | None:
    ia, ib = interval(a, quantity), interval(b, quantity)
    if ia is None or ib is None:
        return None
    est = value(a, quantity) - value(b, quantity)
    se = math.hypot(ia.stderr, ib.stderr)
    q = max(_implied_quantile(ia), _implied_quantile(ib))  # the wider of the two (fewer chunks)
    return Interval(est, est - q * se, est + q * se, se)


def delta(a: LayerBias, b: LayerBias, quantity: str, *, paired: bool, confidence: float | None = None) -> Interval:
    """``a`` minus ``b`` for one quantity, with its interval (NaN bounds when neither way gives one).

    Args:
        a, b: readings of the same layer.
        quantity: one of :data:`QUANTITIES`.
        paired: jackknife of the difference over the same chunks (the readings must share their pairs;
            the caller checks that); else independent errors.
        confidence: of the paired interval (default: ``a.confidence``); the independent one keeps the
            readings' own confidence.
    """
    if paired:
        return _paired(a, b, quantity, a.confidence if confidence is None else confidence)
    iv = _independent(a, b, quantity)
    if iv is None:
        est = value(a, quantity) - value(b, quantity)
        return Interval(est, math.nan, math.nan, math.nan)
    return iv


# -- whole readings ----------------------------------------------------------------------------------


def compare_readings(
    a: Mapping[str, LayerBias], b: Mapping[str, LayerBias], *, paired: bool
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per-layer deltas ``a - b`` over the layers both hold (in ``a``'s order).

    With ``paired=True`` a layer without usable replicates falls back to independent errors; the
    returned notes say which. Returns ``({layer: {"method": "paired" | "independent", quantity:
    Interval, ...}}, notes)``.
    """
    out: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for name, la in a.items():
        lb = b.get(name)
        if lb is None:
            continue
        why = can_pair(la, lb) if paired else "not paired"
        use_paired = paired and why is None
        if paired and why is not None:
            notes.append(f"{why}: independent errors instead")
        row: dict[str, Any] = {"method": "paired" if use_paired else "independent"}
        for q in QUANTITIES:
            row[q] = delta(la, lb, q, paired=use_paired)
        out[name] = row
    return out, notes


def _fingerprint(report: BiasReport) -> str | None:
    fp = report.pair_settings.get("fingerprint")
    return fp if isinstance(fp, str) and fp else None


@dataclass
class BiasComparison:
    """Report A minus report B, layer by layer (see :mod:`hf_stadyn.report.compare`).

    Attributes:
        model_a, model_b: the two model ids.
        method: ``"paired"`` (jackknife of the difference over the same chunks) or ``"independent"``.
        fingerprint_a, fingerprint_b: the pair-set fingerprints (None when a report has none).
        layers: ``{layer: {"method": ..., quantity: Interval}}`` for the layers both reports hold.
        only_in_a, only_in_b: layer names one report lacks.
        confidence: level of the intervals.
        notes: why a fall-back was used, one line each.
    """

    model_a: str
    model_b: str
    method: str
    fingerprint_a: str | None
    fingerprint_b: str | None
    layers: dict[str, dict[str, Any]]
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    confidence: float = 0.95
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe document (NaN bounds, where no interval exists, become null)."""

        def num(x: float) -> float | None:
            return None if not math.isfinite(x) else float(x)

        layers = []
        for name, row in self.layers.items():
            d: dict[str, Any] = {"layer": name, "method": row["method"]}
            for q in QUANTITIES:
                iv: Interval = row[q]
                d[q] = {"delta": num(iv.estimate), "low": num(iv.low), "high": num(iv.high), "stderr": num(iv.stderr)}
            layers.append(d)
        return {
            "schema": COMPARISON_SCHEMA,
            "schema_version": 1,
            "a": {"model": self.model_a, "fingerprint": self.fingerprint_a},
            "b": {"model": self.model_b, "fingerprint": self.fingerprint_b},
            "method": self.method,
            "confidence": self.confidence,
            "units": {"share_*": "percentage points of 100 * pi_F", "s_*": "raw score"},
            "layers": layers,
            "only_in_a": list(self.only_in_a),
            "only_in_b": list(self.only_in_b),
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys, ends with a newline)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    def table_lines(self) -> list[str]:
        """The comparison as a plain-text table (what ``stadyn compare`` prints)."""
        conf = f"{100 * self.confidence:g}%"
        how = {
            "paired": "paired (jackknife of the difference over the same chunks)",
            "independent": "independent errors (the readings are not paired)",
        }[self.method]
        lines = [f"A = {self.model_a}", f"B = {self.model_b}", f"A - B, {conf} intervals, {how}"]
        head = f"{'layer':<16} {'d dynamic % [CI]':>24} {'d static % [CI]':>24} {'d s_D [CI]':>26} {'d s_S [CI]':>26}"
        lines.append(head)
        for name, row in self.layers.items():
            cells = [_delta_cell(row["share_dynamic"], 1), _delta_cell(row["share_static"], 1)]
            cells += [_delta_cell(row["s_dynamic"], 3), _delta_cell(row["s_static"], 3)]
            mark = "" if row["method"] == self.method else f"  ({row['method']})"
            lines.append(f"{name:<16} {cells[0]:>24} {cells[1]:>24} {cells[2]:>26} {cells[3]:>26}{mark}")
        if self.only_in_a:
            lines.append(f"only in A (not compared): {', '.join(self.only_in_a)}")
        if self.only_in_b:
            lines.append(f"only in B (not compared): {', '.join(self.only_in_b)}")
        lines += [f"note: {n}" for n in self.notes]
        return lines


def _delta_cell(iv: Interval, digits: int) -> str:
    if not math.isfinite(iv.low):
        return f"{iv.estimate:+.{digits}f}"
    return f"{iv.estimate:+.{digits}f} [{iv.low:+.{digits}f}, {iv.high:+.{digits}f}]"


def compare_reports(a: BiasReport, b: BiasReport, *, independent: bool = False) -> BiasComparison:
    """``a`` minus ``b``: paired when both reports read the same pairs, else refused (or independent).

    Args:
        a, b: the two reports (layers are matched by name; layers only one holds are listed apart).
        independent: compare with independent errors when the pairs differ or cannot be checked,
            instead of refusing.

    Raises:
        PairSetMismatchError: the pair-set fingerprints differ or are missing and ``independent`` is off.
        ValueError: the reports share no layer.
    """
    fa, fb = _fingerprint(a), _fingerprint(b)
    only_a = [n for n in a.layers if n not in b.layers]
    only_b = [n for n in b.layers if n not in a.layers]
    if len(only_a) == len(a.layers):
        raise ValueError(
            f"the reports share no layer (A {list(a.layers)}, B {list(b.layers)}); compare readings of the same layers."
        )
    notes: list[str] = []
    same = fa is not None and fa == fb
    if not same:
        if fa is None or fb is None:
            why = "report A" if fa is None and fb is not None else "report B" if fb is None and fa is not None else None
            why = f"{why} has no pair-set fingerprint" if why else "neither report has a pair-set fingerprint"
        else:
            why = f"the pair sets differ (fingerprints {fa[:12]}... vs {fb[:12]}...)"
        if not independent:
            raise PairSetMismatchError(
                f"cannot pair the readings: {why}; probe both models on the same pairs, or pass --independent "
                "(independent=True) to compare with independent errors."
            )
        notes.append(f"{why}: the deltas use independent errors (conservative if the readings are correlated)")
    layers, layer_notes = compare_readings(a.layers, b.layers, paired=same)
    notes += layer_notes
    conf = next(iter(a.layers.values())).confidence
    if only_a or only_b:
        logger.info("comparing %d shared layers; only in A: %s; only in B: %s", len(layers), only_a, only_b)
    return BiasComparison(
        model_a=a.model_id,
        model_b=b.model_id,
        method="paired" if same else "independent",
        fingerprint_a=fa,
        fingerprint_b=fb,
        layers=layers,
        only_in_a=only_a,
        only_in_b=only_b,
        confidence=conf,
        notes=notes,
    )
