"""The estimator across 2 gloo processes (torch.distributed.run, CPU): sync guard, compute() syncing, reductions.

One launch runs every scenario on both ranks (plain torch.distributed and through an accelerate
``Accelerator``) and writes what each rank saw; the test compares with one process over all pairs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hf_stadyn.metric import StaticDynamicEstimator

RTOL = 1e-9
N, C = 200, 12

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import torch.distributed as dist
    from accelerate import Accelerator
    from hf_stadyn.metric import StaticDynamicEstimator

    accelerator = Accelerator(cpu=True)   # initialises the gloo process group
    rank, world = dist.get_rank(), dist.get_world_size()
    d = np.load(sys.argv[1])
    za, zb, f = d["za"], d["zb"], list(d["f"])
    mine = np.arange(rank, len(f), world)
    out = {"world": world}

    def shard(est, layers=("l", "m")):
        for s in range(0, len(mine), 30):
            idx = mine[s:s + 30]
            est.update_layers({name: (za[idx] * (1 + k), zb[idx]) for k, name in enumerate(layers)},
                              [f[i] for i in idx], pair_ids=idx)
        return est

    def dump(res):
        return {k: v.to_dict() for k, v in res.items()}

    def next_ids(est):
        return {k: v["next_pair_id"] for k, v in est.state_dict()["layers"].items()}

    for path, acc in (("dist", None), ("accelerate", accelerator)):
        est = shard(StaticDynamicEstimator())
        local = est.num_pairs
        est.sync(acc)
        once = est.num_pairs
        est.sync(acc)
        est.sync()
        out[path] = {"local": local, "once": once, "twice": est.num_pairs, "next_ids": next_ids(est),
                     "synced": est.is_synced, "result": dump(est.compute())}
        try:
            est.update(za[:4], zb[:4], f[:4], layer="l")
            out[path]["update_after_sync"] = "no error"
        except RuntimeError as e:
            out[path]["update_after_sync"] = str(e)
        est.unsync()
        out[path]["after_unsync"] = est.num_pairs

    # compute() without sync(): syncs for the call, then restores this process's own state
    est = shard(StaticDynamicEstimator())
    out["auto"] = {"result": dump(est.compute()), "after": est.num_pairs, "synced": est.is_synced}
    est.update(za[mine[:4]], zb[mine[:4]], [f[i] for i in mine[:4]], layer="l", pair_ids=mine[:4])
    out["auto"]["again"] = dump(est.compute())["l"]["num_pairs"]
    # opting out: each process computes its own pairs
    out["no_sync"] = shard(StaticDynamicEstimator(sync_on_compute=False)).compute()["l"].num_pairs

    # a layer seen by one rank only, and a rank with no pairs at all, still sync
    est = StaticDynamicEstimator()
    if rank == 0:
        est.update(za[mine], zb[mine], [f[i] for i in mine], layer="only0", pair_ids=mine)
    shard(est, layers=("l",))
    out["partial"] = {"result": dump(est.compute())}
    empty = StaticDynamicEstimator()
    if rank == 0:
        empty.update(za, zb, f, layer="l")
    out["empty_rank"] = dump(empty.compute())["l"]["num_pairs"]

    # channel counts that differ between ranks: a clear error on every rank, no hang
    bad = StaticDynamicEstimator()
    bad.update(za[:, : 3 + rank], zb[:, : 3 + rank], f, layer="x")
    try:
        bad.sync()
        out["mismatch"] = "no error"
    except ValueError as e:
        out["mismatch"] = str(e)

    with open(f"{sys.argv[2]}.rank{rank}.json", "w") as fh:
        json.dump(out, fh)
    # an orderly teardown: without it a rank can leave while gloo still talks to it (seen once: SIGABRT,
    # "terminate called without an active exception", at interpreter exit)
    dist.barrier()
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(seed: int = 13):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(N, C)) * rng.uniform(0.5, 2.0, size=C)
    za = 3.0 + shared + rng.normal(size=(N, C))
    zb = 3.0 + 0.7 * shared + 1.3 * rng.normal(size=(N, C))
    f = rng.choice(["dynamic", "static"], size=N)
    st = f == "static"
    zb[st] = 0.9 * za[st] + 0.3 * rng.normal(size=(int(st.sum()), C))
    return za, zb, f


def _one_process(za, zb, f, layers=("l", "m")):
    est = StaticDynamicEstimator()
    est.update_layers({name: (za * (1 + k), zb) for k, name in enumerate(layers)}, list(f), pair_ids=np.arange(len(f)))
    return {k: v.to_dict() for k, v in est.compute().items()}


def _assert_close(got: dict, exp: dict) -> None:
    assert got["num_pairs"] == exp["num_pairs"]
    assert got["percent"] == exp["percent"]
    assert got["categories"] == exp["categories"]
    assert got["s_static"] == pytest.approx(exp["s_static"], rel=RTOL)
    assert got["s_dynamic"] == pytest.approx(exp["s_dynamic"], rel=RTOL)
    np.testing.assert_allclose(got["rho_static"], exp["rho_static"], rtol=RTOL)
    for key, iv in exp["intervals"].items():
        assert got["intervals"][key]["stderr"] == pytest.approx(iv["stderr"], rel=RTOL)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metric_dist")
    za, zb, f = _data()
    np.savez(tmp / "data.npz", za=za, zb=zb, f=f)
    (tmp / "worker.py").write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    run = subprocess.run(
        [*cmd, str(tmp / "worker.py"), str(tmp / "data.npz"), str(tmp / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    outs = [json.loads((tmp / f"out.rank{r}.json").read_text()) for r in range(2)]
    assert [o["world"] for o in outs] == [2, 2]
    return outs, (za, zb, f)


@pytest.mark.parametrize("path", ["dist", "accelerate"])
def test_sync_twice_does_not_double(ranks, path):
    """The bug of issue 9: a second sync() summed the already-summed totals ({4,4} -> {8,8})."""
    outs, (za, zb, f) = ranks
    total = {"dynamic": int((f == "dynamic").sum()), "static": int((f == "static").sum())}
    for rank, out in enumerate(outs):
        o = out[path]
        assert o["once"]["l"] == o["twice"]["l"] == total
        assert sum(o["local"]["l"].values()) == N // 2
        assert o["synced"] is True
        assert o["after_unsync"] == o["local"], rank


@pytest.mark.parametrize("path", ["dist", "accelerate"])
def test_synced_result_equals_one_process_and_counter_is_max(ranks, path):
    outs, (za, zb, f) = ranks
    exp = _one_process(za, zb, f)
    for out in outs:
        for layer in ("l", "m"):
            _assert_close(out[path]["result"][layer], exp[layer])
        # pair ids are global: rank 0 saw 0..198, rank 1 saw 1..199 -> the counter is 200 (a sum would give 399)
        assert out[path]["next_ids"] == {"l": N, "m": N}


@pytest.mark.parametrize("path", ["dist", "accelerate"])
def test_update_after_sync_raises(ranks, path):
    for out in ranks[0]:
        assert "synced estimator" in out[path]["update_after_sync"] and "unsync()" in out[path]["update_after_sync"]


def test_compute_syncs_by_itself_and_restores_local_state(ranks):
    outs, (za, zb, f) = ranks
    exp = _one_process(za, zb, f)
    for out in outs:
        for layer in ("l", "m"):
            _assert_close(out["auto"]["result"][layer], exp[layer])
        assert out["auto"]["synced"] is False
        assert sum(out["auto"]["after"]["l"].values()) == N // 2
        # both ranks added 4 more pairs after the first compute(): the second one counts them once
        assert sum(out["auto"]["again"].values()) == N + 8
        assert sum(out["no_sync"].values()) == N // 2


def test_layers_missing_on_a_rank_and_empty_ranks_sync(ranks):
    outs, (za, zb, f) = ranks
    exp = _one_process(za, zb, f, layers=("l",))
    only0 = _one_process(za[0::2], zb[0::2], f[0::2], layers=("only0",))
    full = {"dynamic": int((f == "dynamic").sum()), "static": int((f == "static").sum())}
    for out in outs:
        assert list(out["partial"]["result"]) == ["only0", "l"]
        _assert_close(out["partial"]["result"]["l"], exp["l"])
        assert out["partial"]["result"]["only0"]["num_pairs"] == only0["only0"]["num_pairs"]
        assert out["empty_rank"] == full


def test_channel_mismatch_is_a_clear_error_on_every_rank(ranks):
    for out in ranks[0]:
        assert "every process must probe the same layers" in out["mismatch"]
