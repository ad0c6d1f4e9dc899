"""static_dynamic_bias: how much static (appearance) vs dynamic (motion) information a layer encodes.

An ``evaluate`` module wrapping hf_stadyn's estimator, in its functional form
(``hf_stadyn.metric.functional.static_dynamic_bias``; Kowal et al., TPAMI, arXiv 2211.01783). Inputs are the pooled features of both members of each pair and the factor the pair
varies in the *other* of (a "static" pair shares appearance, a "dynamic" pair shares motion).
"""

import warnings

import datasets
import evaluate
import numpy as np

from hf_stadyn.metric.evaluate_module import check_module_batch, interval_problem, nan_intervals
from hf_stadyn.metric.functional import static_dynamic_bias

_CITATION = """\
@article{kowal2022quantifying,
  title   = {Quantifying and Learning Static vs. Dynamic Information in Deep Spatiotemporal Networks},
  author  = {Kowal, Matthew and Siam, Mennatullah and Islam, Md Amirul and Bruce, Neil D. B. and
             Wildes, Richard P. and Derpanis, Konstantinos G.},
  journal = {IEEE Transactions on Pattern Analysis and Machine Intelligence},
  year    = {2024},
  eprint  = {2211.01783}
}
"""

_DESCRIPTION = """\
Estimates the share of a layer's channels that encode the static factor (appearance) and the dynamic
factor (motion) from pairs of inputs that share one factor. Per factor F, the score
s_F = sum_c cov_F,c(z_a, z_b) / V (V: total variance of all features) is turned into shares by a
softmax with a residual score fixed at 1; per-channel scores rho_F,c = cov_F,c / Var_F,c give channel
categories (dynamic, static, joint, none) with threshold tau.
"""

_KWARGS_DESCRIPTION = """
Args:
    features_a (`list` of `list` of `float`): pooled features (C values) of the first member of each pair.
    features_b (`list` of `list` of `float`): pooled features of the second member, same shape.
    factors (`list` of `str` or `int`): "static" or "dynamic" for each pair, or 1 (static) / 0 (dynamic);
        numpy integers, bools (True = static) and one label for the whole batch work too.
    threshold (`float`, defaults to 0.5): tau for the channel categories (strict inequalities).
    num_chunks (`int`, defaults to 10): chunks for the jackknife confidence intervals.
    include_channels (`bool`, defaults to True): include the per-channel rho arrays and categories.
Returns:
    A dict with the layer result: `s_dynamic`, `s_static`, `share`, `dims`, `percent`
    (dynamic / static / residual), `category_counts`, `category_percent`, `dead_channels`,
    `intervals` (95 % jackknife; NaN bounds, with a UserWarning, when they cannot be computed),
    `intervals_note` (None, or why there are no intervals and what to change), `num_pairs` and, with
    `include_channels`, `rho_dynamic`, `rho_static` and `categories`.
Examples:
    >>> import numpy as np, evaluate
    >>> metric = evaluate.load("static_dynamic_bias")  # doctest: +SKIP
    >>> rng = np.random.default_rng(0)
    >>> za = rng.normal(size=(100, 8)); zb = za + rng.normal(size=(100, 8))
    >>> out = metric.compute(features_a=za, features_b=zb, factors=["static", "dynamic"] * 50)  # doctest: +SKIP
    >>> sorted(out["percent"])  # doctest: +SKIP
    ['dynamic', 'residual', 'static']
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class StaticDynamicBias(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "features_a": datasets.Sequence(datasets.Value("float64")),
                    "features_b": datasets.Sequence(datasets.Value("float64")),
                    "factors": datasets.Value("string"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2211.01783"],
        )

    def compute(self, *, features_a=None, features_b=None, factors=None, **kwargs):
        """``evaluate``'s compute, with a clear error when no pairs were given or added."""
        nothing_added = getattr(self, "writer", None) is None  # evaluate opens its writer on the first add
        if features_a is None and features_b is None and factors is None and nothing_added:
            raise ValueError(
                "no pairs given (nothing was added); pass features_a=..., features_b=..., factors=... to compute, "
                "or call add_batch first."
            )
        out = super().compute(features_a=features_a, features_b=features_b, factors=factors, **kwargs)
        if out is not None and out.get("intervals_note"):  # None on the non-main processes of a distributed run
            warnings.warn(f"static_dynamic_bias: {out['intervals_note']}.", UserWarning, stacklevel=2)
        return out

    def add_batch(self, *, features_a=None, features_b=None, factors=None, **kwargs):
        """Check one batch (one-line errors naming the input) and store it; factor ints / bools become names."""
        if kwargs:  # evaluate names the unknown inputs
            return super().add_batch(features_a=features_a, features_b=features_b, factors=factors, **kwargs)
        a, b, names = check_module_batch(features_a, features_b, factors)
        if a.shape[0] == 0:
            return super().add_batch(features_a=[], features_b=[], factors=[])
        return super().add_batch(features_a=a, features_b=b, factors=names)

    def add(self, *, features_a=None, features_b=None, factors=None, **kwargs):
        """Check one pair (rows of C values and one label) and store it."""
        if kwargs:
            return super().add(features_a=features_a, features_b=features_b, factors=factors, **kwargs)
        wrap = [None if x is None else [x] for x in (features_a, features_b, factors)]
        a, b, names = check_module_batch(*wrap)
        return super().add(features_a=a[0], features_b=b[0], factors=names[0])

    def _compute(self, features_a, features_b, factors, threshold=0.5, num_chunks=10, include_channels=True):
        if len(features_a) == 0:
            raise ValueError(
                "no pairs given (features_a is empty); pass the pooled features of at least 2 pairs of each "
                "factor (compute(features_a=..., features_b=..., factors=...) or add_batch first)."
            )
        lengths = {len(x) for x in features_a} | {len(x) for x in features_b}
        if len(lengths) > 1:
            raise ValueError(
                f"features have ragged channel counts {sorted(lengths)} across the added batches; every pair member "
                "needs the same number of channels C."
            )
        za = np.asarray(features_a, dtype=np.float64)
        zb = np.asarray(features_b, dtype=np.float64)
        if za.ndim == 1:  # zero channels: arrow gives a 1-D object/empty array
            za = za.reshape(len(features_a), 0)
            zb = zb.reshape(len(features_b), 0)
        if not isinstance(num_chunks, (int, np.integer)) or isinstance(num_chunks, bool):
            raise ValueError(f"num_chunks must be a positive integer, got {num_chunks!r}.")
        factors = list(factors)
        result = static_dynamic_bias(za, zb, factors, threshold=threshold, num_chunks=int(num_chunks))
        out = result.to_dict(include_channels=bool(include_channels))
        out["intervals_note"] = None
        if not result.intervals:
            # compute() warns with this note (at the caller's line)
            out["intervals"] = nan_intervals(out)
            out["intervals_note"] = f"no confidence intervals: {interval_problem(factors, int(num_chunks))}"
        return out
