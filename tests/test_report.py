"""BiasReport: exact JSON round trip, determinism, markdown numbers, reference deltas, figures, bad inputs.

Also the bias-history figure (``hf_stadyn.report.plot_bias_history``) that BiasTracker draws.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from hf_stadyn.debias import BiasRecord
from hf_stadyn.metric import StaticDynamicEstimator
from hf_stadyn.report import (
    FIGURE_CATEGORIES,
    FIGURE_LAYERS,
    FIGURE_SIZE,
    REPORT_JSON,
    REPORT_MD,
    SCHEMA_VERSION,
    BiasReport,
    library_versions,
    plot_bias_history,
    rho_figure_name,
)

LAYERS = ("embed", "block.0", "block.1")


def make_results(
    seed: int,
    *,
    c: int = 24,
    n: int = 160,
    dyn_share: float = 0.8,
    stat_share: float = 0.2,
    layers=LAYERS,
    dead: bool = True,
    n_by_layer=None,
):
    """Real estimator results on synthetic pairs with a known lean.

    A dynamic pair keeps a fraction ``dyn_share`` of its feature variance shared between the
    members, a static pair ``stat_share``; channel 0 is constant (dead) when ``dead``.
    """
    rng = np.random.default_rng(seed)
    est = StaticDynamicEstimator()
    for i, layer in enumerate(layers):
        m = n if n_by_layer is None else n_by_layer[i]
        factors = rng.permutation(np.arange(m) % 2)  # 0 = dynamic, 1 = static
        shared = np.where(factors[:, None] == 0, dyn_share, stat_share) ** 0.5
        base = rng.normal(size=(m, c))
        za = shared * base + (1 - shared**2) ** 0.5 * rng.normal(size=(m, c))
        zb = shared * base + (1 - shared**2) ** 0.5 * rng.normal(size=(m, c))
        if dead:
            za[:, 0] = zb[:, 0] = 1.5
        est.update(za.astype(np.float32), zb.astype(np.float32), factors, layer=layer)
    return est.compute()


@pytest.fixture(scope="module")
def results():
    return make_results(0)


@pytest.fixture(scope="module")
def reference():
    return make_results(1, dyn_share=0.05, stat_share=0.95)


def build(results, reference=None, **kw):
    kw.setdefault("model_id", "org/tiny-videomae")
    kw.setdefault("pair_settings", {"num_pairs": 160, "styles": ["mix", "hue"], "frames": 8})
    kw.setdefault("seed", {"pairs": 0, "styles": 1})
    return BiasReport.from_results(results, reference=reference, **kw)


# -- JSON ------------------------------------------------------------------------------------------


def test_json_round_trip_is_exact(results, reference):
    report = build(results, reference, revision="abc123", extra={"command": "stadyn probe", "note": [1, 2.5]})
    text = report.to_json()
    back = BiasReport.from_json(text)
    assert back == report
    assert back.to_json() == text
    for name, lb in report.layers.items():
        other = back.layers[name]
        assert np.array_equal(other.rho_dynamic, lb.rho_dynamic) and other.rho_dynamic.dtype == np.float64
        assert np.array_equal(other.rho_static, lb.rho_static)
        assert list(other.categories) == list(lb.categories)
        assert other.intervals == lb.intervals
        assert (other.s_dynamic, other.s_static) == (lb.s_dynamic, lb.s_static)
    assert back.reference is not None and list(back.reference) == list(LAYERS)
    assert back.reference["block.1"].s_static == reference["block.1"].s_static
    assert back.revision == "abc123" and back.extra["note"] == [1, 2.5]
    # a changed value breaks equality (the comparison is not vacuous)
    back.layers["block.1"].s_dynamic += 1e-12
    assert back != report


def test_json_is_byte_identical_for_same_inputs(tmp_path):
    a = build(make_results(3), make_results(4), pair_settings={"b": 1, "a": (1, 2)}, seed=7)
    b = build(make_results(3), make_results(4), pair_settings={"a": [1, 2], "b": 1}, seed=7)
    assert a.to_json() == b.to_json()
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    for name in (REPORT_JSON, REPORT_MD, FIGURE_LAYERS, FIGURE_CATEGORIES, rho_figure_name("block.1")):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    c = build(make_results(5), make_results(4), pair_settings={"a": [1, 2], "b": 1}, seed=7)
    assert c.to_json() != a.to_json()


def test_json_document_fields(results):
    report = build(results, revision="v1.0")
    doc = json.loads(report.to_json())
    assert doc["schema"] == "hf-stadyn/bias-report" and doc["schema_version"] == SCHEMA_VERSION
    assert doc["model"] == {"id": "org/tiny-videomae", "revision": "v1.0"}
    assert doc["created"] is None  # no timestamp unless given
    assert doc["seed"] == {"pairs": 0, "styles": 1}
    assert doc["pair_settings"]["styles"] == ["mix", "hue"]
    assert set(doc["versions"]) == {"hf_stadyn", "torch", "transformers", "numpy", "av", "cv2"}
    assert doc["versions"] == library_versions()
    assert doc["versions"]["numpy"] == np.__version__
    assert [x["layer"] for x in doc["layers"]] == list(LAYERS)
    layer = doc["layers"][2]
    lb = results["block.1"]
    assert layer["s_dynamic"] == lb.s_dynamic and layer["percent"] == lb.percent
    assert layer["intervals"]["s_static"]["low"] == lb.intervals["s_static"].low
    assert len(layer["rho_dynamic"]) == 24 and layer["category_counts"] == lb.category_counts
    assert doc["reference"] is None
    assert build(results, created="2024-05-01T12:00:00Z").to_dict()["created"] == "2024-05-01T12:00:00Z"


def test_layers_with_different_pair_counts_are_fine():
    res = make_results(2, n_by_layer=(40, 100, 160))
    report = build(res)
    assert [lb.num_pairs["dynamic"] + lb.num_pairs["static"] for lb in report.layers.values()] == [40, 100, 160]
    assert BiasReport.from_json(report.to_json()) == report


def test_load_and_schema_checks(tmp_path, results):
    report = build(results)
    paths = report.save(tmp_path, figures=False)
    assert BiasReport.load(paths["json"]) == report
    assert BiasReport.load(tmp_path) == report  # a folder works too
    doc = json.loads(report.to_json())
    doc["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="upgrade hf-stadyn"):
        BiasReport.from_dict(doc)
    with pytest.raises(ValueError, match="not a hf-stadyn bias report"):
        BiasReport.from_json('{"schema": "something-else"}')
    with pytest.raises(ValueError, match="not valid JSON"):
        BiasReport.from_json("{ nope")
    del doc["layers"]
    doc["schema_version"] = SCHEMA_VERSION
    with pytest.raises(ValueError, match="missing or has a malformed field"):
        BiasReport.from_dict(doc)
    with pytest.raises(FileNotFoundError):
        BiasReport.load(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError):
        BiasReport.load(tmp_path / "empty_dir_that_does_not_exist")


def _load_case(case: str, tmp_path, report: BiasReport):
    """(path to load, exception type, what its one line must say) for one bad report path."""
    doc = json.loads(report.to_json())
    if case == "missing":
        return tmp_path / "missing.json", FileNotFoundError, "missing.json' does not exist"
    if case == "empty_folder":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty", FileNotFoundError, "folder '" + str(tmp_path / "empty") + "' holds no report.json"
    if case == "binary":
        (tmp_path / "r.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
        return tmp_path / "r.json", ValueError, "r.json is not a bias report (not UTF-8 JSON text)"
    if case == "nul_bytes":
        (tmp_path / "r.json").write_bytes(b"\x00\x01\x02 abc")
        return tmp_path / "r.json", ValueError, "r.json is not a bias report (binary data"
    if case == "not_json":
        (tmp_path / "r.json").write_text("{ nope")
        return tmp_path / "r.json", ValueError, "r.json: bias report is not valid JSON"
    if case == "deep_json":
        (tmp_path / "r.json").write_text("[" * 200_000)
        return tmp_path / "r.json", ValueError, "r.json is not a bias report (JSON nested too deeply)"
    if case == "json_list":
        (tmp_path / "r.json").write_text("[1, 2]")
        return tmp_path / "r.json", ValueError, "r.json: not a hf-stadyn bias report"
    if case == "malformed_layer":
        doc["layers"][0]["num_pairs"] = "many"
        (tmp_path / "r.json").write_text(json.dumps(doc))
        return tmp_path / "r.json", ValueError, "r.json: bias report is missing or has a malformed field"
    if case == "no_layers":
        doc["layers"] = []
        (tmp_path / "report.json").write_text(json.dumps(doc))
        return tmp_path, ValueError, "report.json holds no layers; re-run `stadyn probe`"
    if case == "nan_score":
        doc["layers"][2]["s_static"] = float("nan")
        (tmp_path / "report.json").write_text(json.dumps(doc))
        return tmp_path / "report.json", ValueError, "report.json: layer 'block.1' has NaN s_S; re-run the probe"
    if case == "nan_interval_estimate":
        doc["layers"][0]["intervals"]["s_dynamic"]["estimate"] = float("nan")
        (tmp_path / "report.json").write_text(json.dumps(doc))
        return tmp_path / "report.json", ValueError, "layer 'embed' has NaN intervals['s_dynamic'].estimate"
    if case == "inf_reference":
        doc = json.loads(build(make_results(0), make_results(1)).to_json())
        doc["reference"]["layers"][1]["rho_dynamic"][5] = float("-inf")
        (tmp_path / "report.json").write_text(json.dumps(doc))
        return tmp_path / "report.json", ValueError, "reference layer 'block.0' has infinite rho_dynamic[5]"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["missing", "empty_folder", "binary", "nul_bytes", "not_json", "deep_json", "json_list", "malformed_layer",
     "no_layers", "nan_score", "nan_interval_estimate", "inf_reference"],
)  # fmt: skip
def test_load_refuses_bad_files_with_one_line_naming_the_file(tmp_path, results, case):
    """Each bad path gives one exception of the documented type whose single line names the file.

    Bugs caught: an empty folder called "does not exist", a UnicodeDecodeError / RecursionError escaping,
    a NaN report loading (and later failing half-way through writing a card), a report with no layers
    loading (and raising StopIteration at ``last_layer``).
    """
    path, exc, message = _load_case(case, tmp_path, build(results))
    with pytest.raises(exc) as info:
        BiasReport.load(path)
    text = str(info.value)
    assert message in text and len(text.splitlines()) == 1, text
    assert "Errno" not in text


def test_validate_is_optional_on_load_and_callable_alone(tmp_path, results):
    """``load(validate=False)`` reads a NaN report (to inspect it); ``validate()`` then refuses it, and
    returns the report itself when it is fine."""
    report = build(results)
    doc = json.loads(report.to_json())
    doc["layers"][0]["s_dynamic"] = float("nan")
    (tmp_path / "r.json").write_text(json.dumps(doc))
    loaded = BiasReport.load(tmp_path / "r.json", validate=False)
    assert math.isnan(loaded.layers["embed"].s_dynamic)
    with pytest.raises(ValueError, match=r"^bias report: layer 'embed' has NaN s_D"):
        loaded.validate()
    assert report.validate() is report


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads a 0o000 file")
def test_load_unreadable_file_is_one_line(tmp_path, results):
    paths = build(results).save(tmp_path, figures=False)
    paths["json"].chmod(0)
    try:
        with pytest.raises(PermissionError, match="cannot read the bias report .*permission denied") as info:
            BiasReport.load(paths["json"])
        assert "Errno" not in str(info.value)
    finally:
        paths["json"].chmod(0o644)


# -- markdown --------------------------------------------------------------------------------------


def _table(md: str, header_start: str) -> dict[str, list[str]]:
    """Rows of the markdown table whose header starts with ``header_start``: {first cell: cells}."""
    lines = md.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(header_start))
    rows = {}
    for line in lines[i + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _share_cell(cell: str) -> tuple[float, float, float]:
    """``"23.6 [22.9, 24.3]"`` -> (23.6, 22.9, 24.3)."""
    value, rest = cell.split(" [")
    low, high = rest.rstrip("]").split(", ")
    return float(value), float(low), float(high)


def test_markdown_holds_the_numbers(results):
    report = build(results)
    md = report.to_markdown()
    main = _table(md, "| layer | C |")
    cats = _table(md, "| layer | tau |")
    assert list(main) == list(LAYERS)
    assert "| dynamic % [95% CI] | static % [95% CI] | residual % | dims % (paper) D / S / R |" in md
    for name, lb in results.items():
        c, pairs, dyn, stat, res, dims, sd, ss = main[name]
        assert int(c) == lb.num_channels
        assert pairs == f"{lb.num_pairs['dynamic']} / {lb.num_pairs['static']}"
        # the headline is the continuous share 100 * pi_F, and it lies inside its own interval
        for cell, k in ((dyn, "dynamic"), (stat, "static"), (res, "residual")):
            value, low, high = _share_cell(cell)
            assert value == round(100 * lb.share[k], 1)
            iv = lb.intervals[f"percent_{k}"]
            assert (low, high) == (round(iv.low, 1), round(iv.high, 1))
            assert low <= value <= high
        # the floored dims % stays beside it, labelled
        assert dims == f"{lb.percent['dynamic']:.1f} / {lb.percent['static']:.1f} / {lb.percent['residual']:.1f}"
        iv = lb.intervals["s_dynamic"]
        assert sd == f"{lb.s_dynamic:.3f} [{iv.low:.3f}, {iv.high:.3f}]"
        assert ss.startswith(f"{lb.s_static:.3f} [")
        row = cats[name]
        assert float(row[0]) == lb.threshold
        for k, cell in zip(("dynamic", "static", "joint", "none"), row[1:5]):
            assert cell == f"{lb.category_counts[k]} ({lb.category_percent[k]:.1f} %)"
        assert int(row[5]) == lb.dead_channels == 1  # channel 0 is constant
    # the failing case of the old headline: here the floored dims % falls outside the share interval
    outside = [
        (n, k)
        for n, lb in results.items()
        for k in ("dynamic", "static")
        if not lb.intervals[f"percent_{k}"].low <= lb.percent[k] <= lb.intervals[f"percent_{k}"].high
    ]
    assert outside, "the fixture should hold a layer whose dims % lies outside its share interval"
    # the lean of the synthetic data shows: dynamic pairs share more than static pairs
    last = results["block.1"]
    assert last.s_dynamic > last.s_static and last.share["dynamic"] > last.share["static"]
    assert "Compared with the reference" not in md
    assert "![Share per layer](x.png)" in report.to_markdown(figures={"Share per layer": "x.png"})
    assert not report.to_markdown(title=False).startswith("#")


def test_summary_lines_lead_with_the_share(results, reference):
    """The CLI table (BiasReport.summary_lines): share % with intervals first, dims % (paper) beside."""
    report = build(results, reference)
    lines = report.summary_lines()
    assert "dynamic % [95% CI]" in lines[0] and "dims % (paper) D/S" in lines[0] and "d dynamic % [CI]" in lines[0]
    deltas = report.reference_deltas()
    for name, line in zip(LAYERS, lines[1:]):
        lb = results[name]
        assert line.split()[0] == name
        iv = lb.intervals["percent_dynamic"]
        shown = f"{100 * lb.share['dynamic']:.1f} [{iv.low:.1f}, {iv.high:.1f}]"
        assert shown in line and f"{lb.percent['dynamic']:.1f} / {lb.percent['static']:.1f}" in line
        assert line.index(shown) < line.index(f"{lb.percent['dynamic']:.1f} / {lb.percent['static']:.1f}")
        d = deltas[name]
        assert f"{d['share_dynamic']:+.1f} [{d['share_dynamic_low']:+.1f}, {d['share_dynamic_high']:+.1f}]" in line
    assert lines[-1].startswith("deltas: model minus reference, independent errors (no pair-set fingerprint")
    assert len(build(results).summary_lines()) == 1 + len(LAYERS)


def test_reference_deltas_in_markdown(results, reference):
    """Without a recorded pair-set fingerprint the deltas use independent errors (paired ones: test_compare.py)."""
    report = build(results, reference)
    deltas = report.reference_deltas()
    for name in LAYERS:
        t, r = results[name], reference[name]
        d = deltas[name]
        assert d["paired"] == 0.0
        assert d["s_dynamic"] == pytest.approx(t.s_dynamic - r.s_dynamic, abs=0)
        assert d["share_dynamic"] == pytest.approx(100 * (t.share["dynamic"] - r.share["dynamic"]), abs=1e-12)
        assert d["percent_static"] == round(t.percent["static"] - r.percent["static"], 1)
        assert d["channels_dynamic"] == t.category_counts["dynamic"] - r.category_counts["dynamic"]
        se = math.hypot(t.intervals["s_dynamic"].stderr, r.intervals["s_dynamic"].stderr)
        assert d["z_s_dynamic"] == pytest.approx(d["s_dynamic"] / se)
        se = math.hypot(t.intervals["percent_static"].stderr, r.intervals["percent_static"].stderr)
        assert d["share_static_stderr"] == pytest.approx(se)
        assert d["share_static_low"] < d["share_static"] < d["share_static_high"]
    # trained (dynamic-leaning) minus reference (static-leaning): clearly positive dynamic delta
    assert deltas["block.1"]["s_dynamic"] > 0.5 and deltas["block.1"]["z_s_dynamic"] > 2
    md = report.to_markdown()
    assert "independent standard errors (no pair-set fingerprint recorded for the model)" in md
    assert "mean pooling" not in md
    table = _table(md, "| layer | reference dynamic % |")
    for name in LAYERS:
        ref_dyn, ref_stat, dd, ds, dsd, dss, ddims = table[name][:7]
        assert _share_cell(ref_dyn)[0] == round(100 * reference[name].share["dynamic"], 1)
        d = deltas[name]
        assert dd == f"{d['share_dynamic']:+.1f} [{d['share_dynamic_low']:+.1f}, {d['share_dynamic_high']:+.1f}]"
        assert ds.startswith(f"{d['share_static']:+.1f} [")
        assert ddims == f"{d['percent_dynamic']:+.1f} / {d['percent_static']:+.1f}"
        assert dsd.startswith(f"{deltas[name]['s_dynamic']:+.3f} (")


def test_reference_with_other_layers_is_rejected_or_aligned(results):
    ref = make_results(1, layers=("embed", "block.1", "head"))
    with pytest.raises(ValueError, match=r"missing in reference \['block.0'\], only in reference \['head'\]"):
        build(results, ref)
    report = build(results, ref, align_reference=True)
    assert list(report.reference) == ["embed", "block.1"]
    assert set(report.reference_deltas()) == {"embed", "block.1"}
    row = _table(report.to_markdown(), "| layer | reference dynamic % |")["block.0"]
    assert set(row) == {"-"}
    assert BiasReport.from_json(report.to_json()) == report
    with pytest.raises(ValueError, match="shares no layer"):
        build(results, make_results(1, layers=("other",)), align_reference=True)
    with pytest.raises(ValueError, match="same architecture"):
        build(results, make_results(1, c=16), align_reference=True)


# -- figures ---------------------------------------------------------------------------------------


def _image(path):
    im = np.asarray(Image.open(path).convert("RGB"))
    return im


def _has_colour(im: np.ndarray, hex_colour: str, min_pixels: int = 50) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(im.astype(int) - rgb).sum(-1) <= 6).sum()) >= min_pixels


def test_figures_exist_with_expected_size_and_content(tmp_path, results, reference):
    report = build(results, reference)
    paths = report.save(tmp_path, scatter_layers=["block.0", "block.1"])
    expected = (int(FIGURE_SIZE[0] * 100), int(FIGURE_SIZE[1] * 100))
    names = {FIGURE_LAYERS, FIGURE_CATEGORIES, rho_figure_name("block.0"), rho_figure_name("block.1")}
    assert {p.name for k, p in paths.items() if k not in ("json", "markdown")} == names
    for name in names:
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.size == expected
        arr = _image(tmp_path / name)
        assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 20  # not a blank canvas
    layers_png = _image(tmp_path / FIGURE_LAYERS)
    assert _has_colour(layers_png, "#3b75af") and _has_colour(layers_png, "#ef8636")  # dynamic + static bars
    md = (tmp_path / REPORT_MD).read_text()
    for name in names:
        assert f"]({name})" in md
    # the figure follows the data: another model gives another picture
    other = build(make_results(7, dyn_share=0.1, stat_share=0.9), reference)
    other.save_figures(tmp_path / "other", scatter_layers=["block.1"])
    for name in (FIGURE_LAYERS, FIGURE_CATEGORIES, rho_figure_name("block.1")):
        a, b = _image(tmp_path / name), _image(tmp_path / "other" / name)
        assert a.shape == b.shape and (a != b).any(axis=-1).sum() > 500, name
    # dpi sets the pixel size
    small = report.save_figures(tmp_path / "small", dpi=50)
    with Image.open(small["Share per layer"]) as im:
        assert im.size == (int(FIGURE_SIZE[0] * 50), int(FIGURE_SIZE[1] * 50))


def test_layer_figure_error_bars_are_on_the_share_bars(results, reference):
    """Each bar is one share 100 * pi_F and carries that share's interval (the old figure drew share
    intervals on floored dims % bars, so a bar's top could lie outside its own error bar)."""
    from matplotlib.container import BarContainer, ErrorbarContainer

    report = build(results, reference)
    ax = report.figure_layers().axes[0]
    bars = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
    errs = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert set(bars) == {
        "dynamic",
        "static",
        "residual",
        "dynamic (reference)",
        "static (reference)",
        "residual (reference)",
    }
    segments = {}
    for c in errs:
        for seg in c.lines[2][0].get_segments():
            segments[round(float(seg[0][0]), 9)] = (float(seg[0][1]), float(seg[1][1]))
    for label, cont in bars.items():
        layers = reference if label.endswith("(reference)") else results
        k = label.split()[0]
        for name, rect in zip(LAYERS, cont.patches):
            lb = layers[name]
            assert rect.get_y() == 0 and rect.get_height() == pytest.approx(100 * lb.share[k])
            low, high = segments[round(rect.get_x() + rect.get_width() / 2, 9)]
            iv = lb.intervals[f"percent_{k}"]
            assert (low, high) == pytest.approx((iv.low, iv.high))
            assert low <= rect.get_height() <= high
    assert any(t.get_text() == "dims % (paper)" for t in ax.get_legend().get_texts())


def test_writes_are_atomic(tmp_path, results, monkeypatch):
    from matplotlib.figure import Figure

    report = build(results)

    def broken_savefig(self, fname, **kw):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        report.save(tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the half PNG nor a temp file stays


def _history(layers_per_step, dyn_share: float = 0.8, static_dropout: bool = False):
    """BiasRecords of real estimator results, ``layers_per_step[i]`` the layers measured at step 10 * i."""
    out = []
    for i, layers in enumerate(layers_per_step):
        res = make_results(20 + i, layers=layers, dyn_share=dyn_share - 0.1 * i)
        summary = {
            n: {
                "percent": dict(lb.percent),
                "share_percent": {k: 100.0 * v for k, v in lb.share.items()},
                "s_dynamic": lb.s_dynamic,
                "s_static": lb.s_static,
            }
            for n, lb in res.items()
        }
        sd = {"layer": layers[-1], "num_static": 5 + i, "kept": None if i == 0 else 4} if static_dropout else None
        out.append(BiasRecord(step=10 * i, epoch=None, layers=summary, static_dropout=sd))
    return out


def test_bias_history_figure_follows_the_history(tmp_path):
    """The bias-versus-step PNG: one panel more with StaticDropout, every layer drawn, the data shown.

    Bugs this catches: the StaticDropout panel missing (or drawn without it), layers taken from the first
    record only (a layer measured from a later step is not drawn), a figure that ignores the values.
    """
    from matplotlib import rcParams
    from matplotlib.colors import to_hex

    colours = [to_hex(c) for c in rcParams["axes.prop_cycle"].by_key()["color"]]
    steps = [("block.0",), ("block.0", "block.1"), ("block.0", "block.1")]  # block.1 appears at step 10
    path = plot_bias_history(_history(steps), tmp_path / "sub" / "history.png")
    assert path == tmp_path / "sub" / "history.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (1012, 396)  # 2 panels of 4.6 x 3.6 in at 110 dpi
    arr = _image(path)
    assert _has_colour(arr, colours[0]) and _has_colour(arr, colours[1])  # block.0 and block.1 curves
    one = _image(plot_bias_history(_history([("block.0",)] * 3), tmp_path / "one.png"))
    assert not _has_colour(one, colours[1])  # the second colour comes from the second layer only
    with_sd = plot_bias_history(_history(steps, static_dropout=True), tmp_path / "sd.png", title="StaticDropout run")
    with Image.open(with_sd) as im:
        assert im.size == (1518, 396)  # a third panel: static-set size and channels kept
    # the same history gives the same bytes; other values give another picture
    again = plot_bias_history(_history(steps), tmp_path / "again.png")
    assert again.read_bytes() == path.read_bytes()
    other = _image(plot_bias_history(_history(steps, dyn_share=0.3), tmp_path / "other.png"))
    assert other.shape == arr.shape and (other != arr).any(axis=-1).sum() > 200
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["history.png"]  # no temporary file left


# -- bad inputs ------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_error(results, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        BiasReport.from_results({}, model_id="m")
    with pytest.raises(ValueError, match="dict"):
        BiasReport.from_results([results["embed"]], model_id="m")
    with pytest.raises(ValueError, match="expected a LayerBias"):
        BiasReport.from_results({"x": 3.0}, model_id="m")
    with pytest.raises(ValueError, match="holds the result of layer 'embed'"):
        BiasReport.from_results({"renamed": results["embed"]}, model_id="m")
    with pytest.raises(ValueError, match="include_channels=False"):
        BiasReport.from_results({"embed": results["embed"].to_dict(include_channels=False)}, model_id="m")
    with pytest.raises(ValueError, match="model_id"):
        BiasReport.from_results(results, model_id="  ")
    with pytest.raises(ValueError, match="finite"):
        build(results, pair_settings={"jitter": float("nan")})
    with pytest.raises(ValueError, match="JSON cannot store"):
        build(results, extra={"model": object()})
    with pytest.raises(ValueError, match="seed"):
        build(results, seed=1.5)
    report = build(results)
    with pytest.raises(ValueError, match="not in this report"):
        report.figure_channels("block.9")
    with pytest.raises(ValueError, match="not in this report"):
        report.save_figures(tmp_path, scatter_layers=["block.9"])
    with pytest.raises(ValueError, match="list of layer names"):
        report.figure_files("block.1")
    with pytest.raises(ValueError, match="dpi"):
        report.save_figures(tmp_path, dpi=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        report.save(tmp_path / "file")
    # dicts from LayerBias.to_dict() are accepted and give the same report
    as_dicts = {k: v.to_dict() for k, v in results.items()}
    assert (
        BiasReport.from_results(
            as_dicts, model_id="org/tiny-videomae", pair_settings=report.pair_settings, seed=report.seed
        )
        == report
    )


def test_results_without_intervals(tmp_path):
    rng = np.random.default_rng(9)
    est = StaticDynamicEstimator(num_chunks=1)  # one chunk: no jackknife intervals
    z = rng.normal(size=(40, 8))
    est.update(z, z + 0.3 * rng.normal(size=(40, 8)), np.arange(40) % 2, layer="head")
    lb = est.compute()["head"]
    assert lb.intervals == {}
    report = BiasReport.from_results({"head": lb}, model_id="m", reference={"head": lb})
    row = _table(report.to_markdown(), "| layer | C |")["head"]
    assert row[2] == f"{100 * lb.share['dynamic']:.1f}"  # the share, no interval
    assert row[6] == f"{lb.s_dynamic:.3f}" and row[7] == f"{lb.s_static:.3f}"
    assert "z_s_dynamic" not in report.reference_deltas()["head"]
    assert "share_dynamic_low" not in report.reference_deltas()["head"]
    paths = report.save(tmp_path)
    assert BiasReport.load(paths["json"]) == report
    with Image.open(paths["Share per layer"]) as im:
        assert im.size == (int(FIGURE_SIZE[0] * 100), int(FIGURE_SIZE[1] * 100))
