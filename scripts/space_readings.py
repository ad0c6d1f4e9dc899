"""Precompute the demo Space's first screen: the readings of the embedded default, its architecture at
initialisation and the released trap checkpoints on one StaDyn-Synth pair set (hf_stadyn.demo.compare).

    PYTHONPATH=. python scripts/space_readings.py            # writes spaces_app/readings.json
    PYTHONPATH=. python scripts/space_readings.py --copy_models   # also copies the releases into spaces_app/models/

--copy_models copies each released checkpoint's config.json, preprocessor_config.json, model.safetensors and
training.json from model_cards/<name>/ into spaces_app/models/<name>/ (what the Space loads; the folder is
published with the Space).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from hf_stadyn.demo.compare import compare_models
from hf_stadyn.demo.models import DEFAULT_CHOICE, INIT_CHOICE, RELEASED_MODELS

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "spaces_app"
FILES = ("config.json", "preprocessor_config.json", "model.safetensors", "training.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num_clips", type=int, default=500, help="synthetic source clips (default: %(default)s)")
    ap.add_argument("--num_pairs", type=int, default=1500, help="pairs (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=SPACE / "readings.json")
    ap.add_argument("--copy_models", action="store_true", help="copy the releases into spaces_app/models/ first")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models_dir = SPACE / "models"
    if args.copy_models:
        for name in RELEASED_MODELS:
            dst = models_dir / name
            dst.mkdir(parents=True, exist_ok=True)
            for f in FILES:
                shutil.copy2(REPO / "model_cards" / name / f, dst / f)
    choices = [DEFAULT_CHOICE, INIT_CHOICE, *RELEASED_MODELS]
    t0 = time.time()
    readings = compare_models(
        choices, models_dir=models_dir, num_clips=args.num_clips, num_pairs=args.num_pairs, seed=args.seed
    )
    readings["command"] = "PYTHONPATH=. python scripts/space_readings.py" + (
        ""
        if (args.num_clips, args.num_pairs, args.seed) == (500, 1500, 0)
        else f" --num_clips {args.num_clips} --num_pairs {args.num_pairs} --seed {args.seed}"
    )
    args.out.write_text(json.dumps(readings, indent=1) + "\n")
    print(f"wrote {args.out} ({time.time() - t0:.1f} s; no timing in the file: same settings, same bytes)")


if __name__ == "__main__":
    main()
