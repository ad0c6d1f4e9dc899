"""StaDyn-Synth: determinism, ground-truth motion, masks, camouflage, splits and the trap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_stadyn.synth import (
    BACKGROUNDS,
    COLOR_NAMES,
    MOTIONS,
    SHAPES,
    TEXTURES,
    SynthConfig,
    SynthDataset,
    render_clip,
)

QUIET = SynthConfig(noise=0.0, color_jitter=0.0)


def _dilate(masks: np.ndarray, steps: int = 1) -> np.ndarray:
    """Grow (T, H, W) bool masks by ``steps`` pixels in the 8-neighbourhood."""
    out = masks.copy()
    for _ in range(steps):
        grown = out.copy()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(np.roll(out, dy, axis=1), dx, axis=2)
        out = grown
    return out


def _centroids(masks: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> (T, 2) mask centroid [x, y] per frame."""
    ys, xs = np.mgrid[: masks.shape[1], : masks.shape[2]]
    area = masks.sum(axis=(1, 2))
    assert (area > 0).all(), "the object vanished from a frame"
    return np.stack([(masks * xs).sum(axis=(1, 2)) / area, (masks * ys).sum(axis=(1, 2)) / area], axis=1)


# ------------------------------------------------------------------------------------------ determinism
def test_render_is_deterministic_and_seed_dependent():
    a = render_clip(SynthConfig(), 4, 2, np.random.default_rng(7))
    b = render_clip(SynthConfig(), 4, 2, np.random.default_rng(7))
    c = render_clip(SynthConfig(), 4, 2, np.random.default_rng(8))
    assert a.frames.dtype == np.uint8 and a.frames.shape == (8, 32, 32, 3)
    assert a.masks.dtype == bool and a.masks.shape == (8, 32, 32)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks) and a.meta == b.meta
    assert not np.array_equal(a.frames, c.frames)


def test_dataset_item_depends_only_on_seed_and_index():
    small = SynthDataset("trap", 5, seed=3)
    large = SynthDataset("trap", 500, seed=3)
    other_seed = SynthDataset("trap", 5, seed=4)
    test_set = SynthDataset("trap", 5, seed=3, train=False)
    for i in range(5):
        x, y = small[i], large[i]
        assert torch.equal(x["frames"], y["frames"]) and torch.equal(x["mask"], y["mask"])
        assert (x["label"], x["appearance"], x["cue_agrees"]) == (y["label"], y["appearance"], y["cue_agrees"])
    # other seeds and the test stream give other clips
    assert not any(torch.equal(small[i]["frames"], other_seed[i]["frames"]) for i in range(5))
    assert not any(torch.equal(small[i]["frames"], test_set[i]["frames"]) for i in range(5))
    assert torch.equal(small[-1]["frames"], small[4]["frames"])
    with pytest.raises(IndexError):
        small[5]


def test_to_tensors_matches_items_and_dataloader_collates():
    ds = SynthDataset("motion", 6, SynthConfig(num_frames=6, size=24, motions=("left", "right")), seed=1)
    t = ds.to_tensors()
    assert t["frames"].shape == (6, 6, 24, 24, 3) and t["frames"].dtype == torch.uint8
    assert t["mask"].shape == (6, 6, 24, 24) and t["mask"].dtype == torch.bool
    for i in (0, 5):
        assert torch.equal(t["frames"][i], ds[i]["frames"]) and int(t["label"][i]) == ds[i]["label"]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["frames"].shape == (4, 6, 24, 24, 3) and batch["label"].shape == (4,)


# ---------------------------------------------------------------------------------------- ground truth
@pytest.mark.parametrize("seed", range(3))
def test_translations_move_the_mask_in_the_labelled_direction(seed):
    expected = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    for name, (sx, sy) in expected.items():
        for shape_class in range(9):  # every shape (cue="both" ties the shape to the appearance class)
            rng = np.random.default_rng([seed, shape_class])
            clip = render_clip(QUIET, MOTIONS.index(name), shape_class, rng)
            step = np.diff(_centroids(clip.masks), axis=0)  # (T-1, 2)
            along = step[:, 0] * sx + step[:, 1] * sy
            across = step[:, 0] * sy + step[:, 1] * sx
            assert (along > 0.8).all(), (name, SHAPES[shape_class], step)
            assert np.abs(across).max() < 0.6, (name, SHAPES[shape_class], step)
            assert 1.4 < along.mean() < 2.6  # about config.speed = 2 px/frame


@pytest.mark.parametrize("seed", range(4))
def test_rotations_scaling_and_oscillation(seed):
    rng = np.random.default_rng
    # clockwise on screen (y down) = increasing angle around the orbit centre
    for name, sign in (("clockwise", 1), ("counterclockwise", -1)):
        c = _centroids(render_clip(QUIET, MOTIONS.index(name), 1, rng(seed)).masks)  # disc
        ctr = np.asarray(render_clip(QUIET, MOTIONS.index(name), 1, rng(seed)).meta["objects"][0]["centers"])
        assert np.abs(c - ctr).max() < 0.5  # the mask centroid is the recorded centre
        # fit a circle to the centroids; the angle around it must change in one direction
        A = np.column_stack([c, np.ones(len(c))])
        D, E, _ = np.linalg.lstsq(A, -(c**2).sum(axis=1), rcond=None)[0]
        angle = np.unwrap(np.arctan2(c[:, 1] + E / 2, c[:, 0] + D / 2))
        assert (np.sign(np.diff(angle)) == sign).all(), (name, np.diff(angle))
        assert abs(angle[-1] - angle[0]) > 1.0  # a visible part of the orbit
    for name, sign in (("approach", 1), ("recede", -1)):
        clip = render_clip(QUIET, MOTIONS.index(name), 0, rng(seed))
        area = clip.masks.sum(axis=(1, 2)).astype(float)
        assert (sign * np.diff(area) >= 0).all() and (sign * np.diff(area) > 0).mean() > 0.7, (name, area)
        assert max(area[0], area[-1]) / min(area[0], area[-1]) > 4  # (1.65 / 0.55)^2 = 9 in theory
        assert np.ptp(_centroids(clip.masks), axis=0).max() < 1.0  # grows in place
    clip = render_clip(QUIET, MOTIONS.index("oscillate"), 1, rng(seed))
    c = _centroids(clip.masks)
    d = np.diff(c, axis=0)
    axis = np.linalg.svd(d, full_matrices=False)[2][0]  # main direction of the movement
    along = d @ axis
    assert (np.diff(np.sign(along[np.abs(along) > 0.3])) != 0).sum() >= 1  # goes back and forth
    assert np.abs(along).sum() > 1.5 * abs(along.sum())  # little net displacement compared to its path


def test_masks_match_the_rendered_object():
    cfg = SynthConfig(noise=0.0)
    recalls = []
    for i in range(27):
        clip = render_clip(cfg, i % 9, (i * 4) % 9, np.random.default_rng(100 + i))
        diff = np.abs(clip.frames.astype(int) - clip.background.astype(int)).max(axis=-1)  # (T, H, W)
        changed = diff > 12
        recalls.append((changed & clip.masks).sum() / clip.masks.sum())
        # every pixel not on the mask or its anti-aliased one-pixel border is the static background
        assert (diff[~_dilate(clip.masks)] <= 3).all()  # faint anti-aliasing near sharp vertices
    # a few object pixels can match the background colour by chance (dark texture on a dark background)
    assert np.mean(recalls) > 0.9 and min(recalls) > 0.6, recalls


def test_object_pixels_have_the_palette_colour():
    """Inside the object every pixel is the palette colour times a texture brightness (no jitter, no noise)."""
    cfg = SynthConfig(noise=0.0, color_jitter=0.0)
    from hf_stadyn.synth import COLORS

    for k in range(9):
        clip = render_clip(cfg, 0, k, np.random.default_rng(k), cue="sensitive")
        assert clip.meta["objects"][0]["color"] == COLOR_NAMES[k]
        inner = ~_dilate(~clip.masks)  # pixels fully inside
        px = clip.frames[inner].astype(float) / 255.0  # (n, 3)
        want = np.asarray(COLORS[k])
        brightness = px @ want / (want @ want)
        assert brightness.min() > 0.25 and brightness.max() < 1.01
        assert np.abs(px - brightness[:, None] * want).max() < 0.02


# ------------------------------------------------------------------------------------------- camouflage
def _in_out_gap(cfg: SynthConfig, n: int = 24) -> float:
    """Mean distance between the mean colour inside the object and in a ring around it."""
    gaps = []
    for i in range(n):
        clip = render_clip(cfg, i % 9, i % 9, np.random.default_rng(i))
        m = clip.masks
        ring = _dilate(m, 4) & ~m
        f = clip.frames.astype(float)
        gaps.append(np.abs(f[m].mean(axis=0) - f[ring].mean(axis=0)).mean())
    return float(np.mean(gaps))


def test_camouflage_matches_background_statistics_but_motion_reveals_it():
    normal = _in_out_gap(SynthConfig())
    camo = _in_out_gap(SynthConfig(camouflage=True))
    assert camo < 12 and normal > 3 * camo, (normal, camo)
    # the camouflaged object still changes the frames where (and only where) it moves
    clip = render_clip(SynthConfig(camouflage=True, noise=0.0), 0, 0, np.random.default_rng(0))
    change = np.abs(np.diff(clip.frames.astype(int), axis=0)).max(axis=-1) > 12
    near = _dilate(clip.masks[1:] | clip.masks[:-1])
    assert change[~near].sum() == 0 and change.sum() > 20


# ------------------------------------------------------------------------------------------ splits / trap
def test_trap_share_is_met_and_test_variants_set_the_cue():
    ds = SynthDataset("trap", 3000, seed=5, trap_share=0.99)
    cls = [ds.classes(i) for i in range(3000)]
    agree = np.array([c["cue_agrees"] for c in cls])
    assert abs(agree.mean() - 0.99) < 0.003  # low-discrepancy assignment: every prefix is close too
    assert abs(agree[:500].mean() - 0.99) < 0.01
    assert all(c["label"] == c["motion"] for c in cls)
    assert all((c["appearance"] == c["label"]) == c["cue_agrees"] for c in cls)
    assert (
        abs(
            np.mean([SynthDataset("trap", 2000, seed=6, trap_share=0.7).classes(i)["cue_agrees"] for i in range(2000)])
            - 0.7
        )
        < 0.01
    )
    labels = np.bincount([c["label"] for c in cls], minlength=9)
    assert labels.min() > 250  # every motion class is drawn
    for variant, want in (("aligned", 1.0), ("conflicting", 0.0)):
        t = SynthDataset("trap", 400, seed=5, train=False, test_variant=variant)
        a = [t.classes(i) for i in range(400)]
        assert np.mean([c["cue_agrees"] for c in a]) == want
        assert np.mean([c["appearance"] == c["label"] for c in a]) == want
    r = SynthDataset("trap", 900, seed=5, train=False, test_variant="random")
    assert 0.05 < np.mean([r.classes(i)["cue_agrees"] for i in range(900)]) < 0.2  # about 1/9


@pytest.mark.parametrize("cue", ["invariant", "sensitive", "both"])
def test_cue_selects_which_attributes_carry_the_class(cue):
    tied = {
        "invariant": {"shape", "background"},
        "sensitive": {"color", "texture"},
        "both": {"shape", "color", "texture", "background"},
    }[cue]
    names = {"shape": SHAPES, "color": COLOR_NAMES, "texture": TEXTURES, "background": BACKGROUNDS}
    conflicting = SynthDataset("trap", 60, seed=2, trap_cue=cue, train=False, test_variant="conflicting")
    aligned = SynthDataset("trap", 60, seed=2, trap_cue=cue, train=False, test_variant="aligned")
    follows = {a: 0 for a in names}
    for i in range(60):
        clip, c = conflicting.clip(i)
        twin, ct = aligned.clip(i)
        attrs = {**clip.meta["objects"][0], "background": clip.meta["background"]}
        for a in names:
            follows[a] += attrs[a] == names[a][c["appearance"]]
            if a in tied:  # the cue shows the (conflicting) appearance class, not the label's class
                assert attrs[a] == names[a][c["appearance"]] != names[a][c["label"]]
        # the aligned twin is the same clip with the label's cue
        assert ct["motion"] == c["motion"] and ct["appearance"] == c["label"]
        assert twin.meta["objects"][0]["centers"] == clip.meta["objects"][0]["centers"]
    for a in set(names) - tied:  # untied attributes are random: they follow the class only by chance
        assert follows[a] < 25, (a, follows)


def test_motion_and_appearance_splits():
    m = SynthDataset("motion", 300, seed=0)
    cm = [m.classes(i) for i in range(300)]
    assert m.label_names == list(MOTIONS)
    assert all(c["label"] == c["motion"] for c in cm)
    assert len({c["appearance"] for c in cm}) == 9  # appearance is random
    a = SynthDataset("appearance", 300, SynthConfig(num_appearances=4), seed=0, trap_cue="invariant")
    ca = [a.classes(i) for i in range(300)]
    assert a.label_names == ["square/blobs", "disc/hstripes", "triangle/vstripes", "diamond/checker"]
    assert all(c["label"] == c["appearance"] and c["cue_agrees"] for c in ca)
    assert len({c["motion"] for c in ca}) == 9 and len({c["label"] for c in ca}) == 4
    clip, c = a.clip(3)
    assert clip.meta["objects"][0]["shape"] == SHAPES[c["label"]] and clip.meta["background"] == BACKGROUNDS[c["label"]]


def test_several_objects_share_the_motion():
    cfg = SynthConfig(num_objects=3, noise=0.0)
    clip = render_clip(cfg, MOTIONS.index("right"), 0, np.random.default_rng(1))
    objs = clip.meta["objects"]
    assert len(objs) == 3
    for o in objs:
        assert (np.diff(np.asarray(o["centers"])[:, 0]) > 1.0).all()
    assert len({tuple(o["centers"][0]) for o in objs}) == 3
    single = render_clip(SynthConfig(noise=0.0), MOTIONS.index("right"), 0, np.random.default_rng(1))
    assert clip.masks.sum() > single.masks.sum()


# ------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_frames": 1}, "num_frames"),
        ({"size": 8}, "size"),
        ({"motions": ("left", "sideways")}, "unknown motion"),
        ({"motions": ()}, "motions is empty"),
        ({"num_appearances": 10}, "num_appearances"),
        ({"noise": -0.1}, "noise"),
        ({"speed": 0}, "speed"),
        ({"num_frames": 32}, "does not fit"),
        ({"scale_range": (1.0, 0.5)}, "scale_range"),
        ({"num_objects": 0}, "num_objects"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SynthConfig(**kwargs)


def test_config_round_trip():
    cfg = SynthConfig(num_frames=6, motions=("up", "down"), camouflage=True, num_objects=2)
    assert SynthConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        SynthConfig.from_dict({"frames": 8})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "shuffle"}, "unknown split"),
        ({"num_clips": 0}, "num_clips"),
        ({"seed": -1}, "seed"),
        ({"trap_share": 1.5}, "trap_share"),
        ({"trap_cue": "colour"}, "trap_cue"),
        ({"test_variant": "opposite"}, "test_variant"),
        ({"split": "trap", "config": SynthConfig(num_appearances=4)}, "at least as many appearance"),
        ({"split": "trap", "trap_cue": "sensitive", "config": SynthConfig(camouflage=True)}, "camouflage"),
    ],
)
def test_dataset_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SynthDataset(**kwargs)


def test_render_rejects_bad_arguments():
    with pytest.raises(ValueError, match="motion 9 out of range"):
        render_clip(SynthConfig(), 9, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="Generator"):
        render_clip(SynthConfig(), 0, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cue"):
        render_clip(SynthConfig(), 0, 0, np.random.default_rng(0), cue="shape")
