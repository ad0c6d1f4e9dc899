"""`stadyn train --task classification` on transformers.Trainer: Trainer's own logs kept at every step,
--save_total_limit / --logging_steps take effect, a checkpoint plain transformers loads with identical
logits, a killed run resumed to the same weights and bias history, the loss-term hook, old flag names,
a missing tracker, bad options (exit 2), data sources, augmentation."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_stadyn.cli import main
from hf_stadyn.cli._types import rewrite_deprecated
from hf_stadyn.cli.train import RENAMED, _mixed_precision
from hf_stadyn.synth import SynthConfig
from hf_stadyn.training import (
    StadynArguments,
    StylizeAugment,
    build_classifier,
    hf_video_datasets,
    run_classification,
    synth_datasets,
    video_folder_datasets,
)
from hf_stadyn.training.classification import ClassificationTrainingConfig, near_chance

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "16", "--num_frames", "4", "--hidden_size", "32", "--num_layers", "2", "--num_heads", "2",
        "--synth_motions", "left,right,up", "--synth_appearances", "3", "--disable_tqdm"]  # fmt: skip
SYNTH16 = SynthConfig(num_frames=4, size=16, speed=1.0, motions=("left", "right", "up"), num_appearances=3)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("cls") / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main([
            "train", "--task", "classification", "--output_dir", str(out), "--train_clips", "48", "--test_clips", "12",
            *TINY, "--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3",
            "--static_dropout", "0.5", "--sd_num_static", "8", "--sd_probe_pairs", "16", "--probe_pairs", "16",
            "--seed", "3", "--logging_steps", "1", "--save_total_limit", "1",
        ])  # fmt: skip
    assert rc == 0
    return out, buf.getvalue()


def test_cli_run_keeps_trainer_logs_and_writes_checkpoint_history(cli_run):
    """Bias is measured at steps 0, 3, 6 (each epoch); the old callback dropped loss at those steps."""
    out, stdout = cli_run
    assert "checkpoint in" in stdout and "static set 8 channels" in stdout
    # --save_total_limit 1: one Trainer checkpoint left (of the two epochs)
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-6"]
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    train_logs = [h for h in state["log_history"] if "loss" in h]
    # --logging_steps 1: one entry per optimizer step, each with Trainer's own fields
    assert [h["step"] for h in train_logs] == [1, 2, 3, 4, 5, 6]
    assert all({"loss", "grad_norm", "learning_rate"} <= set(h) for h in train_logs)
    bias_steps = [h["step"] for h in state["log_history"] if "bias/static_dropout/num_static" in h]
    assert bias_steps == [0, 3, 6]
    evals = {k for h in state["log_history"] for k in h if k.startswith("eval_") and k.endswith("_accuracy")}
    assert evals == {"eval_aligned_accuracy", "eval_conflicting_accuracy", "eval_shuffled_accuracy"}
    # the bias history travels with the checkpoint
    ck = [json.loads(s)["step"] for s in (out / "checkpoint-6" / "bias_history.jsonl").read_text().splitlines()]
    assert ck == [0, 3, 6]
    model_dir = out / "model"
    assert {"config.json", "model.safetensors"} <= {p.name for p in model_dir.iterdir()}
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["model_type"] == "videomae"  # upstream-compatible
    sd = cfg["stadyn"]["static_dropout"]
    assert sd["p"] == 0.5 and len(sd["static_channels"]) == 8
    history = [json.loads(s) for s in (out / "bias_history.jsonl").read_text().splitlines()]
    assert history[-1]["static_dropout"]["static_channels"] == sd["static_channels"]
    assert (out / "bias_history.png").read_bytes()[:4] == b"\x89PNG"
    metrics = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [3, 6] and "eval/shuffled/accuracy" in metrics[-1]
    assert not list(out.glob(".tmp*"))


def test_plain_transformers_loads_the_checkpoint_with_identical_logits(cli_run, tmp_path):
    from hf_stadyn.models.auto import load_model as load_video_classifier

    out, _ = cli_run
    torch.manual_seed(0)
    x = torch.randn(3, 4, 3, 16, 16)
    np.save(tmp_path / "x.npy", x.numpy())
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, torch
        from transformers import AutoModelForVideoClassification
        m = AutoModelForVideoClassification.from_pretrained({str(out / "model")!r}).eval()
        assert not any(k.startswith("hf_stadyn") for k in sys.modules), "hf_stadyn was imported"
        with torch.no_grad():
            out = m(pixel_values=torch.from_numpy(np.load({str(tmp_path / "x.npy")!r}))).logits
        np.save({str(tmp_path / "plain.npy")!r}, out.numpy())
        print(type(m).__name__)
        """
    )
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("VideoMAEForVideoClassification")
    ours = load_video_classifier(out / "model").eval()
    with torch.no_grad():
        ref = ours(pixel_values=x).logits
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "plain.npy")), ref)


@pytest.fixture(scope="module")
def tiny_trap():
    return synth_datasets("trap", num_train=40, num_eval=8, seed=0, config=SYNTH16)


def _targs(out: Path, **kw):
    from transformers import TrainingArguments

    base = dict(output_dir=str(out), num_train_epochs=2, per_device_train_batch_size=8, learning_rate=1e-3,
                lr_scheduler_type="cosine", warmup_steps=0.1, eval_strategy="epoch", save_strategy="steps",
                save_steps=3, logging_steps=1, report_to="none", disable_tqdm=True, use_cpu=True, seed=0,
                dataloader_pin_memory=False)  # fmt: skip
    base.update(kw)
    return TrainingArguments(**base)


def _model(names):
    cfg = ClassificationTrainingConfig(output_dir="unused", num_frames=4, image_size=16, hidden_size=32, num_layers=2,
                                       num_heads=2)  # fmt: skip
    return build_classifier(cfg, len(names), names)


def _opts():
    return StadynArguments(static_dropout=0.5, sd_num_static=8, sd_probe_pairs=12, probe_pairs=12, sd_refresh_every=2,
                           augment="stylize")  # fmt: skip


class _Crash:
    """A callback that kills the run after optimizer step ``at`` (like a preempted job)."""

    def __new__(cls, at: int):
        from transformers import TrainerCallback

        class Crash(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == at:
                    raise KeyboardInterrupt("killed")

        return Crash()


def test_resume_after_a_kill_gives_the_same_weights_metrics_and_bias_history(tmp_path, tiny_trap):
    """Killed at step 4 (checkpoint-3 on disk, mid-epoch), resumed: bit-identical to an uninterrupted run.
    A resume that lost the RNG state, the data order, the static set or the bias history would differ."""
    from safetensors.torch import load_file

    train, evals, names = tiny_trap
    full = run_classification(_targs(tmp_path / "a"), train, evals, model=_model(names), options=_opts(),
                              label_names=names)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run_classification(_targs(tmp_path / "b"), train, evals, model=_model(names), options=_opts(),
                           label_names=names, callbacks=[_Crash(4)])  # fmt: skip
    assert (tmp_path / "b" / "checkpoint-3").is_dir() and not (tmp_path / "b" / "model").exists()
    rest = run_classification(_targs(tmp_path / "b"), train, evals, model=_model(names), options=_opts(),
                              label_names=names, resume_from_checkpoint=True)  # fmt: skip
    assert rest.steps_done == full.steps_done == 10
    wa, wb = load_file(full.model_dir / "model.safetensors"), load_file(rest.model_dir / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert rest.history == full.history and rest.static_channels == full.static_channels

    def records(p):
        return [(r["step"], r["static_dropout"]["static_channels"], r["layers"]) for r in
                map(json.loads, p.read_text().splitlines())]  # fmt: skip

    assert records(rest.bias_history) == records(full.bias_history)
    assert [r[0] for r in records(rest.bias_history)] == [0, 2, 4, 5, 10]  # refresh until step 5, then per epoch
    losses = [(h["step"], h["loss"]) for h in full.log_history if "loss" in h]
    assert [(h["step"], h["loss"]) for h in rest.log_history if "loss" in h and h["step"] > 3] == losses[3:]
    # a finished run refuses to start again without resume / overwrite
    with pytest.raises(ValueError, match="already holds a training run"):
        run_classification(_targs(tmp_path / "a"), train, evals, model=_model(names), options=_opts())


def test_loss_terms_are_added_to_the_training_loss_and_logged(tmp_path, tiny_trap):
    from hf_stadyn.training import StadynTrainer

    train, _, names = tiny_trap

    class Const:
        name = "const"

        def __call__(self, model, inputs, outputs):
            return outputs.loss.new_tensor(5.0)

    def logged(terms):
        torch.manual_seed(0)
        trainer = StadynTrainer(model=_model(names), args=_targs(tmp_path / str(len(terms)), max_steps=2,
                                                                 save_strategy="no", eval_strategy="no"),
                                train_dataset=train, loss_terms=terms)  # fmt: skip
        trainer.train()
        return [h for h in trainer.state.log_history if "loss" in h]

    plain, with_term = logged([]), logged([Const()])
    assert [h["loss_const"] for h in with_term] == [5.0, 5.0]
    assert with_term[0]["loss"] == pytest.approx(plain[0]["loss"] + 5.0, rel=1e-5)


def test_old_flag_names_map_to_the_new_ones_with_a_deprecation_message():
    old = ["--output-dir", "o", "--epochs", "3", "--batch-size=4", "--learning-rate", "1e-3", "--cpu", "--resume",
           "--mixed-precision", "bf16", "--progress", "--static-dropout", "0.5", "--sd-tau", "0.4", "--report-to",
           "none", "--save-total-limit", "2", "--learning_rate", "2e-3"]  # fmt: skip
    with pytest.warns(DeprecationWarning, match="--epochs is deprecated"):
        new = rewrite_deprecated(old, RENAMED, extra=_mixed_precision)
    assert new == ["--output_dir", "o", "--num_train_epochs", "3", "--per_device_train_batch_size=4",
                   "--learning_rate", "1e-3", "--use_cpu", "--resume_from_checkpoint", "last", "--bf16",
                   "--static_dropout", "0.5", "--sd_threshold", "0.4", "--report_to", "none", "--save_total_limit",
                   "2", "--learning_rate", "2e-3"]  # fmt: skip


def test_a_missing_tracker_is_one_clear_line_exit_2(tmp_path, capsys):
    import importlib.util

    missing = next((t for t in ("wandb", "mlflow", "clearml", "dvclive") if importlib.util.find_spec(t) is None), None)
    if missing is None:
        pytest.skip("every candidate tracker is installed here")
    rc = main(["train", "--task", "classification", "--output_dir", str(tmp_path / "o"), "--report_to", missing])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"--report_to {missing}" in err[0] and "pip install" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sd_layer", "block_1"], "need --static_dropout"),
        (["--data", "/nonexistent/videos"], "does not exist"),
        (["--model", "/nonexistent/ckpt"], "neither videomae"),
        (["--size", "20"], "multiple of patch_size"),
        (["--static_dropout", "1.5"], "[0, 1)"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(tmp_path, capsys, extra, message):
    rc = main(["train", "--task", "classification", "--output_dir", str(tmp_path / "o"), "--train_clips", "8",
               "--test_clips", "4", "--num_train_epochs", "1", *TINY, *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert not (tmp_path / "o" / "model").exists()


def test_argparse_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--task", "classification", "--output_dir", str(tmp_path), "--sd_selection", "best"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--task", "classification"])
    assert e.value.code == 2 and "--output_dir" in capsys.readouterr().err


def test_near_chance_reading():
    assert near_chance({"eval/aligned/accuracy": 0.3, "eval/conflicting/accuracy": 0.2}, 4)  # 1.5 x 0.25 = 0.375
    assert not near_chance({"eval/aligned/accuracy": 0.9, "eval/shuffled/accuracy": 0.1}, 4)
    assert near_chance({"eval/aligned/accuracy": 0.3, "eval/shuffled/accuracy": 0.9}, 4)  # shuffled does not count


def _write_videos(root: Path, n_per_class: int = 2) -> list[tuple[str, str]]:
    from hf_stadyn.synth import SynthDataset
    from hf_stadyn.video import write_video

    ds = SynthDataset(
        "motion",
        3 * n_per_class,
        SynthConfig(num_frames=6, size=16, speed=1.0, motions=("left", "right", "up")),
        seed=0,
    )
    rows = []
    for i in range(len(ds)):
        item = ds[i]
        name = ("left", "right", "up")[item["label"]]
        path = root / name / f"clip{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, item["frames"].numpy(), fps=8)
        rows.append((str(path.relative_to(root)), name))
    return rows


def test_video_folder_and_datasets_sources(tmp_path):
    rows = _write_videos(tmp_path / "vids")
    train, evals, names = video_folder_datasets(tmp_path / "vids", num_frames=4, size=16, eval_fraction=0.34, seed=0)
    assert sorted(names) == names and set(names) <= {"left", "right", "up"} and len(names) >= 2
    item = train[0]
    assert item["frames"].shape == (4, 16, 16, 3) and item["frames"].dtype == torch.uint8
    assert len(train) + len(evals["eval"]) == len(rows)
    # the same videos as a CSV with a path column and a string label column
    csv = tmp_path / "vids" / "meta.csv"
    csv.write_text("path,action\n" + "".join(f"{p},{lbl}\n" for p, lbl in rows))
    tr2, ev2, names2 = hf_video_datasets(csv, num_frames=4, size=16, video_column="path", label_column="action")
    assert names2 == sorted({lbl for _, lbl in rows})
    got = {tr2.videos[i][0]: names2[tr2.videos[i][1]] for i in range(len(tr2))}
    assert all(got[str(tmp_path / "vids" / p)] == lbl for p, lbl in rows if str(tmp_path / "vids" / p) in got)
    with pytest.raises(ValueError, match="no 'video'"):
        hf_video_datasets(csv, num_frames=4, size=16, label_column="action")
    # a save_to_disk DatasetDict with a Video feature (files embedded) and ClassLabel labels
    import datasets

    feats = datasets.Features({"video": datasets.Video(), "label": datasets.ClassLabel(names=["left", "right", "up"])})
    paths = [str(tmp_path / "vids" / p) for p, _ in rows]
    ids = [("left", "right", "up").index(lbl) for _, lbl in rows]
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"video": paths[:4], "label": ids[:4]}, features=feats),
        "test": datasets.Dataset.from_dict({"video": paths[4:], "label": ids[4:]}, features=feats),
    })  # fmt: skip
    dd.save_to_disk(str(tmp_path / "hf"))
    tr3, ev3, names3 = hf_video_datasets(tmp_path / "hf", num_frames=4, size=16)
    assert names3 == ["left", "right", "up"] and len(tr3) == 4 and len(ev3["eval"]) == len(rows) - 4
    assert tr3[1]["frames"].shape == (4, 16, 16, 3) and tr3[1]["label"] == ids[1]
    with pytest.raises(ValueError, match="at least 2"):
        shutil.rmtree(tmp_path / "vids" / "up")
        shutil.rmtree(tmp_path / "vids" / "right")
        video_folder_datasets(tmp_path / "vids", num_frames=4, size=16)


def test_stylize_augment_is_seeded_and_temporally_consistent():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
    still = np.stack([frame] * 4)  # a clip without motion
    aug = StylizeAugment(p=1.0, seed=5)
    out = aug(still, index=3, epoch=1)
    assert out.shape == still.shape and out.dtype == np.uint8 and not np.array_equal(out, still)
    assert all(np.array_equal(out[0], out[t]) for t in range(4))  # one style for every frame
    assert np.array_equal(out, aug(still, index=3, epoch=1))  # seeded
    assert any(not np.array_equal(out, aug(still, index=3, epoch=e)) for e in range(2, 6))  # new draw per epoch
    assert np.array_equal(StylizeAugment(p=0.0)(still, 0), still)
    with pytest.raises(ValueError, match="p must be"):
        StylizeAugment(p=1.5)


def test_a_run_near_chance_says_so_in_its_last_line(tmp_path, capsys):
    """A learning rate too small to move the weights: the model stays at chance and the last printed
    line says so (the README's old command ended at chance silently)."""
    out = tmp_path / "o"
    rc = main(["train", "--task", "classification", "--output_dir", str(out), "--train_clips", "16", "--test_clips",
               "12", *TINY, "--num_train_epochs", "1", "--learning_rate", "1e-12", "--track_bias", "false",
               "--save_strategy", "no"])  # fmt: skip
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads((out / "results.json").read_text())["near_chance"] is True
    assert last.startswith("WARNING: the model ended near chance (3 classes, chance 0.333)")
