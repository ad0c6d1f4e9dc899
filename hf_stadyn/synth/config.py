"""StaDyn-Synth settings: motion classes, appearance attributes and the :class:`SynthConfig` dataclass.

An *appearance class* ``k`` is the tuple of four attributes ``(SHAPES[k], COLORS[k], TEXTURES[k],
BACKGROUNDS[k])``. Two of them are *style-sensitive* (object colour, object texture: a stylizer changes
them) and two are *style-invariant* (object shape, background layout family: a stylizer keeps them).
A *cue* selects which attributes follow the appearance class of a clip; the others are drawn at random
(uniformly from the first ``num_appearances`` entries of their list), so they carry no information.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "COLOR_NAMES",
    "CUES",
    "CUE_ATTRIBUTES",
    "MOTIONS",
    "SHAPES",
    "SPLITS",
    "TEST_VARIANTS",
    "TEXTURES",
    "SynthConfig",
]

#: Motion classes. Image coordinates: x grows to the right, y grows downwards; "clockwise" is as seen
#: on screen; "approach"/"recede" grow/shrink the object in place; "oscillate" moves it back and forth
#: along a random axis with no net displacement.
MOTIONS: tuple[str, ...] = (
    "left",
    "right",
    "up",
    "down",
    "clockwise",
    "counterclockwise",
    "approach",
    "recede",
    "oscillate",
)

#: Object shapes (style-invariant).
SHAPES: tuple[str, ...] = ("square", "disc", "triangle", "diamond", "cross", "ring", "hbar", "vbar", "ell")

#: Object colours (style-sensitive), RGB in [0, 1].
COLORS: tuple[tuple[float, float, float], ...] = (
    (0.92, 0.14, 0.14),
    (0.14, 0.80, 0.22),
    (0.20, 0.36, 0.98),
    (0.96, 0.86, 0.10),
    (0.92, 0.20, 0.86),
    (0.10, 0.86, 0.90),
    (1.00, 0.55, 0.05),
    (0.56, 0.26, 0.92),
    (0.96, 0.96, 0.96),
)
COLOR_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "purple", "white")

#: Object textures (style-sensitive), drawn in object coordinates so they move with the object.
TEXTURES: tuple[str, ...] = (
    "solid",
    "hstripes",
    "vstripes",
    "checker",
    "dots",
    "diagonal",
    "rings",
    "gradient",
    "noise",
)

#: Background layout families (style-invariant). Colours and phases are random per clip.
BACKGROUNDS: tuple[str, ...] = (
    "blobs",
    "hstripes",
    "vstripes",
    "checker",
    "diagonal",
    "rings",
    "gradient",
    "grid",
    "dots",
)

#: Which attributes follow the appearance class under each cue.
CUE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "invariant": ("shape", "background"),
    "sensitive": ("color", "texture"),
    "both": ("shape", "color", "texture", "background"),
}
CUES: tuple[str, ...] = tuple(CUE_ATTRIBUTES)
SPLITS: tuple[str, ...] = ("motion", "appearance", "trap")
TEST_VARIANTS: tuple[str, ...] = ("aligned", "conflicting", "random")

_MAX_APPEARANCES = min(len(SHAPES), len(COLORS), len(TEXTURES), len(BACKGROUNDS))


@dataclass
class SynthConfig:
    """How StaDyn-Synth clips look and move.

    Attributes:
        num_frames: frames per clip ``T`` (>= 2).
        size: frame height and width ``H = W`` in pixels (>= 16).
        motions: the motion classes in label order, a subset of :data:`MOTIONS` (>= 1, no repeats).
        num_appearances: number of appearance classes ``A`` (1-9); class ``k`` uses entry ``k`` of
            :data:`SHAPES`, :data:`COLORS`, :data:`TEXTURES` and :data:`BACKGROUNDS`.
        speed: object speed in pixels per frame (translations, and the mean speed of an
            oscillation). About 2 px/frame is what a tiny video transformer learns at 32x32.
        speed_jitter: relative speed spread; each object's speed is ``speed * U(1 - j, 1 + j)``.
        object_scale: object radius as a fraction of ``size`` (0.16 gives about 5 px at 32x32).
        scale_range: (smallest, largest) object scale for "approach"/"recede" (geometric growth).
        orbit_radius: orbit radius of "clockwise"/"counterclockwise" as a fraction of ``size``.
        orbit_turns: fraction of the circle an orbit covers in a clip (jittered like the speed). An
            orbit of 0.25 * size over 0.75 turns moves faster than ``speed`` (about 5 px/frame at
            32x32, 8 frames): slower or smaller orbits stay inside a few 8x8 patches and the tiny
            patch-8 transformers of the test suite did not learn their direction (chance level).
        orbit_start_spread: orbits start within +- half this many degrees of the top of their
            circle, so clockwise heads right first and counter-clockwise left. With a uniformly random
            start (360) the two classes differ only in the sign of the path's curvature and a tiny
            model trained from scratch stayed at chance; raise it for a harder task.
        oscillation_amplitude: amplitude of "oscillate" as a fraction of ``size`` (jittered like the
            speed); 0.094 is 3 px at 32x32, a mean speed of about 2 px/frame with the default period.
        oscillation_period: period in frames of "oscillate" (each clip jitters it by +-15 %).
        noise: standard deviation of per-pixel, per-frame Gaussian noise, in [0, 1] intensity units.
        color_jitter: relative per-channel spread of the object colour (0 keeps the palette exact).
        camouflage: object texture and colours drawn from the background's own distribution (same
            layout family and colours, shifted), so only motion reveals the object (a MoCA analogue).
        num_objects: objects per clip; all share the clip's motion class and tied appearance
            attributes (each with its own start position and untied attributes).
        camouflage_share: probability that each object is camouflaged on its own (one draw per
            object, so a clip can mix visible and camouflaged instances; video instance segmentation,
            docs/vis.md); ``camouflage=True`` camouflages every object. 0 (the default) changes
            nothing: the clips, and ``to_dict()`` (which leaves the field out at 0), are those of
            earlier releases.
    """

    num_frames: int = 8
    size: int = 32
    motions: tuple[str, ...] = MOTIONS
    num_appearances: int = 9
    speed: float = 2.0
    speed_jitter: float = 0.2
    object_scale: float = 0.16
    scale_range: tuple[float, float] = (0.55, 1.65)
    orbit_radius: float = 0.25
    orbit_turns: float = 0.75
    orbit_start_spread: float = 90.0
    oscillation_amplitude: float = 0.094
    oscillation_period: float = 6.0
    noise: float = 0.02
    color_jitter: float = 0.05
    camouflage: bool = False
    num_objects: int = 1
    camouflage_share: float = 0.0

    def __post_init__(self) -> None:
        self.motions = tuple(self.motions)
        self.scale_range = tuple(float(s) for s in self.scale_range)  # type: ignore[assignment]
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field and what to do; called on construction."""

        def bad(msg: str) -> None:
            raise ValueError(f"SynthConfig: {msg}")

        for name in ("num_frames", "size", "num_appearances", "num_objects"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                bad(f"{name} must be an int, got {v!r}")
        if self.num_frames < 2:
            bad(f"num_frames must be >= 2 (motion needs at least two frames), got {self.num_frames}")
        if self.size < 16:
            bad(f"size must be >= 16 pixels, got {self.size}")
        if not 1 <= self.num_appearances <= _MAX_APPEARANCES:
            bad(f"num_appearances must be in 1..{_MAX_APPEARANCES}, got {self.num_appearances}")
        if not 1 <= self.num_objects <= 8:
            bad(f"num_objects must be in 1..8, got {self.num_objects}")
        if not self.motions:
            bad("motions is empty; give at least one of " + ", ".join(MOTIONS))
        unknown = [m for m in self.motions if m not in MOTIONS]
        if unknown:
            bad(f"unknown motion class(es) {unknown}; choose from {', '.join(MOTIONS)}")
        if len(set(self.motions)) != len(self.motions):
            bad(f"motions has repeats: {list(self.motions)}")
        for name in (
            "speed",
            "object_scale",
            "orbit_radius",
            "orbit_turns",
            "oscillation_amplitude",
            "oscillation_period",
        ):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                bad(f"{name} must be a positive number, got {v!r}")
        for name in ("speed_jitter", "noise", "color_jitter"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v < 1):
                bad(f"{name} must be in [0, 1), got {v!r}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] < self.scale_range[1]:
            bad(f"scale_range must be (small, large) with 0 < small < large, got {self.scale_range}")
        if not (isinstance(self.orbit_start_spread, (int, float)) and 0 <= self.orbit_start_spread <= 360):
            bad(f"orbit_start_spread must be in [0, 360] degrees, got {self.orbit_start_spread!r}")
        if not isinstance(self.camouflage, bool):
            bad(f"camouflage must be a bool, got {self.camouflage!r}")
        share = self.camouflage_share
        if isinstance(share, bool) or not (isinstance(share, (int, float)) and 0.0 <= share <= 1.0):
            bad(f"camouflage_share must be a number in [0, 1], got {share!r}")
        # Geometry: every trajectory must keep the whole object inside the frame.
        radius = self.object_scale * self.size
        if radius < 2.0:
            bad(f"objects would be {radius:.1f} px in radius; raise object_scale or size (need >= 2 px)")
        radius *= 1.15  # the farthest any shape reaches from its centre
        travel = (self.num_frames - 1) * self.speed * (1 + self.speed_jitter)
        if 2 * radius + travel + 2 > self.size:
            bad(
                f"a {self.num_frames}-frame translation at up to {self.speed * (1 + self.speed_jitter):.2f} px/frame "
                f"({travel:.1f} px) plus the object ({2 * radius:.1f} px) does not fit in {self.size} px; "
                "lower speed, num_frames or object_scale, or raise size"
            )
        orbit = self.orbit_radius * self.size
        if 2 * (radius + orbit) + 2 > self.size:
            bad(
                f"an orbit of radius {orbit:.1f} px around an object reaching {radius:.1f} px does not fit in "
                f"{self.size} px; lower orbit_radius or object_scale"
            )
        amplitude = self.oscillation_amplitude * self.size * (1 + self.speed_jitter)
        if 2 * (radius + amplitude) + 2 > self.size:
            bad(
                f"an oscillation of amplitude {amplitude:.1f} px does not fit in {self.size} px; lower "
                "oscillation_amplitude or object_scale"
            )
        if 2 * radius * self.scale_range[1] + 2 > self.size:
            bad(
                f"the largest approach/recede object ({2 * radius * self.scale_range[1]:.1f} px) does not fit in "
                f"{self.size} px; lower scale_range[1] or object_scale"
            )

    # ------------------------------------------------------------------ derived
    @property
    def radius(self) -> float:
        """Object radius in pixels at scale 1."""
        return self.object_scale * self.size

    @property
    def num_motions(self) -> int:
        return len(self.motions)

    def appearance_attributes(self, k: int) -> dict[str, str]:
        """The four attribute names of appearance class ``k``."""
        if not 0 <= k < self.num_appearances:
            raise ValueError(f"appearance class {k} out of range 0..{self.num_appearances - 1}")
        return {"shape": SHAPES[k], "color": COLOR_NAMES[k], "texture": TEXTURES[k], "background": BACKGROUNDS[k]}

    def appearance_names(self, cue: str = "both") -> list[str]:
        """Readable names of the appearance classes: the attributes that ``cue`` ties, joined by '/'."""
        if cue not in CUE_ATTRIBUTES:
            raise ValueError(f"unknown cue {cue!r}; choose from {', '.join(CUES)}")
        return [
            "/".join(self.appearance_attributes(k)[a] for a in CUE_ATTRIBUTES[cue]) for k in range(self.num_appearances)
        ]

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["motions"] = list(self.motions)
        d["scale_range"] = list(self.scale_range)
        if not d["camouflage_share"]:  # added later: left out at its default so earlier files keep their bytes
            del d["camouflage_share"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SynthConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"SynthConfig: unknown field(s) {unknown}; known: {sorted(names)}")
        d = dict(d)
        if "motions" in d:
            d["motions"] = tuple(d["motions"])
        if "scale_range" in d:
            d["scale_range"] = tuple(d["scale_range"])
        return cls(**d)
