"""hf-stadyn's TimeSformer video classifier: upstream weights and checkpoints, plus bias probing.

:class:`StadynTimesformerForVideoClassification` is ``transformers.TimesformerForVideoClassification``
with the :class:`~hf_stadyn.probing.BiasProbingMixin` and one addition to the forward pass: the CLS
token after the final LayerNorm (the classifier input) passes through ``self.feature_dropout``
(``nn.Identity`` by default; StaticDropout plugs in here) right before ``self.classifier``. The state
dict is the upstream one, so checkpoints load both ways.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import TimesformerForVideoClassification
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from ..probing.layouts import Layout
from ..probing.mixin import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, BiasProbingMixin
from ._upstream import register_upstream_weight_conversions
from .configuration_timesformer import StadynTimesformerConfig

__all__ = ["StadynTimesformerForVideoClassification"]

register_upstream_weight_conversions(StadynTimesformerConfig.model_type, StadynTimesformerConfig.upstream_model_type)


class StadynTimesformerForVideoClassification(BiasProbingMixin, TimesformerForVideoClassification):
    """TimeSformer video classifier with bias probing and a classifier-input hook point.

    Input: ``pixel_values`` ``(B, T, 3, H, W)`` with exactly ``config.num_frames`` frames (the blocks
    reshape tokens with ``config.num_frames``) of the checkpoint processor's crop size, else
    ``config.image_size`` (upstream interpolates the position embeddings to other sizes), normalised
    with the statistics of the checkpoint's processor, else ImageNet "default" statistics (the class
    fallback; docs/method.md §1.1).

    Probe layers: ``"embeddings"`` and ``"block_0"`` .. ``"block_{L-1}"`` (``(B, 1 + N, C)``: a CLS
    token, then tokens in (h, w, t) order; pooled over all tokens, CLS included, before the final
    LayerNorm) and ``"pre_classifier"`` (the CLS token after the final LayerNorm, ``(B, C)``).

    ``config.time_embed_init_std`` draws the time embeddings at initialisation (upstream: zeros).
    """

    config_class = StadynTimesformerConfig
    config: StadynTimesformerConfig
    num_labels: int  # set from config.num_labels by upstream __init__; a classifier always has labels

    _probe_embeddings_module = "timesformer.embeddings"
    _probe_blocks_module = "timesformer.encoder.layer"
    _probe_token_layout = Layout.TOKENS_CLS
    _probe_classifier_input_module = "feature_dropout"
    _probe_image_mean = IMAGENET_DEFAULT_MEAN
    _probe_image_std = IMAGENET_DEFAULT_STD
    _probe_fixed_image_size = False  # upstream interpolates the position embeddings

    def __init__(self, config: StadynTimesformerConfig) -> None:
        super().__init__(config)
        self.feature_dropout: nn.Module = self._build_feature_dropout(config)

    def initialize_weights(self) -> None:
        """Upstream initialisation, then the time embeddings from ``config.time_embed_init_std``.

        Done here rather than in ``_init_weights``: transformers initialises the embeddings through
        the ``TimesformerModel`` sub-model's own ``_init_weights``. ``init.normal_`` skips tensors
        already loaded from a checkpoint, so loaded time embeddings are kept.
        """
        super().initialize_weights()
        std = getattr(self.config, "time_embed_init_std", None)
        time_embeddings = getattr(self.timesformer.embeddings, "time_embeddings", None)
        if std and time_embeddings is not None:
            init.normal_(time_embeddings, mean=0.0, std=float(std))

    def _build_feature_dropout(self, config: StadynTimesformerConfig) -> nn.Module:
        """The module applied to the classifier input; ``nn.Identity`` (no parameters, no state)."""
        return nn.Identity()

    def set_feature_dropout(self, module: nn.Module) -> None:
        """Plug a module (e.g. StaticDropout) between the CLS features and the classifier."""
        if not isinstance(module, nn.Module):
            raise ValueError(f"feature_dropout must be an nn.Module, got {type(module).__name__}.")
        self.feature_dropout = module

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> tuple | ImageClassifierOutput:
        """Classify clips ``pixel_values`` ``(B, T, 3, H, W)``; ``logits`` are ``(B, num_labels)``.

        Same computation (and losses) as upstream TimeSformer, with ``feature_dropout`` before the
        classifier.
        """
        self._check_pixel_values(pixel_values)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.timesformer(
            pixel_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=return_dict,
        )
        cls_features = outputs[0][:, 0]  # (B, C), after the final LayerNorm
        logits = self.classifier(self.feature_dropout(cls_features))

        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif self.num_labels > 1 and (labels.dtype == torch.long or labels.dtype == torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss_fct = MSELoss()
                loss = (
                    loss_fct(logits.squeeze(), labels.squeeze()) if self.num_labels == 1 else loss_fct(logits, labels)
                )
            elif self.config.problem_type == "single_label_classification":
                loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                loss = BCEWithLogitsLoss()(logits, labels)

        if not return_dict:
            output = (logits,) + tuple(outputs[1:])
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
