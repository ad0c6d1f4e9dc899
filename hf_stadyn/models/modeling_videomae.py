"""hf-stadyn's VideoMAE video classifier: upstream weights and checkpoints, plus bias probing.

:class:`StadynVideoMAEForVideoClassification` is ``transformers.VideoMAEForVideoClassification`` with
the :class:`~hf_stadyn.probing.BiasProbingMixin` and one addition to the forward pass: the pooled
features that feed the classifier (mean over tokens, then ``fc_norm``) pass through
``self.feature_dropout`` (``nn.Identity`` by default; StaticDropout plugs in here) right before
``self.classifier``. The state dict is the upstream one, so checkpoints load both ways.
"""

# No ``from __future__ import annotations``: ``forward``'s ``Unpack[TransformersKwargs]`` stays a real
# annotation, as upstream, so tooling that reads the signature sees the attention kwargs.
import torch
from torch import nn
from transformers import VideoMAEForVideoClassification
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from ..probing.layouts import Layout
from ..probing.mixin import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD, BiasProbingMixin
from ._upstream import register_upstream_weight_conversions
from .configuration_videomae import StadynVideoMAEConfig

__all__ = ["StadynVideoMAEForVideoClassification"]

register_upstream_weight_conversions(StadynVideoMAEConfig.model_type, StadynVideoMAEConfig.upstream_model_type)


class StadynVideoMAEForVideoClassification(BiasProbingMixin, VideoMAEForVideoClassification):
    """VideoMAE video classifier with bias probing and a classifier-input hook point.

    Input: ``pixel_values`` ``(B, T, 3, H, W)`` with exactly ``config.num_frames`` frames of
    ``config.image_size`` (VideoMAE's position table is fixed), normalised with the statistics of the
    checkpoint's processor (``preprocessor_config.json``, read by ``load_model``), else ImageNet
    "standard" statistics (mean = std = 0.5, the VideoMAE image processor's defaults; the class
    fallback, docs/method.md §1.1).

    Probe layers: ``"embeddings"`` (patch + position embeddings, ``(B, N, C)``), ``"block_0"`` ..
    ``"block_{L-1}"`` (raw block outputs, ``(B, N, C)``, no CLS token), ``"pre_classifier"`` (the
    pooled, ``fc_norm``-ed ``(B, C)`` classifier input, captured before ``feature_dropout``).

    Example:
        >>> model = StadynVideoMAEForVideoClassification(tiny_videomae_config(num_labels=4))  # doctest: +SKIP
        >>> feats = model.pooled_features(model.prepare_pixel_values(clips_uint8))           # doctest: +SKIP
    """

    config_class = StadynVideoMAEConfig
    config: StadynVideoMAEConfig

    _probe_embeddings_module = "videomae.embeddings"
    _probe_blocks_module = "videomae.encoder.layer"
    _probe_token_layout = Layout.TOKENS
    _probe_classifier_input_module = "feature_dropout"
    _probe_image_mean = IMAGENET_STANDARD_MEAN
    _probe_image_std = IMAGENET_STANDARD_STD

    def __init__(self, config: StadynVideoMAEConfig) -> None:
        super().__init__(config)
        self.feature_dropout: nn.Module = self._build_feature_dropout(config)

    def _build_feature_dropout(self, config: StadynVideoMAEConfig) -> nn.Module:
        """The module applied to the classifier input; ``nn.Identity`` (no parameters, no state)."""
        return nn.Identity()

    def set_feature_dropout(self, module: nn.Module) -> None:
        """Plug a module (e.g. StaticDropout) between the pooled features and the classifier."""
        if not isinstance(module, nn.Module):
            raise ValueError(f"feature_dropout must be an nn.Module, got {type(module).__name__}.")
        self.feature_dropout = module

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ImageClassifierOutput:
        """Classify clips ``pixel_values`` ``(B, T, 3, H, W)``; ``logits`` are ``(B, num_labels)``.

        Same computation as upstream VideoMAE, with ``feature_dropout`` before the classifier.
        ``kwargs`` are upstream's (``output_attentions``, ``output_hidden_states``, attention-backend
        options; ``attn_implementation="eager"`` for ``attentions``).
        """
        self._check_pixel_values(pixel_values)
        outputs = self.videomae(pixel_values, **kwargs)
        sequence_output = outputs.last_hidden_state  # (B, N, C)
        if self.fc_norm is not None:
            pooled = self.fc_norm(sequence_output.mean(1))  # (B, C)
        else:
            pooled = sequence_output[:, 0]
        logits = self.classifier(self.feature_dropout(pooled))

        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)

        return ImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
