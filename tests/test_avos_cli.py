"""``stadyn train --task avos``: a tiny end-to-end run and bad options (exit code 2)."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from hf_stadyn.cli import main

torch.set_num_threads(1)

_TINY = ["--train-clips", "4", "--test-clips", "2", "--epochs", "1", "--batch-size", "8", "--num-frames", "4"]


def test_train_avos_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        ["train", "--task", "avos", "--fusion", "convex", "--cross-connection", "bidirectional", "-o", str(out), *_TINY]
    )
    assert rc == 0
    assert "camouflage J" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fusion"] == "convex" and metrics["train"]["camouflage_clips"] == 2
    assert metrics["train"]["num_frames"] == 4 * 3
    for mode in ("normal", "camouflage"):
        assert 0 <= metrics["eval"][mode]["J"] <= 1 and metrics["eval"][mode]["num_frames"] == 2 * 3
    from transformers import AutoModel

    model = AutoModel.from_pretrained(out)
    assert model.config.fusion == "convex" and model.config.cross_connection == "bidirectional"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    # an existing run is not overwritten silently
    rc = main(["train", "--task", "avos", "-o", str(out), *_TINY])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--task", "avos", "--fusion", "sum"], "invalid choice"),
        (["--task", "avos", "--cross-connection", "sideways"], "invalid choice"),
        (["--task", "avos", "--epochs", "0"], "positive integer"),
        (["--task", "avos", "--camouflage-fraction", "1.5"], "[0, 1]"),
        (["--task", "avos", "--hidden-sizes", "8,x"], "comma-separated"),
        (["--task", "segmentation"], "invalid choice"),
    ],
)
def test_bad_options_exit_2(tmp_path, capsys, argv, needle):
    with pytest.raises(SystemExit) as e:
        main(["train", *argv, "-o", str(tmp_path / "x")])
    assert e.value.code == 2
    assert needle in capsys.readouterr().err


def test_errors_from_the_library_exit_2(tmp_path, capsys):
    rc = main(["train", "--task", "avos", "--learning_rate", "-1", "--output_dir", str(tmp_path / "d")])
    assert rc == 2 and "--learning_rate" in capsys.readouterr().err
    # a frame size too small for StaDyn-Synth is reported by the synth settings check
    rc = main(["train", "--task", "avos", "--size", "8", "-o", str(tmp_path / "e"), *_TINY])
    assert rc == 2 and "SynthConfig" in capsys.readouterr().err
    (tmp_path / "f").write_text("not a folder")
    rc = main(["train", "--task", "avos", "-o", str(tmp_path / "f"), *_TINY])
    assert rc == 2 and "not a folder" in capsys.readouterr().err


def test_cli_choices_match_the_config():
    """The train parser keeps literal copies of the AVOS choices (fast start-up); they must match."""
    import hf_stadyn.cli.train as cli_train
    from hf_stadyn.models.configuration_avos import CROSS_CONNECTION_TYPES, FUSION_TYPES

    assert tuple(FUSION_TYPES) == cli_train.FUSION_TYPES
    assert tuple(CROSS_CONNECTION_TYPES) == cli_train.CROSS_CONNECTION_TYPES


class _KillAtEpoch(logging.Handler):
    """Raises KeyboardInterrupt (a killed job) when the AVOS loop logs the end of epoch ``epoch``, i.e.
    after epoch ``epoch - 1``'s checkpoint is on disk and before epoch ``epoch``'s is written."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.needle = f"AVOS epoch {epoch}/"

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.needle):
            raise KeyboardInterrupt("killed")


def test_an_interrupted_run_resumes_to_the_same_weights_and_metrics(tmp_path, capsys):
    """Killed during epoch 2 of 3, then `--resume_from_checkpoint last`: the same weights, losses and
    J/F as an uninterrupted run. A resume that restarted from scratch, lost the optimizer / scheduler
    state or the shuffling generator would differ; one that ignored the checkpoint retrains 3 epochs."""
    from safetensors.torch import load_file

    args = ["train", "--task", "avos", "--train_clips", "4", "--test_clips", "2", "--num_train_epochs", "3",
            "--per_device_train_batch_size", "4", "--num_frames", "4", "--disable_tqdm"]  # fmt: skip
    assert main([*args, "--output_dir", str(tmp_path / "full")]) == 0
    log = logging.getLogger("hf_stadyn.training.avos")
    kill, level = _KillAtEpoch(2), log.level
    log.addHandler(kill)
    log.setLevel(logging.INFO)
    try:
        assert main([*args, "--output_dir", str(tmp_path / "cut")]) == 130  # stadyn's exit code when interrupted
    finally:
        log.removeHandler(kill)
        log.setLevel(level)
    ckpt = tmp_path / ".cut.checkpoints" / "last.pt"
    assert ckpt.is_file() and not (tmp_path / "cut").exists()
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1
    assert main([*args, "--output_dir", str(tmp_path / "cut"), "--resume_from_checkpoint", "last"]) == 0
    full, cut = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("full", "cut"))
    assert cut["train"]["epoch_losses"] == full["train"]["epoch_losses"] and cut["train"]["num_steps"] == 9
    assert cut["eval"] == full["eval"]
    wa, wb = (load_file(tmp_path / n / "model.safetensors") for n in ("full", "cut"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not (tmp_path / ".cut.checkpoints").exists()  # removed once the run is complete
