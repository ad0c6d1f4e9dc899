"""The data path of issue 16 point 3: device-side styles and shuffles, decoded videos reused across pairs,
DataLoader worker settings (docs/scaling.md, "Data path").

Bugs these catch: a torch style that drifts from OpenCV (wrong grey coefficients, a float instead of the
fixed-point colour transform, a zero-padded instead of reflected border, an off-by-one median border);
device rendering that draws the random numbers in another order than ``make_pair`` (other styles or
permutations than the CPU pairs); a decode cache that samples a window from the wrong frame count or
after a seek returns other frames (pairs, hence reports, would change); a cache that decodes every time
(no reuse) or keeps videos that serve one pair; workers that get other items than the main process.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hf_stadyn.pairs import PairDataset, get_style, make_pair
from hf_stadyn.pairs.core import draw_pair
from hf_stadyn.pairs.loading import available_cores, default_num_workers, pair_loader_options, pair_worker_init
from hf_stadyn.pairs.torch_ops import has_torch_version, shuffle_batch, stylize_batch
from hf_stadyn.probing import collate_pairs

EXACT = ("color_mix", "palette", "cartoon", "tone_curve")


def _clips(shape: tuple[int, int, int, int], n: int, seed: int) -> list[np.ndarray]:
    """Uniform noise (every level, hard edges) and blurred noise (natural-image-like gradients)."""
    rng = np.random.default_rng(seed)
    t, h, w, _ = shape
    out = [rng.integers(0, 256, shape, dtype=np.uint8)]
    for _ in range(n - 1):
        flat = rng.integers(0, 256, (t * h, w, 3), dtype=np.uint8)
        out.append(cv2.GaussianBlur(flat, (0, 0), float(rng.uniform(0.8, 2.5))).reshape(shape))
    return out


@pytest.mark.parametrize("name", [*EXACT, "randconv"])
def test_torch_styles_equal_opencv(name: str) -> None:
    """Each default style on torch equals its OpenCV render: exactly, or (randconv) within 1 grey level on
    at most 1 pixel in 10,000; odd sizes included (a vectorised loop's tail is where routes differ)."""
    style = get_style(name)
    assert has_torch_version(style)
    for shape in ((4, 37, 45, 3), (3, 64, 64, 3)):
        clips = _clips(shape, 3, seed=len(name))
        x = torch.from_numpy(np.stack(clips))
        for seed in range(6):
            rng = np.random.default_rng(seed)
            params = [style.sample_params(rng) for _ in clips]
            want = np.stack([style.apply(c, p) for c, p in zip(clips, params)]).astype(np.int16)
            got = stylize_batch(x, [style] * len(clips), params).numpy().astype(np.int16)
            diff = np.abs(got - want)
            if name in EXACT:
                assert diff.max() == 0, (name, shape, seed, int((diff > 0).sum()))
            else:
                assert diff.max() <= 1 and (diff > 0).mean() <= 1e-4, (name, shape, seed, diff.max(), diff.mean())


def test_mixed_styles_and_fallback() -> None:
    """One call with several styles puts each clip's render in its own slot; a style without a torch
    version (texture) falls back to its CPU apply, exactly."""
    clips = _clips((3, 24, 32, 3), 4, seed=5)
    styles = [get_style(n) for n in ("palette", "texture", "tone_curve", "palette")]
    assert not has_torch_version(styles[1])
    rng = np.random.default_rng(0)
    params = [s.sample_params(rng) for s in styles]
    got = stylize_batch(torch.from_numpy(np.stack(clips)), styles, params).numpy()
    for k, (s, c, p) in enumerate(zip(styles, clips, params)):
        np.testing.assert_array_equal(got[k], s.apply(c, p), err_msg=str(k))


def test_shuffle_batch_and_bad_input() -> None:
    x = torch.arange(2 * 4 * 3, dtype=torch.uint8).reshape(2, 4, 3)
    perms = torch.tensor([[1, 0, 3, 2], [3, 2, 1, 0]])
    got = shuffle_batch(x, perms)
    for b in range(2):
        assert torch.equal(got[b], x[b][perms[b]])
    with pytest.raises(ValueError, match=r"permutations must be \(B, T\)"):
        shuffle_batch(x, perms[:, :3])
    with pytest.raises(ValueError, match="uint8 tensor"):
        stylize_batch(torch.zeros(1, 2, 4, 4, 3), [get_style("palette")], [None])


def test_draw_pair_draws_as_make_pair() -> None:
    """draw_pair draws make_pair's styles, parameters and permutation, in its order (same generator state
    after), so rendering the draws gives make_pair's pair."""
    (clip,) = _clips((6, 16, 16, 3), 1, seed=2)
    for seed in range(12):
        factor = seed % 2
        r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
        pair = make_pair(clip, factor, r1)
        sa, sb, pa, pb, perm = draw_pair(clip.shape[0], factor, r2)
        assert r1.random() == r2.random()
        np.testing.assert_array_equal(sa.apply(clip, pa), pair.clip_a)
        if factor == 1:
            assert pb is None and np.array_equal(perm, pair.permutation)
        else:
            np.testing.assert_array_equal(sb.apply(clip, pb), pair.clip_b)


def _write_moving_texture(path: Path, num_frames: int, seed: int) -> str:
    """An mp4 of a blurred-noise texture drifting 1-2 px per frame (48 x 64, 8 fps)."""
    from hf_stadyn.video import write_video

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (48, 256, 3), dtype=np.uint8), (0, 0), 2.0)
    frames = np.stack([np.roll(base, (k * (1 + seed % 2)), axis=1)[:, :64] for k in range(num_frames)])
    write_video(path, frames, fps=8)
    return str(path)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two short mp4s and one of 90 frames (windows start past frame 48: read_clip seeks in it)."""
    root = tmp_path_factory.mktemp("data_path")
    return [_write_moving_texture(root / f"v{k}.mp4", n, seed=k) for k, n in enumerate((20, 24, 90))]


def _items(ds: PairDataset) -> list[dict]:
    return [ds[i] for i in range(len(ds))]


def test_decode_cache_same_pairs_and_decode_count(videos: list[str]) -> None:
    """With the cache every video is decoded once (3 whole decodes for 12 pairs, no window reads) and the
    pairs are the same bytes (and window starts) as reading each window from the file."""
    kw = dict(num_frames=8, size=32, window=24, num_pairs=12, seed=7)
    plain = PairDataset(videos, decode_cache_mb=0, **kw)
    cached = PairDataset(videos, **kw)
    want, got = _items(plain), _items(cached)
    assert dict(plain.decode_cache.stats) == {"window_reads": 12}
    assert cached.decode_cache.stats["whole_decodes"] == 3
    assert cached.decode_cache.stats["cache_hits"] == 9 and cached.decode_cache.stats["window_reads"] == 0
    assert max(w["start"] for w in want if w["video_index"] == 2) >= 48  # the seek route was compared too
    for w, g in zip(want, got):
        for key in ("clip_a", "clip_b", "permutation"):
            assert torch.equal(w[key], g[key]), (w["index"], key)
        assert (w["start"], w["style_a"], w["style_b"]) == (g["start"], g["style_a"], g["style_b"])


def test_decode_cache_declines(videos: list[str]) -> None:
    """A video serving one pair, or over the budget, is not decoded whole: windows are read as before."""
    one_each = PairDataset(videos, num_frames=8, size=32, window=24, num_pairs=3, seed=0)
    _items(one_each)
    assert one_each.decode_cache.stats["whole_decodes"] == 0 and one_each.decode_cache.stats["window_reads"] == 3
    tiny = PairDataset(videos, num_frames=8, size=32, window=24, num_pairs=9, seed=0, decode_cache_mb=0.01)
    _items(tiny)
    assert tiny.decode_cache.stats["whole_decodes"] == 0 and tiny.decode_cache.stats["window_reads"] == 9
    with pytest.raises(ValueError, match="decode_cache_mb must be"):
        PairDataset(videos, decode_cache_mb=-1)


def test_device_rendering_equals_cpu_pairs(videos: list[str]) -> None:
    """render_on='device' items rendered by render_batch (here on the CPU device) equal the CPU pairs within
    1 grey level; static members B are exactly members A reordered; other keys agree."""
    kw = dict(num_frames=8, size=32, window=24, num_pairs=10, seed=3)
    cpu = collate_pairs(_items(PairDataset(videos, **kw)))
    dev_ds = PairDataset(videos, render_on="device", **kw)
    raw = collate_pairs(_items(dev_ds))
    assert "clip_a" not in raw and raw["clip"].shape == (10, 8, 32, 32, 3)
    got = dev_ds.render_batch(raw, torch.device("cpu"))
    assert set(got) == set(cpu)
    for key in ("factor", "index", "video_index", "style_a", "style_b", "start"):
        assert got[key] == cpu[key], key
    assert torch.equal(got["permutation"], cpu["permutation"])
    for key in ("clip_a", "clip_b"):
        assert (got[key].int() - cpu[key].int()).abs().max() <= 1, key
    for k, f in enumerate(got["factor"]):
        if f == 1:
            assert torch.equal(got["clip_b"][k], got["clip_a"][k][got["permutation"][k]])
    assert cpu is PairDataset(videos, **kw).render_batch(cpu)  # CPU-rendered batches pass through
    with pytest.raises(ValueError, match="render_on must be"):
        PairDataset(videos, render_on="gpu")


def test_workers_make_the_same_items(videos: list[str]) -> None:
    """Two workers with the loader options (one thread each, their own caches) give the main process's items."""
    ds = PairDataset(videos, num_frames=8, size=32, window=24, num_pairs=8, seed=1)
    want = collate_pairs(_items(ds))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_pairs, **pair_loader_options(2))
    batches = list(loader)
    for key in ("clip_a", "clip_b"):
        assert torch.equal(torch.cat([b[key] for b in batches]), want[key])


def test_default_worker_count() -> None:
    assert available_cores() == len(os.sched_getaffinity(0))
    assert [default_num_workers(c) for c in (1, 2, 5, 64)] == [0, 1, 4, 8]
    assert pair_loader_options("auto")["num_workers"] == default_num_workers()
    opts = pair_loader_options(1, "cuda")
    assert opts["pin_memory"] is True and opts["worker_init_fn"] is pair_worker_init
    assert pair_loader_options(0) == {"num_workers": 0, "pin_memory": False}
    with pytest.raises(ValueError, match="num_workers must be"):
        pair_loader_options(-1)


def test_media_helper_is_real_video(videos: list[str]) -> None:
    """The fixture's files are real encoded mp4s (decoded by PyAV), not arrays."""
    assert all(Path(v).suffix == ".mp4" and Path(v).stat().st_size > 0 for v in videos)


def test_probe_with_device_rendering_equals_cpu(videos: list[str]) -> None:
    """probe() on a render_on='device' dataset (the engine calls render_batch per batch) gives the CPU
    dataset's report exactly, pair fingerprint included, with the exactly-equal styles."""
    from hf_stadyn.models import StadynVideoMAEConfig, StadynVideoMAEForVideoClassification
    from hf_stadyn.probing import probe

    torch.manual_seed(0)
    cfg = StadynVideoMAEConfig(
        num_labels=2, num_frames=4, image_size=32, patch_size=16, tubelet_size=2, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    model = StadynVideoMAEForVideoClassification(cfg).eval()
    kw = dict(num_frames=4, size=32, window=16, num_pairs=12, seed=2, styles=EXACT)
    runs = [
        probe(model, PairDataset(videos, render_on=where, **kw), batch_size=4, num_chunks=3, progress=False, cpu=True)
        for where in ("cpu", "device")
    ]
    assert runs[0].settings == runs[1].settings
    for name, layer in runs[0].layers.items():
        assert runs[1].layers[name].to_dict() == layer.to_dict(), name
