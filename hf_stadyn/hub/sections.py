"""The parts of a Hub-complete model card that are not the bias tables: names, usage, training, evaluation,
limitations, and the markers that let ``stadyn publish`` rewrite our block while a user's text survives.

Everything hf-stadyn writes into a card body sits between :data:`CARD_BEGIN` and :data:`CARD_END`; on a
second publish only that block (and the metadata keys we set) is replaced (:func:`hf_stadyn.hub.merge_card`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

__all__ = [
    "CARD_BEGIN",
    "CARD_END",
    "PAPER_URL",
    "SOURCE_NAME",
    "STADYN_SYNTH_DATASET",
    "STADYN_SYNTH_NAME",
    "accuracy_section",
    "display_name",
    "limitations_section",
    "looks_like_hub_id",
    "training_section",
    "usage_section",
]

#: Hub id under which ``stadyn synth --push_to_hub`` publishes StaDyn-Synth (docs/hub.md); cards name it as
#: the dataset of the bias readings made on synthetic pairs and of the trap-study accuracies.
STADYN_SYNTH_DATASET = "hf-stadyn/stadyn-synth"
STADYN_SYNTH_NAME = "StaDyn-Synth"
PAPER_URL = "https://arxiv.org/abs/2211.01783"
#: ``source.name`` of every model-index result; it names what ``source.url`` (:data:`PAPER_URL`) points at.
SOURCE_NAME = "Kowal et al., TPAMI (arXiv:2211.01783): static/dynamic estimator, run with hf-stadyn"
CARD_BEGIN = "<!-- hf-stadyn:begin (written by stadyn card / stadyn publish; text outside this block is kept) -->"
CARD_END = "<!-- hf-stadyn:end -->"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_hub_id(name: str | None) -> bool:
    """``namespace/name`` with no path-like parts (``./x``, ``/abs``, ``a/b/c``, ``~``)."""
    return isinstance(name, str) and bool(_HUB_ID.match(name)) and not name.startswith((".", "~"))


def display_name(model_id: str) -> str:
    """A model-index name for ``model_id``: a Hub id as is, a local path by its last part (``./my-vm`` -> ``my-vm``)."""
    if looks_like_hub_id(model_id):
        return model_id
    name = PurePath(model_id.rstrip("/\\")).name
    return name or "model"


def usage_section(repo_id: str | None, pipeline_tag: str | None) -> list[str]:
    """``## Usage``: load with plain transformers and read the report (``repo_id`` None: a local folder)."""
    where = repo_id or "path/to/this/folder"
    lines = [
        "## Usage",
        "",
        "```python",
        "import torch",
        "from transformers import AutoImageProcessor, AutoModelForVideoClassification",
        "",
        f'model = AutoModelForVideoClassification.from_pretrained("{where}").eval()',
        "video = torch.rand(1, model.config.num_frames, 3, model.config.image_size, model.config.image_size)",
        "with torch.no_grad():",
        "    label = model(pixel_values=video).logits.argmax(-1).item()",
        "print(model.config.id2label[label])",
        "```",
        "",
        "Real videos: decode the frames (e.g. with PyAV) and prepare them with the checkpoint's processor, "
        f'`AutoImageProcessor.from_pretrained("{where}")`, when the folder has one.',
        "",
        "The bias report and its figures:",
        "",
        "```python",
        "from hf_stadyn import BiasReport",
    ]
    if repo_id:
        lines += [
            "from huggingface_hub import hf_hub_download",
            "",
            f'report = BiasReport.load(hf_hub_download("{repo_id}", "bias_report.json"))',
        ]
    else:
        lines += ["", 'report = BiasReport.load("path/to/this/folder/bias_report.json")']
    lines += ["print(report.to_markdown())", "```", ""]
    return lines


def _fmt(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def training_section(training: Mapping[str, Any] | None, base_model: str | None) -> list[str]:
    """``## Training``: the recorded command, seeds and data (``training.json``), or what is not recorded."""
    lines = ["## Training", ""]
    if not training:
        lines += [
            "Not recorded: this card was made from a bias report alone. Put a `training.json` (the command, "
            "seeds and data that rebuild the weights) next to the weights and publish the folder with "
            "`stadyn publish` to fill this section.",
            "",
        ]
        return lines
    if base_model:
        lines.append(f"- Base model: [`{base_model}`](https://huggingface.co/{base_model}).")
    for key, label in (
        ("data", "Data"),
        ("dataset", "Dataset"),
        ("method", "Method"),
        ("debias", "Debiasing"),
        ("epochs", "Epochs"),
        ("seed", "Seed"),
        ("seeds", "Seeds"),
    ):
        if key in training and training[key] not in (None, "", []):
            lines.append(f"- {label}: `{_fmt(training[key])}`.")
    lines.append("")
    command = training.get("command")
    if isinstance(command, list):
        command = " ".join(str(c) for c in command)
    if command:
        lines += ["Rebuild the weights with:", "", "```bash", str(command), "```", ""]
    lines += ["The full record is in [`training.json`](training.json).", ""]
    return lines


def accuracy_section(accuracies: Mapping[str, float], dataset: str, config: str | None) -> list[str]:
    """``### Task accuracy``: one row per evaluation split (e.g. the trap's aligned and conflicting clips)."""
    ds = f"`{dataset}`" + (f" (`{config}`)" if config else "")
    lines = ["### Task accuracy", "", f"On {ds}:", "", "| split | accuracy |", "|---|---|"]
    lines += [f"| {split} | {100 * float(acc):.1f} % |" for split, acc in accuracies.items()]
    lines += [
        "",
        "On the trap's *aligned* clips the static cue agrees with the label; on its *conflicting* clips it shows "
        "another class, so only a model that reads the motion stays accurate there.",
        "",
    ]
    return lines


def limitations_section() -> list[str]:
    """``## Limitations``: what "static" and "dynamic" mean in this method, and what the numbers do not say."""
    return [
        "## Limitations",
        "",
        '- **What "dynamic" means here.** A unit counts as dynamic when its response is shared by two *stylized* '
        "copies of one clip (same motion, different appearance): the factor is whatever survives the stylization. "
        "Static is what a clip shares with its own frame-shuffled copy (same appearance, motion destroyed). "
        "Neither is a motion or appearance *detector* in a stronger sense, and the readings depend on the "
        "stylizations and shuffles used to make the pairs.",
        "- Readings on StaDyn-Synth describe synthetic clips; on real videos the shares can differ. Compare "
        "models relatively (the same pairs, the same layers), not against an absolute scale: an untrained "
        "network already reads strongly static.",
        "- The shares come from a softmax over the layer scores with a residual fixed at 1, so each factor's share "
        "lies between about 14 % and 42 %; the raw scores s_D and s_S are reported too.",
        "- Task accuracies are measured on the listed splits only.",
        "",
    ]
