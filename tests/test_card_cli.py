"""`stadyn card`: a model-card folder from a saved bias report, push to a (fake) Hub, bad inputs -> exit 2."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

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
            "--output_dir",
            str(out),
            "--base_model",
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
            "--output_dir",
            str(out2),
            "--layer",
            "block_0",
            "--scatter_layer",
            "block_0",
            "--model_name",
            "tiny",
        ]
    )
    assert rc == 0
    card2 = ModelCard.load(out2 / "README.md")
    assert card2.data.model_name == "tiny"
    metrics2 = {r.metric_type: r.metric_value for r in card2.data.eval_results}
    assert metrics2["static_dynamic_bias/s_dynamic"] == pytest.approx(report.layers["block_0"].s_dynamic, rel=1e-12)
    assert (out2 / rho_figure_name("block_0")).is_file() and not (out2 / rho_figure_name("block_1")).exists()


def _stadyn(args: list[str], cwd) -> subprocess.CompletedProcess:
    """The real console script (``stadyn`` on PATH, else ``python -m hf_stadyn``), offline as the test session."""
    exe = shutil.which("stadyn")
    cmd = [exe] if exe else [sys.executable, "-m", "hf_stadyn"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _write_doc(path, doc) -> str:
    path.write_text(json.dumps(doc))  # json.dumps writes NaN / Infinity as Python does
    return str(path)


def _bad_layer_doc(report_dir, field: str, value) -> dict:
    doc = json.loads((report_dir / "report.json").read_text())
    layer = doc["layers"][1]
    if field.startswith("rho_static"):
        layer["rho_static"][3] = value
    elif "." in field:
        group, key = field.split(".")
        layer[group][key] = value
    else:
        layer[field] = value
    return doc


def _case(case: str, tmp_path, report_dir) -> tuple[list[str], str]:
    """(argv after ``card``, what the one error line must contain) of one bad input."""
    out = str(tmp_path / "card")
    src = str(report_dir)
    if case == "missing":
        return [str(tmp_path / "nope.json"), "--output_dir", out], "nope.json' does not exist"
    if case == "empty_folder":
        (tmp_path / "empty").mkdir()
        return [str(tmp_path / "empty"), "--output_dir", out], "holds no report.json or bias_report.json"
    if case == "not_json":
        return [str(report_dir / "report.md"), "--output_dir", out], "report.md: bias report is not valid JSON"
    if case == "binary":
        (tmp_path / "fig.json").write_bytes((report_dir / "bias_layers.png").read_bytes())
        return [str(tmp_path / "fig.json"), "--output_dir", out], "fig.json is not a bias report (not UTF-8 JSON text)"
    if case == "not_report":
        src = _write_doc(tmp_path / "other.json", {"hello": 1})
        return [src, "--output_dir", out], "other.json: not a hf-stadyn bias report"
    if case == "no_layers":
        doc = json.loads((report_dir / "report.json").read_text())
        doc["layers"] = []
        src = _write_doc(tmp_path / "report.json", doc)
        return [src, "--output_dir", out], "report.json holds no layers"
    if case == "nan_s_static":
        src = _write_doc(tmp_path / "report.json", _bad_layer_doc(report_dir, "s_static", float("nan")))
        return [src, "--output_dir", out], "report.json: layer 'block_1' has NaN s_S; re-run the probe"
    if case == "inf_share":
        src = _write_doc(tmp_path / "report.json", _bad_layer_doc(report_dir, "share.dynamic", float("inf")))
        return [src, "--output_dir", out], "layer 'block_1' has infinite share['dynamic']"
    if case == "nan_rho":
        src = _write_doc(tmp_path / "report.json", _bad_layer_doc(report_dir, "rho_static", float("nan")))
        return [src, "--output_dir", out], "layer 'block_1' has NaN rho_static[3]"
    if case == "nothing_to_do":
        return [src], "nothing to do"
    if case == "out_is_file":
        (tmp_path / "card").write_text("x")
        return [src, "--output_dir", out], "exists and is not a folder"
    if case == "out_under_file":
        (tmp_path / "afile").write_text("x")
        return [src, "--output_dir", str(tmp_path / "afile" / "card")], "which is a file, not a folder"
    if case == "read_only_fs":  # /sys refuses new entries to everyone, root included
        return [src, "--output_dir", "/sys/stadyn-card-test"], "cannot write the model card to '/sys/stadyn-card-test'"
    if case == "read_only_folder":
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return [src, "--output_dir", str(ro / "card")], f"cannot write the model card to '{ro / 'card'}': permission"
    if case == "bad_layer":
        return [src, "--output_dir", out, "--layer", "block_9"], "'block_9' is not in this report"
    if case == "bad_scatter_layer":
        return [src, "--output_dir", out, "--scatter_layer", "block_9"], "'block_9' is not in this report"
    if case == "bad_repo":
        return [src, "--push_to_hub", "--hub_model_id", "no-namespace"], "namespace/name"
    if case == "push_without_repo":
        return [src, "--push_to_hub"], "--push_to_hub needs --hub_model_id"
    if case == "repo_without_push":
        return [src, "--hub_model_id", "a/b", "--output_dir", out], "without --push_to_hub"
    if case == "offline_push":  # the test session is offline (conftest): the push must say so
        return [src, "--push_to_hub", "--hub_model_id", "tester/x"], "HF_HUB_OFFLINE"
    raise AssertionError(case)


BAD_CASES = [
    "missing",
    "empty_folder",
    "not_json",
    "binary",
    "not_report",
    "no_layers",
    "nan_s_static",
    "inf_share",
    "nan_rho",
    "nothing_to_do",
    "out_is_file",
    "out_under_file",
    "read_only_fs",
    "read_only_folder",
    "bad_layer",
    "bad_scatter_layer",
    "bad_repo",
    "push_without_repo",
    "repo_without_push",
    "offline_push",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_card_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, report_dir, case):
    """Each bad input, through the console script: exit 2, one ``stadyn card: error:`` line naming the input,
    no traceback, and nothing written (no card folder, no staging folder, no PNG left from a half-done card).

    Bugs caught: a NaN report writing its PNGs before failing on the JSON (the old partial card), a report
    with no layers raising StopIteration, a binary file giving a UnicodeDecodeError traceback, an empty
    folder called "does not exist", a read-only folder giving a raw [Errno 13] / [Errno 1].
    """
    if case == "read_only_folder" and os.geteuid() == 0:
        pytest.skip("root writes into a 0o555 folder; the read_only_fs row covers root")
    if case == "read_only_fs" and not Path("/sys").is_dir():
        pytest.skip("no /sys on this system")
    argv, message = _case(case, tmp_path, report_dir)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = _stadyn(["card", *argv], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, not even a deprecation note: the new names are used
    assert lines[0].startswith("stadyn card: error:") and message in lines[0], lines[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written anywhere
    assert not Path("/sys/stadyn-card-test").exists()


def test_old_option_names_map_to_the_new_ones_with_a_deprecation_message(tmp_path, report_dir, capsys):
    """``--out --base-model --model-name --scatter-layer --push --token --private`` parse to exactly what the new
    names give (``--push R`` = ``--push_to_hub --hub_model_id R``; ``--scatter-layer`` still repeats), each
    with a DeprecationWarning.

    Bugs caught: ``--push`` setting the repo but not ``push_to_hub`` (nothing uploaded), a repeated
    ``--scatter-layer`` keeping only the last layer, an old name silently dropped.
    """
    from hf_stadyn.cli import build_parser

    common = [str(report_dir), "--dataset", "org/videos", "--layer", "block_0", "--license", "mit"]
    old = ["--out", "D", "--base-model", "org/base", "--model-name", "tiny", "--scatter-layer", "block_0",
           "--scatter-layer", "block_1", "--push", "me/repo", "--token", "hf_x", "--private"]  # fmt: skip
    new = ["--output_dir", "D", "--base_model", "org/base", "--model_name", "tiny", "--scatter_layer", "block_0",
           "--scatter_layer", "block_1", "--push_to_hub", "--hub_model_id", "me/repo", "--hub_token", "hf_x",
           "--hub_private_repo"]  # fmt: skip
    parser = build_parser()
    with pytest.warns(DeprecationWarning) as record:
        ns_old = vars(parser.parse_args(["card", *common, *old]))
    assert len([w for w in record if issubclass(w.category, DeprecationWarning)]) == 8
    messages = " ".join(str(w.message) for w in record)
    for name in ("--out", "--base-model", "--model-name", "--scatter-layer", "--push", "--token", "--private"):
        assert f"{name} is deprecated" in messages
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        ns_new = vars(parser.parse_args(["card", *common, *new]))
    assert ns_old == ns_new
    assert ns_new["push_to_hub"] is True and ns_new["scatter_layers"] == ["block_0", "block_1"]

    # and an old command line still writes the same card (the console script, as a user runs it)
    proc = _stadyn(["card", str(report_dir), "--out", str(tmp_path / "old"), "--model-name", "tiny"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--out is deprecated; use --output_dir" in proc.stderr
    assert main(["card", str(report_dir), "--output_dir", str(tmp_path / "new"), "--model_name", "tiny"]) == 0
    for name in ("README.md", CARD_REPORT_JSON):
        assert (tmp_path / "old" / name).read_bytes() == (tmp_path / "new" / name).read_bytes()


def test_card_help_documents_every_option():
    """``stadyn card --help`` has a help text for each option and lists only the new names."""
    from hf_stadyn.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    card = sub.choices["card"]
    shown = [a for a in card._actions if a.help is not argparse.SUPPRESS]
    assert all(a.help for a in shown)
    names = {s for a in shown for s in a.option_strings}
    assert {"--output_dir", "--base_model", "--model_name", "--scatter_layer", "--push_to_hub", "--hub_model_id",
            "--hub_token", "--hub_private_repo"} <= names  # fmt: skip
    assert not {"--out", "--push", "--token", "--private", "--base-model"} & names


def test_failed_write_leaves_no_partial_card(tmp_path, report):
    """A failure while the card's files are being written (here save_figures refusing dpi=5, raised after the
    staging folder exists) leaves neither a new card folder nor a staging folder, and an existing card
    folder keeps exactly its old files; a successful write into an existing folder replaces the card's files
    and keeps the others.

    Bugs caught: figures written straight into the card folder before a later step fails (the old
    behaviour), a staging folder not removed, an existing folder's other files deleted.
    """
    with pytest.raises(ValueError, match="dpi"):
        write_model_card_folder(report, tmp_path / "deep" / "card", dpi=5)
    assert list(tmp_path.iterdir()) == []  # not even the parent folder it created
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "README.md").write_text("old card")
    (existing / "weights.bin").write_bytes(b"w")
    with pytest.raises(ValueError, match="dpi"):
        write_model_card_folder(report, existing, dpi=5)
    assert sorted(p.name for p in existing.iterdir()) == ["README.md", "weights.bin"]
    assert (existing / "README.md").read_text() == "old card"
    write_model_card_folder(report, existing)
    names = sorted(p.name for p in existing.iterdir())
    assert names == sorted(["README.md", "weights.bin", CARD_REPORT_JSON, FIGURE_LAYERS, FIGURE_CATEGORIES,
                            rho_figure_name("block_1")])  # fmt: skip
    assert (existing / "README.md").read_text() != "old card"
    new = write_model_card_folder(report, tmp_path / "fresh")
    mode = new.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask  # the folder gets the user's umask (not mkdtemp's 0700)


def test_card_push_to_local_hub(tmp_path, report, report_dir, hub_server):  # noqa: F811
    out = tmp_path / "card"
    proc = run_in_hub_env(
        hub_server,
        f"""
        import sys
        from hf_stadyn.cli import main
        sys.exit(main(["card", {str(report_dir)!r}, "--output_dir", {str(out)!r}, "--push_to_hub",
                       "--hub_model_id", "tester/tiny-card", "--base_model", "org/base"]))
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
