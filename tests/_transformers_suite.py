"""Find and import transformers' own common model tests (``ModelTesterMixin``, ``ConfigTester``).

The transformers wheel ships no tests; its PyPI sdist ships ``tests/test_modeling_common.py`` and
``tests/test_configuration_common.py`` (but not the per-model test files, nor the ``exporters/``,
``generation/`` and ``utils/`` helpers those two import). Nothing here touches the network: the
sources come from, in order,

1. ``$STADYN_TRANSFORMERS_TESTS``: a folder holding ``test_modeling_common.py`` (e.g. a transformers
   checkout's ``tests/`` or an extracted sdist's);
2. ``$STADYN_TRANSFORMERS_SDIST``: a path to a ``transformers-<version>.tar.gz`` sdist;
3. ``<cache>/transformers-<installed version>.tar.gz`` with ``<cache>`` = ``$XDG_CACHE_HOME/hf-stadyn``
   (default ``~/.cache/hf-stadyn``), where ``.ci/run`` puts it with
   ``pip download --no-binary :all: --no-deps transformers==<installed version>``.

The needed files are copied (from the folder) or extracted (from the sdist) into a fresh temporary
package ``stadyn_upstream_tests`` that is imported through ``sys.path``; nothing is written into this
repository. Modules the sdist lacks get minimal stand-ins written there: ``exporters.test_export``
(an empty ``ExportTesterMixin``: the torch.export tests do not run), ``generation.test_utils`` (an
empty ``GenerationTesterMixin``: our models do not generate) and ``utils.test_configuration_utils``
(``config_common_kwargs``: our own choice of general ``PreTrainedConfig`` arguments, read by
``ConfigTester.check_config_arguments_init``). A real file found in the folder is used instead.
The sources should match the installed transformers version (the cached sdist is looked up by it).
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import transformers

__all__ = ["PACKAGE", "Suite", "load_suite", "sdist_cache_path"]

PACKAGE = "stadyn_upstream_tests"
_FILES = ("test_modeling_common.py", "test_configuration_common.py")
_OPTIONAL = ("exporters/test_export.py", "generation/test_utils.py", "utils/test_configuration_utils.py")

_STANDINS = {
    "exporters/test_export.py": (
        '"""Stand-in (hf-stadyn): the sdist has no tests/exporters; no torch.export tests run."""\n\n\n'
        "class ExportTesterMixin:\n    pass\n"
    ),
    "generation/test_utils.py": (
        '"""Stand-in (hf-stadyn): the sdist has no tests/generation; our models do not generate."""\n\n\n'
        "class GenerationTesterMixin:\n    pass\n"
    ),
    "utils/test_configuration_utils.py": (
        '"""Stand-in (hf-stadyn): general PreTrainedConfig arguments with non-default values."""\n\n'
        "config_common_kwargs = {\n"
        '    "return_dict": False,\n'
        '    "output_hidden_states": True,\n'
        '    "output_attentions": True,\n'
        '    "dtype": "float16",\n'
        '    "tie_word_embeddings": False,\n'
        '    "chunk_size_feed_forward": 5,\n'
        '    "architectures": ["StadynTestArchitecture"],\n'
        '    "id2label": {0: "first", 1: "second"},\n'
        '    "label2id": {"first": 0, "second": 1},\n'
        '    "problem_type": "regression",\n'
        "}\n"
    ),
}


@dataclass
class Suite:
    """The imported upstream test modules and where they came from."""

    modeling: ModuleType  # test_modeling_common (ModelTesterMixin, floats_tensor, ids_tensor, ...)
    configuration: ModuleType  # test_configuration_common (ConfigTester)
    origin: str


def sdist_cache_path(version: str | None = None) -> Path:
    """``<cache>/transformers-<version>.tar.gz``, the sdist ``.ci/run`` downloads (installed version by default)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hf-stadyn"
    return cache / f"transformers-{version or transformers.__version__}.tar.gz"


def _from_folder(folder: Path, dest: Path) -> None:
    for name in _FILES + _OPTIONAL:
        src = folder / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / name)


def _from_sdist(sdist: Path, dest: Path) -> None:
    wanted = set(_FILES + _OPTIONAL)
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            # <root>/tests/<file> or <root>/tests/<sub>/<file>
            if len(parts) < 3 or parts[1] != "tests" or not member.isfile():
                continue
            rel = "/".join(parts[2:])
            if rel in wanted:
                data = tar.extractfile(member)
                if data is not None:
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    (dest / rel).write_bytes(data.read())


def _locate() -> tuple[str, Path] | str:
    """``(kind, path)`` of the sources, or the reason none was found."""
    folder = os.environ.get("STADYN_TRANSFORMERS_TESTS")
    if folder:
        if not (Path(folder) / "test_modeling_common.py").is_file():
            return f"STADYN_TRANSFORMERS_TESTS={folder} has no test_modeling_common.py"
        return "folder", Path(folder)
    sdist = os.environ.get("STADYN_TRANSFORMERS_SDIST")
    if sdist:
        if not Path(sdist).is_file():
            return f"STADYN_TRANSFORMERS_SDIST={sdist} is not a file"
        return "sdist", Path(sdist)
    cached = sdist_cache_path()
    if cached.is_file():
        return "sdist", cached
    return (
        f"transformers' test sources not found: set STADYN_TRANSFORMERS_TESTS to a folder with "
        f"test_modeling_common.py, or put the sdist at {cached} (pip download --no-binary :all: --no-deps "
        f"transformers=={transformers.__version__} -d {cached.parent})"
    )


def load_suite() -> Suite | str:
    """Import the upstream common tests from a temporary package; the :class:`Suite`, or why not."""
    found = _locate()
    if isinstance(found, str):
        return found
    kind, path = found
    if PACKAGE in sys.modules:
        return Suite(
            sys.modules[f"{PACKAGE}.test_modeling_common"],
            sys.modules[f"{PACKAGE}.test_configuration_common"],
            str(path),
        )
    root = Path(tempfile.mkdtemp(prefix="stadyn-upstream-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    dest = root / PACKAGE
    dest.mkdir()
    (_from_folder if kind == "folder" else _from_sdist)(path, dest)
    missing = [f for f in _FILES if not (dest / f).is_file()]
    if missing:
        return f"{path} lacks {', '.join(missing)}"
    for rel, text in _STANDINS.items():
        if not (dest / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_text(text)
    for sub in ("", "exporters", "generation", "utils"):
        (dest / sub / "__init__.py").touch()
    sys.path.insert(0, str(root))
    try:
        modeling = importlib.import_module(f"{PACKAGE}.test_modeling_common")
        configuration = importlib.import_module(f"{PACKAGE}.test_configuration_common")
    except ImportError as err:  # e.g. `parameterized`, which the common tests use, is not installed
        return f"transformers' common tests from {path} do not import: {err}"
    return Suite(modeling, configuration, str(path))
