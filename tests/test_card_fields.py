"""Every field of a Hub-complete model card (issue 17 point 2), read back with huggingface_hub's own classes.

One card is built with the defaults a user gets from ``stadyn card`` (no extra flags) plus task accuracies and a
training record, saved, and loaded with ``ModelCard.load``; each test checks one field. The merge rules of
``merge_card`` are checked on plain strings at the end.
"""

from __future__ import annotations

import pytest
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from test_report import make_results

from hf_stadyn.hub import CARD_BEGIN, CARD_END, STADYN_SYNTH_DATASET, bias_model_card, card_dataset, merge_card
from hf_stadyn.hub.sections import PAPER_URL, SOURCE_NAME
from hf_stadyn.report import BiasReport

REPO = "me/my-videomae"
ACC = {"test_aligned": 0.96, "test_conflicting": 0.43}
TRAINING = {"command": "stadyn train --data synth --synth_split trap --seed 3", "seeds": [3], "epochs": 3,
            "base_model": "MCG-NJU/videomae-base", "accuracy": ACC}  # fmt: skip


@pytest.fixture(scope="module")
def report() -> BiasReport:
    return BiasReport.from_results(
        make_results(0),
        model_id="./runs/my-videomae",  # a local path, as `stadyn probe --model ./runs/...` records it
        pair_settings={"source": "stadyn-synth", "split": "motion", "clips": 128},
        extra={"command": "stadyn probe --model ./runs/my-videomae"},
    )


@pytest.fixture(scope="module")
def card(tmp_path_factory, report):
    path = tmp_path_factory.mktemp("card") / "README.md"
    bias_model_card(report, repo_id=REPO, training=TRAINING).save(path)
    return ModelCard.load(path)


@pytest.fixture(scope="module")
def meta(card) -> dict:
    return yaml.safe_load(str(card).split("---")[1])


def test_metadata_is_model_card_data(card):
    assert isinstance(card.data, ModelCardData)
    assert all(isinstance(r, EvalResult) for r in card.data.eval_results)


def test_license(card):
    assert card.data.license == "apache-2.0"


def test_datasets_name_stadyn_synth(card):
    assert card.data.datasets == [STADYN_SYNTH_DATASET]


def test_base_model_from_the_training_record(card):
    assert card.data.base_model == "MCG-NJU/videomae-base"


def test_tags(card):
    assert {"video", "hf-stadyn", "static-dynamic-bias"} <= set(card.data.tags)


def test_pipeline_tag_and_library_name(card):
    assert card.data.pipeline_tag == "video-classification"
    assert card.data.library_name == "transformers"


def test_top_level_metrics(meta):
    assert meta["metrics"] == ["accuracy", "static_dynamic_bias"]


def test_model_index_names_the_repo_not_the_local_path(card, meta):
    assert card.data.model_name == REPO
    assert "./runs" not in yaml.safe_dump(meta)


def test_model_index_task_accuracies(card):
    acc = [r for r in card.data.eval_results if r.metric_type == "accuracy"]
    assert {r.dataset_split: r.metric_value for r in acc} == ACC
    assert all(r.dataset_type == STADYN_SYNTH_DATASET and r.dataset_config == "trap" for r in acc)
    assert card.data.eval_results[: len(ACC)] == acc  # the task accuracy comes first


def test_model_index_bias_readings_with_intervals_under_a_real_dataset(card, report):
    bias = {r.metric_type: r for r in card.data.eval_results if r.metric_type.startswith("static_dynamic_bias/")}
    share = bias["static_dynamic_bias/dynamic_share"]
    iv = report.layers["block.1"].intervals["percent_dynamic"]
    assert share.metric_args["ci_low"] == pytest.approx(iv.low) and share.metric_args["ci_high"] == pytest.approx(
        iv.high
    )
    assert "95% CI" in share.metric_name
    for r in bias.values():
        assert r.dataset_type == STADYN_SYNTH_DATASET and r.dataset_name == "StaDyn-Synth"
        assert r.dataset_config == "motion" and r.dataset_split == "test"
        assert r.task_type == "video-classification"


def test_source_name_and_url_name_the_same_thing(card):
    for r in card.data.eval_results:
        assert r.source_url == PAPER_URL and r.source_name == SOURCE_NAME
    assert "arXiv:2211.01783" in SOURCE_NAME  # the name says what the url is


def test_usage_code_loads_the_repo(card):
    assert f'AutoModelForVideoClassification.from_pretrained("{REPO}")' in card.text
    assert f'hf_hub_download("{REPO}", "bias_report.json")' in card.text


def test_training_section(card):
    text = card.text.split("## Training", 1)[1].split("## Evaluation", 1)[0]
    assert TRAINING["command"] in text and "Seeds: `3`" in text and "MCG-NJU/videomae-base" in text


def test_evaluation_section(card):
    text = card.text.split("## Evaluation", 1)[1].split("## Limitations", 1)[0]
    assert "| test_conflicting | 43.0 % |" in text and "How it was measured" in text
    assert f"https://huggingface.co/datasets/{STADYN_SYNTH_DATASET}" in text


def test_limitations_say_what_dynamic_means(card):
    text = card.text.split("## Limitations", 1)[1]
    assert 'What "dynamic" means here' in text and "stylized" in text and "frame-shuffled" in text


def test_citation(card):
    assert "## Citation" in card.text and "@article{kowal2022quantifying" in card.text


def test_body_is_between_markers(card):
    assert card.text.lstrip().startswith(CARD_BEGIN) and card.text.rstrip().endswith(CARD_END)


def test_without_a_training_record_the_card_says_so(report):
    text = bias_model_card(report).text
    assert "Not recorded" in text and 'from_pretrained("path/to/this/folder")' in text
    assert bias_model_card(report).data.model_name == "my-videomae"  # the last part of the local path


def test_dataset_of_the_pairs(report):
    hub = BiasReport.from_results(
        make_results(0), model_id="m", pair_settings={"source": "dataset", "dataset": "org/v"}
    )
    assert card_dataset(hub) == ("org/v", "org/v", None)
    local = BiasReport.from_results(make_results(0), model_id="m", pair_settings={"source": "dataset",
                                                                                   "dataset": "./clips"})  # fmt: skip
    with pytest.raises(ValueError, match="local dataset './clips'.*--dataset"):
        bias_model_card(local)
    files = BiasReport.from_results(make_results(0), model_id="m", pair_settings={"source": "videos"})
    with pytest.raises(ValueError, match="local video files"):
        bias_model_card(files)
    assert bias_model_card(files, dataset="org/clips").data.datasets == ["org/clips"]
    with pytest.raises(ValueError, match="accuracy"):
        bias_model_card(report, accuracies={"test": 96.0})  # a percentage, not a fraction


def test_merge_keeps_the_users_text_and_values(report):
    ours = str(bias_model_card(report, repo_id=REPO))
    assert merge_card(None, ours) == ours and merge_card(ours, ours) == ours
    theirs = "---\nlicense: mit\ntags: [mine]\nmodel-index:\n- name: x\n  results:\n  - task: {type: other}\n" \
             "    dataset: {type: org/d, name: d}\n    metrics: [{type: f1, value: 0.5}]\n---\n# Mine\n\nMy words.\n"  # fmt: skip
    merged = merge_card(theirs, ours)
    assert merge_card(merged, ours) == merged  # a second publish changes nothing
    meta = yaml.safe_load(merged.split("---")[1])
    assert meta["license"] == "mit" and meta["tags"][0] == "mine" and "hf-stadyn" in meta["tags"]
    results = meta["model-index"][0]["results"]
    assert results[0]["metrics"][0]["type"] == "f1" and len(results) > 1  # theirs kept, ours after
    assert merged.index("My words.") < merged.index(CARD_BEGIN)
    newer = str(bias_model_card(report, repo_id=REPO, accuracies={"test": 0.5}))
    again = merge_card(merged, newer)
    assert again.count(CARD_BEGIN) == 1 and "| test | 50.0 % |" in again and "My words." in again
