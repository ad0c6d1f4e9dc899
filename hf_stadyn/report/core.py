"""The :class:`BiasReport` class: one model's static/dynamic reading, layer by layer.

The class holds the data and is the one public entry point; its jobs live in sibling modules it
delegates to: :mod:`.schema` (the versioned JSON document and the checks of what goes in),
:mod:`.markdown` (``report.md``) and :mod:`.figures` (the PNGs). See :mod:`hf_stadyn.report`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_stadyn._io import atomic_write_text
from hf_stadyn.metric import CATEGORIES, LayerBias

from . import figures as _figures
from .figures import DEFAULT_DPI
from .markdown import render_markdown
from .schema import (
    _DEFAULT_REFERENCE_INFO,
    REPORT_JSON,
    REPORT_MD,
    SCHEMA_VERSION,
    _align_reference,
    _canonical,
    _check_seed,
    _dumps,
    _layers_from,
    _out_dir,
    library_versions,
    report_document,
    report_fields,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .compare import BiasComparison

__all__ = ["BiasReport"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class BiasReport:
    """Static/dynamic reading of one model, layer by layer (see :mod:`hf_stadyn.report`).

    Attributes:
        model_id: Hub id or local name of the model.
        layers: ``{layer name: LayerBias}`` in network order.
        revision: model revision (commit or tag), if known.
        pair_settings: how the pairs were made (number of pairs, styles, frames, clip source, ...).
        seed: the seed(s) of the run: an int, a list of ints or ``{name: int}``.
        versions: library versions (see :func:`library_versions`).
        reference: optional reading of the same architecture at initialisation, same layer names.
        reference_info: what the reference is (description, its init seed, ...).
        extra: free-form JSON-safe metadata (e.g. the command line, dataset).
        created: a timestamp, only if the caller passes one (keeps JSON reproducible otherwise).
        schema_version: version of the JSON layout.
    """

    model_id: str
    layers: dict[str, LayerBias]
    revision: str | None = None
    pair_settings: dict[str, Any] = field(default_factory=dict)
    seed: Any = None
    versions: dict[str, str | None] = field(default_factory=dict)
    reference: dict[str, LayerBias] | None = None
    reference_info: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    schema_version: int = SCHEMA_VERSION

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_results(
        cls,
        results: Mapping[str, LayerBias],
        *,
        model_id: str,
        revision: str | None = None,
        pair_settings: Mapping[str, Any] | None = None,
        seed: Any = None,
        reference: Mapping[str, LayerBias] | BiasReport | None = None,
        reference_info: Mapping[str, Any] | None = None,
        align_reference: bool = False,
        extra: Mapping[str, Any] | None = None,
        created: str | None = None,
        versions: Mapping[str, str | None] | None = None,
    ) -> BiasReport:
        """Build a report from ``StaticDynamicEstimator.compute()`` results.

        Args:
            results: ``{layer: LayerBias}`` (LayerBias dicts from ``to_dict()`` are accepted too).
                Layers may have different pair counts.
            model_id: Hub id or local name of the model.
            revision: model revision, if known.
            pair_settings: JSON-safe description of the pairs (stored with sorted keys).
            seed: the run's seed(s): int, list of ints or ``{name: int}``.
            reference: results of the same architecture at initialisation. It must cover the same
                layers with the same channel counts; with ``align_reference=True`` a reference with
                other layers is restricted to the layers both share (at least one), and layers it
                lacks are shown without deltas.
            reference_info: what the reference is; defaults to "same architecture at initialisation".
                Its ``"pair_fingerprint"`` (the reference run's pair-set fingerprint; taken from a
                reference ``BiasReport``'s ``pair_settings`` when not given) lets the deltas be paired
                when it equals ``pair_settings["fingerprint"]`` (see :meth:`reference_pairing`).
            extra: more JSON-safe metadata (command line, dataset, ...).
            created: optional timestamp string; none is added otherwise.
            versions: override the library versions (default: :func:`library_versions`).

        Raises:
            ValueError: empty or malformed results, non-JSON-safe settings, or a reference that does
                not match the layers / channel counts.
        """
        if not isinstance(model_id, str) or not model_id.strip():
            raise ValueError(f"model_id must be a non-empty string (a Hub id or local name), got {model_id!r}.")
        if revision is not None and not isinstance(revision, str):
            raise ValueError(f"revision must be a string or None, got {revision!r}.")
        if created is not None and not isinstance(created, str):
            raise ValueError(f"created must be a timestamp string or None, got {created!r}.")
        layers = _layers_from(results, "results")
        ref_layers = None
        if reference is not None:
            ref_layers = _align_reference(layers, _layers_from(reference, "reference"), align_reference)
        info = dict(_DEFAULT_REFERENCE_INFO) if reference_info is None else dict(reference_info)
        if isinstance(reference, BiasReport) and "pair_fingerprint" not in info:
            fp = reference.pair_settings.get("fingerprint")
            if fp:  # lets reference_deltas pair the two readings when they used the same pairs
                info["pair_fingerprint"] = fp
        return cls(
            model_id=model_id,
            layers=layers,
            revision=revision,
            pair_settings=_canonical(dict(pair_settings or {}), "pair_settings"),
            seed=_check_seed(seed),
            versions=_canonical(dict(library_versions() if versions is None else versions), "versions"),
            reference=ref_layers,
            reference_info=_canonical(info, "reference_info") if ref_layers is not None else {},
            extra=_canonical(dict(extra or {}), "extra"),
            created=created,
        )

    # -- plain data ------------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        return list(self.layers)

    @property
    def last_layer(self) -> str:
        return next(reversed(self.layers))

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as a dict (fixed key order)."""
        return report_document(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BiasReport:
        """Inverse of :meth:`to_dict`. Raises ValueError for other documents or newer schemas."""
        return cls(**report_fields(d))

    def to_json(self) -> str:
        """Deterministic JSON text (ends with a newline)."""
        return _dumps(self.to_dict()) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BiasReport:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"bias report is not valid JSON: {e}") from None
        return cls.from_dict(d)

    @classmethod
    def load(cls, path: str | os.PathLike, *, validate: bool = True) -> BiasReport:
        """Read a report from a JSON file, or from a folder holding ``report.json`` / ``bias_report.json``.

        Every failure is one line naming the path: a missing path (``FileNotFoundError`` "... does not
        exist"), a folder without a report (``FileNotFoundError`` "folder X holds no report.json or
        bias_report.json"), an unreadable file (``PermissionError``), a binary or non-UTF-8 file, text that
        is not JSON or JSON that is not a bias report (``ValueError``). With ``validate`` (default) the
        report must also pass :meth:`validate` (at least one layer, no NaN / inf values).
        """
        p = Path(path)
        if p.is_dir():
            for name in (REPORT_JSON, "bias_report.json"):
                if (p / name).is_file():
                    p = p / name
                    break
            else:
                raise FileNotFoundError(
                    f"folder {str(path)!r} holds no {REPORT_JSON} or bias_report.json; give the folder `stadyn probe` "
                    "wrote (--output_dir) or the report file itself."
                )
        elif not p.exists():
            raise FileNotFoundError(f"bias report {str(path)!r} does not exist; check the path.")
        elif not p.is_file():
            raise ValueError(f"{p} is not a bias report (not a regular file); give the report.json file.")
        try:
            data = p.read_bytes()
        except PermissionError:
            raise PermissionError(f"cannot read the bias report {str(p)!r}: permission denied.") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"{p} is not a bias report (not UTF-8 JSON text); give the report.json that `stadyn probe` or "
                "BiasReport.save wrote."
            ) from None
        if "\x00" in text:
            raise ValueError(f"{p} is not a bias report (binary data, not JSON text); give the report.json file.")
        try:
            report = cls.from_json(text)
        except RecursionError:
            raise ValueError(f"{p} is not a bias report (JSON nested too deeply); give the report.json file.") from None
        except ValueError as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"{p}: {first}") from None
        if validate:
            report.validate(source=str(p))
        return report

    def validate(self, source: str | None = None) -> BiasReport:
        """Check that the report can be shown and written: at least one layer, every number finite.

        Args:
            source: the file the report came from, named in the message (default: "bias report").

        Returns:
            ``self`` (so ``BiasReport.load(p).validate()`` chains).

        Raises:
            ValueError: one line naming ``source`` and the first bad layer and field, e.g.
                ``"report.json: layer 'blocks.3' has NaN s_S; ..."`` or ``"report.json holds no layers; ..."``.
                Jackknife interval bounds may be NaN (not computable); their estimates may not.
        """
        where = source or "bias report"
        if not self.layers:
            raise ValueError(
                f"{where} holds no layers; re-run `stadyn probe` (it writes one entry per probed layer) or "
                "rebuild the report with BiasReport.from_results."
            )
        for what, layers in (("layer", self.layers), ("reference layer", self.reference or {})):
            for name, lb in layers.items():
                bad = _first_non_finite(lb)
                if bad is not None:
                    field_name, value = bad
                    raise ValueError(
                        f"{where}: {what} {name!r} has {value} {field_name}; re-run the probe (check the model's "
                        "numerics, e.g. fp16 overflow) or the tool that wrote this file."
                    )
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BiasReport):
            return NotImplemented
        return self.to_json() == other.to_json()

    # -- reference -------------------------------------------------------------------------------
    def reference_pairing(self) -> tuple[bool, str]:
        """Whether the reference was read on the same pairs as the model, and why not (docs/method.md §5).

        Paired when the report records the same pair-set fingerprint for both readings
        (``pair_settings["fingerprint"]`` and ``reference_info["pair_fingerprint"]``); ``stadyn probe``
        reads the reference on the model's own pairs in the same run and records both.
        """
        if self.reference is None:
            return False, "no reference reading"
        fp, rfp = self.pair_settings.get("fingerprint"), self.reference_info.get("pair_fingerprint")
        if not fp or not rfp:
            return False, "no pair-set fingerprint recorded for " + ("the model" if not fp else "the reference")
        if fp != rfp:
            return False, "the reference was read on other pairs (different pair-set fingerprint)"
        return True, "same pairs"

    def reference_deltas(self) -> dict[str, dict[str, float]]:
        """Trained minus reference, per layer that has a reference reading (docs/method.md §5).

        Keys per layer:

        - ``share_dynamic``, ``share_static``, ``share_residual``: difference of the share 100 * pi_F
          (percentage points), with ``<key>_low`` / ``<key>_high`` / ``<key>_stderr`` when intervals exist;
        - ``s_dynamic``, ``s_static``: raw-score differences, with the same interval keys, and
          ``z_s_dynamic`` / ``z_s_static`` = difference / its standard error (|z| > 2 is a clear change);
        - ``paired``: 1.0 when the intervals are a jackknife of the difference over the same chunks
          (both readings on the same pairs, see :meth:`reference_pairing`), 0.0 for independent errors;
        - ``percent_dynamic``, ``percent_static``, ``percent_residual``: dims % (paper) differences,
          rounded to 0.1, and ``channels_<category>``: count differences.
        """
        from .compare import QUANTITIES, compare_readings

        if self.reference is None:
            return {}
        paired, _ = self.reference_pairing()
        rows, notes = compare_readings(self.layers, self.reference, paired=paired)
        for note in notes:
            logger.info("reference deltas: %s", note)
        out: dict[str, dict[str, float]] = {}
        for name, row in rows.items():
            t, r = self.layers[name], self.reference[name]
            d: dict[str, float] = {}
            for q in QUANTITIES:
                iv = row[q]
                d[q] = iv.estimate
                if math.isfinite(iv.low):
                    d[f"{q}_low"], d[f"{q}_high"], d[f"{q}_stderr"] = iv.low, iv.high, iv.stderr
            for key in ("s_dynamic", "s_static"):
                se = d.get(f"{key}_stderr")
                if se is not None and se > 0:
                    d[f"z_{key}"] = d[key] / se
            d["paired"] = 1.0 if row["method"] == "paired" else 0.0
            for k in ("dynamic", "static", "residual"):
                d[f"percent_{k}"] = round(t.percent[k] - r.percent[k], 1)
            for k in CATEGORIES:
                d[f"channels_{k}"] = t.category_counts[k] - r.category_counts[k]
            out[name] = d
        return out

    # -- comparing two reports -------------------------------------------------------------------
    def compare(self, other: BiasReport, *, independent: bool = False) -> BiasComparison:
        """This report minus ``other``, layer by layer, with intervals (docs/method.md §5).

        Paired (a jackknife of the difference over the same chunks) when both reports carry the same
        pair-set fingerprint; layers are matched by name and those only one report holds are listed.

        Args:
            other: the report to subtract.
            independent: when the pairs differ (or cannot be checked), compare with independent errors
                instead of refusing.

        Raises:
            PairSetMismatchError: (a ``ValueError``) different or missing fingerprints, ``independent`` off.
            ValueError: ``other`` is not a report or shares no layer.
        """
        from .compare import compare_reports

        if not isinstance(other, BiasReport):
            raise ValueError(f"compare needs another BiasReport (BiasReport.load), got {type(other).__name__}.")
        return compare_reports(self, other, independent=independent)

    def summary_lines(self) -> list[str]:
        """The per-layer table as text lines (what ``stadyn probe`` prints): share % with intervals first,
        dims % (paper) and the raw scores beside, reference deltas when there is a reference."""
        from .headline import summary_lines

        return summary_lines(self)

    # -- markdown --------------------------------------------------------------------------------
    def to_markdown(self, figures: Mapping[str, str] | None = None, heading_level: int = 1, title: bool = True) -> str:
        """Markdown tables: per-layer shares and scores, channel categories, reference deltas.

        Args:
            figures: optional ``{caption: relative path}`` of images to link under "Figures".
            heading_level: level of the title heading (sections are one level deeper).
            title: start with the title heading (off when embedding in a model card).
        """
        return render_markdown(self, figures=figures, heading_level=heading_level, title=title)

    # -- figures (drawn by hf_stadyn.report.figures) ------------------------------------------------
    def figure_layers(self, dpi: int = DEFAULT_DPI) -> Figure:
        """Grouped bars per layer: the dynamic / static / residual share 100 * pi_F with its interval.

        Each bar shows one share from 0 and carries that share's jackknife interval; a black tick marks
        the paper's floored dims %. With a reference, its bars are drawn hatched beside.
        """
        return _figures.figure_layers(self, dpi)

    def figure_categories(self, dpi: int = DEFAULT_DPI) -> Figure:
        """Stacked bars per layer: % of channels in each category (dynamic, static, joint, none)."""
        return _figures.figure_categories(self, dpi)

    def figure_channels(self, layer: str | None = None, dpi: int = DEFAULT_DPI) -> Figure:
        """Scatter of rho_S (y) vs rho_D (x) per channel of ``layer`` (default: the last) with tau lines.

        Channels are coloured by category; the reference's channels (if any) are grey crosses.
        """
        return _figures.figure_channels(self, layer, dpi)

    def _check_layer(self, layer: str | None) -> str:
        name = self.last_layer if layer is None else layer
        if name not in self.layers:
            raise ValueError(f"layer {name!r} is not in this report; its layers are {self.layer_names}.")
        return name

    def save_figures(
        self,
        out_dir: str | os.PathLike,
        scatter_layers: Sequence[str] | None = None,
        dpi: int = DEFAULT_DPI,
    ) -> dict[str, Path]:
        """Write the PNG figures (Agg backend) atomically; returns ``{caption: path}``.

        Args:
            out_dir: folder to write into (created if needed).
            scatter_layers: layers to draw the rho scatter for (default: the last layer).
            dpi: resolution; images are ``FIGURE_SIZE * dpi`` pixels.
        """
        return _figures.save_figures(self, out_dir, scatter_layers=scatter_layers, dpi=dpi)

    def figure_files(self, scatter_layers: Sequence[str] | None = None) -> dict[str, str]:
        """``{caption: file name}`` of the figures :meth:`save_figures` writes (for relative links)."""
        return _figures.figure_files(self, scatter_layers)

    def save(
        self,
        out_dir: str | os.PathLike,
        figures: bool = True,
        scatter_layers: Sequence[str] | None = None,
        dpi: int = DEFAULT_DPI,
    ) -> dict[str, Path]:
        """Write ``report.json``, ``report.md`` (linking the figures) and the PNGs, each atomically.

        Returns ``{"json": ..., "markdown": ..., <figure caption>: ...}``.
        """
        out = _out_dir(out_dir)
        paths: dict[str, Path] = {}
        links: dict[str, str] = {}
        if figures:
            fig_paths = self.save_figures(out, scatter_layers=scatter_layers, dpi=dpi)
            links = {cap: p.name for cap, p in fig_paths.items()}
            paths.update(fig_paths)
        paths["json"] = atomic_write_text(out / REPORT_JSON, self.to_json())
        paths["markdown"] = atomic_write_text(out / REPORT_MD, self.to_markdown(figures=links))
        logger.info("wrote bias report of %s to %s", self.model_id, out)
        return paths


#: How :meth:`BiasReport.validate` names a field in its message (others by their key path).
_FIELD_SYMBOLS = {"s_dynamic": "s_D", "s_static": "s_S", "threshold": "tau", "confidence": "confidence"}


def _first_non_finite(lb: LayerBias) -> tuple[str, str] | None:
    """``(field, "NaN" | "inf")`` of the first non-finite number of ``lb`` (intervals: estimates only)."""
    items: list[tuple[str, Any]] = [(k, getattr(lb, k)) for k in ("s_dynamic", "s_static", "threshold", "confidence")]
    for group in ("share", "percent", "category_percent"):
        items += [(f"{group}[{k!r}]", v) for k, v in getattr(lb, group).items()]
    items += [(f"intervals[{k!r}].estimate", iv.estimate) for k, iv in lb.intervals.items()]
    for k, arr in (("rho_dynamic", lb.rho_dynamic), ("rho_static", lb.rho_static), *lb.replicates.items()):
        vals = [float(x) for x in arr]
        for i, v in enumerate(vals):
            if not math.isfinite(v):
                items.append((f"{k}[{i}]", v))
                break
    for field_name, v in items:
        try:
            f = float(v)
        except (TypeError, ValueError):
            return _FIELD_SYMBOLS.get(field_name, field_name), repr(v)
        if not math.isfinite(f):
            return _FIELD_SYMBOLS.get(field_name, field_name), "NaN" if math.isnan(f) else "infinite"
    return None
