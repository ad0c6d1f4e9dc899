"""Byte-identical means the bytes: ``stadyn probe`` with the same settings and seed writes the same report.json
whatever the output folder, the DataLoader worker count, the batch size, and after a real interruption
(SIGTERM, SIGKILL) and resume; written files get the user's umask (README "Reliability").

A plausible bug each test catches: the command line (with ``--output_dir`` / ``--resume_from_checkpoint``)
copied into the report; the batch size recorded; a resumed estimator summing in another order; a
checkpoint taken mid-batch; report files left at mkstemp's mode 0600.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _media import write_motion_videos

from hf_stadyn.cli import main as stadyn


@pytest.fixture(autouse=True)
def _reset_accelerate():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return write_motion_videos(tmp_path_factory.mktemp("videos"), 4, seed=2)


def _common(videos: Path) -> list[str]:
    return ["probe", "--videos", str(videos), "--num_pairs", "96", "--layers", "block_0,block_3", "--no_reference",
            "--seed", "3", "--disable_tqdm"]  # fmt: skip


def test_same_bytes_for_any_output_folder_workers_and_batch_size(videos, tmp_path):
    common = _common(videos)
    assert stadyn([*common, "--output_dir", str(tmp_path / "a"), "--batch_size", "8"]) == 0
    assert stadyn([*common, "--output_dir", str(tmp_path / "deep" / "b"), "--batch_size", "5",
                   "--dataloader_num_workers", "2"]) == 0  # fmt: skip
    a = (tmp_path / "a" / "report.json").read_bytes()
    assert a == (tmp_path / "deep" / "b" / "report.json").read_bytes()
    doc = json.loads(a)
    text = a.decode()
    for word in ("output_dir", "disable_tqdm", "batch_size", "dataloader_num_workers", str(tmp_path)):
        assert word not in text, word
    # the recorded command reproduces the numbers: it names the settings that change them
    cmd = doc["extra"]["command"]
    assert "--num_pairs 96" in cmd and "--seed 3" in cmd and "--layers block_0,block_3" in cmd, cmd


def _run_until_state(args: list[str], cwd: Path, state: Path, sig: int) -> tuple[int, str]:
    """Start ``stadyn probe`` in a new process, send ``sig`` once its resume state exists, return its exit code."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hf_stadyn", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for _ in range(3000):  # at most 300 s
            if proc.poll() is not None:
                break
            if state.is_dir() and any(p.suffix == ".json" for p in state.rglob("*")):
                proc.send_signal(sig)
                break
            time.sleep(0.1)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_same_bytes_after_a_real_interruption_and_resume(videos, tmp_path, sig):
    common = _common(videos)
    ref = tmp_path / "ref"
    assert stadyn([*common, "--output_dir", str(ref), "--batch_size", "8"]) == 0
    cut = tmp_path / "cut"
    code, err = _run_until_state(
        [*common, "--output_dir", str(cut), "--batch_size", "4", "--save_every_pairs", "8"], tmp_path,
        cut / ".probe_state", sig,
    )  # fmt: skip
    if code == 0:
        pytest.fail("the run finished before it could be interrupted; probe more pairs")
    assert not (cut / "report.json").exists()
    if sig == signal.SIGTERM:
        assert code == 130, err[-2000:]
        assert "--resume_from_checkpoint" in err, err[-2000:]
    # resumed with another batch size and worker count: the same bytes
    assert stadyn([*common, "--output_dir", str(cut), "--batch_size", "6", "--dataloader_num_workers", "1",
                   "--resume_from_checkpoint"]) == 0  # fmt: skip
    assert (cut / "report.json").read_bytes() == (ref / "report.json").read_bytes()
    assert not (cut / ".probe_state").exists()


def test_resume_refuses_other_settings(videos, tmp_path, capsys):
    common = _common(videos)
    cut = tmp_path / "cut"
    code, _ = _run_until_state(
        [*common, "--output_dir", str(cut), "--batch_size", "4", "--save_every_pairs", "8"], tmp_path,
        cut / ".probe_state", signal.SIGKILL,
    )  # fmt: skip
    assert code != 0
    changed = [a if a != "3" else "4" for a in common]  # --seed 4
    assert stadyn([*changed, "--output_dir", str(cut), "--resume_from_checkpoint"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err, err
    assert (cut / ".probe_state").is_dir(), "a refused resume must keep the state"


def test_report_files_get_the_user_umask(videos, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [*_common(videos), "--num_pairs", "16", "--output_dir", str(out)]
    res = subprocess.run([sys.executable, "-m", "hf_stadyn", *args], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600, preexec_fn=lambda: os.umask(0o027))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes and all(m == 0o640 for m in modes.values()), modes
