"""Bias tracking during training and the StaticDropout refresh (docs/method.md §6 and §8).

(About 560 lines on purpose: the tracker and its two drivers below share one schedule, one resume rule
and one history format, kept side by side so that they cannot drift apart; the accelerate hook goes to
its own module when the last plain-loop user of it is gone.)

:class:`BiasTracker` measures the static/dynamic bias of chosen layers with the streaming estimator
on a *fixed* set of probe pairs (:class:`ProbePairs`: the same pairs at every measurement), re-selects
the StaticDropout static set on a schedule, and logs every measurement: to ``logging``, to a JSON
lines file, to the trainer's / accelerator's trackers, and as a bias-versus-step figure (the paper's
training-dynamics analysis, available for any run, with or without StaticDropout).

Two drivers:

* :class:`StaticDropoutCallback` (alias :data:`BiasTrackingCallback`), a ``transformers.TrainerCallback``
  (added by :class:`hf_stadyn.training.StadynTrainer`; on a plain ``Trainer`` pass it in ``callbacks``);
* :class:`StaticDropoutHook`, the same for plain accelerate loops (``on_train_begin`` /
  ``on_step_end`` / ``on_train_end`` calls in the loop; ``accelerator.register_for_checkpointing``
  makes it resume with the run).

Measurements run in eval mode under ``torch.inference_mode`` and draw no random numbers from torch,
so tracking never changes the training trajectory; the probe pairs come from their own seed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hf_stadyn._io import atomic_write_text
from hf_stadyn.metric import LayerBias
from hf_stadyn.pairs.probe_pairs import ProbePairs
from hf_stadyn.report.history import plot_bias_history

from .static_dropout import (
    PRE_CLASSIFIER,
    StaticDropoutConfig,
    get_static_dropout,
    select_static_channels,
    set_static_channels,
)

__all__ = [
    "BiasRecord",
    "BiasTracker",
    "BiasTrackingCallback",
    "ProbePairs",
    "StaticDropoutCallback",
    "StaticDropoutHook",
    "measure_bias",
]

logger = logging.getLogger(__name__)

HISTORY_FILE = "bias_history.jsonl"
FIGURE_FILE = "bias_history.png"


def measure_bias(
    model: nn.Module,
    pairs: Any,
    layers: Sequence[str] | Mapping[str, Any],
    *,
    batch_size: int = 32,
    threshold: float = 0.5,
    num_chunks: int = 10,
    accelerator: Any = None,
    pixel_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, LayerBias]:
    """Static/dynamic estimate of ``layers`` of ``model`` on every pair of ``pairs``.

    A thin call of the one probing engine (:func:`hf_stadyn.probing.probe` with ``place=False``): the
    model stays where it is, in full precision, one inference-mode forward per batch over both members
    of each pair (model in eval mode for the call and restored after). With an ``accelerator`` of
    several processes, pair ``i`` goes to rank ``i % world`` and the estimator statistics are summed
    over processes, so every process gets the same result.

    Args:
        model: the (unwrapped) model; hf_stadyn models name their layers ``"pre_classifier"``,
            ``"block_i"``, ``"embeddings"``; any model takes ``{module_name: layout}``.
        pairs: map-style pair dataset (items ``clip_a``, ``clip_b``, ``factor``; e.g. :class:`ProbePairs`).
        layers: layer names or ``{name: layout | LayerSpec}``.
        pixel_fn: uint8 clips ``(B, T, H, W, 3)`` -> model input; default ``model.prepare_pixel_values``.

    Returns:
        ``{layer: LayerBias}``.
    """
    from hf_stadyn.probing import probe

    forward_fn = None
    if pixel_fn is not None or not callable(getattr(model, "probe_inputs", None)):
        fn = pixel_fn or getattr(model, "prepare_pixel_values", None)
        if not callable(fn):
            raise ValueError(
                f"{type(model).__name__} has no prepare_pixel_values (the hf_stadyn probing mixin); pass pixel_fn= "
                "(uint8 clips (B, T, H, W, 3) -> pixel_values) to measure it."
            )
        input_name = getattr(model, "main_input_name", "pixel_values")

        def forward_fn(clips: torch.Tensor) -> dict[str, torch.Tensor]:
            return {input_name: fn(clips)}

    result = probe(
        model, pairs, layers, batch_size=batch_size, threshold=threshold, num_chunks=num_chunks,
        forward_fn=forward_fn, accelerator=accelerator, place=False, progress=False,
    )  # fmt: skip
    return result.layers


# ====================================================================== records and the tracker
@dataclass
class BiasRecord:
    """One measurement during training.

    Attributes:
        step: optimizer step at which it was taken (0 = before training).
        epoch: epoch (fractional) at that step, if known.
        layers: per layer ``{"percent": {dynamic, static, residual}, "share_percent": continuous
            100 * pi_F, "s_dynamic", "s_static", "category_counts", "intervals"}``.
        static_dropout: ``None`` without StaticDropout, else ``{"layer", "selection", "refreshed"
            (whether the set was re-selected here), "num_static", "static_channels", "kept"
            (channels also in the previous set), "previous_num_static"}``.
        seconds: wall time of the measurement.
    """

    step: int
    epoch: float | None
    layers: dict[str, dict[str, Any]]
    static_dropout: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BiasRecord:
        return cls(
            step=int(d["step"]),
            epoch=None if d.get("epoch") is None else float(d["epoch"]),
            layers=dict(d["layers"]),
            static_dropout=d.get("static_dropout"),
            seconds=float(d.get("seconds", 0.0)),
        )

    def metrics(self, prefix: str = "bias") -> dict[str, float]:
        """Flat scalars for trackers: ``bias/<layer>/dynamic_pct`` etc. and the static-set size."""
        out: dict[str, float] = {}
        for name, r in self.layers.items():
            out[f"{prefix}/{name}/dynamic_pct"] = float(r["percent"]["dynamic"])
            out[f"{prefix}/{name}/static_pct"] = float(r["percent"]["static"])
            out[f"{prefix}/{name}/s_dynamic"] = float(r["s_dynamic"])
            out[f"{prefix}/{name}/s_static"] = float(r["s_static"])
        if self.static_dropout is not None:
            out[f"{prefix}/static_dropout/num_static"] = float(self.static_dropout["num_static"])
            if self.static_dropout.get("kept") is not None:
                out[f"{prefix}/static_dropout/kept"] = float(self.static_dropout["kept"])
        return out


def _layer_summary(lb: LayerBias) -> dict[str, Any]:
    return {
        "percent": dict(lb.percent),
        "share_percent": {k: 100.0 * v for k, v in lb.share.items()},
        "s_dynamic": lb.s_dynamic,
        "s_static": lb.s_static,
        "category_counts": dict(lb.category_counts),
        "dead_channels": lb.dead_channels,
        "num_channels": lb.num_channels,
        "intervals": {k: v.to_dict() for k, v in lb.intervals.items()},
    }


class BiasTracker:
    """Measure layer biases on fixed probe pairs during training and refresh StaticDropout.

    Args:
        pairs: the fixed probe pairs (:class:`ProbePairs` or any map-style pair dataset).
        layers: layers to track; default: the StaticDropout layer (else ``"pre_classifier"``) and, for
            hf_stadyn models, the last encoder block.
        static_dropout: the StaticDropout settings (schedule, selection); None = tracking only. The
            model must have StaticDropout installed (:func:`apply_static_dropout`) when given.
        every: measure (and log) every ``every`` optimizer steps; default ``refresh_every`` of the
            StaticDropout settings; 0 = only before training.
        output_dir: where ``bias_history.jsonl`` and ``bias_history.png`` go (None: not written).
        batch_size, threshold, num_chunks: measurement settings.
        pixel_fn: uint8 clips -> model input (default ``model.prepare_pixel_values``).
        log_prefix: prefix of the tracker metric names.
    """

    def __init__(
        self,
        pairs: Any,
        *,
        layers: Sequence[str] | None = None,
        static_dropout: StaticDropoutConfig | None = None,
        every: int | None = None,
        output_dir: str | os.PathLike | None = None,
        batch_size: int | None = None,
        threshold: float | None = None,
        num_chunks: int = 10,
        pixel_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        log_prefix: str = "bias",
    ) -> None:
        if len(pairs) < 4:
            raise ValueError(f"the probe set has {len(pairs)} pairs; give at least 4 (>= 2 per factor).")
        self.pairs = pairs
        self.config = static_dropout
        if every is None:
            every = static_dropout.refresh_every if static_dropout is not None else 0
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(
                f"every must be a non-negative int (optimizer steps; 0 = before training only), got {every!r}."
            )
        self.every = every
        self.layers = list(layers) if layers is not None else None
        if self.layers is not None and not self.layers:
            raise ValueError("layers is empty; name at least one layer to track or pass None.")
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.batch_size = int(batch_size or (static_dropout.probe_batch_size if static_dropout else 32))
        if static_dropout is not None:
            if threshold is not None and float(threshold) != float(static_dropout.threshold):
                raise ValueError(
                    f"threshold={threshold} differs from static_dropout.threshold={static_dropout.threshold}; the "
                    "tracker reads categories at the StaticDropout threshold: give one of them, or the same value."
                )
            threshold = static_dropout.threshold
        self.threshold = float(0.5 if threshold is None else threshold)
        self.num_chunks = int(num_chunks)
        self.pixel_fn = pixel_fn
        self.log_prefix = log_prefix
        self.history: list[BiasRecord] = []

    # ------------------------------------------------------------------ schedule
    def due(self, step: int) -> bool:
        """Whether a measurement is due after optimizer step ``step`` (>= 1)."""
        return self.every > 0 and step > 0 and step % self.every == 0

    def refresh_due(self, step: int) -> bool:
        """Whether the static set is re-selected at a measurement at ``step``."""
        cfg = self.config
        if cfg is None:
            return False
        if step == 0:
            return True
        if cfg.refresh_every <= 0 or step % cfg.refresh_every:
            return False
        return cfg.refresh_until is None or step <= cfg.refresh_until

    def _layers_for(self, model: nn.Module) -> list[str]:
        if self.layers is not None:
            return list(self.layers)
        first = self.config.layer if self.config is not None else PRE_CLASSIFIER
        layers = [first]
        names_fn = getattr(model, "probe_layers", None)
        if callable(names_fn):
            blocks = [n for n in names_fn() if n.startswith("block_")]
            if blocks and blocks[-1] not in layers:
                layers.append(blocks[-1])
        return layers

    # ------------------------------------------------------------------ measuring
    def refresh(
        self,
        model: nn.Module,
        step: int,
        *,
        epoch: float | None = None,
        accelerator: Any = None,
        update: bool | None = None,
    ) -> BiasRecord:
        """Measure now, re-select the static set if due (or if ``update``), log and record it.

        Args:
            model: the unwrapped model (``accelerator.unwrap_model(model)``).
            step: the optimizer step (0 before training).
            update: force (True) or forbid (False) a static-set re-selection; default the schedule.
        """
        t0 = time.perf_counter()
        layers = self._layers_for(model)
        results = measure_bias(
            model,
            self.pairs,
            layers,
            batch_size=self.batch_size,
            threshold=self.threshold,
            num_chunks=self.num_chunks,
            accelerator=accelerator,
            pixel_fn=self.pixel_fn,
        )
        sd_info: dict[str, Any] | None = None
        if self.config is not None:
            sd = get_static_dropout(model)
            if sd is None:
                raise ValueError(
                    "BiasTracker was given StaticDropout settings but the model has no StaticDropout; call "
                    "hf_stadyn.debias.apply_static_dropout(model, config) before training."
                )
            prev = set(int(i) for i in sd.static_channels.tolist())
            do_update = self.refresh_due(step) if update is None else bool(update)
            if do_update:
                rng = np.random.default_rng(np.random.SeedSequence(self.config.seed, spawn_key=(step,)))
                chosen = select_static_channels(results[self.config.layer], self.config, rng=rng)
                set_static_channels(model, chosen)
            now = [int(i) for i in sd.static_channels.tolist()]
            sd_info = {
                "layer": self.config.layer,
                "selection": self.config.selection,
                "refreshed": do_update,
                "num_static": len(now),
                "static_channels": now,
                "kept": len(prev & set(now)) if prev else None,
                "previous_num_static": len(prev),
            }
        record = BiasRecord(
            step=int(step),
            epoch=None if epoch is None else float(epoch),
            layers={name: _layer_summary(lb) for name, lb in results.items()},
            static_dropout=sd_info,
            seconds=time.perf_counter() - t0,
        )
        self.history = [r for r in self.history if r.step < record.step] + [record]
        self._log(record)
        is_main = accelerator is None or accelerator.is_main_process
        if is_main:
            self.write_history()
        return record

    def _log(self, record: BiasRecord) -> None:
        parts = [
            f"{name} {r['percent']['dynamic']:.1f}/{r['percent']['static']:.1f} % "
            f"(s_D {r['s_dynamic']:.3f}, s_S {r['s_static']:.3f})"
            for name, r in record.layers.items()
        ]
        msg = f"bias at step {record.step}: " + "; ".join(parts) + " [dynamic/static]"
        sd = record.static_dropout
        if sd is not None:
            kept = "" if sd["kept"] is None else f", {sd['kept']} of {sd['previous_num_static']} kept"
            msg += f"; static set {'refreshed' if sd['refreshed'] else 'unchanged'}: {sd['num_static']} channels{kept}"
        logger.info("%s (%.2f s)", msg, record.seconds)

    # ------------------------------------------------------------------ files
    @property
    def history_path(self) -> Path | None:
        return self.output_dir / HISTORY_FILE if self.output_dir is not None else None

    @property
    def figure_path(self) -> Path | None:
        return self.output_dir / FIGURE_FILE if self.output_dir is not None else None

    def write_history(self) -> Path | None:
        """Rewrite ``bias_history.jsonl`` (one record per line) atomically."""
        path = self.history_path
        if path is None:
            return None
        atomic_write_text(path, "".join(json.dumps(r.to_dict()) + "\n" for r in self.history))
        return path

    def load_history(self, path: str | os.PathLike | None = None, up_to_step: int | None = None) -> None:
        """Read records back (e.g. when resuming), keeping those with ``step <= up_to_step``."""
        path = Path(path) if path is not None else self.history_path
        if path is None or not path.is_file():
            self.history = []
            return
        records = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(BiasRecord.from_dict(json.loads(line)))
            except (ValueError, KeyError) as e:
                raise ValueError(
                    f"{path}:{n} is not a bias record ({e}); delete the file to start the history anew."
                ) from None
        self.history = [r for r in records if up_to_step is None or r.step <= up_to_step]

    def state_dict(self) -> dict[str, Any]:
        """The history, for ``accelerator.register_for_checkpointing`` (resume continues it)."""
        return {"history": [r.to_dict() for r in self.history]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = [BiasRecord.from_dict(d) for d in state.get("history", [])]

    def plot(self, path: str | os.PathLike | None = None, title: str | None = None) -> Path | None:
        """Draw bias versus training step (PNG): % per layer, raw scores, static-set turnover."""
        path = Path(path) if path is not None else self.figure_path
        if path is None or not self.history:
            return None
        return plot_bias_history(self.history, path, title=title)


# ====================================================================== drivers
def _make_trainer_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class StaticDropoutHook:
    """Drive a :class:`BiasTracker` from a plain accelerate training loop.

    Example::

        hook = StaticDropoutHook(tracker, accelerator)
        accelerator.register_for_checkpointing(hook)       # the history resumes with the run
        hook.on_train_begin(model, step=completed_steps)
        for batch in loader:
            ...; optimizer.step(); completed_steps += 1
            hook.on_step_end(model, completed_steps, epoch=...)
        hook.on_train_end()

    Every measurement is also sent to ``accelerator.log`` (the run's trackers).
    """

    def __init__(self, tracker: BiasTracker, accelerator: Any = None) -> None:
        self.tracker = tracker
        self.accelerator = accelerator

    def _unwrap(self, model: nn.Module) -> nn.Module:
        if self.accelerator is not None:
            return self.accelerator.unwrap_model(model)
        return getattr(model, "module", model)

    def _refresh(self, model: nn.Module, step: int, epoch: float | None, update: bool | None = None) -> BiasRecord:
        rec = self.tracker.refresh(self._unwrap(model), step, epoch=epoch, accelerator=self.accelerator, update=update)
        if self.accelerator is not None:
            self.accelerator.log(rec.metrics(self.tracker.log_prefix), step=step)
        return rec

    def on_train_begin(self, model: nn.Module, step: int = 0, epoch: float | None = 0.0) -> BiasRecord | None:
        """Measure (and select the static set) before the first step. When resuming (``step > 0``)
        nothing is measured: the static set and the history come back with the checkpoint, so the
        history equals that of an uninterrupted run."""
        if step > 0 or any(r.step == step for r in self.tracker.history):
            return None
        return self._refresh(model, 0, epoch)

    def on_step_end(self, model: nn.Module, step: int, epoch: float | None = None) -> BiasRecord | None:
        """Measure if the schedule says so (after optimizer step ``step``)."""
        if self.tracker.due(step) or (step > 0 and self.tracker.refresh_due(step)):
            return self._refresh(model, step, epoch)
        return None

    def on_train_end(self, title: str | None = None) -> Path | None:
        """Write the bias-versus-step figure (main process)."""
        if self.accelerator is not None and not self.accelerator.is_main_process:
            return None
        return self.tracker.plot(title=title)

    def state_dict(self) -> dict[str, Any]:
        return self.tracker.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tracker.load_state_dict(state)
        if self.accelerator is None or self.accelerator.is_main_process:
            self.tracker.write_history()


class StaticDropoutCallback(_make_trainer_callback_base()):  # type: ignore[misc]
    """A ``transformers.TrainerCallback`` that drives a :class:`BiasTracker` (alias :data:`BiasTrackingCallback`).

    Measures before training (selecting the static set), on the tracker's schedule, and writes the
    figure at the end. It needs no wiring: pass it in ``callbacks=[...]``, or let
    :class:`hf_stadyn.training.StadynTrainer` add it (``bias_tracker=``). The model comes from the
    callback arguments.

    Logs: with :class:`~hf_stadyn.training.StadynTrainer` (or after :meth:`attach`) every measurement
    goes through ``trainer.log`` and so to ``log_history`` and every ``report_to`` tracker; with a
    plain ``Trainer`` it is appended to ``state.log_history`` (and ``logging``, the JSON lines file).
    Either way Trainer's own ``loss`` / ``grad_norm`` / ``learning_rate`` entry of the same step is
    kept: ``trainer.log`` clears ``control.should_log``, which the callback restores.

    Checkpoints: ``on_save`` writes the history into the checkpoint folder (``bias_history.jsonl``);
    on resume (``trainer.train(resume_from_checkpoint=...)``) it is read back from that checkpoint,
    so the resumed history equals that of an uninterrupted run.
    """

    def __init__(self, tracker: BiasTracker, trainer: Any = None) -> None:
        self.tracker = tracker
        self.trainer = trainer
        self.resume_from: str | None = None  # set by StadynTrainer.train; else output_dir/checkpoint-<step>

    def attach(self, trainer: Any) -> StaticDropoutCallback:
        """Log through ``trainer`` (its trackers). Not needed with StadynTrainer, which attaches it."""
        self.trainer = trainer
        return self

    def _accelerator(self) -> Any:
        return getattr(self.trainer, "accelerator", None) if self.trainer is not None else None

    def _refresh(self, model: nn.Module, state: Any, control: Any, update: bool | None = None) -> None:
        acc = self._accelerator()
        unwrapped = acc.unwrap_model(model) if acc is not None else getattr(model, "module", model)
        rec = self.tracker.refresh(unwrapped, int(state.global_step), epoch=state.epoch, accelerator=acc, update=update)
        metrics = rec.metrics(self.tracker.log_prefix)
        if self.trainer is not None:
            # trainer.log runs the on_log event, which clears control.should_log: restore it, or
            # Trainer would skip its own loss / grad_norm / learning_rate entry of this step
            should_log = bool(control.should_log)
            self.trainer.log(metrics)
            self.trainer.control.should_log = should_log
            control.should_log = should_log
        else:
            state.log_history.append({**metrics, "step": int(state.global_step)})

    def _checkpoint_history(self, args: Any, state: Any) -> Path | None:
        folder = self.resume_from
        if folder is None and getattr(args, "output_dir", None):
            folder = os.path.join(args.output_dir, f"checkpoint-{int(state.global_step)}")
        path = Path(folder) / HISTORY_FILE if folder else None
        return path if path is not None and path.is_file() else None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kwargs: Any):
        if model is None:
            return control
        step = int(state.global_step)
        if step > 0:  # resuming: the static set is in the checkpoint's weights, the history beside them
            path = self._checkpoint_history(args, state)
            if path is not None:
                self.tracker.load_history(path, up_to_step=step)
            else:
                logger.warning("resuming at step %d without a bias history in the checkpoint; reading %s", step,
                               self.tracker.history_path)  # fmt: skip
                self.tracker.load_history(up_to_step=step)
            if getattr(state, "is_world_process_zero", True):
                self.tracker.write_history()
            sd = get_static_dropout(getattr(model, "module", model))
            if sd is not None:  # sync config.json with the restored buffer
                set_static_channels(getattr(model, "module", model), sd.static_channels)
        elif not any(r.step == 0 for r in self.tracker.history):
            self._refresh(model, state, control)
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kwargs: Any):
        step = int(state.global_step)
        if model is not None and (self.tracker.due(step) or self.tracker.refresh_due(step)):
            self._refresh(model, state, control)
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any):
        if getattr(state, "is_world_process_zero", True):
            folder = Path(args.output_dir) / f"checkpoint-{int(state.global_step)}"
            if folder.is_dir():
                atomic_write_text(
                    folder / HISTORY_FILE, "".join(json.dumps(r.to_dict()) + "\n" for r in self.tracker.history)
                )
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any):
        if getattr(state, "is_world_process_zero", True):
            self.tracker.plot()
        return control


#: The same callback under the name of what it does without StaticDropout.
BiasTrackingCallback = StaticDropoutCallback
