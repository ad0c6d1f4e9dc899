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
    def load(cls, path: str | os.PathLike) -> BiasReport:
        """Read a report from a JSON file, or from a folder holding ``report.json`` / ``bias_report.json``."""
        p = Path(path)
        if p.is_dir():
            for name in (REPORT_JSON, "bias_report.json"):
                if (p / name).is_file():
                    p = p / name
                    break
            else:
                raise FileNotFoundError(f"no {REPORT_JSON} or bias_report.json in folder {str(path)!r}.")
        if not p.is_file():
            raise FileNotFoundError(f"bias report {str(path)!r} does not exist.")
        try:
            return cls.from_json(p.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BiasReport):
            return NotImplemented
        return self.to_json() == other.to_json()

    # -- reference -------------------------------------------------------------------------------
    def reference_deltas(self) -> dict[str, dict[str, float]]:
        """Trained minus reference, per layer that has a reference reading.

        Keys per layer: ``percent_dynamic``, ``percent_static``, ``percent_residual`` (dims %,
        rounded to 0.1), ``s_dynamic``, ``s_static``, ``channels_<category>`` (count differences) and,
        when both sides have intervals, ``z_s_dynamic`` / ``z_s_static``: the difference divided by
        the combined jackknife standard error (|z| > 2 is a clear change).
        """
        if self.reference is None:
            return {}
        out: dict[str, dict[str, float]] = {}
        for name, t in self.layers.items():
            r = self.reference.get(name)
            if r is None:
                continue
            d: dict[str, float] = {
                f"percent_{k}": round(t.percent[k] - r.percent[k], 1) for k in ("dynamic", "static", "residual")
            }
            d["s_dynamic"] = t.s_dynamic - r.s_dynamic
            d["s_static"] = t.s_static - r.s_static
            for k in CATEGORIES:
                d[f"channels_{k}"] = t.category_counts[k] - r.category_counts[k]
            for key in ("s_dynamic", "s_static"):
                it, ir = t.intervals.get(key), r.intervals.get(key)
                if it is not None and ir is not None:
                    se = math.hypot(it.stderr, ir.stderr)
                    if se > 0:
                        d[f"z_{key}"] = d[key] / se
            out[name] = d
        return out

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
        """Stacked bars per layer: dynamic / static / residual dims %, with interval error bars.

        Error bars sit on the top of the dynamic and static segments and span the jackknife interval
        of 100 * pi_F around that top. With a reference, its bars are drawn hatched to the right.
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
