"""The demo Space (spaces_app/) and the metric Space (the evaluate module's folder) build where they run.

Each folder is published with ``stadyn publish`` to the local Hub server (tests/hub_server.py), then the Spaces
builder is re-enacted from local files only: ``requirements.txt`` alone in an empty folder (the builder mounts
only that file before it copies the repo), ``pip install --no-index -r requirements.txt`` into a fresh virtual
environment (``--system-site-packages`` supplies the third-party packages; hf-stadyn itself comes from the wheel
URL in the Space repo, served by the local Hub), ``pip check``, and the Space's ``app.py`` imported by that
environment's Python from a copy of the Space repo, with hf-stadyn resolved from the venv, not this checkout.

Bugs caught: requirements naming a package on no index (``hf-stadyn>=0.1.0``) or a path that does not exist at
build time (``./wheels/...``), a wheel missing modules or package data the app needs (the default model), an
app.py that fails on this Gradio (evaluate's ``launch_gradio_widget``), a metric app that loads itself instead
of the metric script, a Space pushed without its wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hub_server import REPO_ROOT, hub_env, hub_server  # noqa: F401  (pytest fixture)

from hf_stadyn.metric import metric_path

SPACES = {
    "demo": (REPO_ROOT / "spaces_app", "tester/stadyn-demo"),
    "metric": (metric_path(), "tester/static_dynamic_bias"),
}


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd[:4]}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _venv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return env | {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def _publish(space: str, hub_server, wheel: Path | None) -> dict[str, bytes]:  # noqa: F811
    """``stadyn publish`` of the Space folder (with an already built ``wheel``, else it builds one): the repo's files."""
    folder, repo = SPACES[space]
    args = ["stadyn", "publish", str(folder), "--repo_id", repo] + (["--wheel", str(wheel)] if wheel else [])
    out = _run(args, hub_env(hub_server)).stdout
    assert f"to Space repo {repo}" in out
    return hub_server.hub.files(repo, "space")


def _build_and_import(space: str, files: dict[str, bytes], tmp: Path) -> None:
    """The builder (requirements.txt alone, pip from local files and the Space repo only), then the running
    Space: the repo's files, app.py imported by the venv's Python."""
    build = tmp / "build"
    build.mkdir()
    (build / "requirements.txt").write_bytes(files["requirements.txt"])
    venv = tmp / "venv"
    env = _venv_env()
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], env)
    py = str(venv / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", py]
    _run([*pip, "install", "--no-index", "--no-cache-dir", "-q", "-r", "requirements.txt"], env, cwd=build)
    _run([*pip, "check"], env)

    app = tmp / "app"
    for path, data in files.items():
        (app / path).parent.mkdir(parents=True, exist_ok=True)
        (app / path).write_bytes(data)
    check = (
        "import app, hf_stadyn, sys; from pathlib import Path; "
        "assert Path(hf_stadyn.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), hf_stadyn.__file__; "
        "assert type(app.demo).__name__ == 'Blocks'; "
    )
    if space == "metric":
        check += (
            "md, out = app.compute(app.example_json(), None, 0.5, 10); assert '20 dynamic and 20 static' in md, md; "
        )
    else:
        check += (
            "from hf_stadyn.demo import load_demo_model; load_demo_model(None); "
            "from hf_stadyn.demo.models import resolve_model; assert app._readings() is not None; "
            "assert resolve_model('stadyn-tiny-videomae-trap-stillmix', app.MODELS_DIR)[1].endswith('stillmix'); "
        )
    _run([py, "-c", check + "print('ok')"], env | {"HF_HUB_OFFLINE": "1"}, cwd=app)


@pytest.fixture(scope="module")
def spaces(tmp_path_factory, hub_server):  # noqa: F811
    """Both Spaces published (the demo's publish builds the wheel, the metric's reuses it: same sources), then
    both built and imported side by side (pip and the imports are single-threaded): {space: (files, future)}."""
    files = {"demo": _publish("demo", hub_server, None)}
    wheel_path = next(p for p in files["demo"] if p.startswith("wheels/hf_stadyn-") and p.endswith(".whl"))
    wheel = tmp_path_factory.mktemp("wheel") / Path(wheel_path).name
    wheel.write_bytes(files["demo"][wheel_path])
    files["metric"] = _publish("metric", hub_server, wheel)
    pool = ThreadPoolExecutor(max_workers=2)
    started = {k: (f, pool.submit(_build_and_import, k, f, tmp_path_factory.mktemp(k))) for k, f in files.items()}
    yield started
    pool.shutdown(wait=True)


@pytest.mark.parametrize("space", list(SPACES))
def test_space_builds_from_its_requirements_in_a_fresh_venv(hub_server, spaces, space):  # noqa: F811
    _, repo = SPACES[space]
    files, built = spaces[space]
    wheels = [p for p in files if p.startswith("wheels/hf_stadyn-") and p.endswith(".whl")]
    assert len(wheels) == 1 and set(wheels) <= hub_server.hub.lfs_files(repo, "space")
    requirements = files["requirements.txt"].decode()
    url = f"{hub_server}/spaces/{repo}/resolve/main/{wheels[0]}"
    assert f"hf-stadyn @ {url}\n" in requirements
    assert "sdk: gradio" in files["README.md"].decode() and "app.py" in files
    if space == "demo":
        # the first screen's readings and the released checkpoints travel with the Space folder
        assert "readings.json" in files and "models/stadyn-tiny-videomae-trap-plain/model.safetensors" in files
    built.result()  # the builder's install, pip check and app import (their assertion, if one failed)
