"""The static_dynamic_bias evaluate module: offline loading from any directory, same numbers as the core."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from hf_stadyn.metric import compute_from_arrays

SNIPPET = textwrap.dedent(
    """
    import json, sys, numpy as np, evaluate
    rng = np.random.default_rng(0)
    za = rng.normal(size=(60, 8)); zb = 0.8 * za + rng.normal(size=(60, 8))
    factors = ["static", "dynamic"] * 30
    if sys.argv[1] == "bare":
        metric = evaluate.load("static_dynamic_bias", keep_in_memory=True)
    else:
        import hf_stadyn
        metric = hf_stadyn.load_metric(keep_in_memory=True)
    for k in range(0, 60, 20):   # streaming through add_batch, as users of evaluate do
        metric.add_batch(features_a=za[k:k + 20], features_b=zb[k:k + 20], factors=factors[k:k + 20])
    out = metric.compute(threshold=0.4)
    print(json.dumps({"name": metric.name, **out}))
    """
)


def _run(tmp_path, how, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    env["HF_HOME"] = str(tmp_path / "hf_home")
    env.pop("HF_MODULES_CACHE", None)
    work = tmp_path / "elsewhere"
    work.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", SNIPPET, how], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )


def _expected():
    rng = np.random.default_rng(0)
    za = rng.normal(size=(60, 8))
    zb = 0.8 * za + rng.normal(size=(60, 8))
    return compute_from_arrays(za, zb, ["static", "dynamic"] * 30, threshold=0.4).to_dict()


@pytest.fixture(scope="module", autouse=True)
def package_run(tmp_path_factory):
    """``hf_stadyn.load_metric`` in a fresh process (its own HF_HOME), started with the module so that it runs
    beside the registration test's three processes (each single-threaded)."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(_run, tmp_path_factory.mktemp("package"), "package")
    yield future
    pool.shutdown(wait=True)


def test_bare_name_fails_before_registration_and_works_after(tmp_path):
    before = _run(tmp_path, "bare")
    assert before.returncode != 0
    assert "static_dynamic_bias" in before.stderr
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"))
    env.pop("HF_MODULES_CACHE", None)
    reg = subprocess.run(
        [sys.executable, "-m", "hf_stadyn", "register-metric"], env=env, capture_output=True, text=True, timeout=300
    )
    assert reg.returncode == 0, reg.stderr
    assert str(tmp_path / "hf_home") in reg.stdout
    after = _run(tmp_path, "bare")
    assert after.returncode == 0, after.stderr
    out = json.loads(after.stdout.strip().splitlines()[-1])
    exp = _expected()
    assert out["name"] == "static_dynamic_bias"
    assert out["percent"] == exp["percent"]
    assert out["s_static"] == pytest.approx(exp["s_static"], rel=1e-9)
    assert out["categories"] == exp["categories"]


def test_load_metric_needs_no_registration(package_run):
    res = package_run.result()
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["s_dynamic"] == pytest.approx(_expected()["s_dynamic"], rel=1e-9)


def test_module_rejects_bad_input_in_process():
    import hf_stadyn

    metric = hf_stadyn.load_metric(keep_in_memory=True)
    with pytest.raises(ValueError, match="not a known factor"):
        metric.compute(features_a=[[0.1, 0.2]] * 4, features_b=[[0.3, 0.1]] * 4, factors=["static", "x", "s", "d"])
    with pytest.raises(ValueError, match="at least 2 pairs"):
        metric.compute(features_a=[[0.1, 0.2]] * 3, features_b=[[0.3, 0.1]] * 3, factors=["static"] * 3)
    with pytest.raises(ValueError, match="ragged"):
        metric.compute(features_a=[[0.1, 0.2], [0.1]] * 2, features_b=[[0.3, 0.1]] * 4, factors=["static"] * 4)


def test_module_card_is_shipped():
    from hf_stadyn.metric import metric_path

    card = (metric_path() / "README.md").read_text()
    assert "static_dynamic_bias" in card and "## How to Use" in card


# -- inputs of the module, loaded with evaluate.load on its local path (offline) ------------------------


@pytest.fixture(scope="module")
def metric():
    import evaluate

    from hf_stadyn.metric import metric_path

    return evaluate.load(str(metric_path()), keep_in_memory=True)


def _pairs(n_static: int = 12, n_dynamic: int = 8, c: int = 6, seed: int = 0):
    """Unbalanced pairs (12 static, 8 dynamic, interleaved) whose static pairs share more: a swapped
    encoding changes num_pairs and the scores."""
    rng = np.random.default_rng(seed)
    n = n_static + n_dynamic
    names = np.array(["static"] * n_static + ["dynamic"] * n_dynamic)[rng.permutation(n)]
    za = rng.normal(size=(n, c))
    noise = np.where(names[:, None] == "static", 0.3, 1.5)
    return za, za + noise * rng.normal(size=(n, c)), [str(x) for x in names]


def _encode(how: str, names: list[str]):
    from hf_stadyn.metric import STATIC

    ints = [STATIC if x == "static" else 1 - STATIC for x in names]  # the encoding of hf_stadyn.metric.factors
    return {
        "strings": names,
        "short_upper": [x[0].upper() for x in names],
        "ints": ints,
        "numpy_int_array": np.asarray(ints, dtype=np.int64),
        "numpy_int_scalars": [np.int32(i) for i in ints],
        "numpy_uint8": np.asarray(ints, dtype=np.uint8),
        "bools": [bool(i) for i in ints],
        "torch": __import__("torch").tensor(ints),
    }[how]


@pytest.mark.parametrize(
    "how", ["strings", "short_upper", "ints", "numpy_int_array", "numpy_int_scalars", "numpy_uint8", "bools", "torch"]
)
def test_module_accepts_every_factor_encoding_its_messages_name(metric, how):
    """Strings, 1 = static / 0 = dynamic ints (plain, numpy, torch) and bools (True = static) give the numbers
    of the core with string labels.

    Bugs caught: ints refused by the string schema (the old behaviour), 0 and 1 swapped (num_pairs would
    read 12 dynamic / 8 static and s_S would become s_D).
    """
    za, zb, names = _pairs()
    out = metric.compute(features_a=za, features_b=zb, factors=_encode(how, names))
    exp = compute_from_arrays(za, zb, names).to_dict()
    assert out["num_pairs"] == {"dynamic": 8, "static": 12} == exp["num_pairs"]
    assert out["s_static"] == pytest.approx(exp["s_static"], rel=1e-12)
    assert out["s_dynamic"] == pytest.approx(exp["s_dynamic"], rel=1e-12)
    assert out["categories"] == exp["categories"]


def test_module_streams_single_pairs_with_numpy_labels(metric):
    za, zb, names = _pairs()
    for i, name in enumerate(names):
        metric.add(features_a=za[i], features_b=zb[i], factors=np.int64(1 if name == "static" else 0))
    out = metric.compute()
    assert out["s_static"] == pytest.approx(compute_from_arrays(za, zb, names).s_static, rel=1e-12)


_ZA, _ZB, _NAMES = _pairs()
_BIG = np.full((20, 6), 0.123456789)  # a recognisable value: it must not be dumped into the message


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"features_a": _BIG, "features_b": _ZB[:5], "factors": _NAMES}, "features_a has shape (20, 6) but features_b has shape (5, 6)"),
        ({"features_a": _BIG, "features_b": "x", "factors": _NAMES}, "features_b must be a (pairs, channels) array of numbers, got a str"),
        ({"features_a": _BIG, "features_b": _ZB, "factors": [2] * 20}, "factors[0] = 2 is not a known factor label"),
        ({"features_a": _BIG, "features_b": _ZB, "factors": ["static"] * 7}, "factors has 7 labels but the features have 20 pairs"),
        ({"features_a": _BIG[0], "features_b": _ZB[0], "factors": [0]}, "features_a has shape (6,); expected (pairs, channels)"),
        ({"features_a": _BIG.reshape(20, 3, 2), "features_b": _ZB.reshape(20, 3, 2), "factors": _NAMES}, "has shape (20, 3, 2); expected (pairs, channels): pool"),
        ({"features_a": np.where(_ZA > 1, np.nan, _BIG), "features_b": _ZB, "factors": _NAMES}, "features_a contains"),
        ({"features_a": [["a", "b"]] * 4, "features_b": [[1.0, 2.0]] * 4, "factors": [0, 1] * 2}, "holds 'a' (str), not a number"),
        ({"features_a": [[0.1, 0.2], [0.1]] * 2, "features_b": [[0.3, 0.1]] * 4, "factors": ["static"] * 4}, "features_a is ragged (rows of [1, 2] values)"),
        ({"features_a": _BIG, "features_b": _ZB}, "factors is missing"),
        ({"features_a": [], "features_b": [], "factors": []}, "no pairs given (features_a is empty)"),
        ({}, "no pairs given (nothing was added)"),
        ({"features_a": [[0.1, 0.2]] * 3, "features_b": [[0.3, 0.1]] * 3, "factors": ["static"] * 3}, "at least 2 pairs"),
    ],
    ids=["shape_mismatch", "string_features", "unknown_label", "label_count", "one_dim", "three_dim", "nan",
         "not_numbers", "ragged", "no_factors", "empty", "nothing_added", "one_factor_only"],
)  # fmt: skip
def test_module_input_errors_are_one_line_without_the_data(metric, kwargs, message):
    """Each bad input: one ``ValueError`` line naming the field with expected vs given type / shape.

    Bugs caught: evaluate's multi-line "Module inputs don't match the expected format" dumping the whole
    arrays, empty input called "C = 0 channels", an AttributeError from evaluate when nothing was added.
    """
    with pytest.raises(ValueError) as info:
        metric.compute(**kwargs)
    text = str(info.value)
    assert message in text, text
    assert len(text.splitlines()) == 1 and len(text) < 300, text
    assert "0.1234" not in text and "Expected format" not in text


@pytest.mark.parametrize(
    "n_static, n_dynamic, num_chunks, why",
    [(2, 2, 10, "leaves fewer than 2 pairs of a factor"), (12, 8, 1, "num_chunks = 1; the jackknife needs at least 2")],
    ids=["two_pairs_per_factor", "one_chunk"],
)
def test_module_warns_and_says_so_when_intervals_cannot_be_computed(metric, n_static, n_dynamic, num_chunks, why):
    """No intervals: a UserWarning saying why and what to do, NaN bounds around the point estimates and
    ``intervals_note`` in the result (not silently ``{}``); with enough pairs, no warning and no note."""
    za, zb, names = _pairs(n_static, n_dynamic)
    with pytest.warns(UserWarning, match="no confidence intervals") as record:
        out = metric.compute(features_a=za, features_b=zb, factors=names, num_chunks=num_chunks)
    assert any(why in str(w.message) for w in record)
    assert why in out["intervals_note"]
    for key in ("s_dynamic", "s_static", "percent_dynamic", "share_static", "percent_residual"):
        iv = out["intervals"][key]
        assert all(math.isnan(iv[k]) for k in ("low", "high", "stderr")), key
    assert out["intervals"]["s_static"]["estimate"] == out["s_static"]
    assert out["intervals"]["share_dynamic"]["estimate"] == pytest.approx(100 * out["share"]["dynamic"])

    za, zb, names = _pairs(30, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        out = metric.compute(features_a=za, features_b=zb, factors=names)
    assert out["intervals_note"] is None and out["intervals"]["s_static"]["low"] < out["s_static"]
