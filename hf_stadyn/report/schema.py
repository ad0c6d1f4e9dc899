"""The versioned report document: schema constants, canonical JSON, and checks of what goes in.

A report's JSON (``report.json``, schema :data:`SCHEMA` version :data:`SCHEMA_VERSION`) is written
deterministically: dict keys sorted, numpy values made plain, floats in Python's shortest round-trip
``repr``, lists of scalars on one line. :func:`report_document` lays a :class:`~hf_stadyn.report.BiasReport`
out as that document and :func:`report_fields` reads one back (the constructor arguments of the class).

Schema versions (every older version stays readable):

- 1: the first layout.
- 2: each layer may carry its jackknife ``replicates`` (K leave-one-chunk-out values per quantity) and
  ``num_chunks_used``, and its intervals the ``share_*`` aliases of ``percent_*``; ``pair_settings``
  may hold the pair-set ``fingerprint`` and ``reference.info`` the reference's ``pair_fingerprint``,
  from which model-minus-reference and report-versus-report differences are paired
  (docs/method.md §5). A version-1 report reads as one without replicates or fingerprints.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hf_stadyn.metric import LayerBias

if TYPE_CHECKING:  # pragma: no cover
    from .core import BiasReport

__all__ = [
    "REPORT_JSON",
    "REPORT_MD",
    "SCHEMA",
    "SCHEMA_VERSION",
    "library_versions",
    "report_document",
    "report_fields",
]

logger = logging.getLogger(__name__)

SCHEMA = "hf-stadyn/bias-report"
SCHEMA_VERSION = 2
REPORT_JSON = "report.json"
REPORT_MD = "report.md"

# distribution names whose version the report records, per key (first installed one wins).
_VERSION_SOURCES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "numpy": ("numpy",),
    "av": ("av",),
    "cv2": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python"),
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


# -- the document ------------------------------------------------------------------------------


def report_document(report: BiasReport) -> dict[str, Any]:
    """The JSON document of ``report`` as a dict (fixed key order); what ``BiasReport.to_dict`` returns."""
    ref = None
    if report.reference is not None:
        ref = {"info": report.reference_info, "layers": [lb.to_dict() for lb in report.reference.values()]}
    return {
        "schema": SCHEMA,
        "schema_version": report.schema_version,
        "model": {"id": report.model_id, "revision": report.revision},
        "created": report.created,
        "seed": report.seed,
        "pair_settings": report.pair_settings,
        "versions": report.versions,
        "layers": [lb.to_dict() for lb in report.layers.values()],
        "reference": ref,
        "extra": report.extra,
    }


def report_fields(d: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`report_document`: the ``BiasReport`` constructor arguments held by ``d``.

    Raises:
        ValueError: ``d`` is not a bias report, has a newer schema, or a missing / malformed field.
    """
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
        return {
            "model_id": model["id"],
            "layers": {lb.layer: lb for lb in layers},
            "revision": model.get("revision"),
            "pair_settings": dict(d.get("pair_settings") or {}),
            "seed": d.get("seed"),
            "versions": dict(d.get("versions") or {}),
            "reference": ref_layers,
            "reference_info": dict(ref.get("info") or {}) if ref is not None else {},
            "extra": dict(d.get("extra") or {}),
            "created": d.get("created"),
            "schema_version": version,
        }
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"bias report is missing or has a malformed field ({e!r}); the file may be damaged.") from None


# -- checks of what goes in -----------------------------------------------------------------------


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
    from .core import BiasReport  # the class lives in core, which imports this module

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


def _out_dir(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} exists and is not a folder; pass a folder path.")
    out.mkdir(parents=True, exist_ok=True)
    return out
