"""Hub model cards carrying a BiasReport: the bias table, figures, how it was measured, model-index.

The ``model-index`` results are written with ``huggingface_hub.EvalResult`` and
``task_type="video-classification"`` (``evaluate.push_to_hub`` rejects video tasks), one result per
reported quantity of one layer (by default the last probed layer). The headline is the continuous share
100 * pi_F with its interval (docs/method.md §3, §5); the paper's floored dims % follows it, labelled.
Task accuracies (e.g. the trap's aligned and conflicting clips) come first when given.

Cards are Hub-complete (docs/hub.md): license, datasets, base_model (when known), tags, pipeline_tag,
library_name, top-level metrics, the model-index under a real dataset name (the StaDyn-Synth dataset id for
synthetic pairs, the Hub id for a Hub dataset; pairs from local videos need ``dataset=``), usage, training,
evaluation, limitations and citation. The body sits between :data:`~hf_stadyn.hub.sections.CARD_BEGIN` and
``CARD_END`` so that :func:`~hf_stadyn.hub.merge_card` can update it inside a user's own card.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hf_stadyn._io import atomic_write_text
from hf_stadyn.metric import Interval
from hf_stadyn.report import DEFAULT_DPI, DIMS_LABEL, BiasReport
from hf_stadyn.report.compare import share_interval
from hf_stadyn.report.headline import SHARE_DIGITS, headline_markdown

from .sections import (
    CARD_BEGIN,
    CARD_END,
    PAPER_URL,
    SOURCE_NAME,
    STADYN_SYNTH_DATASET,
    STADYN_SYNTH_NAME,
    accuracy_section,
    display_name,
    limitations_section,
    looks_like_hub_id,
    training_section,
    usage_section,
)

__all__ = [
    "CARD_REPORT_JSON",
    "DEFAULT_LICENSE",
    "METRIC_PREFIX",
    "accuracy_eval_results",
    "bias_eval_results",
    "bias_model_card",
    "card_dataset",
    "check_card_folder",
    "write_model_card_folder",
]

logger = logging.getLogger(__name__)

CARD_REPORT_JSON = "bias_report.json"
METRIC_PREFIX = "static_dynamic_bias"
TASK_TYPE = "video-classification"
#: license written when none is given: hf-stadyn's own (Apache-2.0), under which its checkpoints are released.
DEFAULT_LICENSE = "apache-2.0"
_BASE_TAGS = ("video", "hf-stadyn", "static-dynamic-bias")
_CITATION = """@article{kowal2022quantifying,
  title   = {Quantifying and Learning Static vs. Dynamic Information in Deep Spatiotemporal Networks},
  author  = {Kowal, Matthew and Siam, Mennatullah and Islam, Md Amirul and Bruce, Neil D. B. and
             Wildes, Richard P. and Derpanis, Konstantinos G.},
  journal = {IEEE Transactions on Pattern Analysis and Machine Intelligence},
  year    = {2024},
  note    = {arXiv:2211.01783}
}"""


def _check_report(report: Any) -> BiasReport:
    if not isinstance(report, BiasReport):
        raise ValueError(
            f"report must be a hf_stadyn BiasReport (BiasReport.from_results / BiasReport.load), "
            f"got {type(report).__name__}."
        )
    return report


def card_dataset(report: BiasReport, dataset: str | None = None) -> tuple[str, str, str | None]:
    """``(Hub dataset id, display name, config)`` the bias readings of ``report`` were made on.

    ``dataset`` wins; else a Hub dataset recorded in ``report.pair_settings`` (``stadyn probe --dataset ID``);
    else StaDyn-Synth (:data:`~hf_stadyn.hub.sections.STADYN_SYNTH_DATASET`, the source of ``stadyn probe``'s
    synthetic pairs, with the split as config). Pairs from local videos or a local folder have no Hub name:
    ``ValueError`` asking for ``dataset=`` (``--dataset``), never a local path in the card.
    """
    if dataset is not None:
        if not looks_like_hub_id(dataset):
            raise ValueError(f"dataset must be a Hub dataset id like 'namespace/name', got {dataset!r}.")
        return dataset, dataset, None
    ps = report.pair_settings
    source, recorded = ps.get("source"), ps.get("dataset")
    if isinstance(recorded, str) and recorded:
        if looks_like_hub_id(recorded):
            return recorded, recorded, None
        raise ValueError(
            f"the pairs of {report.model_id} came from the local dataset {recorded!r}, which has no Hub name; pass "
            "dataset= (--dataset ID) naming the Hub dataset the videos belong to."
        )
    if source == "videos":
        raise ValueError(
            f"the pairs of {report.model_id} came from local video files, which have no Hub name; pass dataset= "
            "(--dataset ID) naming the Hub dataset the videos belong to."
        )
    split = ps.get("split")
    return STADYN_SYNTH_DATASET, STADYN_SYNTH_NAME, split if isinstance(split, str) and split else None


def _synth_split(report: BiasReport, dataset_type: str) -> str | None:
    """``stadyn probe`` renders its synthetic pairs from test clips (``train=False``): split ``test``."""
    return "test" if dataset_type == STADYN_SYNTH_DATASET and report.pair_settings.get("source") else None


def bias_eval_results(
    report: BiasReport,
    *,
    layer: str | None = None,
    dataset: str | None = None,
    dataset_name: str | None = None,
    dataset_split: str | None = None,
    dataset_config: str | None = None,
) -> list:
    """``EvalResult`` entries for one layer of ``report`` (default: the last probed layer).

    One result per quantity, with ``metric_type`` ``static_dynamic_bias/<quantity>``, headline first:
    ``dynamic_share`` and ``static_share`` (the continuous share 100 * pi_F, %; its interval in the
    result's name and in ``metric_args`` ``ci_low`` / ``ci_high``), ``s_dynamic``, ``s_static``, the
    paper's floored ``dynamic_dims_percent`` and ``static_dims_percent`` (labelled "dims % (paper)",
    no interval) and, with a reference reading, ``dynamic_share_delta`` and ``static_share_delta``
    (trained minus reference, percentage points, with the paired or independent interval). The layer,
    tau and pair counts go to ``metric_args`` too. The dataset is :func:`card_dataset`'s.
    """
    from huggingface_hub import EvalResult

    report = _check_report(report)
    name = report._check_layer(layer)
    lb = report.layers[name]
    dataset_type, default_name, default_config = card_dataset(report, dataset)
    ds_name = dataset_name or default_name
    dataset_config = dataset_config or default_config
    dataset_split = dataset_split or _synth_split(report, dataset_type)
    conf = f"{100 * lb.confidence:g}%"
    common_args: dict[str, Any] = {
        "layer": name,
        "threshold": lb.threshold,
        "pairs_dynamic": lb.num_pairs["dynamic"],
        "pairs_static": lb.num_pairs["static"],
    }

    def with_ci(label: str, iv: Interval | None, digits: int, signed: bool = False) -> tuple[str, dict[str, Any]]:
        a = dict(common_args)
        if iv is None or not math.isfinite(iv.low):
            return label, a
        a.update(ci_low=iv.low, ci_high=iv.high, stderr=iv.stderr, confidence=lb.confidence)
        f = f"+.{digits}f" if signed else f".{digits}f"
        return f"{label}, {conf} CI [{iv.low:{f}}, {iv.high:{f}}]", a

    quantities: list[tuple[str, str, float, dict[str, Any]]] = []
    for factor in ("dynamic", "static"):
        label, a = with_ci(f"{factor.capitalize()} share % ({name})", share_interval(lb, factor), SHARE_DIGITS)
        quantities.append((f"{factor}_share", label, 100.0 * lb.share[factor], a))
    for key, sym in (("s_dynamic", "s_D"), ("s_static", "s_S")):
        label, a = with_ci(f"{key.split('_')[1].capitalize()} score {sym} ({name})", lb.intervals.get(key), 3)
        quantities.append((key, label, getattr(lb, key), a))
    for factor in ("dynamic", "static"):
        label = f"{factor.capitalize()} {DIMS_LABEL} ({name})"
        quantities.append((f"{factor}_dims_percent", label, lb.percent[factor], dict(common_args)))
    deltas = report.reference_deltas().get(name)
    if deltas is not None:
        paired = bool(deltas["paired"])
        for factor in ("dynamic", "static"):
            key = f"share_{factor}"
            iv = None
            if f"{key}_low" in deltas:
                iv = Interval(deltas[key], deltas[f"{key}_low"], deltas[f"{key}_high"], deltas[f"{key}_stderr"])
            label, a = with_ci(f"{factor.capitalize()} share % minus reference ({name})", iv, SHARE_DIGITS, signed=True)
            a["paired"] = paired
            quantities.append((f"{factor}_share_delta", label, deltas[key], a))
    return [
        EvalResult(
            task_type=TASK_TYPE,
            task_name="Video Classification",
            dataset_type=dataset_type,
            dataset_name=ds_name,
            dataset_split=dataset_split,
            dataset_config=dataset_config,
            metric_type=f"{METRIC_PREFIX}/{key}",
            metric_name=label,
            metric_value=float(value),
            metric_args=args,
            source_name=SOURCE_NAME,
            source_url=PAPER_URL,
        )
        for key, label, value, args in quantities
    ]


def accuracy_eval_results(
    accuracies: Mapping[str, float], *, dataset: str = STADYN_SYNTH_DATASET, dataset_config: str | None = "trap"
) -> list:
    """``EvalResult`` entries (``metric_type="accuracy"``, value in [0, 1]) per split, e.g.
    ``{"test_aligned": 0.97, "test_conflicting": 0.41}``; the dataset is the task's (default StaDyn-Synth's trap)."""
    from huggingface_hub import EvalResult

    out = []
    for split, acc in accuracies.items():
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0.0 <= float(acc) <= 1.0:
            raise ValueError(f"accuracy of split {split!r} must be a number in [0, 1], got {acc!r}.")
        out.append(
            EvalResult(
                task_type=TASK_TYPE,
                task_name="Video Classification",
                dataset_type=dataset,
                dataset_name=STADYN_SYNTH_NAME if dataset == STADYN_SYNTH_DATASET else dataset,
                dataset_config=dataset_config,
                dataset_split=str(split),
                metric_type="accuracy",
                metric_name=f"Accuracy ({split})",
                metric_value=float(acc),
                source_name=SOURCE_NAME,
                source_url=PAPER_URL,
            )
        )
    return out


def bias_model_card(
    report: BiasReport,
    base_model: str | None = None,
    dataset: str | None = None,
    *,
    dataset_name: str | None = None,
    dataset_split: str | None = None,
    dataset_config: str | None = None,
    model_name: str | None = None,
    layer: str | None = None,
    description: str | None = None,
    license: str | None = None,
    language: str | list[str] | None = None,
    tags: Sequence[str] | None = None,
    library_name: str | None = "transformers",
    pipeline_tag: str | None = "video-classification",
    command: str | None = None,
    figures: Mapping[str, str] | None = None,
    scatter_layers: Sequence[str] | None = None,
    repo_id: str | None = None,
    accuracies: Mapping[str, float] | None = None,
    task_dataset: str | None = None,
    task_config: str | None = None,
    training: Mapping[str, Any] | None = None,
):
    """A Hub-complete ``huggingface_hub.ModelCard``: metadata, bias tables, figures, usage, training,
    evaluation, limitations, citation and the model-index.

    Args:
        report: the model's :class:`~hf_stadyn.report.BiasReport`.
        base_model: Hub id of the model this one was fine-tuned from (default: ``training["base_model"]``).
        dataset: Hub id of the videos the pairs were made from (default: :func:`card_dataset`).
        dataset_name, dataset_split, dataset_config: model-index dataset details of the bias readings.
        model_name: name in the model-index and the title (default: ``repo_id``, else ``report.model_id``
            when it is a Hub id, else the last part of its local path).
        layer: layer whose values go to the model-index (default: the last probed layer).
        description: a paragraph about the model, placed under the title (default: ``training["description"]``,
            so that ``stadyn publish`` rebuilding the card for another repo id keeps it).
        license: default :data:`DEFAULT_LICENSE`. language, tags, library_name, pipeline_tag: card metadata.
        command: the command that produced the report (default: ``report.extra["command"]``).
        figures: ``{caption: relative path}`` of images to show; default: the PNGs that
            :func:`write_model_card_folder` writes next to the README. Pass ``{}`` for none.
        scatter_layers: layers with a rho scatter figure (default: the last layer).
        repo_id: the Hub repo the card is for (usage code, title); default: unknown (a local folder).
        accuracies: ``{split: accuracy in [0, 1]}`` of the task (default: ``training["accuracy"]`` or
            ``report.extra["accuracy"]``), put first in the model-index.
        task_dataset, task_config: the dataset of those accuracies (default: ``training["dataset"]`` when it
            is a Hub id, else StaDyn-Synth's ``trap`` config).
        training: the ``training.json`` record (command, seeds, data, base_model) for the Training section.

    Returns:
        ``huggingface_hub.ModelCard``; ``card.save(path)`` writes it, ``ModelCard.load`` reads back
        the same ``eval_results``.
    """
    from huggingface_hub import ModelCard, ModelCardData

    report = _check_report(report)
    training = dict(training or report.extra.get("training") or {})
    if repo_id is not None and not looks_like_hub_id(repo_id):
        raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}.")
    name = model_name or repo_id or display_name(report.model_id)
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        raise ValueError(f"tags must be a list of strings, got {tags!r}.")
    base_model = base_model or _str_or_none(training.get("base_model"))
    description = description or _str_or_none(training.get("description"))
    if base_model is not None and not looks_like_hub_id(base_model):
        raise ValueError(f"base_model must be a Hub model id like 'namespace/name', got {base_model!r}.")
    accuracies = dict(accuracies or training.get("accuracy") or report.extra.get("accuracy") or {})
    if task_dataset is None:
        recorded = _str_or_none(training.get("dataset"))
        task_dataset = recorded if looks_like_hub_id(recorded) else STADYN_SYNTH_DATASET
        task_config = task_config or (training.get("dataset_config") or ("trap" if recorded is None else None))
    task_dataset = task_dataset or STADYN_SYNTH_DATASET
    all_tags = list(dict.fromkeys([*_BASE_TAGS, *(tags or ())]))
    eval_results = accuracy_eval_results(accuracies, dataset=task_dataset, dataset_config=task_config)
    eval_results += bias_eval_results(
        report,
        layer=layer,
        dataset=dataset,
        dataset_name=dataset_name,
        dataset_split=dataset_split,
        dataset_config=dataset_config,
    )
    bias_dataset = eval_results[-1].dataset_type
    datasets = list(dict.fromkeys([bias_dataset, *([task_dataset] if accuracies else [])]))
    data = ModelCardData(
        base_model=base_model,
        datasets=datasets,
        language=language,
        license=license or DEFAULT_LICENSE,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=all_tags,
        metrics=(["accuracy"] if accuracies else []) + [METRIC_PREFIX],
        model_name=name,
        eval_results=eval_results,
    )
    links = report.figure_files(scatter_layers) if figures is None else dict(figures)
    command = command if command is not None else _extra_str(report, "command")
    body = _card_body(
        report,
        name,
        description,
        links,
        command,
        report._check_layer(layer),
        base_model,
        bias_dataset,
        repo_id=repo_id,
        pipeline_tag=pipeline_tag,
        training=training,
        accuracies=accuracies,
        task_dataset=task_dataset,
        task_config=task_config,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{CARD_BEGIN}\n{body}{CARD_END}\n")


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def write_model_card_folder(
    report: BiasReport,
    out_dir: str | os.PathLike,
    *,
    scatter_layers: Sequence[str] | None = None,
    dpi: int = DEFAULT_DPI,
    **card_kwargs: Any,
) -> Path:
    """Write a model-card folder: ``README.md``, ``bias_report.json`` and the figures (PNG).

    This is the layout of the repository's ``model_cards/<name>/`` folders and of what
    :func:`~hf_stadyn.hub.push_report` uploads. Extra keyword arguments go to :func:`bias_model_card`.

    Nothing partial is left behind: the report is checked (:meth:`BiasReport.validate`), the card and the
    JSON text are built and the folder checked writable before any file is written; the files are then
    written into a hidden staging folder (a sibling ``.<name>.tmp-*`` of a new folder, or inside an
    existing one) that is renamed into place, or whose files are renamed into the existing folder, only
    once all of them are written. On any failure the staging folder is removed. Returns the folder.

    Raises:
        ValueError: a bad report (no layers, NaN values), bad card arguments, or ``out_dir`` (or one
            of its parents) is a file.
        PermissionError: the folder (or the nearest existing parent) is not writable (one line).
    """
    report = _check_report(report)
    report.validate()
    if "figures" in card_kwargs:
        raise ValueError("write_model_card_folder draws its own figures; do not pass figures=.")
    # build the card and the JSON first so bad arguments or values fail before any file is written
    card = bias_model_card(report, scatter_layers=scatter_layers, **card_kwargs)
    report.figure_files(scatter_layers)  # checks the scatter layers
    json_text = report.to_json()
    readme = str(card)
    out = Path(out_dir)
    check_card_folder(out)
    existed = out.is_dir()
    made = [q for q in out.parents if not q.exists()]  # parents to create, removed again on failure
    stage: Path | None = None
    done = False
    try:
        if not existed:
            out.parent.mkdir(parents=True, exist_ok=True)
        stage = _make_stage(out, existed)
        report.save_figures(stage, scatter_layers=scatter_layers, dpi=dpi)
        atomic_write_text(stage / CARD_REPORT_JSON, json_text)
        atomic_write_text(stage / "README.md", readme)
        if not existed:
            try:
                os.rename(stage, out)
                stage = None
            except OSError:  # the folder appeared meanwhile: fall back to moving the files in
                out.mkdir(parents=True, exist_ok=True)
        if stage is not None:
            for f in sorted(stage.iterdir()):
                os.replace(f, out / f.name)
            stage.rmdir()
            stage = None
        done = True
    except PermissionError:
        raise PermissionError(_permission_message(out)) from None
    except OSError as e:  # disk full, read-only file system, ...: one line, the same type
        raise type(e)(_permission_message(out, reason=(e.strerror or str(e)).lower())) from None
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        if not done:
            for q in made:  # deepest first; only the empty ones this call created
                with contextlib.suppress(OSError):
                    q.rmdir()
    logger.info("wrote the model card of %s to %s", report.model_id, out)
    return out


def check_card_folder(out: str | os.PathLike, flag: str = "model card folder") -> Path:
    """Check, writing nothing, that a card can be written to folder ``out`` (existing or to be created).

    Raises ``ValueError`` when ``out`` or a parent is a file, ``PermissionError`` (one line naming the
    folder) when ``out`` or its nearest existing parent is not writable. Returns ``Path(out)``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {str(out)!r} exists and is not a folder; pass a folder path.")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ValueError(
            f"{flag} {str(out)!r} is inside {str(probe)!r}, which is a file, not a folder; pass a folder path."
        )
    problem = _write_problem(probe) if probe.exists() else None
    if problem is not None:
        raise PermissionError(_permission_message(out, probe, problem))
    return out


def _write_problem(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (None: it can); tried for real, as ``os.access`` is wrong for
    root, ACLs and read-only file systems."""
    name = folder / f".stadyn-write-check-{secrets.token_hex(4)}"
    try:
        os.mkdir(name)
    except PermissionError:
        return "permission denied"
    except OSError as e:  # read-only file system, a virtual file system (/proc), ...
        return (e.strerror or type(e).__name__).lower()
    os.rmdir(name)
    return None


def _permission_message(out: Path, where: Path | None = None, reason: str = "permission denied") -> str:
    at = "" if where is None or where == out else f" (in its parent {str(where)!r})"
    return f"cannot write the model card to {str(out)!r}: {reason}{at}; choose a folder you can write to."


def _make_stage(out: Path, existed: bool) -> Path:
    """A new empty hidden folder on the same file system as ``out`` (created with the user's umask)."""
    parent = out if existed else out.parent
    prefix = ".stadyn-card.tmp-" if existed else f".{out.name}.tmp-"
    for _ in range(100):
        stage = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(stage)
            return stage
        except FileExistsError:
            continue
        except PermissionError:
            raise PermissionError(_permission_message(out, parent)) from None
    raise FileExistsError(f"could not create a staging folder in {str(parent)!r}; remove its .tmp-* folders.")


def _setting(report: BiasReport, key: str) -> str | None:
    v = report.pair_settings.get(key)
    return v if isinstance(v, str) and v else None


def _extra_str(report: BiasReport, key: str) -> str | None:
    v = report.extra.get(key)
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return v if isinstance(v, str) and v else None


def _card_body(
    report: BiasReport,
    name: str,
    description: str | None,
    figures: Mapping[str, str],
    command: str | None,
    layer: str,
    base_model: str | None,
    dataset: str,
    *,
    repo_id: str | None = None,
    pipeline_tag: str | None = None,
    training: Mapping[str, Any] | None = None,
    accuracies: Mapping[str, float] | None = None,
    task_dataset: str | None = None,
    task_config: str | None = None,
) -> str:
    lb = report.layers[layer]
    lines = [f"# {name}", ""]
    if description:
        lines += [description.strip(), ""]
    fine_tuned = f" (fine-tuned from [`{base_model}`](https://huggingface.co/{base_model}))" if base_model else ""
    lines += [
        f"A video classification model{fine_tuned}, published with its static/dynamic bias report: how much "
        f"**static** (appearance) and **dynamic** (motion) information the layers of `{report.model_id}` encode, "
        f"measured with hf-stadyn (the estimator of Kowal et al., TPAMI, [arXiv:2211.01783]({PAPER_URL})).",
        "",
        f"At layer `{layer}`: {headline_markdown(lb)}.",
        "",
    ]
    lines += usage_section(repo_id, pipeline_tag)
    lines += training_section(training, base_model)
    lines += ["## Evaluation", ""]
    if accuracies:
        lines += accuracy_section(accuracies, task_dataset or STADYN_SYNTH_DATASET, task_config)
    lines.append(report.to_markdown(figures=figures, heading_level=2, title=False))
    lines += ["### How it was measured", ""]
    lines += [
        "- Pairs: a *dynamic* pair is one clip in two temporally consistent styles (motion shared, appearance "
        "changed); a *static* pair is a stylized clip and the same clip with its frames shuffled (appearance "
        "shared, motion changed).",
        "- Features: each probed layer's output, mean-pooled to one vector per clip; scores s_F are the "
        "normalised covariance of the pair members, converted to the share 100 * pi_F (softmax with the "
        f"residual score fixed at 1; the headline, with its jackknife interval) and to the paper's {DIMS_LABEL} "
        "(floor(pi_F * C) / C).",
        f"- Pairs per factor at `{layer}`: {lb.num_pairs['dynamic']} dynamic, {lb.num_pairs['static']} static.",
        f"- Videos: [`{dataset}`](https://huggingface.co/datasets/{dataset}).",
    ]
    if report.revision:
        lines.append(f"- Model revision: `{report.revision}`.")
    if report.reference is not None:
        desc = report.reference_info.get("description", "reference")
        lines.append(f"- Reference reading: {desc}; see the deltas above.")
    lines.append("")
    if command:
        lines += ["Reproduce the report with:", "", "```bash", command, "```", ""]
    lines += [
        f"The full report (all layers, per-channel scores) is in [`{CARD_REPORT_JSON}`]({CARD_REPORT_JSON}); "
        "load it with `hf_stadyn.BiasReport.load`.",
        "",
    ]
    lines += limitations_section()
    lines += [
        "## Citation",
        "",
        "```bibtex",
        _CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)
