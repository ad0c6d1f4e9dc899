"""The scripts in examples/ run as a user runs them (a subprocess, offline) and do what they say.

Each test runs one script with tiny arguments and checks a result that a plausible bug would break:
a report whose layers are not the model's or that lost a factor's pairs (e.g. a pair dataset that
yields only one factor, or a probe that skips layers), a bias history that records only the start of
training (tracking schedule not wired), a Trainer run whose callbacks need manual wiring or drop
Trainer's own loss logs at the steps where bias is measured, an AVOS run that writes no metrics or a probe that never
reaches the fusion layers. ``--help`` of every script must work without running anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import hf_stadyn
from hf_stadyn.models.auto import DEFAULT_MODEL_DIR

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = (
    "probe_model_folder.py",
    "finetune_with_bias_tracking.py",
    "trainer_static_dropout.py",
    "avos_two_stream.py",
    "probe_custom_3dcnn.py",
)


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"{script} failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


def test_readme_lists_every_script() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    on_disk = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert on_disk == sorted(SCRIPTS)
    for name in SCRIPTS:
        assert f"python examples/{name}" in readme


#: every run the tests below read: {key: (script, arguments)}, ``{cwd}`` = the run's own empty working folder;
#: the slowest first
RUNS: dict[str, tuple[str, list[str]]] = {
    "probe": ("probe_model_folder.py", ["--num-clips", "4", "--num-pairs", "32", "--out", "{cwd}/probe"]),
    "trainer_static_dropout": ("trainer_static_dropout.py", [
        "--output_dir", "{cwd}/run", "--num_train", "24", "--per_device_train_batch_size", "8",
        "--num_train_epochs", "1", "--logging_steps", "1", "--eval_strategy", "epoch", "--save_strategy", "epoch",
        "--use_cpu", "--report_to", "none", "--disable_tqdm", "True"]),
    "avos": ("avos_two_stream.py", ["--train-clips", "4", "--test-clips", "2", "--probe-videos", "2", "--num-pairs",
                                    "16", "--out", "{cwd}/avos"]),
    "finetune": ("finetune_with_bias_tracking.py", ["--num-train", "24", "--num-eval", "8", "--batch-size", "8",
                                                    "--track-every", "2", "--probe-pairs", "8", "--out", "{cwd}/run"]),
    # every random choice comes from --seed: a second run (fresh clips, fresh pairs) must read the same
    "probe_again": ("probe_model_folder.py", ["--num-clips", "4", "--num-pairs", "32", "--no-figures", "--out",
                                              "{cwd}/again"]),
    **{f"help-{Path(s).stem}": (s, ["--help"]) for s in SCRIPTS},
}  # fmt: skip


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """All RUNS, two at a time from the first test that needs one (each script is single-threaded):
    {key: (working folder, future of the finished process)}."""
    pool = ThreadPoolExecutor(max_workers=2)
    started = {}
    for key, (script, args) in RUNS.items():
        cwd = tmp_path_factory.mktemp(key)
        started[key] = (cwd, pool.submit(_run, script, *[a.replace("{cwd}", str(cwd)) for a in args], cwd=cwd))
    yield started
    pool.shutdown(wait=True)


def _result(ran, key: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    cwd, future = ran[key]
    return future.result(), cwd


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script: str, ran) -> None:
    proc, cwd = _result(ran, f"help-{Path(script).stem}")
    assert "--out" in proc.stdout and "--seed" in proc.stdout
    assert not any(cwd.iterdir()), "--help must not write anything"


def test_probe_model_folder(ran) -> None:
    proc, tmp_path = _result(ran, "probe")
    out = tmp_path / "probe"
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    expected = list(hf_stadyn.load_model(DEFAULT_MODEL_DIR).probe_layers())
    assert [lb["layer"] for lb in doc["layers"]] == expected
    for lb in doc["layers"]:
        assert lb["num_pairs"]["dynamic"] > 0 and lb["num_pairs"]["static"] > 0
        assert lb["num_pairs"]["dynamic"] + lb["num_pairs"]["static"] == 32
    assert (out / "report.md").is_file() and list(out.glob("*.png"))
    # the printed table has one row per layer, with the report's numbers
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.split()}
    for lb in doc["layers"]:
        assert float(rows[lb["layer"]][1]) == pytest.approx(lb["percent"]["dynamic"])
    # every random choice comes from --seed: a second run (fresh clips, fresh pairs) reads the same
    _, again = _result(ran, "probe_again")
    assert json.loads((again / "again" / "report.json").read_text(encoding="utf-8"))["layers"] == doc["layers"]


def test_finetune_with_bias_tracking(ran) -> None:
    proc, tmp_path = _result(ran, "finetune")
    out = tmp_path / "run"
    lines = (out / "bias_history.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    assert len(records) >= 2
    steps = [r["step"] for r in records]
    assert steps == [0, 2]  # before training, then every 2 of the 3 optimizer steps (24 clips / batch 8)
    assert all(r["layers"] for r in records)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for name in ("aligned", "conflicting"):
        acc = results["final"][f"eval/{name}/accuracy"]
        assert 0.0 <= acc <= 1.0
        assert f"{name:<12} {acc:.3f}" in proc.stdout
    assert f"bias history ({len(records)} records" in proc.stdout
    assert (out / "model" / "config.json").is_file()


def test_trainer_static_dropout(ran) -> None:
    """TrainingArguments on the command line; the StaticDropout / bias callbacks attach themselves (no
    manual attach) and keep Trainer's loss at every step, the measurements included (steps 0 and 2)."""
    proc, tmp_path = _result(ran, "trainer_static_dropout")
    out = tmp_path / "run"
    assert "bias measured at steps [0, 2]" in proc.stdout and "eval_conflicting_accuracy" in proc.stdout
    records = [json.loads(line) for line in (out / "bias_history.jsonl").read_text().splitlines() if line]
    assert [r["step"] for r in records] == [0, 2] and all(r["layers"] for r in records)
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text(encoding="utf-8"))
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3]
    assert all("grad_norm" in h and "learning_rate" in h for h in state["log_history"] if "loss" in h)
    assert [h["step"] for h in state["log_history"] if "bias/static_dropout/num_static" in h] == [0, 2]
    assert (out / "checkpoint-3" / "bias_history.jsonl").is_file()
    sd = json.loads((out / "config.json").read_text(encoding="utf-8"))["stadyn"]["static_dropout"]
    assert sd["p"] == 0.5 and sd["static_channels"] == records[-1]["static_dropout"]["static_channels"]


def test_avos_two_stream(ran) -> None:
    proc, tmp_path = _result(ran, "avos")
    out = tmp_path / "avos"
    metrics = json.loads((out / "model" / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["eval"]) == {"normal", "camouflage"}
    assert metrics["train"]["num_steps"] >= 1
    fusion = [n for n in hf_stadyn.load_model(out / "model").probe_layers() if n.startswith("fusion")]
    assert len(fusion) >= 2
    printed = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("fusion")]
    assert printed[1:] == fusion  # the header "fusion layer" comes first, then one row per fusion layer
    assert "probed 16 two-stream pairs" in proc.stdout
