"""Probing from a streamed ``datasets`` dataset (issue 16 point 7): a local Parquet file of mp4 bytes read
with ``load_dataset("parquet", ..., streaming=True)``, never materialised.

Bugs these catch: pairs that depend on the access order (a cursor that hands out the wrong row after a
jump, so a resumed or multi-worker run probes other pairs); re-reading the stream for every item (one
pass is the point); decoding a video again for each pair that shares it; a stream that is turned into a
list (``len()``); a resume through the engine that does not give the uninterrupted reading.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hf_stadyn.pairs import PairDataset, StreamingPairDataset
from hf_stadyn.probing import collate_pairs, probe

datasets = pytest.importorskip("datasets")  # a test dependency; hf_stadyn itself imports it lazily

NUM_VIDEOS = 6


def _mp4_bytes(path, k: int) -> bytes:
    """An mp4 of a blurred-noise texture drifting k % 3 + 1 px per frame (12 frames, 32 x 40)."""
    from hf_stadyn.video import write_video

    rng = np.random.default_rng(k)
    base = cv2.GaussianBlur(rng.integers(0, 256, (32, 160, 3), dtype=np.uint8), (0, 0), 1.5)
    frames = np.stack([np.roll(base, t * (k % 3 + 1), axis=1)[:, :40] for t in range(12)])
    write_video(path, frames, fps=8)
    return path.read_bytes()


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stream")
    cells = [{"bytes": _mp4_bytes(root / f"v{k}.mp4", k), "path": f"v{k}.mp4"} for k in range(NUM_VIDEOS)]
    ds = datasets.Dataset.from_dict({"video": cells, "label": list(range(NUM_VIDEOS))})
    path = root / "videos.parquet"
    ds.to_parquet(str(path))
    return path


def _stream(path):
    stream = datasets.load_dataset("parquet", data_files=str(path), split="train", streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    return stream


KW = dict(num_frames=4, size=32, window=8, seed=5)


def test_one_pass_one_decode_per_video(parquet) -> None:
    """Items in order read each row once and decode each shared video once; the pairs of one row carry
    its index as video_index (the jackknife unit)."""
    ds = StreamingPairDataset(_stream(parquet), num_pairs=12, pairs_per_video=3, **KW)
    items = [ds[i] for i in range(12)]
    assert dict(ds.stats) == {"rows_read": 4, "whole_decodes": 4}
    assert [it["video_index"] for it in items] == [i // 3 for i in range(12)]
    assert items[4]["video"] == "video[1] (v1.mp4)"
    with pytest.raises(TypeError):
        len(ds.stream)  # still a stream


def test_same_pairs_in_any_order_and_route(parquet) -> None:
    """Random access (as a resume and DataLoader workers do) gives the in-order items; so do window reads
    (pairs_per_video=1 route) against a map-style PairDataset over the same files read one pair per video."""
    ds = StreamingPairDataset(_stream(parquet), num_pairs=10, pairs_per_video=2, **KW)
    want = [ds[i] for i in range(10)]
    jumpy = StreamingPairDataset(_stream(parquet), num_pairs=10, pairs_per_video=2, **KW)
    got = {i: jumpy[i] for i in (7, 2, 9, 0, 5, 1, 3, 4, 6, 8)}
    assert jumpy.stats["restarts"] >= 3
    for i, w in enumerate(want):
        assert torch.equal(w["clip_a"], got[i]["clip_a"]) and torch.equal(w["clip_b"], got[i]["clip_b"]), i
    # one pair per video: the stream's pairs are PairDataset's pairs (same seeds, windows and styles)
    one = StreamingPairDataset(_stream(parquet), num_pairs=NUM_VIDEOS, **KW)
    ref = PairDataset(datasets.Dataset.from_parquet(str(parquet)), num_pairs=NUM_VIDEOS, **KW)
    for i in range(NUM_VIDEOS):
        a, b = one[i], ref[i]
        assert torch.equal(a["clip_a"], b["clip_a"]) and a["start"] == b["start"], i
    assert one.stats["window_reads"] == NUM_VIDEOS and one.stats["whole_decodes"] == 0


def test_workers_and_errors(parquet) -> None:
    """Two DataLoader workers (each its own cursor) give the main process's pairs; a stream shorter than
    the pairs need says so; bad arguments are refused in one line."""
    ds = StreamingPairDataset(_stream(parquet), num_pairs=8, pairs_per_video=2, **KW)
    want = collate_pairs([ds[i] for i in range(8)])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_pairs)
    assert torch.equal(torch.cat([b["clip_b"] for b in loader]), want["clip_b"])
    short = StreamingPairDataset(_stream(parquet), num_pairs=NUM_VIDEOS + 1, **KW)
    with pytest.raises(IndexError, match="the stream ended at row 6"):
        short[NUM_VIDEOS]
    with pytest.raises(ValueError, match="pairs_per_video must be an int >= 1"):
        StreamingPairDataset(_stream(parquet), num_pairs=4, pairs_per_video=0)
    with pytest.raises(ValueError, match="stream must be"):
        StreamingPairDataset(str(parquet), num_pairs=4)


def _tiny_model():
    from hf_stadyn.models import StadynVideoMAEConfig, StadynVideoMAEForVideoClassification

    torch.manual_seed(0)
    cfg = StadynVideoMAEConfig(
        num_labels=2, num_frames=4, image_size=32, patch_size=16, tubelet_size=2, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    return StadynVideoMAEForVideoClassification(cfg).eval()


def test_probe_streamed_and_resume(parquet, tmp_path) -> None:
    """probe() reads the stream; an interrupted run resumed from its saved state gives the same numbers and
    pair fingerprint as the uninterrupted run."""
    model = _tiny_model()

    def pairs():
        return StreamingPairDataset(_stream(parquet), num_pairs=12, pairs_per_video=2, **KW)

    kw = dict(batch_size=4, num_chunks=3, progress=False, cpu=True)
    whole = probe(model, pairs(), **kw)
    calls = {"n": 0}

    def stop_second(module, args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("stopped by the test")

    handle = model.register_forward_pre_hook(stop_second)
    with pytest.raises(KeyboardInterrupt):
        probe(model, pairs(), checkpoint_dir=tmp_path, save_every_pairs=4, **kw)
    handle.remove()
    resumed = probe(model, pairs(), checkpoint_dir=tmp_path, resume=True, **kw)
    assert resumed.settings == whole.settings
    for name, layer in whole.layers.items():
        assert resumed.layers[name].to_dict() == layer.to_dict(), name


def test_cli_streaming_reads_the_same_pairs_as_the_python_api(parquet, tmp_path, capsys) -> None:
    """``stadyn probe --dataset FILE.parquet --streaming`` probes the StreamingPairDataset the Python API builds
    (the model's frames, size and window, --seed, --pairs_per_video): equal shares; the report records the
    streamed source; a stream too short for the pairs, --streaming without --dataset, and --pairs_per_video
    without --streaming are refused before probing (exit 2, one line, nothing written)."""
    from hf_stadyn import load_model
    from hf_stadyn.cli import main as stadyn
    from hf_stadyn.report import BiasReport

    def argv(dataset: bool = True, num_pairs: int = 12, out: Path = tmp_path / "out") -> list[str]:
        src = ["--dataset", str(parquet)] if dataset else []
        return ["probe", *src, "--streaming", "--pairs_per_video", "2", "--num_pairs", str(num_pairs), "--seed", "3",
                "--disable_tqdm", "--output_dir", str(out)]  # fmt: skip

    out = tmp_path / "out"
    assert stadyn(argv()) == 0
    report = BiasReport.load(out / "report.json")
    assert report.pair_settings["streaming"] is True and report.pair_settings["stream_rows"] == 6
    model = load_model()
    spec = model.probe_input_spec()
    pairs = StreamingPairDataset(_stream(parquet), num_pairs=12, pairs_per_video=2, num_frames=spec["num_frames"],
                                 size=spec["image_size"], window=int(spec.get("window") or 64), seed=3)  # fmt: skip
    want = probe(model, pairs, batch_size=4, progress=False, cpu=True)
    for name, layer in want.layers.items():
        assert report.layers[name].share == pytest.approx(layer.share, abs=1e-9), name
    capsys.readouterr()
    bad = tmp_path / "bad"
    for args, words in ((argv(num_pairs=40, out=bad), "streams 6 videos"),
                        (argv(dataset=False, out=bad), "--streaming reads a --dataset")):  # fmt: skip
        assert stadyn(args) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
        assert not bad.exists()
    no_stream = ["probe", "--dataset", str(parquet), "--pairs_per_video", "2", "--output_dir", str(tmp_path / "b2")]
    assert stadyn(no_stream) == 2 and "--pairs_per_video applies to --streaming" in capsys.readouterr().err
