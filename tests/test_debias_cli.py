"""``stadyn train`` with the debiasers of docs/debiasing.md: a folder of real labelled videos (mp4, decoded
as any user's) trained 1 epoch with ``--decorrelate`` + ``--shuffle_uniform`` + ``--augment stillmix``
(the CI smoke of issue 14 point 4) records its settings in the checkpoint; bad values are one line and
exit 2 before anything is written; two processes (accelerate launch, gloo DDP) train with the shuffled forward."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from _media import write_motion_videos

from hf_stadyn.cli import main

TINY = ["--size", "16", "--num_frames", "4", "--hidden_size", "32", "--num_layers", "2", "--num_heads", "2",
        "--disable_tqdm", "--num_train_epochs", "1", "--per_device_train_batch_size", "4", "--seed", "1",
        "--logging_steps", "1", "--use_cpu", "--report_to", "none"]  # fmt: skip


def _train(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["train", "--task", "classification", *TINY, *args])
        except SystemExit as e:  # the task's own parser (as the console script exits)
            rc = e.code if isinstance(e.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("debias-videos")
    for k, name in enumerate(("left", "right")):  # labels are the folder names
        write_motion_videos(root / "videos" / name, 4, seed=k, num_frames=8, size=32)
    return root / "videos"


def test_folder_of_real_videos_trains_with_decorrelation_and_records_it(video_folder, tmp_path):
    out = tmp_path / "run"
    rc, stdout, stderr = _train([
        "--data", str(video_folder), "--window", "8", "--eval_fraction", "0.25", "--no_track_bias",
        "--decorrelate", "1", "--decorrelate_form", "cross_cov", "--decorrelate_layer", "block_1",
        "--decorrelate_shuffled_grad", "false", "--shuffle_uniform", "0.5", "--augment", "stillmix",
        "--stillmix_max", "0.3", "--output_dir", str(out),
    ])  # fmt: skip
    assert rc == 0, stderr[-3000:]
    assert "trained videomae" in stdout
    results = json.loads((out / "results.json").read_text())
    logged = [e for e in results["log_history"] if "loss" in e]
    assert logged and all("loss_decorrelation" in e and "loss_shuffle_uniform" in e for e in logged)
    assert results["epochs_done"] == 1
    debias = json.loads((out / "model" / "config.json").read_text())["stadyn"]["debias"]
    assert debias["decorrelation"] == {"weight": 1.0, "form": "cross_cov", "layer": "block_1",
                                       "shuffled_grad": False, "seed": 1}  # fmt: skip
    assert debias["shuffle_uniform"] == 0.5 and debias["augment"] == "stillmix" and debias["stillmix_max"] == 0.3
    ckpt = sorted(out.glob("checkpoint-*"))[-1]  # the Trainer checkpoints carry it too
    assert json.loads((ckpt / "config.json").read_text())["stadyn"]["debias"] == debias


BAD = [
    (["--decorrelate", "0"], "--decorrelate must be a positive"),
    (["--decorrelate", "-2"], "--decorrelate must be a positive"),
    (["--decorrelate", "1", "--decorrelate_form", "dot"], "invalid choice"),
    (["--decorrelate_layer", "block_1"], "need --decorrelate"),
    (["--decorrelate_shuffled_grad", "false"], "need --decorrelate"),
    (["--decorrelate", "1", "--decorrelate_shuffled_grad", "maybe"], "decorrelate_shuffled_grad"),
    (["--decorrelate", "1", "--decorrelate_layer", "block_99"], "block_99"),
    (["--shuffle_uniform", "-1"], "--shuffle_uniform must be"),
    (["--stillmix_max", "0.3"], "--stillmix_max needs --augment stillmix"),
    (["--augment", "stillmix", "--stillmix_max", "1.5"], "--stillmix_max must be in (0, 1]"),
    (["--augment", "mixup"], "invalid choice"),
]  # fmt: skip


@pytest.mark.parametrize("args,phrase", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_debias_values_are_one_line_exit_2(args, phrase, tmp_path):
    out = tmp_path / "run"
    synth = ["--train_clips", "8", "--test_clips", "4", "--synth_motions", "left,right", "--synth_appearances", "2"]
    rc, _, stderr = _train([*synth, *args, "--output_dir", str(out)])
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc == 2, stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("stadyn train"), lines
    assert phrase in lines[0], lines[0]
    assert not (out / "model").exists() and not list(out.glob("checkpoint-*")) if out.exists() else True


def test_two_processes_train_with_the_shared_shuffled_forward(tmp_path):
    """``accelerate launch`` with 2 CPU processes (gloo DDP): the extra shuffled forward through the DDP wrapper
    before one backward trains (a DDP that refused a second forward per step would fail here), the data is
    sharded (2 steps for 16 clips at 4 per process, not 4) and one process reports. About 27 s of CPU (two
    processes importing torch and transformers); minutes of wall time on a loaded machine."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    args = ["--output_dir", str(tmp_path / "run"), *TINY, "--train_clips", "16", "--test_clips", "4",
            "--synth_motions", "left,right", "--synth_appearances", "2", "--no_track_bias", "--decorrelate", "1",
            "--shuffle_uniform", "0.5"]  # fmt: skip
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port,
           "-m", "hf_stadyn", "train", "--task", "classification", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": port, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # fmt: skip
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("trained videomae") == 1, res.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["steps_done"] == 2
    assert all("loss_decorrelation" in e for e in results["log_history"] if "loss" in e)
