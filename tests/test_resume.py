"""Resume state of the probe engine: saved without pickle, at least every N pairs, on errors and signals,
refused when anything that changes the numbers differs, and a resumed run gives the same bits.

The subprocess tests interrupt a real run with SIGTERM / SIGKILL; every wait on it is bounded (300 polls of
0.1 s, then ``communicate`` with a timeout) so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config
from hf_stadyn.pairs import ProbePairs
from hf_stadyn.probing.engine import SETTINGS_KEYS, _Signals, model_fingerprint, probe

torch.set_num_threads(1)

LAYERS = ["block_1", "pre_classifier"]


@pytest.fixture(autouse=True)
def _reset_accelerate():
    """Each probe() makes an Accelerator; accelerate's process-wide state refuses another mixed precision."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _reset() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def _model(seed: int = 0) -> StadynVideoMAEForVideoClassification:
    torch.manual_seed(seed)
    return StadynVideoMAEForVideoClassification(tiny_videomae_config(3, num_frames=4, image_size=32))


def _pairs(seed: int = 3, num_pairs: int = 40) -> ProbePairs:
    clips = np.random.default_rng(0).integers(0, 255, size=(9, 4, 32, 32, 3), dtype=np.uint8)
    return ProbePairs(list(clips), num_pairs=num_pairs, seed=seed)


class _Failing(torch.utils.data.Dataset):
    """The same pairs, but item ``at`` raises ``error`` (an interruption or a bad file mid-run); ``seen``
    records, per item fetched, the pairs done in the saved state at that moment (None: no state yet)."""

    def __init__(self, pairs, at: int, error: BaseException, state_dir: Path | None = None):
        self.pairs, self.at, self.error, self.state_dir = pairs, at, error, state_dir
        self.seen: list[int | None] = []

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        if self.state_dir is not None:
            f = self.state_dir / "probe_state_rank0.json"
            self.seen.append(json.loads(f.read_text())["done"] if f.is_file() else None)
        if i == self.at:
            raise self.error
        return self.pairs[i]


def _same(a, b) -> None:
    """Bit-identical readings: every layer's to_dict (floats compared exactly) and the settings."""
    assert list(a.layers) == list(b.layers)
    for name in a.layers:
        assert a.layers[name].to_dict() == b.layers[name].to_dict(), name
    assert json.dumps(a.settings) == json.dumps(b.settings)


def test_resume_with_another_batch_size_and_worker_count_gives_the_same_bits(tmp_path):
    """Run 2 is interrupted after 5 batches of 4 pairs, then resumed with batch size 3 and 2 DataLoader
    workers: the numbers and the settings equal run 1's bit for bit (the tiny VideoMAE's batched forward
    is batch-invariant on the CPU with one thread, and pairs enter the float64 sums one by one in index
    order). A bug that re-adds or skips the pairs of the interrupted batch, or restarts the chunk
    numbering, changes the counts or the sums."""
    model, pairs = _model(), _pairs()
    whole = probe(model, pairs, LAYERS, batch_size=4, progress=False, cpu=True)
    ckpt = tmp_path / "state"
    with pytest.raises(KeyboardInterrupt):
        probe(model, _Failing(pairs, 21, KeyboardInterrupt()), LAYERS, batch_size=4, progress=False, cpu=True,
              checkpoint_dir=ckpt, save_every_pairs=1000)  # fmt: skip
    doc = json.loads((ckpt / "probe_state_rank0.json").read_text())
    assert doc["done"] == 20  # saved on the interruption, whole batches only
    assert sorted(p.suffix for p in ckpt.iterdir()) == [".json", ".safetensors"]  # no pickle
    resumed = probe(model, pairs, LAYERS, batch_size=3, num_workers=2, progress=False, cpu=True,
                    checkpoint_dir=ckpt, resume=True)  # fmt: skip
    _same(resumed, whole)
    assert set(whole.settings) == set(SETTINGS_KEYS) and "batch_size" not in whole.settings
    assert whole.settings["model_fingerprint"] == model_fingerprint(model)["sha256"]


def test_state_is_saved_every_n_pairs_and_kept_after_an_error(tmp_path):
    """save_every_pairs=8 with batches of 4: the state on disk says 8 pairs done while the third batch
    loads and 16 while the fifth does (a save per batch count, or none until the end, reads otherwise);
    a ValueError at pair 21 (a bad video mid-run) leaves the state of the 20 pairs done, and the run
    resumes to the uninterrupted numbers."""
    model, pairs = _model(), _pairs()
    ckpt = tmp_path / "state"
    failing = _Failing(pairs, 21, ValueError("video 3 is corrupt"), state_dir=ckpt)
    with pytest.raises(ValueError, match="corrupt"):
        probe(model, failing, LAYERS, batch_size=4, progress=False, cpu=True, checkpoint_dir=ckpt,
              save_every_pairs=8)  # fmt: skip
    assert failing.seen[:8] == [None] * 8  # items 0-7: nothing saved yet
    assert failing.seen[8:16] == [8] * 8  # saved after pair 8 (batch 2 done), not after batch 3
    assert failing.seen[16:22] == [16] * 6  # saved after pair 16; pairs 20-21 are in the failing batch
    assert json.loads((ckpt / "probe_state_rank0.json").read_text())["done"] == 20
    resumed = probe(model, pairs, LAYERS, batch_size=4, progress=False, cpu=True, checkpoint_dir=ckpt, resume=True)
    _same(resumed, probe(model, pairs, LAYERS, batch_size=4, progress=False, cpu=True))


def test_checkpoint_every_is_deprecated_and_counts_batches(tmp_path):
    model, pairs = _model(), _pairs()
    ckpt = tmp_path / "state"
    failing = _Failing(pairs, 13, KeyboardInterrupt(), state_dir=ckpt)
    with pytest.warns(DeprecationWarning, match="save_every_pairs"), pytest.raises(KeyboardInterrupt):
        probe(model, failing, LAYERS, batch_size=2, progress=False, cpu=True, checkpoint_dir=ckpt,
              checkpoint_every=3)  # fmt: skip
    assert failing.seen[6:8] == [6, 6] and failing.seen[12] == 12  # 3 batches of 2 pairs between saves


def test_resume_refuses_what_changes_the_numbers_and_names_every_field(tmp_path):
    """Each change that alters the numbers is refused by name (and a refusal leaves the state as it was);
    several at once are all named."""
    model, pairs = _model(), _pairs()
    ckpt = tmp_path / "state"
    kw = dict(batch_size=4, progress=False, cpu=True, checkpoint_dir=ckpt, run_identity={"revision": "main"})
    with pytest.raises(KeyboardInterrupt):
        probe(model, _Failing(pairs, 13, KeyboardInterrupt()), LAYERS, **kw)
    before = (ckpt / "probe_state_rank0.json").read_bytes()

    def refused(match: str, m=model, p=pairs, layers=LAYERS, **changes):
        _reset()
        with pytest.raises(ValueError, match=match) as info:
            probe(m, p, layers, **{**kw, **changes}, resume=True)
        msg = str(info.value)
        assert msg.startswith(f"cannot resume from {ckpt}: ") and "\n" not in msg
        assert msg.endswith("rerun with the original settings or start fresh (resume=False; stadyn probe --overwrite).")
        return msg

    refused(r"seed/pairs differ \(saved fingerprint [0-9a-f]{12}\.\. vs [0-9a-f]{12}\.\.\)", p=_pairs(seed=4))
    refused(r"threshold 0\.5 vs 0\.6", threshold=0.6)
    refused(r"num_chunks 10 vs 5", num_chunks=5)
    refused(r"num_pairs 40 vs 36", num_pairs=36)
    refused(r'layers \["block_1", "pre_classifier"\] vs \["pre_classifier"\]', layers=["pre_classifier"])
    refused(r'mixed_precision "no" vs "bf16"', mixed_precision="bf16")
    refused(r'revision "main" vs "v2"', run_identity={"revision": "v2"})
    other = _model()
    with torch.no_grad():
        other.classifier.weight[0, 0] += 1e-3
    refused(r"model weights differ \(saved fingerprint", m=other)
    msg = refused("seed/pairs differ", p=_pairs(seed=4), threshold=0.6, run_identity={})
    assert "threshold 0.5 vs 0.6" in msg and 'revision "main" vs null' in msg
    assert (ckpt / "probe_state_rank0.json").read_bytes() == before  # refusals do not touch the state
    # what does not change the numbers resumes: batch size, workers, progress
    _reset()
    probe(model, pairs, LAYERS, **{**kw, "batch_size": 5}, resume=True)


class _Marker:
    """Unpickling this creates ``path``: proof that a state file was unpickled."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_an_old_pickle_state_is_refused_and_never_unpickled(tmp_path):
    ckpt = tmp_path / "state"
    ckpt.mkdir()
    marker = tmp_path / "unpickled"
    (ckpt / "probe_state_rank0.pt").write_bytes(pickle.dumps({"estimator": _Marker(marker), "done": 4}))
    with pytest.raises(ValueError, match=r"probe_state_rank0\.pt is a probe state of an older hf_stadyn") as info:
        probe(_model(), _pairs(), LAYERS, progress=False, cpu=True, checkpoint_dir=ckpt, resume=True)
    assert "rerun without resume" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_a_damaged_state_is_refused_with_one_line(tmp_path):
    model, pairs = _model(), _pairs(num_pairs=12)
    ckpt = tmp_path / "state"
    with pytest.raises(KeyboardInterrupt):
        probe(model, _Failing(pairs, 9, KeyboardInterrupt()), LAYERS, batch_size=4, progress=False, cpu=True,
              checkpoint_dir=ckpt)  # fmt: skip
    (tensors,) = ckpt.glob("*.safetensors")
    tensors.write_bytes(tensors.read_bytes()[:-10])
    with pytest.raises(ValueError, match="damaged or incomplete .*does not match its recorded sha256"):
        probe(model, pairs, LAYERS, progress=False, cpu=True, checkpoint_dir=ckpt, resume=True)
    (ckpt / "probe_state_rank0.json").write_text("{not json")
    with pytest.raises(ValueError, match="damaged or incomplete"):
        probe(model, pairs, LAYERS, progress=False, cpu=True, checkpoint_dir=ckpt, resume=True)


def test_signal_handlers_are_restored_and_sigint_waits_for_a_whole_update():
    """probe() puts the previous SIGTERM / SIGINT handlers back (after success and after an error), and a
    SIGINT that arrives while a batch is being added is raised only once the batch is in (else a saved
    state could hold some layers of a batch and not others)."""
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt), _Signals(enabled=True) as sig:
        assert signal.getsignal(signal.SIGTERM) == sig._on_term
        with sig.whole():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0)  # let the handler run
            done.append("rest of the batch")
    assert done == ["rest of the batch"]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_model_fingerprint_follows_weights_config_and_class():
    a, b = _model(), _model()
    fa = model_fingerprint(a)
    assert fa == model_fingerprint(b) and fa["weights"] == "full"
    with torch.no_grad():
        b.classifier.bias[0] += 1e-6
    fb = model_fingerprint(b)
    assert fb["weights_sha256"] != fa["weights_sha256"] and fb["config_sha256"] == fa["config_sha256"]
    c = _model()
    c.config.threshold_note = "x"  # any config field
    assert model_fingerprint(c)["config_sha256"] != fa["config_sha256"]
    assert model_fingerprint(torch.nn.Linear(2, 2))["config_sha256"] is None


# -- real signals in a subprocess -----------------------------------------------------------------------
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, torch
    from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config
    from hf_stadyn.pairs import ProbePairs
    from hf_stadyn.probing.engine import probe

    torch.set_num_threads(1)
    mode, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.manual_seed(0)
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(3, num_frames=4, image_size=32))
    clips = np.random.default_rng(0).integers(0, 255, size=(9, 4, 32, 32, 3), dtype=np.uint8)
    pairs = ProbePairs(list(clips), num_pairs=160, seed=3)

    class Slow(torch.utils.data.Dataset):  # the same pairs, slowly: the run lasts long enough to signal
        def __len__(self):
            return len(pairs)
        def __getitem__(self, i):
            time.sleep(0.02)
            return pairs[i]

    kw = dict(batch_size=4, progress=False, cpu=True, layers=["block_1", "pre_classifier"])
    try:
        if mode == "whole":
            res = probe(model, pairs, **kw)
        elif mode == "slow":
            res = probe(model, Slow(), checkpoint_dir=ckpt, save_every_pairs=8, **kw)
        else:
            res = probe(model, pairs, checkpoint_dir=ckpt, resume=True, **{**kw, "batch_size": 3})
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    doc = {"layers": {k: v.to_dict() for k, v in res.layers.items()}, "settings": res.settings}
    open(out, "w").write(json.dumps(doc, sort_keys=True))
    """
)


def _run(tmp_path: Path, mode: str, ckpt: Path, out: Path) -> subprocess.Popen:
    script = tmp_path / "run_probe.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(script), mode, str(ckpt), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the probe subprocess hung; stderr: {err[-2000:]}")
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The uninterrupted run's output, as a call: its process starts now and runs beside the first test's own
    (each is single-threaded); the first call waits for it."""
    d = tmp_path_factory.mktemp("whole")
    proc = _run(d, "whole", d / "unused", d / "whole.json")
    done: list[str] = []

    def result() -> str:
        if not done:
            rc, _, err = _finish(proc)
            assert rc == 0, err[-3000:]
            done.append((d / "whole.json").read_text())
        return done[0]

    yield result
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_real_signal_mid_run_then_resume_gives_the_same_bits(tmp_path, sig, uninterrupted):
    """SIGTERM: the run saves after the current batch and exits through KeyboardInterrupt (130 here, as
    the CLI does); SIGKILL: nothing runs, the last periodic save (every 8 pairs) survives. Either way a
    new process resumes (with another batch size) to the uninterrupted run's bytes."""
    ckpt, out = tmp_path / "state", tmp_path / "resumed.json"
    proc = _run(tmp_path, "slow", ckpt, tmp_path / "never.json")
    state = ckpt / "probe_state_rank0.json"
    for _ in range(300):  # bounded: 30 s for the first save (8 pairs at 0.04 s each, plus start-up)
        if state.is_file() or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert state.is_file(), f"no state appeared; stderr: {proc.stderr.read()[-3000:] if proc.poll() else ''}"
    proc.send_signal(sig)
    rc, stdout, err = _finish(proc)
    if sig == signal.SIGTERM:
        assert rc == 130 and "interrupted" in stdout, err[-3000:]
    else:
        assert rc == -signal.SIGKILL
    done = json.loads(state.read_text())["done"]
    assert 8 <= done < 160 and not (tmp_path / "never.json").exists()
    rc, _, err = _finish(_run(tmp_path, "resume", ckpt, out))
    assert rc == 0, err[-3000:]
    assert out.read_text() == uninterrupted()
