"""Every Hub path of the product, through the real ``stadyn`` console script, against the local Hub server.

The server (tests/hub_server.py) checks tokens, hides private repos, takes binary files through LFS only,
redirects LFS downloads to another origin with linked ETags, and answers 5xx on request. Each test runs
``stadyn`` in a subprocess with ``HF_ENDPOINT`` pointing at it, ``HF_TOKEN`` set (or not), a fresh ``HF_HOME``
and the offline switches off; nothing of ours is monkeypatched. Models and datasets are pushed first with the
real huggingface_hub / transformers / datasets APIs (one setup process).
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hub_server import ALICE_READ_TOKEN, ALICE_WRITE_TOKEN, hub_env, hub_server, run_in_hub_env  # noqa: F401

from hf_stadyn.hub import CARD_REPORT_JSON
from hf_stadyn.metric import StaticDynamicEstimator
from hf_stadyn.report import FIGURE_CATEGORIES, FIGURE_LAYERS, BiasReport, rho_figure_name

MODEL = "alice/tiny-videomae"
DATASET = "alice/tiny-videos"
PRIVATE_MODEL = "alice/private-videomae"
PROBE_ARGS = ["--num_pairs", "16", "--synth_clips", "8", "--batch_size", "8", "--disable_tqdm", "--no_reference"]

_SETUP = """
import io, json, tempfile
import datasets, torch
from huggingface_hub import HfApi
from transformers import VideoMAEConfig, VideoMAEForVideoClassification
from hf_stadyn.synth import SynthConfig, SynthDataset
from hf_stadyn.video import write_video

api = HfApi()
cfg = VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32,
                     num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=3)

def push(repo, seed, revision=None, private=None):
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as d:
        VideoMAEForVideoClassification(cfg).save_pretrained(d)
        return api.upload_folder(repo_id=repo, folder_path=d, revision=revision).oid

api.create_repo(MODEL)
main_sha = push(MODEL, 0)
api.create_branch(MODEL, branch="v2")
v2_sha = push(MODEL, 1, revision="v2")
api.create_repo(PRIVATE_MODEL, private=True)
push(PRIVATE_MODEL, 2)

synth = SynthDataset("motion", num_clips=3, config=SynthConfig(num_frames=16, size=64), seed=3)
videos = []
with tempfile.TemporaryDirectory() as d:
    for i in range(3):
        write_video(f"{d}/clip{i}.mp4", synth[i]["frames"].numpy(), fps=8)
        videos.append(open(f"{d}/clip{i}.mp4", "rb").read())
datasets.Dataset.from_dict({"video": videos, "label": [0, 1, 2]}).push_to_hub(DATASET)
print(json.dumps({"main": main_sha, "v2": v2_sha}))
"""


@pytest.fixture(scope="module")
def pushed(hub_server):  # noqa: F811
    """A tiny stock VideoMAE (main: seed 0, branch v2: seed 1), a private one, and a dataset of mp4 bytes."""
    code = f"MODEL, DATASET, PRIVATE_MODEL = {MODEL!r}, {DATASET!r}, {PRIVATE_MODEL!r}\n" + _SETUP
    proc = run_in_hub_env(hub_server, code, token=ALICE_WRITE_TOKEN)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _stadyn(url: str, args: list[str], *, token: str | None, hf_home: Path | None = None, cwd: Path | None = None):
    env = hub_env(url, token=token, hf_home=str(hf_home) if hf_home else None)
    return subprocess.run(["stadyn", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    return proc


def _one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"stadyn {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def _readings(report: dict) -> list[tuple[float, float]]:
    return [(lb["s_dynamic"], lb["s_static"]) for lb in report["layers"]]


# -- stadyn probe --model ID --revision R ------------------------------------------------------------
def test_probe_reads_the_requested_hub_revision(tmp_path, hub_server, pushed):  # noqa: F811
    """`--revision v2` probes v2's weights and records "v2"; main (given by its commit sha) reads otherwise.

    Bugs caught: --revision not passed to from_pretrained (both runs read main: equal readings, no
    request for resolve/v2), the report recording another revision, weights not taken through the LFS
    redirect (no blob named by the linked sha256 in the cache).
    """
    hub = hub_server.hub
    home = tmp_path / "hf"
    n_before = len(hub.log)
    _ok(_stadyn(hub_server, ["probe", "--model", MODEL, "--revision", "v2", *PROBE_ARGS, "--output_dir", "v2"],
                token=ALICE_WRITE_TOKEN, hf_home=home, cwd=tmp_path))  # fmt: skip
    v2_log = hub.log[n_before:]
    main_sha = pushed["main"]
    _ok(_stadyn(hub_server, ["probe", "--model", MODEL, "--revision", main_sha, *PROBE_ARGS, "--output_dir", "main"],
                token=ALICE_WRITE_TOKEN, hf_home=home, cwd=tmp_path))  # fmt: skip
    v2 = json.loads((tmp_path / "v2" / "report.json").read_text())
    main = json.loads((tmp_path / "main" / "report.json").read_text())
    assert v2["model"]["revision"] == "v2" and main["model"]["revision"] == main_sha
    assert v2["model"]["id"] == MODEL
    assert _readings(v2) != _readings(main)  # other weights, same pairs (same seed)
    # the weights came from v2 through the LFS redirect: HEAD resolve/v2 -> 302, GET of v2's object
    v2_weights = hub.files(MODEL, revision="v2")["model.safetensors"]
    sha256 = hashlib.sha256(v2_weights).hexdigest()
    heads = {(p, s) for m, p, s, _ in v2_log if m == "HEAD" and p.endswith("/model.safetensors")}
    assert heads and heads <= {(f"/{MODEL}/resolve/{r}/model.safetensors", 302) for r in ("v2", pushed["v2"])}
    assert any(m == "GET" and p.endswith(f"/{sha256}") and s == 200 for m, p, s, _ in v2_log)
    # hf_hub_download's cache layout: refs/v2 -> v2's sha, snapshot file -> blob named by the linked etag
    repo_cache = home / "hub" / f"models--{MODEL.replace('/', '--')}"
    assert (repo_cache / "refs" / "v2").read_text() == pushed["v2"]
    snap = repo_cache / "snapshots" / pushed["v2"] / "model.safetensors"
    assert snap.is_symlink() and snap.resolve() == (repo_cache / "blobs" / sha256).resolve()
    assert (repo_cache / "snapshots" / main_sha / "model.safetensors").is_file()


def test_probe_of_a_private_model_with_its_owners_token(tmp_path, hub_server, pushed):  # noqa: F811
    """HF_TOKEN reaches every download of a private model (config, weights through the LFS redirect)."""
    _ok(_stadyn(hub_server, ["probe", "--model", PRIVATE_MODEL, *PROBE_ARGS, "--output_dir", "ok"],
                token=ALICE_WRITE_TOKEN, cwd=tmp_path))  # fmt: skip
    assert json.loads((tmp_path / "ok" / "report.json").read_text())["model"]["id"] == PRIVATE_MODEL


@pytest.mark.parametrize("token", [None, "hf_not_a_token"], ids=["anonymous", "bad-token"])
def test_probe_of_a_hidden_model_exits_2_naming_the_repo(tmp_path, hub_server, pushed, token):  # noqa: F811
    """A private model without (a valid) token: exit 2, one line naming the repo, no output folder.

    Bug caught: transformers turns the Hub's RepositoryNotFoundError into an OSError, which reached the user
    as a traceback with exit 1.
    """
    proc = _stadyn(hub_server, ["probe", "--model", PRIVATE_MODEL, *PROBE_ARGS, "--output_dir", "out"], token=token,
                   cwd=tmp_path)  # fmt: skip
    line = _one_line_error(proc, "probe")
    assert PRIVATE_MODEL in line
    assert not (tmp_path / "out").exists()


# -- stadyn probe --dataset ID -----------------------------------------------------------------------
def test_probe_reads_a_hub_dataset_of_video_bytes(tmp_path, hub_server, pushed):  # noqa: F811
    """`--dataset alice/tiny-videos` loads the pushed parquet (an LFS file) and probes its mp4 bytes.

    Bugs caught: the Hub id taken for a local path, the video column of bytes not decoded, the pairs not
    made from the dataset (source recorded as synth).
    """
    hub = hub_server.hub
    assert any(p.endswith(".parquet") for p in hub.lfs_files(DATASET, "dataset"))  # pushed through LFS
    n_before = len(hub.log)
    args = ["probe", "--model", MODEL, "--dataset", DATASET, "--num_pairs", "8", "--batch_size", "8", "--disable_tqdm",
            "--no_reference", "--output_dir", "out"]  # fmt: skip
    _ok(_stadyn(hub_server, args, token=ALICE_WRITE_TOKEN, cwd=tmp_path))
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["pair_settings"]["source"] == "dataset" and doc["pair_settings"]["dataset"] == DATASET
    assert sum(lb["num_pairs"]["dynamic"] + lb["num_pairs"]["static"] for lb in doc["layers"][:1]) == 8
    log = hub.log[n_before:]
    assert any(p.startswith(f"/datasets/{DATASET}/resolve/") and p.endswith(".parquet") for _, p, _, _ in log)


# -- stadyn card REPORT --output_dir DIR --push_to_hub --hub_model_id ID ----------------------------------------------------------
@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """A small real report (two layers, estimator output)."""
    rng = np.random.default_rng(0)
    est = StaticDynamicEstimator(num_chunks=5)
    n, c = 40, 8
    factors = np.array([0, 1] * (n // 2))
    for layer, noise_d in (("block_0", 1.5), ("block_1", 0.3)):
        za = rng.normal(size=(n, c))
        noise = np.where(factors[:, None] == 0, noise_d, 1.0) * rng.normal(size=(n, c))
        est.update(za, za + noise, factors, layer=layer)
    rep = BiasReport.from_results(est.compute(), model_id=MODEL, seed=0, pair_settings={"num_pairs": n})
    out = tmp_path_factory.mktemp("report")
    rep.save(out)
    return out


CARD_FILES = sorted(["README.md", CARD_REPORT_JSON, FIGURE_LAYERS, FIGURE_CATEGORIES, rho_figure_name("block_1")])
PNGS = {FIGURE_LAYERS, FIGURE_CATEGORIES, rho_figure_name("block_1")}


def _http(url: str, token: str | None = None, method: str = "HEAD") -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"} if token else {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
def test_card_push_public_and_private(tmp_path, hub_server, report_dir, private):  # noqa: F811
    """The card folder reaches the Hub byte for byte, figures through LFS; --hub_private_repo hides the repo.

    Bugs caught: --hub_private_repo not passed on (the repo is readable anonymously), PNGs sent inline (the server
    rejects binary files outside LFS), files differing from the local --output_dir folder.
    """
    repo = f"alice/card-{'private' if private else 'public'}"
    out = tmp_path / "card"
    args = ["card", str(report_dir), "--output_dir", str(out), "--push_to_hub", "--hub_model_id", repo] + (
        ["--hub_private_repo"] if private else []
    )
    proc = _ok(_stadyn(hub_server, args, token=ALICE_WRITE_TOKEN))
    assert f"pushed the model card of {MODEL} to {repo}" in proc.stdout
    hub = hub_server.hub
    remote = hub.files(repo)
    assert sorted(remote) == CARD_FILES
    for name, data in remote.items():
        assert data == (out / name).read_bytes(), name
    assert hub.lfs_files(repo) == PNGS  # binary figures went through LFS, README/JSON inline
    assert hub.get("model", repo).private is private
    readme = f"{hub_server}/{repo}/resolve/main/README.md"
    assert _http(readme)[0] == (401 if private else 200)  # anonymous
    status, headers = _http(readme, token=ALICE_READ_TOKEN)
    assert status == 200 and headers["x-repo-commit"] == hub.get("model", repo).branches["main"]
    if private:
        assert _http(readme)[1].get("x-error-code") == "RepoNotFound"


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    "case, token, expect",
    [
        ("bad-token", "hf_not_a_token", ["401", "pass --hub_token or set HF_TOKEN"]),
        ("read-only-token", ALICE_READ_TOKEN, ["403", "write token"]),
        ("anonymous", None, ["401", "pass --hub_token or set HF_TOKEN"]),
        ("unreachable", ALICE_WRITE_TOKEN, ["cannot reach the Hub at http://127.0.0.1:", "HF_ENDPOINT"]),
        ("commit-500", ALICE_WRITE_TOKEN, ["500", "commit"]),
    ],
)
def test_card_push_failures_exit_2_with_one_line(tmp_path, hub_server, report_dir, case, token, expect):  # noqa: F811
    """Each way a push fails on the Hub gives exit 2 and one line naming the repo; nothing lands there.

    The commit request is not retried by huggingface_hub, so one 500 on it fails the push.
    """
    repo = f"alice/card-{case}"
    hub = hub_server.hub
    url = _closed_port_url() if case == "unreachable" else str(hub_server)
    if case == "commit-500":
        hub.fail_next(1, path=f"^/api/models/{repo}/commit/", status=500)
    try:
        proc = _stadyn(url, ["card", str(report_dir), "--push_to_hub", "--hub_model_id", repo], token=token)
    finally:
        hub.clear_failures()
    line = _one_line_error(proc, "card")
    assert repo in line
    for piece in expect:
        assert piece in line, line
    repo_state = hub.get("model", repo)
    assert repo_state is None or sorted(hub.files(repo)) == []


def test_card_push_retries_5xx_answers(tmp_path, hub_server, report_dir):  # noqa: F811
    """Two 503s on preupload and a 500 on one LFS upload are retried; the push then succeeds.

    Bugs caught (in the server or the client path): a retry that re-sends an empty body (the server checks
    the sha256 of every PUT), a failure not retried (exit 2), retries not reaching the server (counts).
    """
    repo = "alice/card-retried"
    hub = hub_server.hub
    hub.fail_next(2, path=f"^/api/models/{repo}/preupload/", status=503)
    hub.fail_next(1, path=f"^/lfs-upload/models/{repo}/", status=500, method="PUT")
    try:
        _ok(
            _stadyn(
                hub_server, ["card", str(report_dir), "--push_to_hub", "--hub_model_id", repo], token=ALICE_WRITE_TOKEN
            )
        )
    finally:
        hub.clear_failures()
    assert hub.count("POST", f"^/api/models/{repo}/preupload/") == 3
    assert hub.count("PUT", f"^/lfs-upload/models/{repo}/") == len(PNGS) + 1
    assert sorted(hub.files(repo)) == CARD_FILES and hub.lfs_files(repo) == PNGS
