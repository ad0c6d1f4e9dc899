"""transformers' own common model tests (``ModelTesterMixin``, ``ConfigTester``) on our three families.

Issue #9, point 7: the tests fail nothing for our classes that upstream's classes pass. Each video
family runs the whole mixin (about 160 tests; all five classes take 1-2 minutes on 2 cores) with the
same tiny config as its upstream counterpart, and the outcomes (pass / skip, with the same reasons)
are identical:

- ``StadynVideoMAEForVideoClassification`` vs ``VideoMAEForVideoClassification``;
- ``StadynTimesformerForVideoClassification`` vs ``TimesformerForVideoClassification``;
- ``AVOSModel`` (no upstream counterpart).

The sources are not in this repository: ``tests/_transformers_suite.py`` imports them from
``$STADYN_TRANSFORMERS_TESTS`` or a transformers sdist (``.ci/run`` downloads it to
``~/.cache/hf-stadyn/``); they need the ``parameterized`` package. Without them the classes skip
locally, and ``test_transformers_sources_found`` fails when ``CI=true``.

Written here, as upstream's per-model test files (not in the sdist) do for these models, and shared by
ours and upstream's: the model testers, ``_prepare_for_class`` (labels), ``test_config``,
``test_hidden_states_output``, ``test_model_get_set_embeddings`` (the input embedding is the patch
projection, a conv, not an ``nn.Embedding``), TimeSformer's ``test_attention_outputs`` (per-frame
spatial maps) and the skip of ``test_inputs_embeds`` (no ``inputs_embeds``). The mixin recognises
video classifiers by class name in ``MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES``; during our
classes' tests that table lists them too, so name-gated tests (e.g. the mismatched-head reload) really
run on ours instead of passing vacuously.

AVOS, a two-input (frame + flow) convolutional segmenter, skips (reason in each skip):
``test_attention_outputs`` and the attention tests (``has_attentions = False``), ``test_inputs_embeds``,
``test_model_get_set_embeddings`` (two backbones, no single input embedding) and
``test_can_load_ignoring_mismatched_shapes`` (classifier heads only; its ``_config_zero_init`` also
sets every ``*_std`` config field to 1e-10, which ``AVOSConfig.image_std``, 3 per-channel values,
rejects); its ``test_hidden_states_output`` is its own (one fused map per level). Bugs this caught:
AVOS checkpointing outside transformers' ``GradientCheckpointingLayer`` (no layer for
``activation_checkpointing_enable`` to act on), under a reentrant checkpoint gradients for the decoder
only (the stem was checkpointed on the raw images, which need none), and BatchNorm statistics restored
in place into tensors a reentrant recomputation had saved.

xfail for ours, by design: none (no test differs from upstream's outcome).
"""

from __future__ import annotations

import copy
import os
import unittest
import unittest.mock

import pytest
import torch
from _transformers_suite import load_suite
from torch import nn
from transformers import (
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
)
from transformers.models.auto import modeling_auto

from hf_stadyn.models import (
    AVOSConfig,
    AVOSModel,
    StadynTimesformerConfig,
    StadynTimesformerForVideoClassification,
    StadynVideoMAEConfig,
    StadynVideoMAEForVideoClassification,
    tiny_avos_config,
)

torch.set_num_threads(1)

_SUITE = load_suite()
_FOUND = not isinstance(_SUITE, str)
_REASON = "" if _FOUND else str(_SUITE)
if _FOUND:
    Mixin = _SUITE.modeling.ModelTesterMixin
    ConfigTester = _SUITE.configuration.ConfigTester
    floats_tensor = _SUITE.modeling.floats_tensor
else:  # the classes below skip; test_transformers_sources_found says why

    class Mixin:  # type: ignore[no-redef]
        """Stands in for ModelTesterMixin when transformers' test sources are missing."""

    ConfigTester = floats_tensor = None


def test_transformers_sources_found() -> None:
    """The upstream common tests were found; in CI (``CI=true``) their absence is a failure, not a skip."""
    if _FOUND:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run transformers' ModelTesterMixin on our models: {_REASON}")
    pytest.skip(_REASON)


# --------------------------------------------------------------------------------------------------
# testers (what upstream's per-model test files define; the same tiny sizes for ours and upstream's)


class VideoTester:
    """Tiny clip classifier config and inputs ``pixel_values (B, T, 3, H, W)``."""

    def __init__(self, parent: unittest.TestCase, config_class: type, family: str) -> None:
        self.parent = parent
        self.config_class = config_class
        self.family = family
        self.batch_size = 3
        self.num_frames = 4
        self.image_size = 16
        self.patch_size = 8
        self.tubelet_size = 2
        self.num_channels = 3
        self.hidden_size = 32
        self.num_hidden_layers = 2
        self.num_attention_heads = 4
        self.intermediate_size = 37
        self.num_labels = 3
        self.is_training = True
        patches = (self.image_size // self.patch_size) ** 2
        if family == "videomae":  # tubelets, no CLS token
            self.seq_length = (self.num_frames // self.tubelet_size) * patches
        else:  # TimeSformer: one CLS token + every frame's patches
            self.seq_length = self.num_frames * patches + 1

    def get_config(self):
        kwargs = {
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_channels": self.num_channels,
            "num_frames": self.num_frames,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02,
            "num_labels": self.num_labels,
        }
        if self.family == "videomae":
            kwargs["tubelet_size"] = self.tubelet_size
        return self.config_class(**kwargs)

    def prepare_config_and_inputs_for_common(self):
        shape = [self.batch_size, self.num_frames, self.num_channels, self.image_size, self.image_size]
        return self.get_config(), {"pixel_values": floats_tensor(shape)}


class AVOSTester:
    """Tiny two-stream segmenter config and inputs ``pixel_values``, ``flow_values`` ``(B, 3, 64, 64)``."""

    def __init__(self, parent: unittest.TestCase) -> None:
        self.parent = parent
        self.batch_size = 3
        self.image_size = 64
        self.is_training = True
        self.num_levels = 5  # stem + 4 stages, all fused

    def get_config(self) -> AVOSConfig:
        return tiny_avos_config("gated", "gated_bidirectional")

    def prepare_config_and_inputs_for_common(self):
        shape = [self.batch_size, 3, self.image_size, self.image_size]
        return self.get_config(), {"pixel_values": floats_tensor(shape), "flow_values": floats_tensor(shape)}


# --------------------------------------------------------------------------------------------------
# shared overrides


class _VideoSuite:
    """What the video families' test classes share (ours and upstream's alike)."""

    config_class: type
    family: str
    test_resize_embeddings = False

    def setUp(self) -> None:
        _seed()
        # transformers' tests recognise video classifiers by class name in this table (e.g. the
        # mismatched-head test runs only for them); list ours, as they would be if they were upstream's
        names = {self.config_class.model_type: self.all_model_classes[0].__name__}
        table = unittest.mock.patch.dict(modeling_auto.MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES, names)
        table.start()
        self.addCleanup(table.stop)
        self.model_tester = VideoTester(self, self.config_class, self.family)
        self.config_tester = ConfigTester(self, config_class=self.config_class, has_text_modality=False, hidden_size=32)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = copy.deepcopy(inputs_dict)
        if return_labels:  # every class here is a video classifier (ours are not in transformers' name tables)
            inputs_dict["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
        return inputs_dict

    def test_config(self) -> None:
        self.config_tester.run_common_tests()

    @unittest.skip(reason="video classifiers take pixel_values, no inputs_embeds")
    def test_inputs_embeds(self) -> None:
        pass

    def test_model_get_set_embeddings(self) -> None:
        """The input embedding is the patch (tubelet) projection, a conv; no output embedding."""
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), nn.Module)
            self.assertIsNone(model.get_output_embeddings())

    def test_hidden_states_output(self) -> None:
        """``num_hidden_layers + 1`` states of ``(B, seq_length, hidden)``, from the kwarg and from the config."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        t = self.model_tester
        for model_class in self.all_model_classes:
            for via_config in (False, True):
                cfg = copy.deepcopy(config)
                inputs = self._prepare_for_class(inputs_dict, model_class)
                if via_config:
                    cfg.output_hidden_states = True
                else:
                    inputs["output_hidden_states"] = True
                model = model_class(cfg).eval()
                with torch.no_grad():
                    hidden_states = model(**inputs).hidden_states
                self.assertEqual(len(hidden_states), t.num_hidden_layers + 1)
                for h in hidden_states:
                    self.assertEqual(tuple(h.shape), (t.batch_size, t.seq_length, t.hidden_size))


def _seed() -> None:
    """The same inputs and weights in every run (upstream's ``floats_tensor`` draws from an unseeded RNG)."""
    _SUITE.modeling.global_rng.seed(0)
    torch.manual_seed(0)


def _skip_unless_found(cls):
    return unittest.skipUnless(_FOUND, _REASON)(cls)


@_skip_unless_found
class TestStadynVideoMAE(_VideoSuite, Mixin, unittest.TestCase):
    all_model_classes = (StadynVideoMAEForVideoClassification,)
    config_class = StadynVideoMAEConfig
    family = "videomae"


@_skip_unless_found
class TestUpstreamVideoMAE(_VideoSuite, Mixin, unittest.TestCase):
    all_model_classes = (VideoMAEForVideoClassification,)
    config_class = VideoMAEConfig
    family = "videomae"


class _TimesformerSuite(_VideoSuite):
    def test_attention_outputs(self) -> None:
        """Divided space-time attention: the kept (spatial) maps are per frame, ``(B * T, heads, P + 1, P + 1)``."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        t = self.model_tester
        per_frame = (t.seq_length - 1) // t.num_frames + 1
        for model_class in self.all_model_classes:
            for via_config in (False, True):
                cfg = copy.deepcopy(config)
                inputs = self._prepare_for_class(inputs_dict, model_class)
                if via_config:
                    cfg.output_attentions = True
                else:
                    inputs["output_attentions"] = True
                model = model_class(cfg).eval()
                with torch.no_grad():
                    out = model(**inputs)
                self.assertEqual(len(out.attentions), t.num_hidden_layers)
                for a in out.attentions:
                    self.assertEqual(
                        tuple(a.shape), (t.batch_size * t.num_frames, t.num_attention_heads, per_frame, per_frame)
                    )
                n_without_hidden = len(out)
                with torch.no_grad():
                    out = model(**inputs, output_hidden_states=True)
                self.assertEqual(len(out), n_without_hidden + 1)  # hidden_states added, attentions still last
                self.assertEqual(len(out[-1]), t.num_hidden_layers)


@_skip_unless_found
class TestStadynTimesformer(_TimesformerSuite, Mixin, unittest.TestCase):
    all_model_classes = (StadynTimesformerForVideoClassification,)
    config_class = StadynTimesformerConfig
    family = "timesformer"


@_skip_unless_found
class TestUpstreamTimesformer(_TimesformerSuite, Mixin, unittest.TestCase):
    all_model_classes = (TimesformerForVideoClassification,)
    config_class = TimesformerConfig
    family = "timesformer"


@_skip_unless_found
class TestAVOS(Mixin, unittest.TestCase):
    all_model_classes = (AVOSModel,)
    has_attentions = False
    test_resize_embeddings = False

    def setUp(self) -> None:
        _seed()
        self.model_tester = AVOSTester(self)
        self.config_tester = ConfigTester(
            self, config_class=AVOSConfig, has_text_modality=False, decoder_hidden_size=16, fusion="gated"
        )

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = copy.deepcopy(inputs_dict)
        if return_labels:  # target masks (B, 1, H, W) in [0, 1]
            t = self.model_tester
            inputs_dict["labels"] = torch.zeros(t.batch_size, 1, t.image_size, t.image_size)
        return inputs_dict

    def test_config(self) -> None:
        self.config_tester.run_common_tests()

    @unittest.skip(reason="AVOS takes pixel_values and flow_values images, no inputs_embeds")
    def test_inputs_embeds(self) -> None:
        pass

    @unittest.skip(
        reason="AVOS is not a classifier (the test only checks classification heads), and its _config_zero_init "
        "sets every '*_std' config field to 1e-10, which AVOSConfig.image_std (3 per-channel values) rejects"
    )
    def test_can_load_ignoring_mismatched_shapes(self) -> None:
        pass

    @unittest.skip(reason="AVOS has two backbones (appearance, motion): no single input embedding")
    def test_model_get_set_embeddings(self) -> None:
        pass

    def test_hidden_states_output(self) -> None:
        """One fused map per level ``(B, C_i, H_i, W_i)``, the same tensors as ``fusion_hidden_states``."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        t = self.model_tester
        for via_config in (False, True):
            cfg = copy.deepcopy(config)
            inputs = self._prepare_for_class(inputs_dict, AVOSModel)
            if via_config:
                cfg.output_hidden_states = True
            else:
                inputs["output_hidden_states"] = True
            model = AVOSModel(cfg).eval()
            with torch.no_grad():
                out = model(**inputs)
            self.assertEqual(len(out.hidden_states), t.num_levels)
            for h, f in zip(out.hidden_states, out.fusion_hidden_states, strict=True):
                self.assertIs(h, f)
                self.assertEqual(h.ndim, 4)
                self.assertEqual(h.shape[0], t.batch_size)
