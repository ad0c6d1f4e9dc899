"""Hub integration: model cards built from a BiasReport and publishing them to a model repo."""

from .card import CARD_REPORT_JSON, bias_eval_results, bias_model_card, write_model_card_folder
from .publish import push_report

__all__ = ["CARD_REPORT_JSON", "bias_eval_results", "bias_model_card", "push_report", "write_model_card_folder"]
