"""``stadyn publish`` and ``stadyn card --push_to_hub`` against the local Hub server (tests/hub_server.py).

The server checks tokens, hides private repos and takes binary files through LFS only. The client side runs in
subprocesses (``stadyn`` console script, or one snippet for the library calls) with ``HF_ENDPOINT`` at the server;
nothing of ours is mocked.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from hub_server import ALICE_WRITE_TOKEN, hub_env, hub_server, run_in_hub_env  # noqa: F401  (pytest fixture)
from test_report import make_results
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from hf_stadyn.hub import CARD_BEGIN, CARD_END, write_model_card_folder
from hf_stadyn.report import BiasReport

REPO = "alice/ckpt"
TRAINING = {"command": "stadyn train --data synth --seed 3", "seed": 3, "base_model": "MCG-NJU/videomae-base"}
HAND_WRITTEN = "---\nlicense: mit\ntags:\n- mine\n---\n\n# My model\n\nMy own words about it.\n"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A checkpoint folder as model_cards/ holds them: weights, config, card, bias_report.json, training.json."""
    out = tmp_path_factory.mktemp("ckpt") / "my-videomae"
    cfg = VideoMAEConfig(image_size=32, patch_size=16, num_frames=2, tubelet_size=2, hidden_size=16,
                         num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=3)  # fmt: skip
    torch.manual_seed(0)
    VideoMAEForVideoClassification(cfg).save_pretrained(out)
    report = BiasReport.from_results(
        make_results(0), model_id="./my-videomae", pair_settings={"source": "stadyn-synth"}
    )
    write_model_card_folder(report, out, dpi=20)
    (out / "training.json").write_text(json.dumps(TRAINING))
    return out


def _stadyn(url: str, args: list[str], token: str | None = ALICE_WRITE_TOKEN) -> subprocess.CompletedProcess:
    return subprocess.run(["stadyn", *args], env=hub_env(url, token=token), capture_output=True, text=True, timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("stadyn publish: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_first_and_second_publish(hub_server, ckpt):  # noqa: F811
    """First push: every file, weights through LFS, the card rebuilt for the repo id, the tag, the commit URL.
    Second push of the same folder: nothing uploaded, no new commit, the tag found where it is.

    Bugs caught: unchanged files re-uploaded (a new commit each time; the wheel/weights sent again), the card
    keeping the local path as the model name, the tag missing or on another commit, LFS files compared by the
    git sha1 of their content (always "changed").
    """
    hub = hub_server.hub
    out = _ok(_stadyn(hub_server, ["publish", str(ckpt), "--repo_id", REPO, "--revision", "v1"]))
    repo = hub.get("model", REPO)
    head = repo.branches["main"]
    n = len(list(ckpt.iterdir()))
    assert f"published {n} file(s) to model repo {REPO}, tagged v1: {hub_server}/{REPO}/commit/{head}" in out
    files = hub.files(REPO)
    assert set(files) == {p.name for p in ckpt.iterdir()}
    assert files["model.safetensors"] == (ckpt / "model.safetensors").read_bytes()
    assert "model.safetensors" in hub.lfs_files(REPO)
    readme = files["README.md"].decode()
    assert f'from_pretrained("{REPO}")' in readme and "- name: alice/ckpt" in readme
    assert "./my-videomae" not in readme.split("---")[1]  # no local path in the metadata
    assert TRAINING["command"] in readme and "base_model: MCG-NJU/videomae-base" in readme
    assert repo.tags == {"v1": head}
    commits = len(repo.commits)
    out2 = _ok(_stadyn(hub_server, ["publish", str(ckpt), "--repo_id", REPO, "--revision", "v1"]))
    assert f"model repo {REPO} is up to date (nothing uploaded), tagged v1" in out2
    assert repo.branches["main"] == head and len(repo.commits) == commits
    assert hub.count("POST", f"^/api/models/{REPO}/commit/") == 1


def test_hand_written_card_survives_dry_run_and_tags(tmp_path, hub_server, ckpt):  # noqa: F811
    """A repo with a hand-written README: publish merges our block after the user's text (their license and tags
    kept), a second publish changes nothing, ``stadyn card --push_to_hub`` updates only our block; a dry run lists
    the changed file and uploads nothing; an existing tag is never moved (refused before any upload).

    Bugs caught: the README replaced (the user's words lost), our block appended again on every publish, the user's
    license overwritten by our default, a dry run that commits, a tag silently moved or a commit made before the
    tag is refused.
    """
    report = BiasReport.from_results(make_results(1), model_id="alice/hand", pair_settings={"source": "stadyn-synth"})
    report_path = tmp_path / "report.json"
    report_path.write_text(report.to_json())
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "notes.txt").write_text("v2\n")
    code = f"""
        import json, pathlib
        from huggingface_hub import HfApi
        from hf_stadyn.cli import main
        from hf_stadyn.hub import publish_folder
        api = HfApi()
        api.create_repo("alice/hand")
        api.upload_file(path_or_fileobj={HAND_WRITTEN.encode()!r}, path_in_repo="README.md", repo_id="alice/hand")
        out = {{}}
        r = publish_folder({str(ckpt)!r}, "alice/hand", revision="v1")
        out["first"] = [r.readme_merged, sorted(p for p, _ in r.changes)]
        r = publish_folder({str(ckpt)!r}, "alice/hand")
        out["again"] = r.changes
        out["card"] = main(["card", {str(report_path)!r}, "--push_to_hub", "--hub_model_id", "alice/hand"])
        r = publish_folder({str(changed)!r}, "alice/hand", dry_run=True)
        out["dry"] = [r.changes, r.summary()]
        try:
            publish_folder({str(changed)!r}, "alice/hand", revision="v1")
        except ValueError as e:
            out["tag"] = str(e)
        print(json.dumps(out))
    """
    hub = hub_server.hub
    proc = run_in_hub_env(hub_server, code, token=ALICE_WRITE_TOKEN)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["first"][0] is True and "README.md" in out["first"][1]
    assert out["again"] == []
    assert out["card"] == 0
    assert out["dry"][0] == [["notes.txt", "new"]] and "dry run: would upload 1 file(s)" in out["dry"][1]
    assert "tags are not moved" in out["tag"] and "nothing was uploaded" in out["tag"]
    readme = hub.files("alice/hand")["README.md"].decode()
    assert readme.count(CARD_BEGIN) == 1 and readme.count(CARD_END) == 1
    assert readme.index("My own words about it.") < readme.index(CARD_BEGIN)
    meta = readme.split("---")[1]
    assert "license: mit" in meta and "- mine" in meta and "- hf-stadyn" in meta
    # the card's block is the report's (card push after the checkpoint's), the weights stay
    assert f"{100 * report.layers['block.1'].share['dynamic']:.1f}" in readme.split(CARD_BEGIN)[1]
    assert "model.safetensors" in hub.files("alice/hand") and "notes.txt" not in hub.files("alice/hand")
    assert hub.get("model", "alice/hand").tags["v1"] != hub.get("model", "alice/hand").branches["main"]


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def test_private_repo_and_failures(hub_server, ckpt):  # noqa: F811
    """``--private`` with the owner's token: the repo is created hidden. Without a token, with a forged one, or
    with the Hub unreachable: exit 2, one line naming the repo and what to do, nothing uploaded.

    Bugs caught: --private not passed on, a traceback instead of one line, a partial upload on failure.
    """
    hub = hub_server.hub
    repo = "alice/private-ckpt"
    _ok(_stadyn(hub_server, ["publish", str(ckpt), "--repo_id", repo, "--private"]))
    assert hub.get("model", repo).private is True
    commits = len(hub.get("model", repo).commits)
    line = _error_line(_stadyn(hub_server, ["publish", str(ckpt), "--repo_id", repo, "--commit_message", "x"], None))
    assert repo in line and "401" in line and "pass --hub_token or set HF_TOKEN" in line
    line = _error_line(_stadyn(hub_server, ["publish", str(ckpt), "--repo_id", "alice/other"], "hf_forged"))
    assert "alice/other" in line and "401" in line
    line = _error_line(_stadyn(_closed_port_url(), ["publish", str(ckpt), "--repo_id", "alice/other"]))
    assert "cannot reach the Hub at http://127.0.0.1:" in line and "HF_ENDPOINT" in line
    assert len(hub.get("model", repo).commits) == commits and hub.get("model", "alice/other") is None
