"""The probe runner: one forward per batch, exact resume, and 2 processes = 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hf_stadyn.metric import StaticDynamicEstimator
from hf_stadyn.probing.engine import probe

sys.path.insert(0, str(Path(__file__).parent))
from _runner_helpers import LAYERS, InMemoryPairs, Tiny3DCNN, to_cnn_input


@pytest.fixture(autouse=True)
def _reset_accelerate():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _direct(model, pairs, n):
    """The same estimate computed by hand: full forward per member, hooks-free pooling."""
    est = StaticDynamicEstimator()
    with torch.no_grad():
        for i in range(n):
            it = pairs[i]
            feats = {}
            for key in ("clip_a", "clip_b"):
                x = to_cnn_input(it[key][None])
                h1 = model.stage1(x)
                h2 = model.stage2(h1)
                feats[key] = {"stage1": h1.mean(dim=(2, 3, 4)), "stage2": h2.mean(dim=(2, 3, 4))}
            for layer in LAYERS:
                est.update(feats["clip_a"][layer], feats["clip_b"][layer], [it["factor"]], layer=layer, pair_ids=[i])
    return est.compute()


def test_runner_matches_direct_computation():
    model = Tiny3DCNN()
    pairs = InMemoryPairs(40)
    res = probe(model, pairs, layers=LAYERS, forward_fn=to_cnn_input, batch_size=7, progress=False)
    ref = _direct(model, pairs, 40)
    assert list(res.layers) == ["stage1", "stage2"]
    for layer in LAYERS:
        assert res.layers[layer].s_static == pytest.approx(ref[layer].s_static, rel=1e-4)
        assert res.layers[layer].s_dynamic == pytest.approx(ref[layer].s_dynamic, rel=1e-4)
        assert res.layers[layer].percent == ref[layer].percent
    assert res.num_pairs == 40


def test_interrupted_run_resumes_to_identical_result(tmp_path):
    model = Tiny3DCNN()
    whole = probe(model, InMemoryPairs(50), layers=LAYERS, forward_fn=to_cnn_input, batch_size=4, progress=False)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        probe(
            model,
            InMemoryPairs(50, interrupt_at=33),
            layers=LAYERS,
            forward_fn=to_cnn_input,
            batch_size=4,
            checkpoint_dir=ckpt,
            save_every_pairs=8,
            progress=False,
        )
    saved = json.loads((ckpt / "probe_state_rank0.json").read_text())
    assert 0 < saved["done"] <= 33
    resumed = probe(
        model,
        InMemoryPairs(50),
        layers=LAYERS,
        forward_fn=to_cnn_input,
        batch_size=4,
        checkpoint_dir=ckpt,
        resume=True,
        progress=False,
    )
    for layer in LAYERS:
        assert resumed.layers[layer].to_dict() == whole.layers[layer].to_dict()
    with pytest.raises(ValueError, match="cannot resume"):
        probe(
            model,
            InMemoryPairs(60),
            layers=LAYERS,
            forward_fn=to_cnn_input,
            num_pairs=60,
            checkpoint_dir=ckpt,
            resume=True,
            progress=False,
        )


def test_bad_options():
    model = Tiny3DCNN()
    with pytest.raises(ValueError, match="num_pairs"):
        probe(model, InMemoryPairs(5), layers=LAYERS, forward_fn=to_cnn_input, num_pairs=6, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        probe(model, InMemoryPairs(5), layers=LAYERS, forward_fn=to_cnn_input, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="probing mixin"):
        probe(model, InMemoryPairs(5), progress=False)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        probe(model, InMemoryPairs(5), layers=LAYERS, forward_fn=to_cnn_input, resume=True, progress=False)


WORKER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import torch
    from _runner_helpers import LAYERS, InMemoryPairs, Tiny3DCNN, to_cnn_input
    from hf_stadyn.probing.engine import probe
    torch.set_num_threads(1)
    res = probe(Tiny3DCNN(), InMemoryPairs(30), layers=LAYERS, forward_fn=to_cnn_input, batch_size=4,
                cpu=True, progress=False)
    if res.settings["num_processes"] > 1 and int(__import__("os").environ["RANK"]) != 0:
        sys.exit(0)
    out = {k: v.to_dict() for k, v in res.layers.items()}
    out["_procs"] = res.settings["num_processes"]
    open(sys.argv[2], "w").write(json.dumps(out))
    """
)


def test_two_processes_gloo_equal_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    here = str(Path(__file__).parent)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run(
        [sys.executable, str(script), here, str(tmp_path / "one.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29561",
            str(script),
            here,
            str(tmp_path / "two.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "two.json").read_text())
    assert a.pop("_procs") == 1 and b.pop("_procs") == 2
    for layer in LAYERS:
        la, lb = a[layer], b[layer]
        assert la["num_pairs"] == lb["num_pairs"]
        assert la["percent"] == lb["percent"]
        assert la["categories"] == lb["categories"]
        assert lb["s_static"] == pytest.approx(la["s_static"], rel=1e-9)
        assert lb["intervals"]["s_dynamic"]["stderr"] == pytest.approx(la["intervals"]["s_dynamic"]["stderr"], rel=1e-9)
