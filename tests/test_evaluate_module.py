"""The static_dynamic_bias evaluate module: offline loading from any directory, same numbers as the core."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

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


def test_load_metric_needs_no_registration(tmp_path):
    res = _run(tmp_path, "package")
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
