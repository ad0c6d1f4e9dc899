"""Every ``stadyn train --task classification`` flag of issue 12 reaches a real run (the console script in a
subprocess) that checks its EFFECT, not only that it parses.

Seven tiny runs (16 px, 4 frames, 2 blocks of width 32, 24 clips, 1 epoch of 3 steps), two at a time:

* ``base``: StaticDropout top_k at block_1, ``--track_every 1``, ``--save_strategy steps --save_steps 1
  --save_total_limit 1``, ``--report_to tensorboard`` when tensorboard is installed;
* ``control``: ``base`` with ``--save_total_limit 3`` and ``--report_to none`` (nothing that changes numbers):
  the same losses and weights, which is what makes "differs from base" below mean something;
* ``dropout``, ``stylize``, ``random``: ``base`` plus ``--dropout 0.3`` / ``--augment stylize`` /
  ``--sd_selection random``, one change each;
* ``folder``: a class-folder tree of real mp4s with ``--eval_data`` (another folder) and ``--no_track_bias``;
* ``table``: a datasets ``save_to_disk`` folder with columns ``clip`` / ``action`` (``--video_column clip
  --label_column action``), ``--model timesformer``, default bias tracking (each epoch).

All flag names are the current ones (the issue's dashed ``--sd-selection``, ``--eval-data``, ``--video-column``,
``--label-column``, ``--report-to``, ``--save-total-limit``, ``--track-every``, ``--no-track-bias`` are now
``--sd_selection``, ``--eval_data``, ... : TrainingArguments names plus hf_stadyn/training/args.py fields).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
TINY = ["--size", "16", "--num_frames", "4", "--hidden_size", "32", "--num_layers", "2", "--num_heads", "2",
        "--disable_tqdm", "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--seed", "3",
        "--logging_steps", "1", "--probe_pairs", "16", "--use_cpu"]  # fmt: skip
SYNTH = ["--train_clips", "24", "--test_clips", "8", "--synth_motions", "left,right,up", "--synth_appearances", "3"]
BASE = [*SYNTH, "--static_dropout", "0.5", "--sd_layer", "block_1", "--sd_num_static", "8", "--sd_probe_pairs", "16",
        "--track_every", "1", "--save_strategy", "steps", "--save_steps", "1"]  # fmt: skip
CLASSES = ("left", "right", "up")
#: label names of the datasets folder: not the folder names, so a run that read another column would show it
ACTIONS = ("go-left", "go-right", "go-up")


def _stadyn(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``stadyn train --task classification ...`` through the installed console script, in a new process."""
    exe = Path(sys.executable).with_name("stadyn")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "hf_stadyn"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([*cmd, "train", "--task", "classification", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def _write_videos(root: Path, per_class: int, seed: int) -> list[tuple[Path, str]]:
    from hf_stadyn.synth import SynthConfig, SynthDataset
    from hf_stadyn.video import write_video

    ds = SynthDataset("motion", 3 * per_class, SynthConfig(num_frames=8, size=32, motions=CLASSES), seed=seed)
    rows = []
    for i in range(len(ds)):
        item = ds[i]
        name = CLASSES[item["label"]]
        path = root / name / f"clip{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, item["frames"].numpy(), fps=8)
        rows.append((path, name))
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    import datasets

    root = tmp_path_factory.mktemp("train-flags")
    _write_videos(root / "train_videos", per_class=2, seed=0)  # 6 videos
    _write_videos(root / "eval_videos", per_class=1, seed=1)  # 3 other videos
    rows = _write_videos(root / "table_videos", per_class=3, seed=2)
    cols = {"clip": [str(p) for p, _ in rows], "action": [ACTIONS[CLASSES.index(c)] for _, c in rows]}
    half = {k: v[::2] for k, v in cols.items()}
    rest = {k: v[1::2] for k, v in cols.items()}
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(half), "test": datasets.Dataset.from_dict(rest)}
    ).save_to_disk(str(root / "table"))
    tb = ["--report_to", "tensorboard", "--save_total_limit", "1"] if HAS_TENSORBOARD else ["--save_total_limit", "1"]
    folder = ["--data", str(root / "train_videos"), "--eval_data", str(root / "eval_videos"), "--no_track_bias",
              "--window", "8"]  # fmt: skip
    table = ["--data", str(root / "table"), "--video_column", "clip", "--label_column", "action", "--model",
             "timesformer", "--window", "8", "--per_device_train_batch_size", "2"]  # fmt: skip
    plans = {
        "base": [*BASE, *tb],
        "control": [*BASE, "--report_to", "none", "--save_total_limit", "3"],
        "dropout": [*BASE, *tb, "--dropout", "0.3"],
        "stylize": [*BASE, *tb, "--augment", "stylize"],
        "random": [*BASE, *tb, "--sd_selection", "random"],
        "folder": folder,
        "table": table,
    }
    if not HAS_TENSORBOARD:
        plans["no_tensorboard"] = [*SYNTH, "--report_to", "tensorboard"]
    plans["refused"] = [*SYNTH, "--eval_data", str(root / "eval_videos")]

    def go(name: str) -> tuple[str, tuple[Path, subprocess.CompletedProcess]]:
        out = root / name
        return name, (out, _stadyn([*TINY, *plans[name], "--output_dir", str(out)], root))  # the plan's words win

    with ThreadPoolExecutor(max_workers=2) as pool:  # 2 cores: two runs at a time
        return dict(pool.map(go, plans))


def _ok(runs, name: str) -> Path:
    out, res = runs[name]
    assert res.returncode == 0, f"{name}: {res.stderr[-3000:]}"
    return out


def _losses(out: Path) -> list[tuple[int, float]]:
    log = json.loads((out / "results.json").read_text())["log_history"]
    return [(h["step"], h["loss"]) for h in log if "loss" in h]


def _bias(out: Path) -> list[dict]:
    return [json.loads(s) for s in (out / "bias_history.jsonl").read_text().splitlines()]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "model" / "model.safetensors"))


def test_control_run_is_the_same_run(runs):
    """The run with only bookkeeping flags changed gives the same losses and weights as base: the differences
    asserted below come from the flag under test, not from run-to-run noise."""
    base, control = _ok(runs, "base"), _ok(runs, "control")
    assert len(_losses(base)) == 3 and _losses(base) == _losses(control)
    wb, wc = _weights(base), _weights(control)
    assert wb.keys() == wc.keys() and all(torch.equal(wb[k], wc[k]) for k in wb)


def test_save_total_limit_keeps_only_that_many_checkpoints(runs):
    """3 saves (--save_steps 1); --save_total_limit 1 keeps the newest, 3 keeps all. Bug caught: our
    CLASSIFICATION_DEFAULTS (save_total_limit 2) overriding the flag."""
    assert sorted(p.name for p in _ok(runs, "base").glob("checkpoint-*")) == ["checkpoint-3"]
    assert sorted(p.name for p in _ok(runs, "control").glob("checkpoint-*")) == [
        "checkpoint-1", "checkpoint-2", "checkpoint-3"
    ]  # fmt: skip


def test_disable_tqdm_hides_the_checkpoint_bars_too(runs):
    """--disable_tqdm: no progress bar on stderr, also none from the 3 checkpoint saves (transformers' "Writing
    model shards" bar, which Trainer's own disable_tqdm does not reach)."""
    _ok(runs, "base")
    err = runs["base"][1].stderr
    assert "Writing model shards" not in err and "it/s]" not in err, err[-3000:]


def test_track_every_and_no_track_bias(runs):
    """--track_every 1: a measurement before training and after each of the 3 steps, logged through Trainer too;
    the default (table run): before training and at the epoch's end; --no_track_bias: no history, no figure, no
    bias scalars."""
    base = _ok(runs, "base")
    assert [r["step"] for r in _bias(base)] == [0, 1, 2, 3]
    logged = [h["step"] for h in json.loads((base / "results.json").read_text())["log_history"]
              if "bias/block_1/static_pct" in h]  # fmt: skip
    assert logged == [0, 1, 2, 3]
    table = _ok(runs, "table")
    steps = json.loads((table / "results.json").read_text())["steps_done"]
    assert steps > 1 and [r["step"] for r in _bias(table)] == [0, steps]
    folder = _ok(runs, "folder")
    assert not (folder / "bias_history.jsonl").exists() and not (folder / "bias_history.png").exists()
    log = json.loads((folder / "results.json").read_text())["log_history"]
    assert log and not any(k.startswith("bias/") for h in log for k in h)
    assert json.loads((folder / "results.json").read_text())["options"]["track_bias"] is False


def test_dropout_changes_training_and_is_recorded(runs):
    """Ordinary dropout at the classifier input: the same init and probe pairs as base (equal bias before
    training), other losses from the first step (a dropout left out of the training forward, or one not
    switched off in eval, would give base's losses or change the step-0 bias)."""
    base, drop = _ok(runs, "base"), _ok(runs, "dropout")
    assert json.loads((drop / "results.json").read_text())["options"]["dropout"] == 0.3
    assert _bias(drop)[0]["layers"] == _bias(base)[0]["layers"]
    lb, ld = _losses(base), _losses(drop)
    assert [s for s, _ in lb] == [s for s, _ in ld] and lb[0][1] != ld[0][1]


def test_stylize_augmentation_changes_the_training_clips(runs):
    """--augment stylize restyles training clips only: the probe pairs (made from the unaugmented clips) and the
    model before training are base's (equal step-0 bias), the first loss differs (a restyled batch)."""
    base, sty = _ok(runs, "base"), _ok(runs, "stylize")
    opts = json.loads((sty / "results.json").read_text())["options"]
    assert opts["augment"] == "stylize" and opts["augment_p"] == 1.0
    assert _bias(sty)[0]["layers"] == _bias(base)[0]["layers"]
    assert _losses(sty)[0][1] != _losses(base)[0][1]


def test_sd_selection_random_draws_another_set_of_the_same_size(runs):
    """Bias measured on the same model and pairs (equal step-0 layers); --sd_selection random picks 8 channels
    that are not top_k's 8, and the set reaches the saved config. Bug caught: the selection option dropped
    between the CLI and StaticDropoutConfig (then both sets are top_k's)."""
    base, rnd = _ok(runs, "base"), _ok(runs, "random")
    b0, r0 = _bias(base)[0], _bias(rnd)[0]
    assert b0["layers"] == r0["layers"]
    assert b0["static_dropout"]["selection"] == "top_k" and r0["static_dropout"]["selection"] == "random"
    top, drawn = b0["static_dropout"]["static_channels"], r0["static_dropout"]["static_channels"]
    assert len(top) == len(drawn) == 8 and len(set(drawn)) == 8 and set(top) != set(drawn)
    assert all(0 <= c < 32 for c in drawn)
    cfg = json.loads((rnd / "model" / "config.json").read_text())["stadyn"]["static_dropout"]
    assert (
        cfg["selection"] == "random" and cfg["static_channels"] == _bias(rnd)[-1]["static_dropout"]["static_channels"]
    )


def test_eval_data_is_the_set_evaluated(runs, tmp_path):
    """--eval_data: all 6 training videos train (none held out), and the recorded eval loss is the saved model's
    loss on the 3 videos of the eval folder, recomputed here outside Trainer. Bug caught: --eval_data ignored
    (a held-out 20 % of the training videos evaluated instead)."""
    from hf_stadyn.models.auto import load_model
    from hf_stadyn.training import video_folder_datasets
    from hf_stadyn.training.classification import evaluate_classifier

    out, res = runs["folder"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "(6 clips," in res.stdout, res.stdout
    metrics = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    root = out.parent
    _, evals, names = video_folder_datasets(root / "train_videos", eval_root=root / "eval_videos", num_frames=4,
                                            size=16, window=8, seed=3)  # fmt: skip
    assert len(evals["eval"]) == 3
    got = evaluate_classifier(load_model(out / "model").eval(), evals["eval"])
    assert got["num_clips"] == 3
    assert metrics[-1]["eval/eval/loss"] == pytest.approx(got["loss"], rel=1e-5, abs=1e-6)
    assert metrics[-1]["eval/eval/accuracy"] == pytest.approx(got["accuracy"])


def test_custom_columns_and_timesformer_load_with_from_pretrained(runs):
    """--video_column clip --label_column action: the labels are the 'action' values (not folder names);
    --model timesformer: a TimeSformer checkpoint plain transformers loads, with our logits. Bug caught: the
    column flags not passed on (the run fails on a missing 'video' column) or the architecture flag ignored
    (a VideoMAE saved)."""
    from transformers import AutoModelForVideoClassification

    from hf_stadyn.models.auto import load_model

    out, res = runs["table"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "(5 clips," in res.stdout, res.stdout  # the train split: every other of 9 rows
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["model_type"] == "timesformer"
    assert sorted(cfg["id2label"].values()) == sorted(ACTIONS)
    plain = AutoModelForVideoClassification.from_pretrained(str(out / "model")).eval()
    assert type(plain).__name__ == "TimesformerForVideoClassification"
    x = torch.randn(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(plain(pixel_values=x).logits, load_model(out / "model").eval()(pixel_values=x).logits)


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed (its one-line error is tested)")
def test_report_to_tensorboard_writes_event_files(runs):
    """Event files under <output_dir>/runs hold Trainer's loss and our bias scalars; --report_to none writes none."""
    events = list((_ok(runs, "base") / "runs").rglob("events.out.tfevents.*"))
    assert events
    blob = b"".join(p.read_bytes() for p in events)
    assert b"train/loss" in blob and b"bias/block_1/static_pct" in blob and b"eval/aligned_accuracy" in blob
    assert not (_ok(runs, "control") / "runs").exists()


@pytest.mark.skipif(HAS_TENSORBOARD, reason="tensorboard is installed (its event files are tested)")
def test_report_to_tensorboard_without_it_is_one_line(runs):
    out, res = runs["no_tensorboard"]
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(err) == 1, res.stderr[-3000:]
    assert "--report_to tensorboard" in err[0] and "pip install tensorboard" in err[0]
    assert not out.exists()


def test_eval_data_with_synth_data_is_refused(runs):
    """--eval_data with StaDyn-Synth data used to be silently ignored (trained and evaluated on synth clips)."""
    out, res = runs["refused"]
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(err) == 1 and "--eval_data applies to class-folder" in err[0], res.stderr
    assert not out.exists()
