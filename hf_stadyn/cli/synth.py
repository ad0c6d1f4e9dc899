"""``stadyn synth``: write a StaDyn-Synth split (mp4 + masks + metadata that ``datasets`` loads)."""

from __future__ import annotations

import argparse
from typing import Any

_HELP = "generate a StaDyn-Synth video dataset (motion / appearance / bias-trap split)"

_EPILOG = """examples:
  stadyn synth --output_dir synth_motion --split motion --num_clips 2000
  stadyn synth --output_dir trap_train --split trap --trap_share 0.99 --trap_cue invariant
  stadyn synth --output_dir trap_test --split trap --test --test_variant conflicting
  stadyn synth --output_dir moca_like --split motion --camouflage --objects 2
  stadyn synth --push_to_hub me/stadyn-synth --num_clips 2000 --num_test_clips 500

--push_to_hub ID renders every split (configs motion [default], appearance, trap with train /
test_aligned / test_conflicting / test_random), masks included, pushes them with datasets' push_to_hub
and writes the dataset card (no --output_dir needed; --split, --test and --test_variant are not used).

options follow the stadyn convention (--snake_case, --output_dir, --disable_tqdm); the dashed names of
the previous release (--out, --num-clips, --frames, --trap-share, --cue, --test-variant, --no-progress)
still work for one release.

load it with hf_stadyn.synth.load_synth(OUT) or
datasets.load_dataset("json", data_files="OUT/metadata.jsonl", split="train")."""


from hf_stadyn.cli._types import DeprecatedFlag, DeprecatedSwitch, nonneg_int, positive_int  # noqa: E402


def register(subparsers: Any) -> None:
    from hf_stadyn.synth.config import CUES, MOTIONS, SPLITS, TEST_VARIANTS, SynthConfig

    d = SynthConfig()
    p = subparsers.add_parser(
        "synth",
        help=_HELP,
        description=_HELP + ".",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--output_dir", "-o", default=None, help="output folder, required (new or empty; see --overwrite)")
    _old(p, "--out", "output_dir", "--output_dir", str)
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="motion",
        help="motion: label = motion; appearance: label = appearance; trap: label = motion with a "
        "static shortcut (default: %(default)s)",
    )
    p.add_argument("--num_clips", "-n", type=positive_int, default=100, help="number of clips (default: %(default)s)")
    _old(p, "--num-clips", "num_clips", "--num_clips", positive_int)
    p.add_argument(
        "--num_frames", type=positive_int, default=d.num_frames, help="frames per clip (default: %(default)s)"
    )
    _old(p, "--frames", "num_frames", "--num_frames", positive_int)
    p.add_argument(
        "--size", type=positive_int, default=d.size, help="frame height = width in pixels (default: %(default)s)"
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default: %(default)s)")
    _old(p, "--trap-share", "trap_share", "--trap_share", float)
    p.add_argument(
        "--trap_share",
        type=float,
        default=0.99,
        help="trap split, training: share of clips whose static cue agrees with the label (default: %(default)s)",
    )
    _old(p, "--cue", "trap_cue", "--trap_cue", str, CUES)
    p.add_argument(
        "--trap_cue",
        choices=CUES,
        default="invariant",
        help="attributes that carry the appearance class: invariant (shape + background layout, kept by "
        "stylization), sensitive (colour + texture), both (default: %(default)s)",
    )
    p.add_argument(
        "--test",
        action="store_true",
        help="write a test set: never shares clips with the training set of the same seed "
        "(trap split: uses --test-variant)",
    )
    _old(p, "--test-variant", "test_variant", "--test_variant", str, TEST_VARIANTS)
    p.add_argument(
        "--test_variant",
        choices=TEST_VARIANTS,
        default="aligned",
        help="trap test set: cue aligned with, conflicting with, or random w.r.t. the label (default: %(default)s)",
    )
    p.add_argument(
        "--camouflage",
        action="store_true",
        help="texture objects like the background so only motion reveals them (MoCA-like)",
    )
    p.add_argument(
        "--objects", type=positive_int, default=d.num_objects, help="objects per clip (default: %(default)s)"
    )
    p.add_argument(
        "--motions",
        default=",".join(d.motions),
        help=f"comma-separated motion classes, in label order, from: {', '.join(MOTIONS)} (default: all)",
    )
    p.add_argument(
        "--appearances",
        type=positive_int,
        default=d.num_appearances,
        help="number of appearance classes, 1-9 (default: %(default)s)",
    )
    p.add_argument(
        "--speed", type=float, default=d.speed, help="object speed in pixels per frame (default: %(default)s)"
    )
    p.add_argument("--noise", type=float, default=d.noise, help="per-pixel noise std in [0, 1) (default: %(default)s)")
    p.add_argument("--fps", type=float, default=8.0, help="frame rate of the mp4 files (default: %(default)s)")
    p.add_argument("--crf", type=int, default=18, help="libx264 quality 0-51, 0 = lossless luma (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument(
        "--push_to_hub", metavar="ID", default="", help="push every split to the Hub dataset repo ID (see below)"
    )
    p.add_argument(
        "--num_test_clips", type=positive_int, default=0, help="with --push_to_hub: clips per test split "
        "(default: num_clips / 4)"
    )  # fmt: skip
    p.add_argument("--hub_token", metavar="TOKEN", default="", help="with --push_to_hub: Hub token (default: "
                   "HF_TOKEN or the logged-in token)")  # fmt: skip
    p.add_argument("--hub_private_repo", action="store_true", help="with --push_to_hub: create the repo private")
    p.add_argument("--disable_tqdm", action="store_true", help="hide the progress bar")
    p.add_argument("--no-progress", dest="disable_tqdm", action=DeprecatedSwitch, new="--disable_tqdm",
                   help=argparse.SUPPRESS)  # fmt: skip
    p.set_defaults(func=run)


def _old(p: argparse.ArgumentParser, old: str, dest: str, new: str, kind: Any, choices: Any = None) -> None:
    """A dashed option name of the previous release, hidden, with a deprecation message."""
    # default=SUPPRESS: argparse takes a dest's default from the first action that names it; without it the
    # hidden old name (registered first) would set --trap_share / --trap_cue / --test_variant to None.
    p.add_argument(
        old,
        dest=dest,
        type=kind,
        choices=choices,
        action=DeprecatedFlag,
        new=new,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def run(args: argparse.Namespace) -> int:
    from hf_stadyn.synth import SynthConfig, generate, load_synth

    if args.push_to_hub:
        return _push(args)
    if not args.output_dir:
        raise ValueError("--output_dir is required: the folder to write the clips to (or --push_to_hub ID).")
    from hf_stadyn.cli._types import check_output_dir

    check_output_dir(args.output_dir)
    motions = tuple(m.strip() for m in str(args.motions).split(",") if m.strip())
    config = SynthConfig(
        num_frames=args.num_frames,
        size=args.size,
        motions=motions,
        num_appearances=args.appearances,
        speed=args.speed,
        noise=args.noise,
        camouflage=args.camouflage,
        num_objects=args.objects,
    )
    out = generate(
        args.output_dir,
        split=args.split,
        num_clips=args.num_clips,
        config=config,
        seed=args.seed,
        trap_share=args.trap_share,
        trap_cue=args.trap_cue,
        test_variant=args.test_variant,
        train=not args.test,
        fps=args.fps,
        crf=args.crf,
        overwrite=args.overwrite,
        progress=not args.disable_tqdm,
    )
    ds = load_synth(out)
    print(f"wrote {len(ds)} {args.split} clips ({'test' if args.test else 'train'}) to {out}")
    return 0


def _push(args: argparse.Namespace) -> int:
    """``--push_to_hub ID``: every split to a Hub dataset repo (hf_stadyn.synth.hub)."""
    import sys

    from hf_stadyn.hub.publish import _check_repo_id, hub_errors
    from hf_stadyn.synth import SynthConfig
    from hf_stadyn.synth.hub import push_synth_to_hub

    _check_repo_id(args.push_to_hub, "--push_to_hub")
    if not args.verbose:
        import datasets

        datasets.utils.logging.set_verbosity_error()
        if args.disable_tqdm:
            datasets.utils.logging.disable_progress_bar()
    motions = tuple(m.strip() for m in str(args.motions).split(",") if m.strip())
    config = SynthConfig(
        num_frames=args.num_frames, size=args.size, motions=motions, num_appearances=args.appearances,
        speed=args.speed, noise=args.noise, camouflage=args.camouflage, num_objects=args.objects,
    )  # fmt: skip
    with hub_errors(args.push_to_hub):
        url = push_synth_to_hub(
            args.push_to_hub, args.num_clips, args.num_test_clips or None, config, args.seed,
            trap_share=args.trap_share, trap_cue=args.trap_cue, fps=args.fps, crf=args.crf, token=args.hub_token or None,
            private=True if args.hub_private_repo else None, command=_command(sys.argv[1:]),
            progress=not args.disable_tqdm,
        )  # fmt: skip
    print(f"pushed StaDyn-Synth (motion, appearance, trap) to dataset repo {args.push_to_hub}: {url}")
    return 0


def _command(argv: list[str]) -> list[str]:
    """The command line for the dataset card, without a --hub_token value."""
    out, skip = ["stadyn"], False
    for tok in argv:
        if skip:
            skip = False
            continue
        if tok == "--hub_token":
            skip = True
            continue
        if not tok.startswith("--hub_token="):
            out.append(tok)
    return out
