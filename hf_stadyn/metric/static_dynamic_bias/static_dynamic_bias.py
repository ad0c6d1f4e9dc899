"""static_dynamic_bias: how much static (appearance) vs dynamic (motion) information a layer encodes.

An ``evaluate`` module wrapping hf_stadyn's estimator, in its functional form
(``hf_stadyn.metric.functional.static_dynamic_bias``; Kowal et al., TPAMI, arXiv 2211.01783). Inputs are the pooled features of both members of each pair and the factor the pair
varies in the *other* of (a "static" pair shares appearance, a "dynamic" pair shares motion).
"""

import datasets
import evaluate
import numpy as np

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
    factors (`list` of `str`): "static" or "dynamic" for each pair.
    threshold (`float`, defaults to 0.5): tau for the channel categories (strict inequalities).
    num_chunks (`int`, defaults to 10): chunks for the jackknife confidence intervals.
    include_channels (`bool`, defaults to True): include the per-channel rho arrays and categories.
Returns:
    A dict with the layer result: `s_dynamic`, `s_static`, `share`, `dims`, `percent`
    (dynamic / static / residual), `category_counts`, `category_percent`, `dead_channels`,
    `intervals` (95 % jackknife), `num_pairs` and, with `include_channels`, `rho_dynamic`,
    `rho_static` and `categories`.
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

    def _compute(self, features_a, features_b, factors, threshold=0.5, num_chunks=10, include_channels=True):
        lengths = {len(x) for x in features_a} | {len(x) for x in features_b}
        if len(lengths) > 1:
            raise ValueError(
                f"features have ragged channel counts {sorted(lengths)}; every pair member needs the same "
                "number of channels C."
            )
        za = np.asarray(features_a, dtype=np.float64)
        zb = np.asarray(features_b, dtype=np.float64)
        if za.ndim == 1:  # zero channels: arrow gives a 1-D object/empty array
            za = za.reshape(len(features_a), 0)
            zb = zb.reshape(len(features_b), 0)
        result = static_dynamic_bias(za, zb, list(factors), threshold=threshold, num_chunks=int(num_chunks))
        return result.to_dict(include_channels=bool(include_channels))
