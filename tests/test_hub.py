"""Hub model cards (model-index round trip, card folder) and publishing to the local fake Hub."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from hub_server import ALICE_WRITE_TOKEN, hub_server, run_in_hub_env  # noqa: F401  (pytest fixture)
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
    assert m0["static_dynamic_bias/s_static"].dataset_type == "hf-stadyn/stadyn-synth"


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
    # the body's headline: the share with its interval, dims % (paper) beside it
    iv = last.intervals["percent_dynamic"]
    head = f"**{100 * last.share['dynamic']:.1f} [{iv.low:.1f}, {iv.high:.1f}] % dynamic / "
    assert head in readme and f"dims % (paper): {last.percent['dynamic']:.1f} / {last.percent['static']:.1f}" in readme
    assert round(iv.low, 1) <= round(100 * last.share["dynamic"], 1) <= round(iv.high, 1)
    card = ModelCard.load(out / "README.md")
    assert _metrics(card)["static_dynamic_bias/static_share"].metric_value == pytest.approx(
        100 * last.share["static"], rel=1e-12
    )
    # figures={} leaves images out
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
    assert out["files"] == sorted([".gitattributes", "config.json", "README.md", CARD_REPORT_JSON, *figs])  # kept
    # what the hub holds is byte for byte the local card folder
    local = write_model_card_folder(report, tmp_path / "local", base_model="MCG-NJU/videomae-base")
    remote = hub_server.hub.files("tester/tiny-bias")
    for name in ["README.md", CARD_REPORT_JSON, *figs]:
        assert remote[name] == (local / name).read_bytes(), name
    assert ("POST", "/api/validate-yaml") in hub_server.hub.requests  # the card was validated first
    assert hub_server.hub.lfs_files("tester/tiny-bias") == set(figs)  # PNGs through LFS, text inline


def _post(url: str, payload: dict | bytes, token: str | None = ALICE_WRITE_TOKEN) -> tuple[int, dict, str]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def test_hub_server_decides_lfs_like_the_hub(hub_server):  # noqa: F811
    """The test Hub's preupload answer, inline-binary rejection and Xet refusal (what the product tests rely on).

    Bugs caught: a server answering "regular" for everything (the product's PNG/safetensors pushes would no
    longer exercise LFS), .gitattributes patterns or the 10 MiB rule ignored, binary files accepted inline.
    """
    run_in_hub_env(hub_server, "from huggingface_hub import HfApi; HfApi().create_repo('alice/lfs-rules')",
                   token=ALICE_WRITE_TOKEN)  # fmt: skip
    api = f"{hub_server}/api/models/alice/lfs-rules"
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"

    def sample(data: bytes) -> str:
        return base64.b64encode(data[:512]).decode()

    files = [
        {"path": "notes.txt", "size": 12, "sample": sample(b"plain text\n")},
        {"path": "figs/plot.png", "size": 2000, "sample": sample(png)},  # binary (NUL in the header)
        {"path": "w.safetensors", "size": 40, "sample": sample(b'{"__metadata__": {}}')},  # text, but tracked
        {"path": "big.txt", "size": 11 * 1024 * 1024, "sample": sample(b"a" * 512)},  # >= 10 MiB
        {"path": "empty.bin", "size": 0, "sample": ""},  # empty files stay regular
    ]
    status, _, body = _post(f"{api}/preupload/main", {"files": files})
    assert status == 200, body
    modes = {f["path"]: f["uploadMode"] for f in json.loads(body)["files"]}
    assert modes == {"notes.txt": "regular", "figs/plot.png": "lfs", "w.safetensors": "lfs", "big.txt": "lfs",
                     "empty.bin": "regular"}  # fmt: skip
    # a binary file sent inline is rejected; a text file is taken
    ndjson = b"\n".join(
        json.dumps(x).encode()
        for x in [
            {"key": "header", "value": {"summary": "inline png"}},
            {"key": "file", "value": {"path": "a.png", "encoding": "base64", "content": sample(png)}},
        ]
    )
    status, _, body = _post(f"{api}/commit/main", ndjson)
    assert status == 400 and "LFS" in body
    assert "a.png" not in hub_server.hub.files("alice/lfs-rules")
    # an LFS pointer to an object that was never uploaded is refused
    ptr = {"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": "0" * 64, "size": 3}}
    status, _, _ = _post(f"{api}/commit/main", b"\n".join(json.dumps(x).encode() for x in [
        {"key": "header", "value": {"summary": "dangling"}}, ptr]))  # fmt: skip
    assert status == 422
    # writes need the owner's write token
    assert _post(f"{api}/preupload/main", {"files": files[:1]}, token=None)[0] == 401
    assert _post(f"{api}/preupload/main", {"files": files[:1]}, token="hf_alice_read")[0] == 403
    assert _post(f"{api}/preupload/main", {"files": files[:1]}, token="hf_bob_write")[0] == 403
    assert _post(f"{api}/preupload/main", {"files": files[:1]}, token="hf_forged")[1]["x-error-message"] == (
        "Invalid credentials in Authorization header"
    )
    # no Xet here: the token route says how to turn it off
    req = urllib.request.Request(
        f"{api}/xet-write-token/main", headers={"Authorization": f"Bearer {ALICE_WRITE_TOKEN}"}
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 501 and "HF_HUB_DISABLE_XET" in e.value.headers["X-Error-Message"]


def test_pushed_models_load_through_load_model_from_the_local_hub(hub_server):  # noqa: F811
    """Our model class's push_to_hub and a stock VideoMAE checkpoint, both read back by hf_stadyn.load_model
    from the test Hub (by id and by commit), with the Hub behaviours that path relies on: LFS weights,
    redirects, cache layout, error types per failure, and a 503 on a download retried.

    Bugs caught (ours): load_model not giving our class for a stock checkpoint, or weights or config lost on
    the way (logits differ from the model that was pushed); ``revision`` not passed to the downloads (the
    commit-pinned load of the first push would read the second push's weights); the checkpoint's
    preprocessor_config.json not read from the Hub (the input spec would keep the class defaults).
    Bugs caught (the test Hub): safetensors committed inline (no LFS), a resolve without X-Linked-Etag (the
    cache blob would be named by the git sha1, not the sha256), private repos readable without the owner's
    token, a bad token mapped to RepositoryNotFoundError (huggingface_hub keeps "Invalid credentials" a plain
    HfHubHTTPError), 5xx answers not given when asked (the retry count would be 1).
    """
    hub = hub_server.hub
    hub.fail_next(2, path=r"^/tester/tiny-videomae/resolve/[^/]+/config\.json$", status=503, method="HEAD")
    try:
        proc = run_in_hub_env(
            hub_server,
            """
            import hashlib, json, os, torch
            from pathlib import Path
            from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor
            from transformers.utils import logging
            from huggingface_hub import HfApi, hf_hub_download
            from huggingface_hub.errors import HfHubHTTPError
            from hf_stadyn import load_model
            from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config
            logging.disable_progress_bar()
            x = torch.randn(2, 2, 3, 32, 32)

            def logits(m):
                with torch.no_grad():
                    return m.eval()(pixel_values=x).logits

            # a stock checkpoint with its own processor statistics, pushed twice (the first push pinned by sha)
            cfg = VideoMAEConfig(image_size=32, patch_size=16, num_frames=2, tubelet_size=2, hidden_size=16,
                                 num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=3)
            torch.manual_seed(0)
            stock = VideoMAEForVideoClassification(cfg).eval()
            first = stock.push_to_hub("tester/tiny-videomae").oid
            VideoMAEImageProcessor(image_mean=[0.1, 0.2, 0.3], image_std=[0.9, 0.8, 0.7], size={"shortest_edge": 32},
                                   crop_size={"height": 32, "width": 32}).push_to_hub("tester/tiny-videomae")
            torch.manual_seed(1)
            VideoMAEForVideoClassification(cfg).push_to_hub("tester/tiny-videomae")
            latest = load_model("tester/tiny-videomae")
            pinned = load_model("tester/tiny-videomae", revision=first)
            # our own class, pushed with push_to_hub
            torch.manual_seed(2)
            ours = StadynVideoMAEForVideoClassification(tiny_videomae_config(num_labels=3, num_frames=2, image_size=32))
            ours.push_to_hub("tester/stadyn-videomae")
            ours_back = load_model("tester/stadyn-videomae")
            spec = latest.probe_input_spec()
            weights = Path(hf_hub_download("tester/tiny-videomae", "model.safetensors"))
            blob = weights.resolve()
            HfApi(token="hf_alice_write").create_repo("alice/secret", private=True)
            HfApi(token="hf_alice_write").upload_file(path_or_fileobj=b"{}", path_in_repo="config.json",
                                                      repo_id="alice/secret")
            errors = {}
            for name, kw in [("entry", dict(repo_id="tester/tiny-videomae", filename="nope.bin")),
                             ("repo", dict(repo_id="tester/missing", filename="config.json")),
                             ("revision", dict(repo_id="tester/tiny-videomae", filename="config.json",
                                               revision="no-such-branch")),
                             ("private-anonymous", dict(repo_id="alice/secret", filename="config.json", token=False)),
                             ("private-other-user", dict(repo_id="alice/secret", filename="config.json",
                                                         token="hf_bob_write")),
                             ("bad-token", dict(repo_id="alice/secret", filename="config.json", token="hf_forged"))]:
                try:
                    hf_hub_download(**kw)
                except HfHubHTTPError as e:
                    errors[name] = [type(e).__name__, e.response.status_code]
            own = hf_hub_download("alice/secret", "config.json", token="hf_alice_write")
            print(json.dumps({
                "classes": [type(m).__name__ for m in (latest, pinned, ours_back)],
                "pinned_is_first": torch.equal(logits(pinned), logits(stock)),
                "latest_is_first": torch.equal(logits(latest), logits(stock)),
                "ours_same": torch.equal(logits(ours_back), logits(ours)),
                "mean": list(spec["mean"]), "std": list(spec["std"]),
                "errors": errors, "blob": blob.name, "blob_parent": blob.parent.name,
                "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "own": Path(own).read_text()}))
            """,
        )
    finally:
        hub.clear_failures()
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["classes"] == ["StadynVideoMAEForVideoClassification"] * 3
    assert out["pinned_is_first"] is True and out["latest_is_first"] is False
    assert out["ours_same"] is True
    assert out["mean"] == pytest.approx([0.1, 0.2, 0.3]) and out["std"] == pytest.approx([0.9, 0.8, 0.7])
    assert out["errors"] == {
        "entry": ["RemoteEntryNotFoundError", 404],
        "repo": ["RepositoryNotFoundError", 404],
        "revision": ["RevisionNotFoundError", 404],
        "private-anonymous": ["RepositoryNotFoundError", 401],
        "private-other-user": ["RepositoryNotFoundError", 404],
        "bad-token": ["HfHubHTTPError", 401],
    }
    assert out["own"] == "{}"
    assert hub.lfs_files("tester/tiny-videomae") == {"model.safetensors"}
    assert hub.lfs_files("tester/stadyn-videomae") == {"model.safetensors"}
    # the cache blob is named by the linked etag (sha256), which the CDN redirect carried
    assert out["blob_parent"] == "blobs" and out["blob"] == out["sha256"]
    assert any(m == "HEAD" and p.endswith("/model.safetensors") and s == 302 for m, p, s, _ in hub.log)
    # two 503s on the config's HEAD, then the answer: three attempts reached the server
    assert hub.count("HEAD", r"^/tester/tiny-videomae/resolve/[^/]+/config\.json$") >= 3
    assert np.frombuffer(hub.files("tester/tiny-videomae")["model.safetensors"][:8], dtype="<u8")[0] > 0
