"""``StadynTrainer``: ``transformers.Trainer`` for video classifiers, with bias tracking and loss terms.

What it adds to ``Trainer`` (everything else, TrainingArguments included, is Trainer's own):

* the data: clip items ``{"frames": (T, H, W, 3) uint8, "label": int}`` collated by
  :class:`~hf_stadyn.training.data.VideoClassificationCollator` (made from the model when no
  ``data_collator`` is given; Trainer's column removal is skipped for it, its output is exactly the
  model's inputs); ``set_epoch`` reaches the training set (and the datasets it wraps) every epoch;
* evaluation: ``eval_dataset`` may be a dict (``{"aligned": ..., "conflicting": ..., "shuffled": ...}``),
  each scored by :func:`compute_accuracy` unless ``compute_metrics`` is given: Trainer logs
  ``eval_<name>_accuracy`` and ``eval_<name>_loss``;
* bias tracking and the StaticDropout refresh: ``bias_tracker=`` adds a
  :class:`~hf_stadyn.debias.StaticDropoutCallback` attached to this trainer (no manual wiring);
* extra loss terms: ``loss_terms=[term, ...]``, each a callable ``term(model, inputs, outputs) ->
  scalar tensor`` added to the model's loss during training (documented hook for debiasing
  methods; a term's ``name`` attribute, if any, names its mean in the logs as ``loss_<name>``).
  A term with a ``prepare(model, inputs, step)`` method has it called before the main forward of
  each training batch (the static-pair losses of :mod:`hf_stadyn.debias.losses` arm their feature
  hooks there, so they read the clip's features from Trainer's own forward).

Example::

    trainer = StadynTrainer(model=model, args=TrainingArguments("run"), train_dataset=train,
                            eval_dataset={"aligned": a, "conflicting": c}, bias_tracker=tracker)
    trainer.train()
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from .data import VideoClassificationCollator, set_dataset_epoch

__all__ = ["LossTerm", "StadynTrainer", "compute_accuracy"]

logger = logging.getLogger(__name__)

#: ``term(model, inputs, outputs) -> scalar tensor``: an extra training-loss term (see StadynTrainer).
LossTerm = Callable[[torch.nn.Module, dict[str, Any], Any], torch.Tensor]


def compute_accuracy(eval_pred: Any) -> dict[str, float]:
    """``compute_metrics`` of classification: ``{"accuracy"}`` from logits ``(N, K)`` and labels ``(N,)``."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    pred = np.asarray(logits).argmax(-1)
    labels = np.asarray(labels)
    return {"accuracy": float((pred == labels).mean()) if labels.size else float("nan")}


class _EpochCallback(TrainerCallback):
    """``set_epoch`` on the training set at each epoch start (seeded windows and augmentations)."""

    def __init__(self, trainer: StadynTrainer) -> None:
        self.trainer = trainer

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any):
        epoch = int(math.floor(float(state.epoch or 0.0) + 1e-9))
        set_dataset_epoch(self.trainer.train_dataset, epoch)
        return control


class _StopAfterStepsCallback(TrainerCallback):
    """End the session after ``steps`` optimizer steps with a checkpoint (resume continues it)."""

    def __init__(self, steps: int) -> None:
        self.steps = int(steps)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any):
        if state.global_step >= self.steps and state.global_step < state.max_steps:
            control.should_save = True
            control.should_training_stop = True
        return control


class StadynTrainer(Trainer):
    """``transformers.Trainer`` with hf_stadyn's collator, multi-set accuracy, bias tracking and loss terms.

    Args (besides Trainer's):
        bias_tracker: a :class:`~hf_stadyn.debias.BiasTracker`; measures (and refreshes StaticDropout)
            on its schedule, logs through this trainer, saves its history with each checkpoint.
        loss_terms: extra training-loss terms ``term(model, inputs, outputs) -> scalar`` (see the
            module docstring). Applied in training only (``model.training``), not to the eval loss.
        stop_after_steps: end this session after so many optimizer steps, saving a checkpoint there
            (for time-limited jobs; ``train(resume_from_checkpoint=True)`` continues).
    """

    def __init__(
        self,
        *args: Any,
        bias_tracker: Any = None,
        loss_terms: Sequence[LossTerm] | None = None,
        stop_after_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        model = kwargs.get("model", args[0] if args else None)
        if (
            kwargs.get("data_collator") is None
            and model is not None
            and callable(getattr(model, "probe_input_spec", None))
        ):
            kwargs["data_collator"] = VideoClassificationCollator.from_model(model)
        if kwargs.get("compute_metrics") is None:
            kwargs["compute_metrics"] = compute_accuracy
        super().__init__(*args, **kwargs)
        self.loss_terms: list[LossTerm] = list(loss_terms or [])
        self._term_sums: dict[str, float] = {}
        self._term_count = 0
        self.add_callback(_EpochCallback(self))
        self.bias_callback = None
        if bias_tracker is not None:
            from hf_stadyn.debias import StaticDropoutCallback

            self.bias_callback = StaticDropoutCallback(bias_tracker, trainer=self)
            self.add_callback(self.bias_callback)
        if stop_after_steps is not None:
            self.add_callback(_StopAfterStepsCallback(stop_after_steps))

    # ------------------------------------------------------------------ data
    def _get_collator_with_removed_columns(self, data_collator: Callable, description: str | None = None) -> Callable:
        # our collator builds exactly the model's inputs from "frames" / "label": nothing to remove
        if isinstance(data_collator, VideoClassificationCollator):
            return data_collator
        return super()._get_collator_with_removed_columns(data_collator, description)

    # ------------------------------------------------------------------ loss terms
    def add_loss_term(self, term: LossTerm) -> None:
        """Register an extra training-loss term (see the class docstring)."""
        self.loss_terms.append(term)

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None
    ):
        if not self.loss_terms or not model.training:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)  # fmt: skip
        for term in self.loss_terms:  # terms that read the main forward's features arm their hooks here
            prepare = getattr(term, "prepare", None)
            if callable(prepare):
                prepare(model, inputs, int(self.state.global_step))
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        for i, term in enumerate(self.loss_terms):
            value = term(model, inputs, outputs)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError(f"loss term {getattr(term, 'name', i)!r} must return a scalar tensor, got {value!r}.")
            loss = loss + value.reshape(())
            name = str(getattr(term, "name", f"term{i}"))
            self._term_sums[name] = self._term_sums.get(name, 0.0) + float(value.detach())
        self._term_count += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._term_count:
            for name, total in self._term_sums.items():
                logs[f"loss_{name}"] = total / self._term_count
            self._term_sums, self._term_count = {}, 0
        super().log(logs, start_time)

    # ------------------------------------------------------------------ resume
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        # Trainer loads checkpoint weights with a raw, non-strict load_state_dict: our checkpoints hold
        # upstream key names (q_bias -> query.bias on save) and the StaticDropout set lives in
        # config.json, so that load would silently miss keys. from_pretrained converts both; the
        # weights are then copied strictly into the model being trained.
        target = model if model is not None else self.model
        target = self.accelerator.unwrap_model(target) if hasattr(self, "accelerator") else target
        if not callable(getattr(target, "probe_input_spec", None)):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        loaded = type(target).from_pretrained(resume_from_checkpoint, dtype=next(target.parameters()).dtype)
        result = target.load_state_dict(loaded.state_dict(), strict=False)
        bad = [k for k in result.missing_keys if not k.endswith("static_channels")] + list(result.unexpected_keys)
        if bad:
            raise ValueError(f"checkpoint {resume_from_checkpoint} does not match the model: keys {bad[:5]}.")
        sd_saved = (getattr(loaded.config, "stadyn", None) or {}).get("static_dropout") or {}
        from hf_stadyn.debias import get_static_dropout, set_static_channels

        if get_static_dropout(target) is not None and sd_saved.get("static_channels") is not None:
            set_static_channels(target, torch.as_tensor(sd_saved["static_channels"], dtype=torch.long))
        del loaded

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        """Trainer's ``train``; ``resume_from_checkpoint=True`` (or ``"last"``) takes the newest checkpoint
        in ``output_dir``. The bias history is restored from the checkpoint it resumes from."""
        if resume_from_checkpoint in (True, "last", "true", "True"):
            from transformers.trainer_utils import get_last_checkpoint

            last = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
            if last is None:
                raise ValueError(
                    f"no checkpoint-* folder in {self.args.output_dir} to resume from; start without "
                    "--resume_from_checkpoint, or give a checkpoint folder."
                )
            resume_from_checkpoint = last
        if self.bias_callback is not None:
            self.bias_callback.resume_from = resume_from_checkpoint if resume_from_checkpoint else None
        return super().train(resume_from_checkpoint, *args, **kwargs)
