"""Space folders that build where they run: the hf-stadyn wheel inside the Space, requirements pointing at it.

hf-stadyn is on no package index, so a Space cannot ``pip install hf-stadyn``. :func:`prepare_space` (run by
``stadyn publish`` on a staged copy of a Space folder) builds the wheel of this source checkout into the
Space's ``wheels/`` folder and writes the ``hf-stadyn`` line of ``requirements.txt`` as that wheel's URL in the
Space repo itself::

    hf-stadyn @ https://huggingface.co/spaces/OWNER/NAME/resolve/main/wheels/hf_stadyn-0.1.0-py3-none-any.whl

Why a URL and not ``./wheels/...``: the Spaces builder runs ``pip install -r requirements.txt`` with only that
file mounted, before the repo's other files are copied in, so a relative path would not exist there. The
wheel is committed together with requirements.txt, so the URL resolves by the time the build starts. A
private Space's files need a token to download, which the builder does not send: publish such a Space public,
or give requirements.txt another source (docs/hub.md).

The wheel is built with ``SOURCE_DATE_EPOCH`` fixed, so the same sources give the same bytes and a second
publish uploads nothing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["build_wheel", "prepare_space", "source_root", "wheel_requirement"]

logger = logging.getLogger(__name__)

WHEELS_DIR = "wheels"
_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest date a zip file can hold
_OUR_LINE = re.compile(r"^\s*(hf[-_]stadyn)\b|hf_stadyn-[^/\s]*\.whl", re.IGNORECASE)


def source_root() -> Path | None:
    """The source checkout hf_stadyn is imported from (its ``pyproject.toml`` names hf-stadyn), else None."""
    import hf_stadyn

    root = Path(hf_stadyn.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and re.search(r'^name\s*=\s*"hf-stadyn"', pyproject.read_text(encoding="utf-8"), re.M):
        return root
    return None


def build_wheel(out_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Build the hf-stadyn wheel of ``root`` (default: :func:`source_root`) into ``out_dir``; returns its path.

    The sources (``pyproject.toml``, ``README.md``, ``hf_stadyn/`` without caches) are copied to a temporary
    folder first, so the checkout gets no ``build/`` folder; pip builds offline (no build isolation, no index).

    Raises:
        ValueError: not running from a source checkout (pass a built wheel instead), or the build failed.
    """
    src = Path(root) if root is not None else source_root()
    if src is None:
        raise ValueError(
            "cannot build the hf-stadyn wheel: hf_stadyn is not imported from a source checkout; pass a built "
            "wheel (--wheel PATH)."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stadyn-wheel-") as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
            if (src / name).is_file():
                shutil.copy2(src / name, copy / name)
        shutil.copytree(
            src / "hf_stadyn", copy / "hf_stadyn", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
        )
        dist = Path(tmp) / "dist"
        env = dict(os.environ, SOURCE_DATE_EPOCH=_SOURCE_DATE_EPOCH, PIP_DISABLE_PIP_VERSION_CHECK="1")
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
        proc = subprocess.run([*cmd, "-w", str(dist), str(copy)], env=env, capture_output=True, text=True)
        wheels = sorted(dist.glob("hf_stadyn-*.whl")) if proc.returncode == 0 else []
        if not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel written"]
            raise ValueError(f"building the hf-stadyn wheel from {src} failed ({tail[0]}); run `pip wheel {src}`.")
        dest = out / wheels[0].name
        shutil.copyfile(wheels[0], dest)
    logger.info("built %s", dest)
    return dest


def wheel_requirement(endpoint: str, repo_id: str, branch: str, wheel_name: str) -> str:
    """The requirements.txt line that installs ``wheel_name`` from the Space repo ``repo_id``."""
    return f"hf-stadyn @ {endpoint.rstrip('/')}/spaces/{repo_id}/resolve/{branch}/{WHEELS_DIR}/{wheel_name}"


def prepare_space(
    stage: Path, repo_id: str, endpoint: str, branch: str = "main", *, wheel: str | os.PathLike | None = None
) -> Path:
    """Put the hf-stadyn wheel into ``stage/wheels/`` and point ``stage/requirements.txt`` at it (in place).

    Other requirement lines and comments are kept; an existing ``hf-stadyn`` line is replaced. Returns the
    wheel's path in ``stage``.
    """
    wheels = stage / WHEELS_DIR
    if wheels.is_dir():
        for old in wheels.glob("hf_stadyn-*.whl"):
            old.unlink()
    if wheel is not None:
        w = Path(wheel)
        if not w.is_file() or not w.name.startswith("hf_stadyn-") or w.suffix != ".whl":
            raise ValueError(f"--wheel {str(w)!r} is not an hf-stadyn wheel file (hf_stadyn-*.whl).")
        wheels.mkdir(exist_ok=True)
        built = wheels / w.name
        shutil.copyfile(w, built)
    else:
        built = build_wheel(wheels)
    req = stage / "requirements.txt"
    lines = req.read_text(encoding="utf-8").splitlines() if req.is_file() else []
    kept = [ln for ln in lines if ln.lstrip().startswith("#") or not _OUR_LINE.search(ln)]
    at = 0
    while at < len(kept) and kept[at].lstrip().startswith("#"):
        at += 1  # after the leading comment block
    kept.insert(at, wheel_requirement(endpoint, repo_id, branch, built.name))
    req.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return built
