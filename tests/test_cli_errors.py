"""Every expected failure of the ``stadyn`` console script: one line on stderr, exit status 2, no traceback,
nothing written (README "Reliability"; docs/method.md has no part in it).

Each row runs the real console script in a fresh process, the way a user meets the failure. The bad inputs
are real files: copies of the embedded checkpoint with a corrupt ``config.json``, pickle-only weights or a
cut ``model.safetensors``, a one-frame mp4, a PNG and a JPEG, an output path under a file, a read-only
place, a closed port as the Hub.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from hf_stadyn.models.auto import DEFAULT_MODEL_DIR

# A root user may write anywhere chmod forbids; /sys refuses new files even to root (EACCES / EPERM).
_READ_ONLY = "/sys/stadyn-test-output"


def _read_only_place() -> bool:
    try:
        with tempfile.TemporaryFile(dir="/sys"):
            return False
    except OSError:
        return True


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """A folder of real bad inputs."""
    import cv2
    import torch

    from hf_stadyn.synth import SynthConfig, SynthDataset
    from hf_stadyn.video import write_video

    root = tmp_path_factory.mktemp("bad")
    src = Path(DEFAULT_MODEL_DIR)
    shutil.copytree(src, root / "corrupt_config")
    (root / "corrupt_config" / "config.json").write_text("{not json", encoding="utf-8")
    shutil.copytree(src, root / "pickle_only")
    (root / "pickle_only" / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(2)}, root / "pickle_only" / "pytorch_model.bin")
    shutil.copytree(src, root / "cut_weights")
    data = (src / "model.safetensors").read_bytes()
    (root / "cut_weights" / "model.safetensors").write_bytes(data[: len(data) // 2])
    clip = SynthDataset("motion", num_clips=1, config=SynthConfig(num_frames=16, size=64), seed=1)[0]["frames"].numpy()
    write_video(root / "good.mp4", clip, fps=8)
    write_video(root / "one_frame.mp4", clip[:1], fps=8)
    cv2.imwrite(str(root / "still.png"), np.zeros((64, 64, 3), np.uint8))
    cv2.imwrite(str(root / "still.jpg"), np.full((64, 64, 3), 90, np.uint8))
    (root / "a_file").write_text("x", encoding="utf-8")
    (root / "binary.json").write_bytes(bytes(range(256)) * 4)
    return root


def _stadyn(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    exe = shutil.which("stadyn")
    cmd = [exe] if exe else [sys.executable, "-m", "hf_stadyn"]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([*cmd, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)


# (id, arguments with {bad} for the fixture folder, extra environment, a phrase the one line must hold)
CASES = [
    ("hub-id-offline", ["probe", "--model", "nobody/no-such-model"], {}, "HF_HUB_OFFLINE is set"),
    ("corrupt-config", ["probe", "--model", "{bad}/corrupt_config"], {}, "config.json is not valid JSON"),
    ("pickle-only-weights", ["probe", "--model", "{bad}/pickle_only"], {}, "pytorch_model.bin"),
    ("cut-safetensors", ["probe", "--model", "{bad}/cut_weights"], {}, "truncated or corrupt"),
    ("missing-model-folder", ["probe", "--model", "./no_such_model"], {}, "does not exist"),
    ("missing-dataset-folder", ["probe", "--dataset", "./nope_ds"], {}, "no such folder"),
    ("num-pairs-beyond-memory", ["probe", "--num_pairs", "10000000000000"], {}, "memory"),
    ("num-pairs-below-4", ["probe", "--num_pairs", "2"], {}, "--num_pairs must be >= 4"),
    # seed 0: the first 4 pairs hold 1 static pair (pair i's factor is a function of (seed, i))
    ("one-factor-short", ["probe", "--num_pairs", "4", "--seed", "0"], {}, "at least 2 of each"),
    ("one-frame-video", ["probe", "--videos", "{bad}/one_frame.mp4", "{bad}/good.mp4"], {}, "1 decodable frame"),
    ("png-as-video", ["probe", "--videos", "{bad}/still.png"], {}, "an image, not a video"),
    ("jpeg-as-video", ["probe", "--videos", "{bad}/good.mp4", "{bad}/still.jpg"], {}, "an image, not a video"),
    ("missing-video", ["probe", "--videos", "{bad}/nope.mp4"], {}, "does not exist"),
    ("output-is-a-file", ["probe", "--output_dir", "{bad}/a_file"], {}, "is not a folder"),
    ("output-under-a-file", ["probe", "--output_dir", "{bad}/a_file/sub"], {}, "is a file"),
    ("output-read-only", ["probe", "--output_dir", _READ_ONLY], {}, "cannot write"),
    ("unknown-layer", ["probe", "--layers", "block_0,block_99"], {}, "unknown layer"),
    ("batch-size-0", ["probe", "--batch_size", "0"], {}, "--batch_size"),
    ("resume-nothing", ["probe", "--resume_from_checkpoint"], {}, "holds no interrupted run"),
    ("bf16-without-gpu", ["probe", "--bf16"], {"CUDA_VISIBLE_DEVICES": ""}, "needs a GPU"),
    ("train-pickle-only", ["train", "--task", "classification", "--output_dir", "run", "--model",
                           "{bad}/pickle_only"], {}, "pytorch_model.bin"),
    ("train-read-only", ["train", "--task", "avos", "--output_dir", _READ_ONLY], {}, "cannot write"),
    ("train-bad-task", ["train", "--task", "detection", "--output_dir", "run"], {}, "invalid choice"),
    ("synth-read-only", ["synth", "--output_dir", _READ_ONLY, "--num_clips", "2"], {}, "cannot write"),
    ("synth-output-is-a-file", ["synth", "--output_dir", "{bad}/a_file", "--num_clips", "2"], {}, "not a folder"),
    ("compare-missing", ["compare", "{bad}/none.json", "{bad}/none2.json"], {}, "does not exist"),
    ("compare-binary", ["compare", "{bad}/binary.json", "{bad}/binary.json"], {}, "binary.json"),
    # huggingface_hub retries a refused connection with backoff (1 + 2 + 4 + 8 + 8 s) before the one line comes
    ("hub-unreachable", ["probe", "--model", "nobody/no-such-model"],
     {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot be reached"),
]  # fmt: skip


@pytest.fixture(scope="module")
def results(bad, tmp_path_factory):
    """Every case's process, each in its own empty working folder, three at a time from the module's start (each
    process is single-threaded, and hub-unreachable mostly sleeps): {id: (working folder, future)}, with the
    listing of ``bad`` taken before any of them ran."""
    before = sorted(p.name for p in bad.iterdir())
    pool = ThreadPoolExecutor(max_workers=3)
    started = {}
    for name, args, env, _ in sorted(CASES, key=lambda c: c[0] != "hub-unreachable"):  # the sleeper first
        if _READ_ONLY in args and not _read_only_place():
            continue
        cwd = tmp_path_factory.mktemp(f"cwd-{name}")
        started[name] = (cwd, pool.submit(_stadyn, [a.replace("{bad}", str(bad)) for a in args], cwd, **env))
    yield started, before
    pool.shutdown(wait=True)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_one_line_exit_2_nothing_written(case, bad, results):
    name, args, env, phrase = case
    if _READ_ONLY in args and not _read_only_place():
        pytest.skip("no read-only place on this machine (/sys accepts files)")
    started, before = results
    cwd, future = started[name]
    res = future.result()
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, (name, res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"stadyn {args[0]}"), lines[0]
    assert phrase in lines[0], lines[0]
    assert sorted(p.name for p in cwd.iterdir()) == [], "something was written in the working folder"
    # the cases run side by side: a file left in ``bad`` fails every row that finishes after it appears
    assert sorted(p.name for p in bad.iterdir()) == before, "something was written next to the bad inputs"
