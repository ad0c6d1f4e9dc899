"""BiasReport: the static/dynamic reading of one model as versioned JSON, markdown and PNG figures.

A report is built from the estimator's per-layer results (:class:`~hf_stadyn.metric.LayerBias`)
and carries everything needed to read and reproduce them: model id and revision, per-layer raw
scores s_D / s_S and dims % with their intervals, channel categories and per-channel rho arrays,
the pair settings and seeds, and the versions of the libraries that produced it.

An untrained network reads "maximally static" (mean pooling ignores frame order), so a trained
model's reading means most next to the same architecture at initialisation. A report can hold
that *reference* reading (same layers) and renders trained-minus-reference deltas.

Example:
    >>> report = BiasReport.from_results(est.compute(), model_id="org/model",      # doctest: +SKIP
    ...                                  pair_settings={"num_pairs": 3000}, seed=0)
    >>> paths = report.save("out/")      # report.json, report.md, bias_*.png      # doctest: +SKIP
    >>> BiasReport.load("out/report.json") == report                               # doctest: +SKIP
    True

Serialisation is deterministic: the same inputs give byte-identical JSON (no timestamp unless one
is passed as ``created``; fixed key order; floats written with Python's shortest round-trip
``repr``), and :meth:`BiasReport.from_json` restores the report exactly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hf_stadyn._io import atomic_path, atomic_write_text
from hf_stadyn.metric.estimator import CATEGORIES, LayerBias

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "FIGURE_CATEGORIES",
    "FIGURE_LAYERS",
    "FIGURE_SIZE",
    "REPORT_JSON",
    "REPORT_MD",
    "SCHEMA",
    "SCHEMA_VERSION",
    "BiasReport",
    "library_versions",
    "rho_figure_name",
]

logger = logging.getLogger(__name__)

SCHEMA = "hf-stadyn/bias-report"
SCHEMA_VERSION = 1
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
FIGURE_LAYERS = "bias_layers.png"
FIGURE_CATEGORIES = "bias_channels.png"
FIGURE_SIZE = (8.0, 4.5)  # inches; PNGs are FIGURE_SIZE * dpi pixels (800 x 450 at the default dpi)
DEFAULT_DPI = 100

# distribution names whose version the report records, per key (first installed one wins).
_VERSION_SOURCES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "numpy": ("numpy",),
    "av": ("av",),
    "cv2": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python"),
}
_COLORS = {
    "dynamic": "#3b75af",
    "static": "#ef8636",
    "residual": "#b8b8b8",
    "joint": "#8c6bb1",
    "none": "#d9d9d9",
}
_DEFAULT_REFERENCE_INFO = {"description": "same architecture at initialisation (untrained)"}


def library_versions() -> dict[str, str | None]:
    """Installed versions of hf_stadyn, torch, transformers, numpy, av and cv2 (None when missing).

    Read from package metadata only (never from imported modules), so the answer does not depend on
    what happens to be imported and the JSON of a report stays byte-identical within one environment.
    """
    from hf_stadyn import __version__

    out: dict[str, str | None] = {"hf_stadyn": __version__}
    for key, dists in _VERSION_SOURCES.items():
        out[key] = None
        for dist in dists:
            try:
                out[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def rho_figure_name(layer: str) -> str:
    """File name of the rho_S vs rho_D scatter of ``layer`` (a file-system-safe slug)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", layer).strip("._") or "layer"
    return f"bias_rho_{slug}.png"


# -- canonical JSON ----------------------------------------------------------------------------


def _canonical(obj: Any, where: str) -> Any:
    """A JSON-safe, canonical copy of ``obj``: dict keys sorted, numpy values made plain.

    Raises ValueError for values JSON cannot hold exactly (NaN, inf, arbitrary objects).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if not math.isfinite(f):
            raise ValueError(f"{where} is {f!r}; report fields must be finite numbers (JSON has no NaN/inf).")
        return f
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k in sorted(obj, key=lambda k: str(k)):
            if not isinstance(k, str):
                raise ValueError(f"{where} has the key {k!r}; use string keys so the report is valid JSON.")
            out[k] = _canonical(obj[k], f"{where}[{k!r}]")
        return out
    if isinstance(obj, np.ndarray):
        return [_canonical(x, f"{where}[{i}]") for i, x in enumerate(obj.tolist())]
    if isinstance(obj, (list, tuple)):
        return [_canonical(x, f"{where}[{i}]") for i, x in enumerate(obj)]
    raise ValueError(
        f"{where} holds a {type(obj).__name__}, which JSON cannot store; pass numbers, strings, lists or dicts."
    )


def _dumps(obj: Any, indent: int = 0) -> str:
    """Indented JSON with lists of scalars on one line (rho arrays stay readable); deterministic."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {_dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list):
        if all(not isinstance(x, (dict, list)) for x in obj):
            return json.dumps(obj, allow_nan=False, separators=(", ", ": "))
        return "[\n" + ",\n".join(pad + _dumps(x, indent + 1) for x in obj) + "\n" + "  " * indent + "]"
    return json.dumps(obj, allow_nan=False)


# -- validation ---------------------------------------------------------------------------------


def _as_layer_bias(value: Any, name: str, what: str) -> LayerBias:
    if isinstance(value, Mapping):
        try:
            value = LayerBias.from_dict(value)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{what} layer {name!r} is not a valid LayerBias dict ({e!r}).") from None
    if not isinstance(value, LayerBias):
        raise ValueError(
            f"{what} layer {name!r} is a {type(value).__name__}; expected a LayerBias from "
            "StaticDynamicEstimator.compute()."
        )
    if value.layer != name:
        raise ValueError(f"{what} key {name!r} holds the result of layer {value.layer!r}; keys must be layer names.")
    c = value.num_channels
    if len(value.rho_dynamic) != c or len(value.rho_static) != c or len(value.categories) != c:
        raise ValueError(
            f"{what} layer {name!r} has {len(value.rho_dynamic)} rho values for C = {c} channels; a report needs "
            "the per-channel arrays (do not serialise layers with include_channels=False)."
        )
    return value


def _layers_from(results: Any, what: str) -> dict[str, LayerBias]:
    if isinstance(results, BiasReport):
        results = results.layers
    if not isinstance(results, Mapping):
        raise ValueError(
            f"{what} must be a dict {{layer name: LayerBias}} (StaticDynamicEstimator.compute()), "
            f"got {type(results).__name__}."
        )
    if not results:
        raise ValueError(f"{what} is empty; run the estimator on some pairs before building a report.")
    return {str(k): _as_layer_bias(v, str(k), what) for k, v in results.items()}


def _check_seed(seed: Any) -> Any:
    ok_int = lambda x: isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))  # noqa: E731
    if seed is None or ok_int(seed):
        return None if seed is None else int(seed)
    if isinstance(seed, Mapping) and all(isinstance(k, str) and (v is None or ok_int(v)) for k, v in seed.items()):
        return _canonical(seed, "seed")
    if isinstance(seed, (list, tuple)) and all(ok_int(x) for x in seed):
        return [int(x) for x in seed]
    raise ValueError(
        f"seed must be an int, a list of ints or a dict {{name: int}} (e.g. {{'pairs': 0, 'styles': 1}}), got {seed!r}."
    )


# -- the report -----------------------------------------------------------------------------------


@dataclass(eq=False)
class BiasReport:
    """Static/dynamic reading of one model, layer by layer (see the module docstring).

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
        ref = None
        if self.reference is not None:
            ref = {"info": self.reference_info, "layers": [lb.to_dict() for lb in self.reference.values()]}
        return {
            "schema": SCHEMA,
            "schema_version": self.schema_version,
            "model": {"id": self.model_id, "revision": self.revision},
            "created": self.created,
            "seed": self.seed,
            "pair_settings": self.pair_settings,
            "versions": self.versions,
            "layers": [lb.to_dict() for lb in self.layers.values()],
            "reference": ref,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BiasReport:
        """Inverse of :meth:`to_dict`. Raises ValueError for other documents or newer schemas."""
        if not isinstance(d, Mapping) or d.get("schema") != SCHEMA:
            raise ValueError(
                f'not a hf-stadyn bias report (expected "schema": {SCHEMA!r}); was it written by BiasReport.save?'
            )
        version = d.get("schema_version")
        if not isinstance(version, int) or version < 1 or version > SCHEMA_VERSION:
            raise ValueError(
                f"bias report schema_version {version!r} is not readable by this hf_stadyn (reads 1..{SCHEMA_VERSION}); "
                "upgrade hf-stadyn to read newer reports."
            )
        try:
            layers = [LayerBias.from_dict(x) for x in d["layers"]]
            ref = d.get("reference")
            ref_layers = None if ref is None else {x["layer"]: LayerBias.from_dict(x) for x in ref["layers"]}
            model = d["model"]
            return cls(
                model_id=model["id"],
                layers={lb.layer: lb for lb in layers},
                revision=model.get("revision"),
                pair_settings=dict(d.get("pair_settings") or {}),
                seed=d.get("seed"),
                versions=dict(d.get("versions") or {}),
                reference=ref_layers,
                reference_info=dict(ref.get("info") or {}) if ref is not None else {},
                extra=dict(d.get("extra") or {}),
                created=d.get("created"),
                schema_version=version,
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(
                f"bias report is missing or has a malformed field ({e!r}); the file may be damaged."
            ) from None

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
        h = "#" * max(1, int(heading_level))
        hh = h + "#"
        first = next(iter(self.layers.values()))
        conf = f"{100 * first.confidence:g}%"
        lines = [f"{h} Static/dynamic bias: `{self.model_id}`", ""] if title else []
        rev = f" at revision `{self.revision}`" if self.revision else ""
        lines.append(
            f"Model `{self.model_id}`{rev}, {len(self.layers)} probed layer(s); hf-stadyn "
            f"{self.versions.get('hf_stadyn') or '?'} (method: Kowal et al., TPAMI, arXiv 2211.01783)."
        )
        lines.append("")
        lines += [
            f"{hh} Layer estimate",
            "",
            f"| layer | C | pairs D / S | dynamic % | static % | residual % | s_D [{conf} CI] | s_S [{conf} CI] |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, lb in self.layers.items():
            lines.append(
                f"| {_md(name)} | {lb.num_channels} | {lb.num_pairs['dynamic']} / {lb.num_pairs['static']} | "
                f"{lb.percent['dynamic']:.1f} | {lb.percent['static']:.1f} | {lb.percent['residual']:.1f} | "
                f"{_with_ci(lb, 's_dynamic')} | {_with_ci(lb, 's_static')} |"
            )
        lines += [
            "",
            "dims % = floor(pi_F * C) / C with the residual score fixed at 1 (each factor stays within about "
            "14-42 %); compare models relatively and read the raw scores s_D, s_S next to the %. Intervals: "
            "jackknife over pair chunks.",
            "",
            f"{hh} Channel categories",
            "",
            "| layer | tau | dynamic | static | joint | none | dead |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, lb in self.layers.items():
            cells = " | ".join(f"{lb.category_counts[k]} ({lb.category_percent[k]:.1f} %)" for k in CATEGORIES)
            lines.append(f"| {_md(name)} | {lb.threshold:g} | {cells} | {lb.dead_channels} |")
        lines += [
            "",
            "Counts of channels with rho_D, rho_S above/below tau (strict); % over all C channels. Dead "
            '(zero-variance) channels are counted as "none" and listed apart.',
            "",
        ]
        if self.reference is not None:
            lines += self._reference_markdown(hh)
        if self.pair_settings or self.seed is not None:
            lines += [f"{hh} Pairs and seeds", ""]
            for k, v in self.pair_settings.items():
                lines.append(f"- {k}: `{json.dumps(v)}`")
            lines.append(f"- seed: `{json.dumps(self.seed)}`")
            lines.append("")
        if figures:
            lines += [f"{hh} Figures", ""]
            for caption, path in figures.items():
                lines += [f"![{caption}]({path})", ""]
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items() if v)
        if versions:
            lines += [f"Library versions: {versions}.", ""]
        return "\n".join(lines)

    def _reference_markdown(self, hh: str) -> list[str]:
        assert self.reference is not None
        desc = self.reference_info.get("description", "reference")
        deltas = self.reference_deltas()
        lines = [
            f"{hh} Compared with the reference: {_md(str(desc))}",
            "",
            'An untrained network reads "maximally static" because mean pooling ignores frame order; the '
            "informative reading is the move away from it. Deltas are trained minus reference; z = delta / "
            "combined standard error.",
            "",
            "| layer | reference dynamic % | reference static % | d dynamic % | d static % | d s_D (z) | "
            "d s_S (z) | d dynamic ch. | d static ch. |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name in self.layers:
            r = self.reference.get(name)
            if r is None:
                lines.append(f"| {_md(name)} | - | - | - | - | - | - | - | - |")
                continue
            d = deltas[name]
            lines.append(
                f"| {_md(name)} | {r.percent['dynamic']:.1f} | {r.percent['static']:.1f} | "
                f"{d['percent_dynamic']:+.1f} | {d['percent_static']:+.1f} | "
                f"{_delta_z(d, 's_dynamic')} | {_delta_z(d, 's_static')} | "
                f"{d['channels_dynamic']:+d} | {d['channels_static']:+d} |"
            )
        lines.append("")
        return lines

    # -- figures ---------------------------------------------------------------------------------
    def figure_layers(self, dpi: int = DEFAULT_DPI) -> Figure:
        """Stacked bars per layer: dynamic / static / residual dims %, with interval error bars.

        Error bars sit on the top of the dynamic and static segments and span the jackknife interval
        of 100 * pi_F around that top. With a reference, its bars are drawn hatched to the right.
        """
        fig, ax = _new_figure(dpi)
        names = self.layer_names
        x = np.arange(len(names), dtype=float)
        width = 0.38 if self.reference is not None else 0.7
        offset = -0.2 if self.reference is not None else 0.0
        self._stack(ax, self.layers, names, x + offset, width, hatch=None, label_suffix="")
        if self.reference is not None:
            self._stack(ax, self.reference, names, x + 0.2, width, hatch="//", label_suffix=" (reference)")
        ax.set_ylabel("share of dimensions (%)")
        ax.set_ylim(0, 100)
        ax.set_title(_wrap_title(f"Static/dynamic dims per layer: {self.model_id}"), fontsize=10)
        rotated = _layer_ticks(ax, x, names)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.subplots_adjust(left=0.08, right=0.76, bottom=0.22 if rotated else 0.1, top=0.9)
        return fig

    @staticmethod
    def _stack(ax, layers, names, x, width, hatch, label_suffix) -> None:
        present = [i for i, n in enumerate(names) if n in layers]
        if not present:
            return
        xs = x[present]
        lbs = [layers[names[i]] for i in present]
        bottom = np.zeros(len(lbs))
        for k in ("dynamic", "static", "residual"):
            vals = np.array([lb.percent[k] for lb in lbs])
            ax.bar(
                xs,
                vals,
                width,
                bottom=bottom,
                color=_COLORS[k],
                hatch=hatch,
                edgecolor="white",
                linewidth=0.5,
                label=k + label_suffix,
            )
            if k != "residual":
                top = bottom + vals
                err = np.array([_err(lb, f"percent_{k}") for lb in lbs]).T  # (2, n)
                ok = ~np.isnan(err[0])
                if ok.any():
                    ax.errorbar(xs[ok], top[ok], yerr=err[:, ok], fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
            bottom = bottom + vals

    def figure_categories(self, dpi: int = DEFAULT_DPI) -> Figure:
        """Stacked bars per layer: % of channels in each category (dynamic, static, joint, none)."""
        fig, ax = _new_figure(dpi)
        names = self.layer_names
        x = np.arange(len(names), dtype=float)
        bottom = np.zeros(len(names))
        for k in CATEGORIES:
            vals = np.array([100.0 * self.layers[n].category_counts[k] / self.layers[n].num_channels for n in names])
            label = "none (residual)" if k == "none" else k
            ax.bar(x, vals, 0.7, bottom=bottom, color=_COLORS[k], edgecolor="white", linewidth=0.5, label=label)
            bottom += vals
        for xi, n in zip(x, names):
            dead = self.layers[n].dead_channels
            if dead:
                ax.annotate(f"{dead} dead", (xi, 100.0), ha="center", va="bottom", fontsize=6)
        ax.set_ylabel("channels (%)")
        ax.set_ylim(0, 108)
        tau = {self.layers[n].threshold for n in names}
        tau_s = ", ".join(f"{t:g}" for t in sorted(tau))
        ax.set_title(_wrap_title(f"Channel categories (tau = {tau_s}): {self.model_id}"), fontsize=10)
        rotated = _layer_ticks(ax, x, names)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.subplots_adjust(left=0.08, right=0.8, bottom=0.22 if rotated else 0.1, top=0.9)
        return fig

    def figure_channels(self, layer: str | None = None, dpi: int = DEFAULT_DPI) -> Figure:
        """Scatter of rho_S (y) vs rho_D (x) per channel of ``layer`` (default: the last) with tau lines.

        Channels are coloured by category; the reference's channels (if any) are grey crosses.
        """
        name = self._check_layer(layer)
        lb = self.layers[name]
        fig, ax = _new_figure(dpi)
        if self.reference is not None and name in self.reference:
            r = self.reference[name]
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
        ax.set_title(_wrap_title(f"Channel scores, layer {name} (tau = {lb.threshold:g}): {self.model_id}"), fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.subplots_adjust(left=0.1, right=0.78, bottom=0.12, top=0.9)
        return fig

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
        if not (isinstance(dpi, int) and 10 <= dpi <= 600):
            raise ValueError(f"dpi must be an integer in [10, 600], got {dpi!r}.")
        files = self.figure_files(scatter_layers)
        out = _out_dir(out_dir)
        paths: dict[str, Path] = {}
        for caption, fname in files.items():
            if fname == FIGURE_LAYERS:
                fig = self.figure_layers(dpi)
            elif fname == FIGURE_CATEGORIES:
                fig = self.figure_categories(dpi)
            else:
                fig = self.figure_channels(self._scatter_layer_of(fname, scatter_layers), dpi)
            with atomic_path(out / fname) as tmp:
                fig.savefig(tmp, format="png", dpi=dpi)
            paths[caption] = out / fname
        return paths

    def figure_files(self, scatter_layers: Sequence[str] | None = None) -> dict[str, str]:
        """``{caption: file name}`` of the figures :meth:`save_figures` writes (for relative links)."""
        if isinstance(scatter_layers, str):
            raise ValueError(f"scatter_layers must be a list of layer names, got the string {scatter_layers!r}.")
        layers = [self.last_layer] if scatter_layers is None else [self._check_layer(n) for n in scatter_layers]
        files = {"Dims per layer": FIGURE_LAYERS, "Channel categories per layer": FIGURE_CATEGORIES}
        for n in dict.fromkeys(layers):
            fname = rho_figure_name(n)
            if fname in files.values():
                raise ValueError(
                    f"scatter layers {list(layers)} map to the same file name {fname!r}; draw them one at a time."
                )
            files[f"rho_S vs rho_D, layer {n}"] = fname
        return files

    def _scatter_layer_of(self, fname: str, scatter_layers: Sequence[str] | None) -> str:
        layers = [self.last_layer] if scatter_layers is None else list(scatter_layers)
        return next(n for n in layers if rho_figure_name(n) == fname)

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


# -- helpers ---------------------------------------------------------------------------------------


def _align_reference(layers: dict[str, LayerBias], ref: dict[str, LayerBias], align: bool) -> dict[str, LayerBias]:
    missing = [n for n in layers if n not in ref]
    extra = [n for n in ref if n not in layers]
    if (missing or extra) and not align:
        raise ValueError(
            "the reference must cover the same layers as the results: "
            f"missing in reference {missing}, only in reference {extra}. Probe the reference with the same "
            "layers, or pass align_reference=True to keep only the layers both share."
        )
    common = [n for n in layers if n in ref]
    if not common:
        raise ValueError(
            f"the reference shares no layer with the results (results {list(layers)}, reference {list(ref)}); "
            "it must be the same architecture probed at the same layers."
        )
    for n in common:
        if ref[n].num_channels != layers[n].num_channels:
            raise ValueError(
                f"layer {n!r} has C = {layers[n].num_channels} channels but the reference has "
                f"C = {ref[n].num_channels}; the reference must be the same architecture."
            )
    if missing or extra:
        logger.warning(
            "reference aligned to the results: no reference for %s; dropped reference-only layers %s",
            missing,
            extra,
        )
    return {n: ref[n] for n in common}


def _wrap_title(text: str, width: int = 70) -> str:
    """Break a long figure title (long model ids) over lines so it is not clipped."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _with_ci(lb: LayerBias, key: str) -> str:
    value = getattr(lb, key)
    iv = lb.intervals.get(key)
    if iv is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def _delta_z(d: Mapping[str, float], key: str) -> str:
    z = d.get(f"z_{key}")
    return f"{d[key]:+.3f}" + (f" ({z:+.1f})" if z is not None else "")


def _err(lb: LayerBias, key: str) -> tuple[float, float]:
    iv = lb.intervals.get(key)
    if iv is None:
        return (math.nan, math.nan)
    return (max(iv.estimate - iv.low, 0.0), max(iv.high - iv.estimate, 0.0))


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


def _out_dir(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} exists and is not a folder; pass a folder path.")
    out.mkdir(parents=True, exist_ok=True)
    return out
