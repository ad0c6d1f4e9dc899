"""The one model registry (hf_stadyn.models.registry) and the registration on `import hf_stadyn` (_autoregister).

Registration is checked in fresh processes: in this one, hf_stadyn.models is already imported (and has
registered), so only a subprocess can show what `import hf_stadyn` alone does.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import transformers
from torch import nn

from hf_stadyn.models import (
    AVOSConfig,
    AVOSModel,
    StadynTimesformerConfig,
    StadynTimesformerForVideoClassification,
    StadynVideoMAEConfig,
    StadynVideoMAEForVideoClassification,
    registry,
    tiny_avos_config,
)
from hf_stadyn.models import auto as models_auto

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


def test_every_table_comes_from_the_registry():
    """SUPPORTED_MODEL_TYPES, load_model's table and the Auto classes agree with the registry entries."""
    entries = registry.registered_models()
    assert list(entries) == ["stadyn_videomae", "stadyn_timesformer", "stadyn_avos"]
    want = ("stadyn_videomae", "videomae", "stadyn_timesformer", "timesformer", "stadyn_avos")
    assert registry.supported_model_types() == want
    assert want == models_auto.SUPPORTED_MODEL_TYPES
    assert models_auto._classes() == {
        "stadyn_videomae": StadynVideoMAEForVideoClassification,
        "videomae": StadynVideoMAEForVideoClassification,
        "stadyn_timesformer": StadynTimesformerForVideoClassification,
        "timesformer": StadynTimesformerForVideoClassification,
        "stadyn_avos": AVOSModel,
    }
    for entry in entries.values():
        assert transformers.AutoConfig.for_model(entry.model_type).__class__ is entry.config_class
        for auto in entry.auto_classes:
            assert getattr(transformers, auto)._model_mapping[entry.config_class] is entry.model_class


def test_auto_model_resolves_every_config():
    """AutoModel gives our full (probe-ready) model class for each of our configs; it raised before."""
    from hf_stadyn.models import tiny_timesformer_config, tiny_videomae_config

    assert type(transformers.AutoModel.from_config(StadynVideoMAEConfig())) is StadynVideoMAEForVideoClassification
    assert (
        type(transformers.AutoModel.from_config(tiny_timesformer_config(2))) is StadynTimesformerForVideoClassification
    )
    assert type(transformers.AutoModel.from_config(tiny_avos_config())) is AVOSModel
    vc = transformers.AutoModelForVideoClassification.from_config(tiny_videomae_config(2))
    assert type(vc) is StadynVideoMAEForVideoClassification


def test_register_model_adds_a_family_everywhere_and_refuses_clashes():
    """A new entry shows up in the supported types, load_model's table and AutoModel (already registered)."""

    class _ToyConfig(transformers.PreTrainedConfig):
        model_type = "stadyn_test_toy"

    class _Toy(transformers.PreTrainedModel):
        config_class = _ToyConfig

        def __init__(self, config):
            super().__init__(config)
            self.lin = nn.Linear(2, 2)
            self.post_init()

    try:
        assert registry.register_model(auto_classes=("AutoModel",))(_Toy) is _Toy
        assert "stadyn_test_toy" in models_auto.SUPPORTED_MODEL_TYPES
        assert models_auto._classes()["stadyn_test_toy"] is _Toy
        assert type(transformers.AutoModel.from_config(_ToyConfig())) is _Toy
        with pytest.raises(ValueError, match="already registered by _Toy"):
            registry.register_model(type("_Other", (_Toy,), {}))
    finally:
        registry._REGISTRY.pop("stadyn_test_toy", None)
    with pytest.raises(ValueError, match="unknown Auto classes"):
        registry.register_model(_Toy, auto_classes=("AutoModelForCausalLM ",))
    with pytest.raises(ValueError, match="config_class with a model_type"):
        registry.register_model(type("_NoConfig", (nn.Module,), {}))
    assert registry.model_class_for("stadyn_test_toy") is None
    assert registry.model_class_for("videomae") is StadynVideoMAEForVideoClassification


def test_model_types_live_only_in_the_config_classes():
    """The registry's types are the configs' class attributes (no second copy of the strings)."""
    assert [e.model_type for e in registry.registered_models().values()] == [
        StadynVideoMAEConfig.model_type,
        StadynTimesformerConfig.model_type,
        AVOSConfig.model_type,
    ]
    types = set(registry.supported_model_types())
    for name in ("registry.py", "auto.py", "__init__.py"):
        tree = ast.parse((REPO / "hf_stadyn" / "models" / name).read_text())
        docstrings = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        literals = {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        }
        assert not literals & types, (name, literals & types)


def test_autoregister_install_registers_when_transformers_is_imported_later(tmp_path):
    """Fresh process: install() imports nothing heavy; after `import transformers` alone, AutoConfig reads
    an AVOS folder without trust_remote_code (the lazy package left stadyn_avos unregistered before)."""
    tiny_avos_config().save_pretrained(tmp_path / "avos")
    proc = _run(
        """
        import sys
        import hf_stadyn._autoregister as ar
        ar.install()
        heavy = sorted(m for m in ("transformers", "torch", "hf_stadyn.models") if m in sys.modules)
        assert not heavy, heavy
        assert ar.installed() and not ar.registered()
        import transformers
        assert ar.registered() and not ar.installed()
        cfg = transformers.AutoConfig.from_pretrained(sys.argv[1])
        model = transformers.AutoModel.from_config(cfg)
        print(type(cfg).__name__, type(model).__name__, type(model).__module__)
        """,
        str(tmp_path / "avos"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["AVOSConfig", "AVOSModel", "hf_stadyn.models.modeling_avos"]


@pytest.mark.parametrize(
    "first",
    [
        "import transformers",  # already imported: install() registers at once
        "import hf_stadyn.models.modeling_avos",  # transformers comes in mid-import of hf_stadyn.models
        "from hf_stadyn.models.auto import load_model",
        "import hf_stadyn.probing",  # does not import transformers: nothing happens yet
    ],
)
def test_autoregister_has_no_import_cycle(first, tmp_path):
    """Whatever comes in first, the registration happens once transformers is there, with no ImportError
    from half-initialised modules (registration imports hf_stadyn.models, which imports transformers)."""
    tiny_avos_config().save_pretrained(tmp_path / "avos")
    proc = _run(
        f"""
        import sys
        import hf_stadyn._autoregister as ar
        ar.install()
        {first}
        import transformers
        cfg = transformers.AutoConfig.from_pretrained(sys.argv[1])
        print(type(cfg).__name__, ar.registered(), ar.installed())
        """,
        str(tmp_path / "avos"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["AVOSConfig", "True", "False"]
    assert "could not register" not in proc.stderr


def test_import_hf_stadyn_alone_registers_every_model_type(tmp_path):
    """After `import hf_stadyn` (nothing else of ours), AutoConfig reads an AVOS folder without remote code.

    The bug it catches: the lazy package import left stadyn_avos unregistered, so AutoConfig asked for
    trust_remote_code and raised.
    """
    tiny_avos_config().save_pretrained(tmp_path / "avos")
    proc = _run(
        """
        import sys
        import hf_stadyn
        assert "transformers" not in sys.modules and "torch" not in sys.modules
        import transformers
        for t in ("stadyn_videomae", "stadyn_timesformer", "stadyn_avos"):
            transformers.AutoConfig.for_model(t)
        print(type(transformers.AutoConfig.from_pretrained(sys.argv[1])).__name__)
        """,
        str(tmp_path / "avos"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["AVOSConfig"]
