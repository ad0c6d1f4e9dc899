"""Pairs for the static/dynamic estimator (docs/method.md §1): stylizers, frame shuffles, two-stream pairs
and the seeded pair datasets."""

from .appearance_free import AppearanceFreePairs, render_appearance_free
from .core import (
    DYNAMIC,
    FACTOR_NAMES,
    STATIC,
    Pair,
    TwoStreamPair,
    draw_pair,
    make_pair,
    make_two_stream_pair,
    parse_factor,
    shuffle_frames,
    shuffle_pathways,
)
from .dataset import VIDEO_EXTENSIONS, PairDataset, TwoStreamPairDataset, list_videos
from .probe_pairs import ProbePairs
from .streaming import StreamingPairDataset
from .styles import (
    DEFAULT_STYLES,
    StyleLike,
    Stylizer,
    get_style,
    list_styles,
    register_style,
    resolve_styles,
    stylize,
    unregister_style,
)

__all__ = [
    "DEFAULT_STYLES",
    "DYNAMIC",
    "FACTOR_NAMES",
    "STATIC",
    "VIDEO_EXTENSIONS",
    "AppearanceFreePairs",
    "Pair",
    "PairDataset",
    "ProbePairs",
    "StreamingPairDataset",
    "StyleLike",
    "Stylizer",
    "TwoStreamPair",
    "TwoStreamPairDataset",
    "draw_pair",
    "get_style",
    "list_styles",
    "list_videos",
    "make_pair",
    "make_two_stream_pair",
    "parse_factor",
    "register_style",
    "render_appearance_free",
    "resolve_styles",
    "shuffle_frames",
    "shuffle_pathways",
    "stylize",
    "unregister_style",
]
