"""BiasReport: the static/dynamic reading of one model as versioned JSON, markdown and PNG figures.

A report is built from the estimator's per-layer results (:class:`~hf_stadyn.metric.LayerBias`)
and carries everything needed to read and reproduce them: model id and revision, per-layer raw
scores s_D / s_S and the share 100 * pi_F with their intervals (the headline; the paper's floored
dims % stays beside it), channel categories and per-channel rho arrays, the pair settings and seeds,
and the versions of the libraries that produced it.

A trained model's reading means most next to the same architecture at initialisation. A report can
hold that *reference* reading (same layers) and renders trained-minus-reference deltas, paired when
both were read on the same pairs; :meth:`BiasReport.compare` does the same for two reports.

Example:
    >>> report = BiasReport.from_results(est.compute(), model_id="org/model",      # doctest: +SKIP
    ...                                  pair_settings={"num_pairs": 3000}, seed=0)
    >>> paths = report.save("out/")      # report.json, report.md, bias_*.png      # doctest: +SKIP
    >>> BiasReport.load("out/report.json") == report                               # doctest: +SKIP
    True

Serialisation is deterministic: the same inputs give byte-identical JSON (no timestamp unless one
is passed as ``created``; fixed key order; floats written with Python's shortest round-trip
``repr``), and :meth:`BiasReport.from_json` restores the report exactly.

The package is split along its jobs: :mod:`.schema` (the versioned JSON document, canonical JSON,
checks of the inputs), :mod:`.core` (the :class:`BiasReport` class), :mod:`.markdown` (``report.md``),
:mod:`.figures` (the three PNG figures), :mod:`.headline` (the share-first text shown everywhere),
:mod:`.compare` (paired and independent differences) and :mod:`.history` (the bias-versus-training-step
figure of :class:`~hf_stadyn.debias.BiasTracker`). Everything public is importable from ``hf_stadyn.report``.
"""

from .compare import BiasComparison, PairSetMismatchError
from .core import BiasReport
from .figures import DEFAULT_DPI, FIGURE_CATEGORIES, FIGURE_LAYERS, FIGURE_SIZE, rho_figure_name
from .headline import DIMS_LABEL
from .history import plot_bias_history
from .schema import REPORT_JSON, REPORT_MD, SCHEMA, SCHEMA_VERSION, library_versions

__all__ = [
    "DEFAULT_DPI",
    "DIMS_LABEL",
    "FIGURE_CATEGORIES",
    "FIGURE_LAYERS",
    "FIGURE_SIZE",
    "REPORT_JSON",
    "REPORT_MD",
    "SCHEMA",
    "SCHEMA_VERSION",
    "BiasComparison",
    "BiasReport",
    "PairSetMismatchError",
    "library_versions",
    "plot_bias_history",
    "rho_figure_name",
]
