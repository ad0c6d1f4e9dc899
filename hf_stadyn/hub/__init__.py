"""Hub integration: Hub-complete model cards from a BiasReport, merging them into existing cards, and
publishing folders (model cards, checkpoints, Spaces) to the Hub safely and repeatably (docs/hub.md)."""

from .card import (
    CARD_REPORT_JSON,
    DEFAULT_LICENSE,
    accuracy_eval_results,
    bias_eval_results,
    bias_model_card,
    card_dataset,
    write_model_card_folder,
)
from .merge import merge_card
from .publish import PublishResult, hub_errors, publish_folder, push_report
from .sections import CARD_BEGIN, CARD_END, STADYN_SYNTH_DATASET

__all__ = [
    "CARD_BEGIN",
    "CARD_END",
    "CARD_REPORT_JSON",
    "DEFAULT_LICENSE",
    "STADYN_SYNTH_DATASET",
    "PublishResult",
    "accuracy_eval_results",
    "bias_eval_results",
    "bias_model_card",
    "card_dataset",
    "hub_errors",
    "merge_card",
    "publish_folder",
    "push_report",
    "write_model_card_folder",
]
