"""Real entry points in subprocesses (issue 12 point 2): ``accelerate launch`` with 2 processes (gloo, CPU),
DataLoader workers decoding real mp4 files, and a real SIGINT (Ctrl-C) + ``--resume_from_checkpoint``, each
giving report.json bytes equal to one plain ``stadyn probe`` run with the same settings.

The engine shards pairs by index (process r probes pairs r, r + world, ...), chunks the jackknife by source
video and sums the gathered per-pair statistics in pair order, so the numbers are the same bytes whatever the
process count; these tests hold it to that (no tolerance).

On ``accelerate launch --cpu --num_processes 2``: in accelerate 1.x ``--cpu`` takes the simple launcher, which
starts ONE process (several CPU processes need ``--mpirun_hostfile``), so a test with it would compare a
1-process run with itself. ``--multi_gpu`` with no visible GPU (``CUDA_VISIBLE_DEVICES=""``) starts torchrun's
2 processes, and accelerate picks the gloo backend (MULTI_CPU); the test checks that 2 processes really ran.

(SIGTERM and SIGKILL + resume are in tests/test_reproducible_bytes.py; not repeated here.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _media import write_motion_videos

#: every subprocess is bounded (a hung gloo rendezvous or worker must fail the test, not hang CI)
_TIMEOUT = 600


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """4 real mp4 files (StaDyn-Synth motion clips, 16 frames at 64 px), decoded by every run below."""
    return write_motion_videos(tmp_path_factory.mktemp("launch-videos"), 4, seed=5)


def _probe_args(videos: Path, out: Path) -> list[str]:
    return ["probe", "--videos", str(videos), "--num_pairs", "96", "--layers", "block_0,block_3", "--no_reference",
            "--seed", "7", "--use_cpu", "--disable_tqdm", "--output_dir", str(out)]  # fmt: skip


def _stadyn(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The console script (``stadyn``, as installed) in a new process."""
    exe = Path(sys.executable).with_name("stadyn")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "hf_stadyn"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=_TIMEOUT)


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory) -> bytes:
    """report.json of one plain ``stadyn probe`` process, batch 8, no DataLoader workers."""
    out = tmp_path_factory.mktemp("launch-ref") / "ref"
    res = _stadyn([*_probe_args(videos, out), "--batch_size", "8"], out.parent)
    assert res.returncode == 0, res.stderr[-3000:]
    return (out / "report.json").read_bytes()


def test_accelerate_launch_two_processes_equals_one(videos, reference, tmp_path):
    """Bugs caught: each process probing all pairs (or the same half) and reporting them; statistics gathered in
    rank order instead of pair order (float sums in another order change the last bits); both ranks writing the
    report; a process count recorded in report.json."""
    out = tmp_path / "two"
    port = _free_port()
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
           str(port), "-m", "hf_stadyn", "-v", *_probe_args(videos, out), "--batch_size", "4"]  # fmt: skip
    env = {**_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=_TIMEOUT)
    assert res.returncode == 0, res.stderr[-3000:]
    # two processes ran (each logs where the embedded model's inputs come from), one of them reported
    assert res.stderr.count("embedded default model:") == 2, res.stderr[-3000:]
    assert res.stdout.count("probed 96 pairs") == 1, res.stdout
    assert (out / "report.json").read_bytes() == reference
    assert not (out / ".probe_state").exists()


def test_dataloader_workers_decoding_real_videos_give_the_same_bytes(videos, reference, tmp_path):
    """Bugs caught: workers sharing one random stream (styles or frame offsets drawn from a global RNG copied
    into each worker), a decoder handle opened in the parent and reused in forked workers, pairs reordered
    across workers."""
    out = tmp_path / "workers"
    res = _stadyn([*_probe_args(videos, out), "--batch_size", "5", "--dataloader_num_workers", "2"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "report.json").read_bytes() == reference


def test_sigint_then_resume_gives_the_same_bytes(videos, reference, tmp_path):
    """A real Ctrl-C (SIGINT) once the first resume state is on disk: exit status 130, one stderr line telling to
    rerun with --resume_from_checkpoint, no report; the resumed run writes the uninterrupted run's bytes.

    Bugs caught: KeyboardInterrupt escaping as a traceback (exit 1) or a bare exit 130 with no advice; the state
    not saved on SIGINT (the resume then re-probes or double-counts pairs); a batch half-counted because SIGINT
    landed inside the estimator update; the state deleted by the interrupted run's cleanup."""
    out = tmp_path / "cut"
    state = out / ".probe_state"
    exe = Path(sys.executable).with_name("stadyn")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "hf_stadyn"]
    args = [*_probe_args(videos, out), "--batch_size", "4", "--save_every_pairs", "8"]
    proc = subprocess.Popen([*cmd, *args], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    sent = False
    try:
        for _ in range(3000):  # at most ~300 s
            if proc.poll() is not None:
                break
            if state.is_dir() and any(p.suffix == ".json" for p in state.rglob("*")):
                proc.send_signal(signal.SIGINT)
                sent = True
                break
            time.sleep(0.1)
        _, err = proc.communicate(timeout=_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if not sent:
        pytest.fail(f"no resume state appeared before the run ended (exit {proc.returncode}): {err[-2000:]}")
    if proc.returncode == 0:
        pytest.fail("the run finished before SIGINT reached it; probe more pairs")
    assert proc.returncode == 130, err[-3000:]
    lines = [ln for ln in err.splitlines() if "--resume_from_checkpoint" in ln]
    assert len(lines) == 1 and "interrupted" in lines[0], err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert not (out / "report.json").exists()
    assert any(p.suffix == ".json" for p in state.rglob("*")), "the interrupted run must keep its resume state"
    res = _stadyn([*_probe_args(videos, out), "--batch_size", "6", "--resume_from_checkpoint"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "report.json").read_bytes() == reference
    assert not state.exists()


_ENGINE_WORKER = """
import json, sys
import numpy as np, torch
from hf_stadyn.metric.stopping import StoppingRule
from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config
from hf_stadyn.pairs import ProbePairs
from hf_stadyn.probing.engine import probe_models


def run(accelerator, target, batch):
    torch.set_num_threads(1)
    models = {}
    for name, seed in (("model", 0), ("reference", 1)):
        torch.manual_seed(seed)
        models[name] = StadynVideoMAEForVideoClassification(tiny_videomae_config(3, num_frames=4, image_size=32))
    clips = np.random.default_rng(0).integers(0, 255, size=(12, 4, 32, 32, 3), dtype=np.uint8)
    pairs = ProbePairs(list(clips), num_pairs=121, seed=3)
    rule = StoppingRule(target_ci=target, max_pairs=4, min_pairs=24, growth=1.5)
    out = probe_models(models, pairs, ["block_1", "pre_classifier"], batch_size=batch, progress=False,
                       accelerator=accelerator, target_ci=rule)
    doc = {name: {"layers": {k: v.to_dict() for k, v in r.layers.items()}, "settings": r.settings}
           for name, r in out.items()}
    return json.loads(json.dumps(doc, default=lambda a: np.asarray(a).tolist()))


if __name__ == "__main__":
    import torch.distributed as dist
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)  # the gloo process group
    doc = run(accelerator, float(sys.argv[2]), int(sys.argv[3]))
    if accelerator.is_main_process:
        with open(sys.argv[1], "w") as fh:
            json.dump(doc, fh)
    dist.barrier()
    dist.destroy_process_group()
"""


def test_engine_stopping_rule_and_one_pass_reference_on_two_processes_equal_one(tmp_path):
    """probe_models (model + reference in one pass) with a stopping rule that stops at an inner look, on 2 gloo
    processes (torch.distributed.run) and on 1 (in this process): the same stop, pairs, fingerprint and readings
    (to 1e-9: the two shards' float64 sums are added in another order than one process's).

    Bugs caught: a look taken by one rank and not the other (a hang, caught by the timeout) or at different pair
    counts (121 pairs: the ranks hold 61 and 60), ranks deciding differently, statistics of one rank only in the
    decision, pairs past the stop counted on one rank, the reference's statistics synced into the model's."""
    import runpy

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    worker = tmp_path / "worker.py"
    worker.write_text(_ENGINE_WORKER)
    run = runpy.run_path(str(worker), run_name="engine_worker")["run"]

    def here(target: float, batch: int) -> dict:
        AcceleratorState._reset_state(reset_partial_state=True)
        try:
            return run(Accelerator(cpu=True), target, batch)
        finally:
            AcceleratorState._reset_state(reset_partial_state=True)

    probe_all = here(0.01, 8)  # never met: every look's half-widths
    hist = probe_all["model"]["settings"]["stopping"]["history"]
    widths = [max(max(h[m]["half_widths"].values()) for m in ("model", "reference")) for h in hist]
    target = widths[2] * 1.0001
    look = next(i for i, w in enumerate(widths) if w <= target)
    assert look < len(hist) - 1, widths
    one = here(target, 5)
    env = {**_env(), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = tmp_path / "two.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(worker), str(out), repr(target), "4"]  # fmt: skip
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=_TIMEOUT)
    assert res.returncode == 0, res.stderr[-3000:]
    two = json.loads(out.read_text())
    for name in ("model", "reference"):
        s1, s2 = one[name]["settings"], two[name]["settings"]
        assert s1["stopping"]["stopped"] == s2["stopping"]["stopped"] == {
            "reason": "target met", "look": look, "num_pairs": hist[look]["num_pairs"]
        }  # fmt: skip
        assert s2["num_processes"] == 2 and s1["num_processes"] == 1
        assert s1["pair_fingerprint"] == s2["pair_fingerprint"] and s1["num_pairs"] == s2["num_pairs"]
        for layer, exp in one[name]["layers"].items():
            got = two[name]["layers"][layer]
            assert got["num_pairs"] == exp["num_pairs"] and got["categories"] == exp["categories"]
            for key in ("s_dynamic", "s_static"):
                assert got[key] == pytest.approx(exp[key], rel=1e-9), (name, layer, key)
            for key, iv in exp["intervals"].items():
                assert got["intervals"][key]["stderr"] == pytest.approx(iv["stderr"], rel=1e-9), (name, layer)
    assert one["model"]["settings"]["model_fingerprint"] != one["reference"]["settings"]["model_fingerprint"]
