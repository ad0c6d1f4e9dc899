"""Every benchmark (tests/bench) and study script (scripts/) runs end to end at its ``--smoke`` size.

Each one runs in a subprocess (``OMP_NUM_THREADS=1``, cwd a temporary folder) exactly as a user would
start it, and the test reads what it is meant to produce: the JSON / markdown / model files it writes,
with the expected keys and rows, ratios that are positive finite numbers, and the line saying the numbers
are meaningless. A script that rots (an import or API rename, a changed result key, a crash half way,
a ratio that turns NaN, a smoke run that writes into docs/) fails here.

The runs are started two at a time (the suite's machines have 2 cores) by one module fixture, only for
the tests selected; together they take about 130 s of CPU (so about a minute of wall time on an idle
2-core machine; 3.5 min on a shared one at load 5-6), most of it the imports of torch / transformers
(~8 s per process). The full runs stay manual (see each script's docstring). tests/bench/space_concurrency.py is tested in tests/test_space_concurrency.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: generous: a smoke run takes seconds to ~40 s of CPU; a loaded CI machine may be several times slower
TIMEOUT_S = 900


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    out: Path  # the run's output folder (passed as --out / --json target folder)


# name -> command-line arguments after the script; "{out}" is the run's output folder
COMMANDS: dict[str, list[str]] = {
    "bench_metric": ["tests/bench/bench_metric.py", "--smoke", "--json", "{out}/result.json"],
    "bench_pairs": ["tests/bench/bench_pairs.py", "--smoke", "--json", "{out}/result.json"],
    "bench_probing": ["tests/bench/bench_probing.py", "--smoke", "--json", "{out}/result.json"],
    "bench_report": ["tests/bench/bench_report.py", "--smoke", "--json", "{out}/result.json"],
    "bench_staticdropout": ["tests/bench/bench_staticdropout.py", "--smoke", "--json", "{out}/result.json"],
    "bench_debias": ["tests/bench/bench_debias.py", "--smoke", "--json", "{out}/result.json"],
    "bench_synth": ["tests/bench/bench_synth.py", "--smoke", "--json", "{out}/result.json"],
    "bench_architectures": ["tests/bench/bench_architectures.py", "--smoke", "--json", "{out}/result.json"],
    "bench_stopping": ["tests/bench/bench_stopping.py", "--smoke", "--json", "{out}/result.json"],
    "bench_fullsize": ["tests/bench/bench_fullsize.py", "--smoke", "--json", "{out}/result.json"],
    "bench_processes": ["tests/bench/bench_processes.py", "--smoke", "--json", "{out}/result.json"],
    "bench_synth_learn": ["tests/bench/bench_synth_learn.py", "trap", "--smoke", "--json", "{out}/result.json"],
    "train_default_model": ["scripts/train_default_model.py", "--smoke", "--output_dir", "{out}/model"],
    "avos_real_video": ["scripts/avos_real_video.py", "--smoke", "--out", "{out}"],
    "avos_study": ["scripts/avos_study.py", "--smoke", "--out", "{out}"],
    # no --out: the smoke run must pick a temporary folder itself and leave docs/ground_truth.json alone
    "ground_truth_validation": ["scripts/ground_truth_validation.py", "--smoke"],
    "staticdropout_study": ["scripts/staticdropout_study.py", "--smoke", "--out", "{out}"],
    "debias_study": ["scripts/debias_study.py", "--smoke", "--c-explore", "--out", "{out}"],
    "vis_ground_truth": ["scripts/vis_ground_truth.py", "--smoke", "--out", "{out}"],
}
# the slowest first, so that two workers finish together
ORDER = ["debias_study", "staticdropout_study", "ground_truth_validation", "bench_probing", "avos_study",
         "train_default_model", "avos_real_video", "bench_metric", "bench_staticdropout", "bench_synth_learn", "bench_report",
         "bench_synth", "bench_pairs", "vis_ground_truth", "bench_debias", "bench_architectures",
         "bench_stopping", "bench_fullsize", "bench_processes"]  # fmt: skip
assert sorted(ORDER) == sorted(COMMANDS)
RECORDED = [ROOT / "docs" / "ground_truth.json", ROOT / "docs" / "ground_truth.md"]


def _digest(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "absent" for p in paths}


def _run(name: str, tmp: Path) -> Run:
    out = tmp / name
    out.mkdir(parents=True)
    cwd, scratch = tmp / f"{name}-cwd", tmp / f"{name}-tmp"
    cwd.mkdir()
    scratch.mkdir()
    argv = [str(ROOT / a) if i == 0 else a.replace("{out}", str(out)) for i, a in enumerate(COMMANDS[name])]
    # TMPDIR: a smoke run's own temporary folders land under pytest's, which removes them
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(scratch),
    }
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)  # fmt: skip
    return Run(proc.returncode, proc.stdout, proc.stderr, out)


@pytest.fixture(scope="module")
def smoke_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Start the selected smoke runs, two at a time; ``{name: Future[Run]}``."""
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is sys.modules[__name__] and hasattr(item, "callspec") and "name" in item.callspec.params
    }
    tmp = tmp_path_factory.mktemp("smoke")
    before = _digest(RECORDED)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures: dict[str, Future[Run]] = {n: pool.submit(_run, n, tmp) for n in ORDER if n in selected}
        yield futures
    assert _digest(RECORDED) == before, "a smoke run changed the recorded results in docs/"


def _positive_finite(ratios: dict[str, Any], where: str) -> None:
    assert ratios, f"{where}: no ratios"
    for k, v in ratios.items():
        assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, f"{where}: ratio {k} = {v!r}"


def _json(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------ checks
def check_bench_metric(r: Run) -> None:
    d = _json(r.out / "result.json")
    assert d["smoke"] is True
    assert set(d["throughput_pairs_per_s"]) == {"16", "64"}
    _positive_finite(d["throughput_pairs_per_s"], "throughput")
    # each child streamed exactly its N pairs through the estimator
    assert [(row["n"], row["pairs"]) for row in d["streaming"]] == [(100, 100), (1000, 1000)]
    _positive_finite(d["ratios"], "bench_metric")


def check_bench_pairs(r: Run) -> None:
    d = _json(r.out / "result.json")
    names = [row["what"] for row in d["rows"]]
    for needed in ("baseline: copy one 8x64x64x3 clip", "static + dynamic pair, no decode",
                   "PairDataset item (decode+sample+stylize+shuffle)", "flow dis + colour + jitter, per frame",
                   "TwoStreamPairDataset item (amortised decode+flow)", "72p clip at frame 130, seeking",
                   "72p clip at frame 130, from the start"):  # fmt: skip
        assert needed in names, f"row {needed!r} missing from {names}"
    assert len([n for n in names if n.startswith("style ")]) >= 5
    _positive_finite({row["what"]: row["x_base"] for row in d["rows"]}, "bench_pairs rows")
    _positive_finite(d["ratios"], "bench_pairs")
    # seeking decodes fewer frames than reading from the start (the point of the long-file rows)
    notes = {row["what"]: row["note"] for row in d["rows"]}
    decoded = {k: int(re.match(r"(\d+) frames decoded", notes[f"72p clip at frame 130, {k}"]).group(1))
               for k in ("seeking", "from the start")}  # fmt: skip
    assert decoded["seeking"] < decoded["from the start"], decoded
    (real,) = d["real_footage"].values()  # the smoke run checks the synthetic source
    assert {"flow_px", "shuffle", "color_mix", "texture"} <= set(real)
    _positive_finite({"flow_px": real["flow_px"], "shuffle": real["shuffle"]}, "real-footage check")


def check_bench_probing(r: Run) -> None:
    d = _json(r.out / "result.json")
    for kind in ("videomae", "timesformer"):
        assert d[kind]["plain_seconds"] > 0
        _positive_finite(d[kind]["ratios"], f"bench_probing {kind}")
    (mode,) = d["videomae"]["memory"]  # smoke: one fresh child process, the hooks route
    mem = d["videomae"]["memory"][mode]
    assert mode == "hooks" and mem["held_mb"] > 0 and math.isfinite(mem["extra_peak_mb"]), mem


def check_bench_fullsize(r: Run) -> None:
    d = _json(r.out / "result.json")
    assert d["smoke"] is True and d["source"].startswith("synthetic")
    for kind in ("videomae", "timesformer"):
        res = d[kind]
        _positive_finite({p: t["probe_over_bare_throughput"] for p, t in res["timings"].items()}, f"{kind} probe/bare")
        assert set(res["timings"]) == {"no", "bf16"} and res["bf16_over_fp32_throughput"] > 0
        assert set(res["data_path"]["workers"]) == {"0", "1"}
        _positive_finite({w: row["pairs_per_s"] for w, row in res["data_path"]["workers"].items()}, f"{kind} workers")
        assert res["data_path"]["device_render_pairs_per_s"] > 0 and res["peak_rss_mb"] > 0
        assert sum(res["time_split"]["percent"].values()) == pytest.approx(100)
        assert res["train_step_s"] > 0 and "all" in res["bf16_readings_agree"]


def check_bench_processes(r: Run) -> None:
    d = _json(r.out / "result.json")
    assert d["smoke"] is True and set(d["rows"]) == {"1x1", "2x1"}
    assert d["reports_identical"] is True  # 2 gloo processes give the 1-process report.json, byte for byte
    _positive_finite({k: row["ratio_wall_vs_1x1"] for k, row in d["rows"].items()}, "bench_processes")


def check_bench_report(r: Run) -> None:
    d = _json(r.out / "result.json")
    assert d["bytes"]["to_json"] > 0 and d["bytes"]["json_dumps"] > 0
    _positive_finite(d["seconds"], "bench_report seconds")
    _positive_finite(d["ratios"], "bench_report")


def check_bench_staticdropout(r: Run) -> None:
    d = _json(r.out / "result.json")
    _positive_finite(d["step_seconds"], "step times")
    assert d["refresh_seconds"] > 0
    _positive_finite(d["ratios"], "bench_staticdropout")


def check_bench_debias(r: Run) -> None:
    d = _json(r.out / "result.json")
    _positive_finite(d["step_seconds"], "step times")
    _positive_finite(d["ratios"], "bench_debias")
    extra = d["extra_forwards_per_step"]
    assert extra["plain"] == 0 and extra["stillmix"] == 0, extra
    assert extra["decorrelation_and_shuffle_uniform"] == 1, extra  # the two share one shuffled forward


def check_bench_architectures(r: Run) -> None:
    d = _json(r.out / "result.json")
    names = [row["architecture"] for row in d["rows"]]
    assert {"ViViT", "V-JEPA 2", "VideoPrism", "X-CLIP video tower", "VideoMAE (embedded default, trained)"} <= set(
        names
    )
    for row in d["rows"]:
        assert row["layers"][-1] == row["last_layer"] and 0 < row["share_dynamic"] < 100, row
    _positive_finite(d["ratios"], "bench_architectures")


def check_bench_synth(r: Run) -> None:
    d = _json(r.out / "result.json")
    assert (d["clips"], d["files"]) == (8, 4)
    assert set(d["ratios"]) == {"render motion (in memory)", "render trap (in memory)",
                                "render camouflage, 3 objects", "generate (files)"}  # fmt: skip
    _positive_finite(d["ratios"], "bench_synth")


def check_bench_synth_learn(r: Run) -> None:
    d = _json(r.out / "result.json")
    assert set(d["accuracy_percent"]) == {"aligned", "conflicting"}
    for name, acc in d["accuracy_percent"].items():
        assert 0 <= acc <= 100
        assert d["ratios"][f"{name}_accuracy_over_chance"] == pytest.approx(acc / d["chance_percent"])
        # the confusion matrix counts every one of the 32 test clips once
        assert sum(map(sum, d["confusion"][name])) == 32
    assert math.isfinite(d["last_loss"])


def check_train_default_model(r: Run) -> None:
    model = r.out / "model"
    info = _json(model / "training.json")
    assert info["smoke"] is True and info["train_clips"] == 32 and info["epochs"] == 1
    assert 0 <= info["final"]["eval/test/accuracy"] <= 1
    config = _json(model / "config.json")
    assert len(config["id2label"]) == 4  # the four directions
    assert (model / "model.safetensors").stat().st_size > 0


def check_avos_real_video(r: Run) -> None:
    d = _json(r.out / "results.json")
    assert d["smoke"] is True and d["video"] == "synthetic_street.mp4"
    assert 0 < d["mog2_foreground_share"] < 1  # MOG2 found the moving blobs, not the whole frame
    for key in ("eval_before", "eval_after", "flow_baseline"):
        assert 0 <= d[key]["J"] <= 1 and 0 <= d[key]["F"] <= 1
    assert {"fusion1", "fusion5", "app_stage1", "mot_stage1"} <= set(d["probe"])
    assert len(d["train"]["epoch_losses"]) == 1


def check_avos_study(r: Run) -> None:
    d = _json(r.out / "avos_study.json")
    assert d["settings"]["smoke"] is True and d["settings"]["seeds"] == [0, 1]
    assert len(d["runs"]) == 8  # 4 variants x 2 seeds
    for run in d["runs"]:
        for mode in ("normal", "camouflage"):
            assert 0 <= run["eval"][mode]["J"] <= 1
        assert set(run["unit_masking"]) == {f"{m}/{c}" for m in ("normal", "camouflage") for c in ("dynamic", "static")}
    md = (r.out / "avos_study.md").read_text()
    assert md.count("\n|") > 10, md[:500]


def check_ground_truth_validation(r: Run) -> None:
    m = re.search(r"^results in (.+)$", r.stdout, flags=re.M)
    assert m, r.stdout[-2000:]
    out = Path(m.group(1))
    assert ROOT not in out.resolve().parents, f"smoke run wrote into the repository: {out}"
    d = _json(out / "ground_truth.json")["by_arch"]
    assert set(d) == {"videomae", "timesformer"}
    for arch, res in d.items():
        assert [(row["split"], row["cue"]) for row in res["runs"]] == [
            ("motion", "sensitive"), ("appearance", "sensitive"), ("appearance", "invariant")
        ], arch  # fmt: skip
        assert res["args"]["smoke"] is True and res["args"]["num_train"] == 32
        for row in res["runs"]:
            assert {"appearance_free", "appearance_free_both"} <= set(row["extra"])
            assert 0 <= row["accuracy"] <= 1
    md = (out / "ground_truth.md").read_text()
    for heading in ("## 1. The paper's pairs", "## 2. Appearance-free dynamic pairs", "## 3. Why an untrained"):
        assert heading in md


def check_staticdropout_study(r: Run) -> None:
    d = _json(r.out / "results.json")
    assert d["smoke"] is True and d["seeds"] == 1
    methods = sorted(row["method"] for row in d["runs"] if row["shortcut"])
    assert methods == sorted(["plain", "dropout", "static_dropout", "random_channels", "stylize"])
    assert sum(not row["shortcut"] for row in d["runs"]) == 1  # the reference fine-tune without shortcut
    for row in d["runs"]:
        assert 0 <= row["aligned_accuracy"] <= 1 and 0 <= row["conflicting_accuracy"] <= 1
    assert d["tuning"]["chosen"]["setting"]
    table = (r.out / "table.md").read_text()
    assert "| StaticDropout |" in table and "| reference: plain fine-tuning without shortcut |" in table
    assert (r.out / "runs" / "static_dropout_s0" / "run.json").is_file()


def check_bench_stopping(r: Run) -> None:
    d = _json(r.out / "result.json")
    assert d["smoke"] is True and d["max_pairs"] == 160
    assert [row["target_ci"] for row in d["rows"]] == [8.0, 4.0]
    for row in d["rows"]:
        assert 4 <= row["pairs"] <= 160 and row["reason"] and row["agrees_with_fixed"] in (True, False)
    _positive_finite(d["ratios"], "bench_stopping")
    sim = d["simulation"]["4.0"]
    assert 0 <= sim["rule"]["coverage_sequential"] <= 1 and 0 <= sim["naive"]["coverage_ordinary"] <= 1


def check_vis_ground_truth(r: Run) -> None:
    d = _json(r.out / "results.json")
    assert d["settings"]["smoke"] is True and len(d["history"]) == 1
    for model in ("init", "trained"):
        for clips in ("moving", "frozen"):
            e = d["eval"][model][clips]
            assert e["num_camouflaged"] + e["num_visible"] == e["num_instances"] > 0
            assert all(0 <= e[k] <= 1 for k in ("AP", "AP50", "J", "recall50")), e
    assert set(d["probe"]["trained"]) == set(d["probe"]["init"]) >= {"embeddings", "block_0", "block_3", "queries"}
    assert "| trained | frozen |" in (r.out / "vis_ground_truth.md").read_text()
    assert (r.out / "model" / "model.safetensors").is_file() and (r.out / "init" / "config.json").is_file()


def check_debias_study(r: Run) -> None:
    d = _json(r.out / "results.json")
    assert d["smoke"] is True and d["seeds"] == 1
    runs = d["runs"]
    methods_a = sorted(row["method"] for row in runs if row["setting"] == "a" and row["shortcut"])
    assert methods_a == sorted(["plain", "static_dropout", "stylize", "stillmix", "shuffle_uniform", "decor_cosine",
                                "decor_cross_cov"])  # fmt: skip
    assert any(not row["shortcut"] for row in runs)  # the reference fine-tune without shortcut
    for key in ("a", "c", "ts"):
        assert d["settings"][key]["complete"], key
    assert "static_dropout" in {row["method"] for row in runs if row["setting"] == "ts"}
    for row in runs:
        accs = [v for k, v in row.items() if k.endswith("_accuracy")] + list(row["loophole"].values())
        assert accs and all(0 <= v <= 1 for v in accs), row["name"]
        assert math.isfinite(row["seconds_per_step"]) and row["seconds_per_step"] > 0
        if row["setting"] == "c":
            assert row["history"] and "eval/motion_test/accuracy" in row["history"][-1]
    assert d["tuning"]["chosen"]["decor_cosine"]["params"]["weight"] > 0
    table = (r.out / "table.md").read_text()
    for s in ("| decorrelation (cosine) |", "| StillMix |", "Goal of issue 14 point 3", "Paired differences",
              "Loophole measures", "### (c) appearance-pre-trained"):  # fmt: skip
        assert s in table, s
    assert (r.out / "a" / "runs" / "decor_cross_cov_s0" / "run.json").is_file()
    # --c-explore: (c)'s smaller-weight check, each row next to plain's calibration run on the same seed
    explore = (r.out / "c_explore.md").read_text()
    rows = [line for line in explore.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split(" | ")[0] for line in rows] == ["| plain fine-tuning", "| decorrelation (cross_cov), weight 0.5"]
    assert (r.out / "c" / "runs" / "explore_decor_cross_cov_w0.5_s100" / "run.json").is_file()
    assert explore in r.stdout


CHECKS: dict[str, Callable[[Run], None]] = {name: globals()[f"check_{name}"] for name in COMMANDS}


@pytest.mark.parametrize("name", ORDER)
def test_smoke_run(name: str, smoke_runs: dict[str, Future[Run]]) -> None:
    """``<script> --smoke`` exits 0, says its numbers are meaningless and writes what it is meant to."""
    r = smoke_runs[name].result()
    assert r.returncode == 0, f"{name} exited {r.returncode}:\n{r.stderr[-4000:]}"
    assert "SMOKE RUN" in r.stdout and "meaningless" in r.stdout, r.stdout[:1000]
    CHECKS[name](r)


@pytest.mark.parametrize("extra", [["--settings", "a,b"], ["--summary-only"], ["--only", "plain_s0"]],
                         ids=["without-c", "summary-only", "only"])  # fmt: skip
def test_debias_study_refuses_c_explore_where_it_cannot_run(extra: list[str], tmp_path: Path) -> None:
    """--c-explore needs (c)'s evaluation in the same invocation: refused before any work (exit 2, nothing
    written), not silently skipped."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "debias_study.py"), "--c-explore", *extra, "--out",
                           str(out)], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--c-explore" in proc.stderr.splitlines()[-1] and "Traceback" not in proc.stderr
    assert not out.exists()
