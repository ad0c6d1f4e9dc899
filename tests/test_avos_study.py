"""Statistics and the held-out split of scripts/avos_study.py (the study itself runs in minutes; its --smoke in seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from hf_stadyn.training.avos import AVOSFrames

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "avos_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("avos_study_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_t_interval_uses_n_minus_1_degrees_of_freedom(study):
    """A normal quantile (1.96) would give a narrower interval: with 5 seeds t_{0.975, 4} = 2.776."""
    v = [0.50, 0.52, 0.55, 0.49, 0.51]
    m, lo, hi = study.t_interval(v)
    half = 2.7764451051977987 * np.std(v, ddof=1) / np.sqrt(5)
    assert m == pytest.approx(np.mean(v)) and hi - m == pytest.approx(half) and m - lo == pytest.approx(half)
    assert np.isnan(study.t_interval([0.3])[1])


def test_paired_test_is_over_seed_level_differences(study):
    """Pairing matters: a constant offset between variants that share a large seed effect is detected,
    which an unpaired comparison of the two means would miss (fails if the differences are not paired)."""
    seed_effect = np.array([0.0, 0.2, -0.15, 0.1, -0.05])
    a, b = 0.6 + seed_effect + np.array([0.021, 0.019, 0.020, 0.022, 0.018]), 0.6 + seed_effect
    t = study.paired_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert t["p"] == pytest.approx(ref.pvalue) and t["p"] < 1e-4
    assert t["low"] > 0 and t["mean"] == pytest.approx(0.02)
    assert stats.ttest_ind(a, b).pvalue > 0.5  # the unpaired test sees nothing
    assert study.paired_test([1.0, 1.0], [1.0, 1.0])["p"] == 1.0


def test_holm_step_down(study):
    p = [0.01, 0.04, 0.03, 0.2, float("nan")]
    adj = study.holm(p)
    # sorted 0.01, 0.03, 0.04, 0.2 with m = 4: 0.04, 0.09, 0.09 (monotone), 0.2
    np.testing.assert_allclose(adj[:4], [0.04, 0.09, 0.09, 0.2])
    assert np.isnan(adj[4])
    assert study.holm([0.5, 0.9]) == [1.0, 1.0]


def _frames(num_clips: int, per_clip: int = 3) -> AVOSFrames:
    n = num_clips * per_clip
    return AVOSFrames(
        torch.zeros(n, 4, 4, 3, dtype=torch.uint8),
        torch.zeros(n, 4, 4, 3, dtype=torch.uint8),
        torch.zeros(n, 4, 4, dtype=torch.bool),
        torch.arange(num_clips).repeat_interleave(per_clip),
    )


def test_split_clips_keeps_selection_and_masking_frames_apart(study):
    """Unit categories are chosen on clips the masking never evaluates (fails if the halves share a clip)."""
    frames = _frames(10)
    sel, msk = study.split_clips(frames, seed=3, mode="camouflage")
    s, m = set(sel.clip_id.tolist()), set(msk.clip_id.tolist())
    assert not s & m and s | m == set(range(10)) and len(s) == 5
    assert len(sel) + len(msk) == len(frames)
    again = study.split_clips(frames, seed=3, mode="camouflage")[0]
    assert set(again.clip_id.tolist()) == s  # seeded
    others = {frozenset(study.split_clips(frames, seed=k, mode="normal")[0].clip_id.tolist()) for k in range(6)}
    assert len(others) > 1  # the split changes with the seed


def test_seeds_argument(study):
    assert study.parse_seeds("5", None) == [0, 1, 2, 3, 4]
    assert study.parse_seeds("5", "3,7") == [3, 7]
    with pytest.raises(ValueError, match="distinct"):
        study.parse_seeds("1", "2,2")


def test_render_refuses_unpaired_seeds(study):
    runs = [{"variant": "a", "seed": 0}, {"variant": "b", "seed": 1}]
    with pytest.raises(ValueError, match="same seeds"):
        study._by_variant(runs)


def test_merge_results_joins_seeds_run_in_separate_processes(study):
    settings = {"seeds": [0], "train_clips": 8, "test_clips": 4, "epochs": 1, "probe_pairs": 24,
                "mask_layer": "fusion2", "mask_fraction": 0.25, "random_draws": 2, "command": "a"}  # fmt: skip
    label = next(iter(study.VARIANTS))
    a = {"settings": settings, "environment": {"threads": 1}, "runs": [{"variant": label, "seed": 0, "cpu_seconds": 1}]}
    b = {
        "settings": {**settings, "seeds": [2, 1], "command": "b"},
        "environment": {"threads": 1},
        "runs": [{"variant": label, "seed": s, "cpu_seconds": 2} for s in (2, 1)],
    }
    m = study.merge_results([a, b])
    assert m["settings"]["seeds"] == [0, 1, 2] and [r["seed"] for r in m["runs"]] == [0, 1, 2]
    assert m["settings"]["commands"] == ["a", "b"] and m["cpu_seconds"] == 5
    with pytest.raises(ValueError, match="epochs"):
        study.merge_results([a, {**b, "settings": {**b["settings"], "epochs": 3}}])


def test_supported_statements_name_only_holm_significant_pairs(study):
    """A clear, consistent gap is stated; a gap within seed noise is not (fails if raw p values were used
    without the correction or if the sentence named pairs whose interval covers 0)."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.05, 5)
    runs = {
        "A": [{"seed": s, "v": base[s] + 0.10 + 0.002 * k} for s, k in zip(range(5), (1, -1, 0, 2, -2))],
        "B": [{"seed": s, "v": base[s]} for s in range(5)],
        "C": [{"seed": s, "v": base[s] + rng.normal(0, 0.05)} for s in range(5)],
    }
    (text,) = study.supported_statements(runs, [("metric", lambda r: r["v"])])
    assert "A > B by 0.100" in text and "highest mean A" in text
    assert "C > B" not in text and "B > C" not in text
    (none,) = study.supported_statements({"B": runs["B"], "C": runs["C"]}, [("m", lambda r: r["v"])])
    assert "not supported" in none


def test_splice_doc_replaces_only_the_marked_tables(study, tmp_path):
    page = tmp_path / "avos.md"
    page.write_text(f"# top\n\n{study.DOC_BEGIN}\n\nold tables\n\n{study.DOC_END}\n\n## after\n")
    study.splice_doc(page, "new tables\n")
    study.splice_doc(page, "newer tables\n")  # idempotent: the markers stay
    text = page.read_text()
    assert "old tables" not in text and "new tables" not in text and "newer tables" in text
    assert text.startswith("# top") and text.endswith("## after\n") and text.count(study.DOC_BEGIN) == 1
    (tmp_path / "bare.md").write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        study.splice_doc(tmp_path / "bare.md", "x")
