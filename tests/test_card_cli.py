"""`stadyn card`: a model-card folder from a saved bias report, push to a (fake) Hub, bad inputs -> exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hub_server import hub_server, run_in_hub_env  # noqa: F401  (pytest fixture)

from hf_stadyn.cli import main
from hf_stadyn.hub import CARD_REPORT_JSON, write_model_card_folder
from hf_stadyn.metric import StaticDynamicEstimator
from hf_stadyn.report import FIGURE_CATEGORIES, FIGURE_LAYERS, BiasReport, rho_figure_name


@pytest.fixture(scope="module")
def report() -> BiasReport:
    """A report from real estimator runs: block_1 shares its dynamic pairs' features more than block_0."""
    rng = np.random.default_rng(0)
    est = StaticDynamicEstimator(num_chunks=5)
    n, c = 60, 12
    factors = np.array([0, 1] * (n // 2))
    for layer, noise_d in (("block_0", 1.5), ("block_1", 0.3)):
        za = rng.normal(size=(n, c))
        noise = np.where(factors[:, None] == 0, noise_d, 1.0) * rng.normal(size=(n, c))
        est.update(za, za + noise, factors, layer=layer)
    return BiasReport.from_results(est.compute(), model_id="tester/tiny-video", seed=0, pair_settings={"num_pairs": n})


@pytest.fixture()
def report_dir(tmp_path, report):
    report.save(tmp_path / "rep")
    return tmp_path / "rep"


def test_card_folder_from_report_folder_and_json(tmp_path, report, report_dir, capsys):
    out = tmp_path / "card"
    rc = main(
        [
            "card",
            str(report_dir),
            "--out",
            str(out),
            "--base-model",
            "org/base",
            "--dataset",
            "org/videos",
            "--license",
            "apache-2.0",
        ]
    )
    assert rc == 0
    assert str(out) in capsys.readouterr().out
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "org/base"
    assert card.data.datasets == ["org/videos"]
    assert card.data.license == "apache-2.0"
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    last = report.layers["block_1"]
    share = metrics["static_dynamic_bias/dynamic_share"]
    iv = last.intervals["percent_dynamic"]
    assert share == pytest.approx(100 * last.share["dynamic"], rel=1e-12) and iv.low <= share <= iv.high
    assert metrics["static_dynamic_bias/dynamic_dims_percent"] == last.percent["dynamic"]
    readme = (out / "README.md").read_text()
    assert f"**{100 * last.share['dynamic']:.1f} [{iv.low:.1f}, {iv.high:.1f}] % dynamic / " in readme
    assert metrics["static_dynamic_bias/s_dynamic"] == pytest.approx(last.s_dynamic, rel=1e-12)
    assert {r.dataset_type for r in card.data.eval_results} == {"org/videos"}
    assert BiasReport.load(out / CARD_REPORT_JSON) == report
    for name in (FIGURE_LAYERS, FIGURE_CATEGORIES, rho_figure_name("block_1")):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # the CLI is a thin wrapper: byte for byte what the library writes with the same arguments
    lib = write_model_card_folder(
        report, tmp_path / "lib", base_model="org/base", dataset="org/videos", license="apache-2.0"
    )
    assert (out / "README.md").read_bytes() == (lib / "README.md").read_bytes()

    # a JSON path works as well as a folder; options reach the card
    out2 = tmp_path / "card2"
    rc = main(
        [
            "card",
            str(report_dir / "report.json"),
            "--out",
            str(out2),
            "--layer",
            "block_0",
            "--scatter-layer",
            "block_0",
            "--model-name",
            "tiny",
        ]
    )
    assert rc == 0
    card2 = ModelCard.load(out2 / "README.md")
    assert card2.data.model_name == "tiny"
    metrics2 = {r.metric_type: r.metric_value for r in card2.data.eval_results}
    assert metrics2["static_dynamic_bias/s_dynamic"] == pytest.approx(report.layers["block_0"].s_dynamic, rel=1e-12)
    assert (out2 / rho_figure_name("block_0")).is_file() and not (out2 / rho_figure_name("block_1")).exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "does not exist"),
        ("not_json", "not valid JSON"),
        ("not_report", "not a hf-stadyn bias report"),
        ("nothing_to_do", "nothing to do"),
        ("out_is_file", "not a folder"),
        ("bad_layer", "not in this report"),
        ("bad_repo", "namespace/name"),
        ("offline_push", "HF_HUB_OFFLINE"),
    ],
)
def test_card_bad_inputs_exit_2_with_a_clear_message(tmp_path, report_dir, capsys, case, message):
    src, out = str(report_dir), str(tmp_path / "card")
    extra: list[str] = []
    if case == "missing":
        src = str(tmp_path / "nope.json")
    elif case == "not_json":
        src = str(report_dir / "report.md")
    elif case == "not_report":
        (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
        src = str(tmp_path / "other.json")
    elif case == "out_is_file":
        (tmp_path / "card").write_text("x")
    elif case == "bad_layer":
        extra = ["--layer", "block_9"]
    elif case == "bad_repo":
        extra = ["--push", "no-namespace"]
    elif case == "offline_push":  # the test session is offline (conftest): the push must say so
        extra = ["--push", "tester/x"]
    argv = ["card", src] + ([] if case in ("nothing_to_do", "bad_repo", "offline_push") else ["--out", out]) + extra
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("stadyn card: error:") and message in err, err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    if case not in ("out_is_file",):
        assert not (tmp_path / "card").exists()  # nothing half-written


def test_card_push_to_local_hub(tmp_path, report, report_dir, hub_server):  # noqa: F811
    out = tmp_path / "card"
    proc = run_in_hub_env(
        hub_server,
        f"""
        import sys
        from hf_stadyn.cli import main
        sys.exit(main(["card", {str(report_dir)!r}, "--out", {str(out)!r}, "--push", "tester/tiny-card",
                       "--base-model", "org/base"]))
    """,
    )
    assert "pushed the model card of tester/tiny-video to tester/tiny-card" in proc.stdout
    remote = hub_server.hub.files("tester/tiny-card")
    assert sorted(remote) == sorted(
        ["README.md", CARD_REPORT_JSON, FIGURE_LAYERS, FIGURE_CATEGORIES, rho_figure_name("block_1")]
    )
    # what was pushed is what was written locally
    for name, data in remote.items():
        assert data == (out / name).read_bytes(), name
    assert BiasReport.from_json(remote[CARD_REPORT_JSON].decode()) == report


# Push failures (unreachable Hub, bad / read-only / missing token, a 500 on the commit) run against the real
# local Hub server in tests/test_hub_paths.py::test_card_push_failures_exit_2_with_one_line, through the
# console script; nothing of ours is monkeypatched to fake them.
