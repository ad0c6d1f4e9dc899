"""Hub model cards (model-index round trip, card folder) and publishing to the local fake Hub."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hub_server import hub_server, run_in_hub_env  # noqa: F401  (pytest fixture)
from huggingface_hub import ModelCard
from test_report import make_results

from hf_stadyn.hub import CARD_REPORT_JSON, bias_model_card, push_report, write_model_card_folder
from hf_stadyn.report import FIGURE_CATEGORIES, FIGURE_LAYERS, BiasReport, rho_figure_name

LAYERS = ("embed", "block.0", "block.1")


@pytest.fixture(scope="module")
def report():
    return BiasReport.from_results(
        make_results(0),
        model_id="org/tiny-videomae",
        pair_settings={"num_pairs": 160, "dataset": "org/toy-videos"},
        seed=0,
        reference=make_results(1, dyn_share=0.05, stat_share=0.95),
        extra={"command": "stadyn probe --model org/tiny-videomae --pairs 160 --seed 0"},
    )


def _metrics(card) -> dict[str, object]:
    return {r.metric_type: r for r in card.data.eval_results}


def test_card_model_index_round_trips(tmp_path, report):
    card = bias_model_card(
        report,
        base_model="MCG-NJU/videomae-base",
        dataset="org/toy-videos",
        dataset_split="test",
        license="apache-2.0",
        tags=["videomae"],
    )
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert data.model_name == "org/tiny-videomae"
    assert data.base_model == "MCG-NJU/videomae-base" and data.datasets == ["org/toy-videos"]
    assert data.license == "apache-2.0" and {"hf-stadyn", "videomae"} <= set(data.tags)
    last = report.layers["block.1"]
    deltas = report.reference_deltas()["block.1"]
    m = _metrics(loaded)
    assert list(m) == [  # the headline first
        "static_dynamic_bias/dynamic_share",
        "static_dynamic_bias/static_share",
        "static_dynamic_bias/s_dynamic",
        "static_dynamic_bias/s_static",
        "static_dynamic_bias/dynamic_dims_percent",
        "static_dynamic_bias/static_dims_percent",
        "static_dynamic_bias/dynamic_share_delta",
        "static_dynamic_bias/static_share_delta",
    ]
    # the model-index value is the continuous share 100 * pi_F, inside its own interval
    for k in ("dynamic", "static"):
        r = m[f"static_dynamic_bias/{k}_share"]
        iv = last.intervals[f"percent_{k}"]
        assert r.metric_value == pytest.approx(100 * last.share[k], rel=1e-12)
        assert r.metric_args["ci_low"] == pytest.approx(iv.low) and r.metric_args["ci_high"] == pytest.approx(iv.high)
        assert r.metric_args["ci_low"] <= r.metric_value <= r.metric_args["ci_high"]
        assert f"95% CI [{iv.low:.1f}, {iv.high:.1f}]" in r.metric_name
        # the paper's floored dims % beside it, labelled, without an interval
        d = m[f"static_dynamic_bias/{k}_dims_percent"]
        assert d.metric_value == last.percent[k] and "dims % (paper)" in d.metric_name
        assert "ci_low" not in d.metric_args
    assert m["static_dynamic_bias/s_dynamic"].metric_value == pytest.approx(last.s_dynamic, rel=1e-12)
    assert m["static_dynamic_bias/s_static"].metric_value == pytest.approx(last.s_static, rel=1e-12)
    delta = m["static_dynamic_bias/dynamic_share_delta"]
    assert delta.metric_value == pytest.approx(deltas["share_dynamic"])
    assert delta.metric_args["ci_high"] == pytest.approx(deltas["share_dynamic_high"])
    assert delta.metric_args["paired"] is False  # no pair-set fingerprint in this report
    sd = m["static_dynamic_bias/s_dynamic"]
    assert sd.metric_args["layer"] == "block.1"
    assert sd.metric_args["ci_low"] == pytest.approx(last.intervals["s_dynamic"].low)
    for r in loaded.data.eval_results:
        assert r.task_type == "video-classification"
        assert r.dataset_type == "org/toy-videos" and r.dataset_split == "test"
    # another layer, no reference: other values, no delta results
    plain = BiasReport.from_results(make_results(0), model_id="m")
    card0 = bias_model_card(plain, layer="block.0", model_name="my-model")
    m0 = _metrics(card0)
    assert len(m0) == 6 and card0.data.model_name == "my-model"
    assert m0["static_dynamic_bias/s_static"].metric_value == plain.layers["block.0"].s_static
    assert m0["static_dynamic_bias/s_static"].dataset_type == "custom"


def test_card_body_and_folder(tmp_path, report):
    out = write_model_card_folder(report, tmp_path / "card", base_model="MCG-NJU/videomae-base")
    files = {p.name for p in out.iterdir()}
    figs = {FIGURE_LAYERS, FIGURE_CATEGORIES, rho_figure_name("block.1")}
    assert files == {"README.md", CARD_REPORT_JSON} | figs
    assert BiasReport.load(out / CARD_REPORT_JSON) == report
    readme = (out / "README.md").read_text()
    for name in figs:  # relative links to files that exist
        assert f"]({name})" in readme
    last = report.layers["block.1"]
    assert f"| block.1 | {last.num_channels} |" in readme
    assert f"{last.s_dynamic:.3f} [{last.intervals['s_dynamic'].low:.3f}" in readme
    assert "stadyn probe --model org/tiny-videomae --pairs 160 --seed 0" in readme  # the command
    assert "Compared with the reference" in readme and "## How it was measured" in readme
    assert "- seed: `0`" in readme and "- num_pairs: `160`" in readme
    card = ModelCard.load(out / "README.md")
    assert _metrics(card)["static_dynamic_bias/static_share"].metric_value == pytest.approx(
        100 * last.share["static"], rel=1e-12
    )
    # figures={} leaves images out
    # the body's headline: the share with its interval, dims % (paper) beside it
    iv = last.intervals["percent_dynamic"]
    head = f"**{100 * last.share['dynamic']:.1f} [{iv.low:.1f}, {iv.high:.1f}] % dynamic / "
    assert head in readme and f"dims % (paper): {last.percent['dynamic']:.1f} / {last.percent['static']:.1f}" in readme
    assert iv.low <= round(100 * last.share["dynamic"], 1) <= iv.high + 0.05
    assert "![" not in str(bias_model_card(report, figures={}))


def test_card_bad_inputs(tmp_path, report):
    with pytest.raises(ValueError, match="BiasReport"):
        bias_model_card({"layers": []})
    with pytest.raises(ValueError, match="not in this report"):
        bias_model_card(report, layer="head")
    with pytest.raises(ValueError, match="tags"):
        bias_model_card(report, tags="video")
    with pytest.raises(ValueError, match="figures"):
        write_model_card_folder(report, tmp_path / "x", figures={})
    with pytest.raises(ValueError, match="namespace/name"):
        push_report("no-namespace", report)
    with pytest.raises(ValueError, match="not a valid Hub repo id"):
        push_report("bad/na me", report)
    assert not (tmp_path / "x").exists()


def test_push_report_round_trips_through_local_hub(tmp_path, report, hub_server):  # noqa: F811
    report_path = tmp_path / "bias_report.json"
    report_path.write_text(report.to_json())
    proc = run_in_hub_env(
        hub_server,
        f"""
        import json, sys
        from huggingface_hub import HfApi, ModelCard, hf_hub_download
        from hf_stadyn.report import BiasReport
        from hf_stadyn.hub import push_report
        api = HfApi()
        api.create_repo("tester/tiny-bias")
        api.upload_file(path_or_fileobj=b'{{"model_type": "videomae"}}', path_in_repo="config.json",
                        repo_id="tester/tiny-bias")
        report = BiasReport.load({str(report_path)!r})
        info = push_report("tester/tiny-bias", report, token="hf_fake", base_model="MCG-NJU/videomae-base")
        readme = hf_hub_download("tester/tiny-bias", "README.md")
        back = BiasReport.load(hf_hub_download("tester/tiny-bias", "bias_report.json"))
        card = ModelCard.load(readme)
        print(json.dumps({{
            "oid": info.oid,
            "equal": back == report,
            "metrics": {{r.metric_type: r.metric_value for r in card.data.eval_results}},
            "files": sorted(api.list_repo_files("tester/tiny-bias")),
        }}))
    """,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["equal"] is True
    last = report.layers["block.1"]
    assert out["metrics"]["static_dynamic_bias/dynamic_share"] == pytest.approx(100 * last.share["dynamic"], rel=1e-12)
    assert out["metrics"]["static_dynamic_bias/s_static"] == pytest.approx(last.s_static, rel=1e-12)
    figs = [FIGURE_LAYERS, FIGURE_CATEGORIES, rho_figure_name("block.1")]
    assert out["files"] == sorted(["config.json", "README.md", CARD_REPORT_JSON, *figs])  # config kept
    # what the hub holds is byte for byte the local card folder
    local = write_model_card_folder(report, tmp_path / "local", base_model="MCG-NJU/videomae-base")
    remote = hub_server.hub.files("tester/tiny-bias")
    for name in ["README.md", CARD_REPORT_JSON, *figs]:
        assert remote[name] == (local / name).read_bytes(), name
    assert ("POST", "/api/validate-yaml") in hub_server.hub.requests  # the card was validated first


def test_fake_hub_serves_push_to_hub_and_from_pretrained(hub_server):  # noqa: F811
    pytest.importorskip("transformers")
    proc = run_in_hub_env(
        hub_server,
        """
        import json, torch
        from transformers import AutoModelForVideoClassification, VideoMAEConfig, VideoMAEForVideoClassification
        from transformers.utils import logging
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (RemoteEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)
        logging.disable_progress_bar()
        torch.manual_seed(0)
        cfg = VideoMAEConfig(image_size=32, patch_size=16, num_frames=2, tubelet_size=2, hidden_size=16,
                             num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=3)
        model = VideoMAEForVideoClassification(cfg).eval()
        model.push_to_hub("tester/tiny-videomae")
        loaded = AutoModelForVideoClassification.from_pretrained("tester/tiny-videomae").eval()
        x = torch.randn(2, 2, 3, 32, 32)
        with torch.no_grad():
            same = torch.equal(model(x).logits, loaded(x).logits)
        errors = {}
        for name, kw in [("entry", dict(repo_id="tester/tiny-videomae", filename="nope.bin")),
                         ("repo", dict(repo_id="tester/missing", filename="config.json")),
                         ("revision", dict(repo_id="tester/tiny-videomae", filename="config.json",
                                           revision="no-such-branch"))]:
            try:
                hf_hub_download(**kw)
            except (RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as e:
                errors[name] = type(e).__name__
        print(json.dumps({"same": same, "errors": errors}))
    """,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["same"] is True
    assert out["errors"] == {
        "entry": "RemoteEntryNotFoundError",
        "repo": "RepositoryNotFoundError",
        "revision": "RevisionNotFoundError",
    }
    files = hub_server.hub.files("tester/tiny-videomae")
    assert {"config.json", "model.safetensors"} <= set(files)
    head = [p for m, p in hub_server.hub.requests if m == "HEAD" and p.endswith("/model.safetensors")]
    assert head, "from_pretrained did not resolve the weights through the fake hub"
    assert np.frombuffer(files["model.safetensors"][:8], dtype="<u8")[0] > 0  # safetensors header length
