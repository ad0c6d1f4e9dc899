"""StaDyn-Synth as a Hub dataset (issue 17 point 4), against the local Hub server: ``stadyn synth --push_to_hub``,
``datasets.load_dataset(ID)``, then ``stadyn probe --dataset ID`` and ``stadyn train --data ID`` on what it returns.
Tiny sizes (4 training clips, 2 per test split, 8 frames of 32x32)."""

from __future__ import annotations

import json
import subprocess

import pytest
from hub_server import ALICE_WRITE_TOKEN, hub_env, hub_server, run_in_hub_env  # noqa: F401  (pytest fixture)

from hf_stadyn.synth import SynthConfig, generate, load_synth

REPO = "alice/stadyn-synth"
SIZE = ["--num_frames", "8", "--size", "32", "--seed", "5"]


def _stadyn(url: str, args: list[str], cwd=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["stadyn", *args], env=hub_env(url, token=ALICE_WRITE_TOKEN), cwd=cwd, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def pushed(hub_server):  # noqa: F811
    args = ["synth", "--push_to_hub", REPO, "--num_clips", "4", "--num_test_clips", "2", *SIZE, "--disable_tqdm",
            "--hub_token", ALICE_WRITE_TOKEN]  # fmt: skip
    return _stadyn(hub_server, args)


def test_push_writes_every_split_with_masks_and_a_card(tmp_path, hub_server, pushed):  # noqa: F811
    """Bugs caught: a split or config missing, the trap's test variants mixed up (cue_agrees), masks dropped or
    of the wrong shape, videos re-encoded (bytes differ from the local export of the same settings), the card
    missing how it was generated / the seed / the cue / the command, datasets' config metadata lost in the merge,
    the token written into the card's command."""
    assert f"to dataset repo {REPO}: {hub_server}/datasets/{REPO}/commit/" in pushed.stdout
    files = hub_server.hub.files(REPO, "dataset")
    readme = files["README.md"].decode()
    for piece in ("## How it is generated", "from seed `5`", "trap_cue=invariant", "99 %", "stadyn synth --push_to_hub",
                  "config_name: motion", "default: true", "task_categories:"):  # fmt: skip
        assert piece in readme, piece
    assert ALICE_WRITE_TOKEN not in readme
    assert json.loads(files["stadyn_synth.json"])["trap"]["test_conflicting"]["test_variant"] == "conflicting"
    code = """
        import json, hashlib, datasets, numpy as np
        out = {}
        for config in ("motion", "appearance", "trap"):
            dd = datasets.load_dataset("REPO_ID", config)
            out[config] = {s: [len(d), list(np.asarray(d[0]["mask"]).shape), [bool(c) for c in d["cue_agrees"]],
                               hashlib.sha256(d[0]["video"]).hexdigest()] for s, d in dd.items()}
        out["default"] = sorted(datasets.load_dataset("REPO_ID"))
        print(json.dumps(out))
    """.replace("REPO_ID", REPO)  # fmt: skip
    out = json.loads(run_in_hub_env(hub_server, code, token=ALICE_WRITE_TOKEN).stdout.strip().splitlines()[-1])
    assert out["default"] == ["test", "train"]
    assert sorted(out["trap"]) == ["test_aligned", "test_conflicting", "test_random", "train"]
    assert sorted(out["motion"]) == sorted(out["appearance"]) == ["test", "train"]
    for config in ("motion", "appearance", "trap"):
        for split, (n, shape, _, _) in out[config].items():
            assert n == (4 if split == "train" else 2) and shape == [8, 32, 32]
    assert out["trap"]["test_aligned"][2] == [True, True] and out["trap"]["test_conflicting"][2] == [False, False]
    # the mp4 bytes are the local export's for the same settings
    import hashlib
    from pathlib import Path

    local = generate(tmp_path / "t", split="trap", num_clips=2, config=SynthConfig(num_frames=8, size=32), seed=5,
                     train=False, test_variant="conflicting")  # fmt: skip
    first = Path(load_synth(local)[0]["video"]).read_bytes()
    assert out["trap"]["test_conflicting"][3] == hashlib.sha256(first).hexdigest()


def test_probe_and_train_read_the_hub_dataset(tmp_path, hub_server, pushed):  # noqa: F811
    """``stadyn probe --dataset ID`` makes its pairs from the default config's clips (mp4 bytes) and records the id;
    ``stadyn train --data ID`` trains on its train split and evaluates on its test split.

    Bugs caught: the Hub id taken for a missing local path (train), the bytes column not decoded, the label
    column's class names lost.
    """
    _stadyn(hub_server, ["probe", "--dataset", REPO, "--num_pairs", "8", "--batch_size", "8", "--disable_tqdm",
                         "--no_reference", "--output_dir", "probe"], cwd=tmp_path)  # fmt: skip
    doc = json.loads((tmp_path / "probe" / "report.json").read_text())
    assert doc["pair_settings"]["source"] == "dataset" and doc["pair_settings"]["dataset"] == REPO
    proc = _stadyn(hub_server, ["train", "--task", "classification", "--data", REPO, "--output_dir", "run",
                                "--num_train_epochs", "1", "--num_frames", "8", "--size", "32",
                                "--per_device_train_batch_size", "4", "--disable_tqdm", "--use_cpu", "--no_track_bias"], cwd=tmp_path)  # fmt: skip
    assert f"on {REPO} (4 clips" in proc.stdout
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["id2label"]["0"] == "left" and len(config["id2label"]) == 9
