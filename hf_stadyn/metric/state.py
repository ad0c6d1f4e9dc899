"""The estimator's state: validated feature batches, jackknife chunks and per-layer sufficient statistics.

:class:`LayerStats` holds, for one layer, ``n: (2, K)`` pairs and ``stats: (2, K, 4, C)`` sums in float64
(factor x chunk x {sum_a, sum_b, sumsq, sum_ab} x channel; docs/method.md §5). It lives on the device of
the features it is fed (CPU or CUDA; other devices, e.g. MPS without float64, keep it on the CPU), and
moves to the CPU only to compute (:mod:`hf_stadyn.metric.stats`).

Which chunk a pair goes to is decided by :func:`assign_chunks` alone: ``group % K`` for the pair's group
(its source video, docs/method.md §5), or ``pair_id % K`` for pairs without one.

The probe engine's resume files live here too (:func:`save_probe_state`, :func:`load_probe_state`): the
estimator's tensors in safetensors and everything else in JSON, never pickle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .factors import parse_factors
from .results import Interval, LayerBias
from .stats import NUM_STATS, estimate_from_totals, jackknife_intervals, layer_bias

if TYPE_CHECKING:
    import torch

__all__ = [
    "PROBE_STATE_VERSION",
    "FeatureBatch",
    "LayerStats",
    "as_float64_features",
    "assign_chunks",
    "check_confidence",
    "check_ids",
    "check_num_chunks",
    "load_probe_state",
    "prepare_batch",
    "save_probe_state",
    "state_device",
]

_N_STATS = NUM_STATS  # old private name


def assign_chunks(ids: np.ndarray, num_chunks: int) -> np.ndarray:
    """The jackknife chunk ``(B,)`` int64 of each pair: ``id % K`` of its group (source video) or pair id.

    The one place that decides chunk membership: the estimator and the functional form both call it.
    Given groups (the source-video indices ``(B,)``), all pairs of one video land in one chunk, so the
    jackknife resamples videos, the independent unit (docs/method.md §5); consecutive video indices
    spread over the K chunks evenly. Given pair ids, chunks are by pair (for pairs without videos).
    """
    return (np.asarray(ids) % num_chunks).astype(np.int64)


def check_ids(ids: Any, batch: int, what: str) -> np.ndarray:
    """Validate ``(B,)`` non-negative integer ids (pair ids or groups) and return them as int64 numpy."""
    if hasattr(ids, "detach"):  # a torch tensor, possibly on an accelerator
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids).reshape(-1)
    if arr.shape[0] != batch or arr.dtype.kind not in "iu" or (arr < 0).any():
        raise ValueError(f"{what} must be {batch} non-negative integers (one per pair), got {arr!r}.")
    return arr.astype(np.int64)


def check_num_chunks(num_chunks: Any) -> int:
    if not (isinstance(num_chunks, int) and num_chunks >= 1):
        raise ValueError(f"num_chunks must be a positive integer, got {num_chunks!r}.")
    return num_chunks


def check_confidence(confidence: Any) -> float:
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")
    return float(confidence)


def state_device(device: Any) -> torch.device:
    """Where float64 state for features on ``device`` lives: that device if CPU or CUDA, else the CPU."""
    import torch

    device = torch.device(device)
    return device if device.type in ("cpu", "cuda") else torch.device("cpu")


def as_float64_features(x: Any, name: str) -> torch.Tensor:
    """Validate one feature batch ``(B, C)`` and return it as a float64 torch tensor on its own device."""
    import torch

    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point()):
            raise ValueError(
                f"{name} has dtype {x.dtype}; pooled features must be floating point (cast with .float())."
            )
        t = x.detach().to(torch.float64)
    else:
        arr = np.asarray(x)
        if arr.dtype.kind != "f":
            raise ValueError(
                f"{name} has dtype {arr.dtype}; pooled features must be floating point (cast with .astype(np.float32))."
            )
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
    if t.ndim != 2:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)}; expected (B, C) pooled features "
            "(pool maps/tokens first, see hf_stadyn.probing)."
        )
    if t.shape[1] == 0:
        raise ValueError(f"{name} has C = 0 channels; a layer needs at least one channel.")
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); check the model's numerics "
            "(e.g. fp16 overflow) before probing."
        )
    return t


@dataclass
class FeatureBatch:
    """One validated batch of one layer: ``a, b`` float64 tensors (B, C); ``factors``, ``pair_ids`` int64 (B,);
    ``groups`` int64 (B,) source-video ids or None (chunks by pair id)."""

    a: torch.Tensor
    b: torch.Tensor
    factors: np.ndarray
    pair_ids: np.ndarray
    groups: np.ndarray | None = None

    @property
    def chunk_ids(self) -> np.ndarray:
        """What :func:`assign_chunks` reads: the groups when given, else the pair ids."""
        return self.groups if self.groups is not None else self.pair_ids

    @property
    def num_channels(self) -> int:
        return int(self.a.shape[1])


def prepare_batch(
    z_a: Any,
    z_b: Any,
    factors: Any,
    *,
    layer: str,
    pair_ids: Sequence[int] | np.ndarray | None = None,
    first_pair_id: int = 0,
    groups: Sequence[int] | np.ndarray | None = None,
) -> FeatureBatch:
    """Validate ``z_a, z_b: (B, C)``, the factor labels, the pair ids and the groups of one layer's batch.

    Without ``pair_ids`` the pairs are numbered ``first_pair_id, first_pair_id + 1, ...``.
    """
    if z_b is None or factors is None:
        raise ValueError("update() needs z_a, z_b and factors (one label per pair).")
    a = as_float64_features(z_a, f"z_a (layer {layer!r})")
    b = as_float64_features(z_b, f"z_b (layer {layer!r})")
    if a.shape != b.shape:
        raise ValueError(
            f"layer {layer!r}: z_a has shape {tuple(a.shape)} but z_b has {tuple(b.shape)}; both "
            "members of each pair must have the same (B, C) shape."
        )
    batch = int(a.shape[0])
    f_idx = parse_factors(factors, batch)
    if pair_ids is None:
        ids = np.arange(first_pair_id, first_pair_id + batch)
    else:
        ids = check_ids(pair_ids, batch, "pair_ids")
    grp = check_ids(groups, batch, "groups") if groups is not None else None
    return FeatureBatch(a=a, b=b, factors=f_idx, pair_ids=ids, groups=grp)


class LayerStats:
    """Sufficient statistics of one layer: ``n (2, K)`` and ``stats (2, K, 4, C)`` in float64.

    Index 0 of the first axis is the dynamic factor, 1 the static factor; K is the number of chunks.
    The tensors are plain (never inference) tensors on ``device``.
    """

    def __init__(self, num_channels: int, num_chunks: int, device: Any = None):
        import torch

        self.num_channels = int(num_channels)
        self.num_chunks = int(num_chunks)
        dev = state_device(device if device is not None else "cpu")
        with torch.inference_mode(False):
            self.n = torch.zeros(2, num_chunks, dtype=torch.float64, device=dev)
            self.stats = torch.zeros(2, num_chunks, NUM_STATS, num_channels, dtype=torch.float64, device=dev)

    @property
    def device(self) -> torch.device:
        return self.n.device

    def to(self, device: Any) -> LayerStats:
        """Move the state to ``device`` (in place; CPU for devices without float64) and return self."""
        import torch

        dev = state_device(device)
        if dev != self.n.device:
            with torch.inference_mode(False):
                self.n = self.n.to(dev)
                self.stats = self.stats.to(dev)
        return self

    def clone(self) -> LayerStats:
        import torch

        out = LayerStats.__new__(LayerStats)
        out.num_channels, out.num_chunks = self.num_channels, self.num_chunks
        with torch.inference_mode(False):
            out.n, out.stats = self.n.clone(), self.stats.clone()
        return out

    # -- accumulation ---------------------------------------------------------------------------
    def add(self, za: torch.Tensor, zb: torch.Tensor, factor_idx: torch.Tensor, chunk_idx: torch.Tensor) -> None:
        """Add a validated batch: za, zb float64 (B, C) tensors; indices int64 tensors (B,).

        The state first moves to the features' device. On the CPU the sums use ``index_add_``; on other
        devices a one-hot matrix product, which (unlike CUDA's atomic ``index_add_``) gives the same
        bits on every run.
        """
        import torch

        self.to(za.device)
        dev = self.n.device
        slot = (factor_idx * self.num_chunks + chunk_idx).to(dev)  # (B,)
        per_pair = torch.stack([za, zb, za * za + zb * zb, za * zb], dim=1).to(dev)  # (B, 4, C)
        flat = self.stats.view(2 * self.num_chunks, NUM_STATS, self.num_channels)
        accumulate = _accumulate_index_add if dev.type == "cpu" else _accumulate_matmul
        accumulate(flat, self.n.view(-1), slot, per_pair)

    def merge_(self, other: LayerStats) -> None:
        if other.num_channels != self.num_channels or other.num_chunks != self.num_chunks:
            raise ValueError(
                f"cannot merge statistics of shape (C={other.num_channels}, K={other.num_chunks}) "
                f"into (C={self.num_channels}, K={self.num_chunks}); estimators must probe the same "
                "layers with the same num_chunks."
            )
        self.n += other.n.to(self.n.device)
        self.stats += other.stats.to(self.stats.device)

    # -- estimation -----------------------------------------------------------------------------
    _estimate = staticmethod(estimate_from_totals)

    def compute(self, layer: str, threshold: float = 0.5, confidence: float = 0.95) -> LayerBias:
        """The layer's reading (moves the state to the CPU as NumPy; the state itself stays put)."""
        n_k = self.n.cpu().numpy()  # (2, K)
        st_k = self.stats.cpu().numpy()  # (2, K, 4, C)
        return layer_bias(n_k, st_k, layer, threshold=threshold, confidence=confidence)

    def _jackknife(self, n_k: np.ndarray, st_k: np.ndarray, c: int, confidence: float) -> dict[str, Interval]:
        return jackknife_intervals(n_k, st_k, confidence)


def _accumulate_index_add(flat: torch.Tensor, n_flat: torch.Tensor, slot: torch.Tensor, per_pair: torch.Tensor) -> None:
    """``flat[slot[i]] += per_pair[i]``, ``n_flat[slot[i]] += 1`` with ``index_add_`` (CPU: fixed order).

    Shapes: ``flat (2K, 4, C)``, ``n_flat (2K,)``, ``slot (B,)`` int64, ``per_pair (B, 4, C)``.
    """
    import torch

    flat.index_add_(0, slot, per_pair)
    n_flat.index_add_(0, slot, torch.ones_like(slot, dtype=torch.float64, device=n_flat.device))


def _accumulate_matmul(flat: torch.Tensor, n_flat: torch.Tensor, slot: torch.Tensor, per_pair: torch.Tensor) -> None:
    """The same sums as :func:`_accumulate_index_add` through a one-hot ``(2K, B)`` matrix product.

    Used off the CPU: CUDA's ``index_add_`` adds with atomics in a varying order, a matrix product
    gives the same bits on every run.
    """
    import torch

    onehot = torch.zeros(flat.shape[0], slot.shape[0], dtype=torch.float64, device=slot.device)
    onehot[slot, torch.arange(slot.shape[0], device=slot.device)] = 1.0
    flat += (onehot @ per_pair.reshape(per_pair.shape[0], -1)).view_as(flat)
    n_flat += onehot.sum(1)


# -- resume files of the probe engine ------------------------------------------------------------------
#: Format of the probe engine's resume files (``probe_state_rank{r}.json`` + a safetensors file).
PROBE_STATE_VERSION = 1
_STATE_JSON = "probe_state_rank{rank}.json"
_STATE_TENSORS = "probe_state_rank{rank}.{token}.safetensors"
_OLD_PICKLE = "probe_state_rank{rank}.pt"  # hf_stadyn <= 0.x: torch.save, refused on resume (never unpickled)
_DIGEST_HEX = 64  # characters of a sha256 hex digest


def _records_to_tensors(records: Sequence[tuple]) -> dict[str, torch.Tensor]:
    """Fingerprint records ``(index, factor, video_index, sha256 a, sha256 b)`` as ``ints (N, 3)`` int64 and
    ``digests (N, 128)`` uint8 (the two hex digests as ASCII, an empty digest as zeros)."""
    import torch

    ints = np.asarray([r[:3] for r in records], dtype=np.int64).reshape(-1, 3)
    raw = b"".join(r[3].encode().ljust(_DIGEST_HEX, b"\0") + r[4].encode().ljust(_DIGEST_HEX, b"\0") for r in records)
    digests = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2 * _DIGEST_HEX)
    return {"records.ints": torch.from_numpy(ints.copy()), "records.digests": torch.from_numpy(digests.copy())}


def _records_from_tensors(tensors: Mapping[str, torch.Tensor]) -> list[tuple]:
    ints = tensors["records.ints"].numpy()
    digests = tensors["records.digests"].numpy()
    out = []
    for (i, f, g), d in zip(ints.tolist(), digests):
        raw = d.tobytes()
        ha = raw[:_DIGEST_HEX].rstrip(b"\0").decode()
        hb = raw[_DIGEST_HEX:].rstrip(b"\0").decode()
        out.append((int(i), int(f), int(g), ha, hb))
    return out


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_probe_state(
    directory: str | os.PathLike, rank: int, state: Mapping[str, Any], records: Sequence[tuple], meta: Mapping[str, Any]
) -> Path:
    """Write one process's resume state atomically; return the JSON file's path.

    ``state`` is an estimator ``state_dict()``: its tensors (per layer ``n (2, K)``, ``stats (2, K, 4, C)``
    float64, ``groups (G,)`` int64) and the fingerprint ``records`` go to a fresh
    ``probe_state_rank{rank}.<token>.safetensors``; the rest (``meta``: pairs done, identity, ...) and the
    file's name and sha256 to ``probe_state_rank{rank}.json``, written last. A run killed at any moment
    leaves either the old JSON and its tensors or the new ones; older tensor files go afterwards.
    """
    from safetensors.torch import save_file

    from hf_stadyn._io import atomic_path, atomic_write_json

    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    layers = []
    for i, (name, s) in enumerate(state["layers"].items()):
        tensors[f"layer{i}.n"] = s["n"].contiguous()
        tensors[f"layer{i}.stats"] = s["stats"].contiguous()
        tensors[f"layer{i}.groups"] = s["groups"].contiguous()
        layers.append({"name": name, "next_pair_id": int(s["next_pair_id"]), "chunking": str(s["chunking"])})
    tensors.update(_records_to_tensors(records))
    tensor_path = directory / _STATE_TENSORS.format(rank=rank, token=secrets.token_hex(6))
    with atomic_path(tensor_path) as tmp:
        save_file(tensors, str(tmp))
    doc = {
        "format": "hf_stadyn probe state",
        "version": PROBE_STATE_VERSION,
        "rank": int(rank),
        **dict(meta),
        "estimator": {
            "version": int(state["version"]),
            "threshold": float(state["threshold"]),
            "num_chunks": int(state["num_chunks"]),
            "confidence": float(state["confidence"]),
            "layers": layers,
        },
        "tensors": tensor_path.name,
        "tensors_sha256": _file_sha256(tensor_path),
    }
    json_path = directory / _STATE_JSON.format(rank=rank)
    atomic_write_json(json_path, doc)
    for old in directory.glob(_STATE_TENSORS.format(rank=rank, token="*")):
        if old.name != tensor_path.name:
            with contextlib.suppress(OSError):
                old.unlink()
    return json_path


def load_probe_state(
    directory: str | os.PathLike, rank: int
) -> tuple[dict[str, Any], list[tuple], dict[str, Any]] | None:
    """Read what :func:`save_probe_state` wrote: ``(estimator state_dict, records, JSON document)``.

    Returns None when ``directory`` holds no state for ``rank``. Raises ValueError (one line) for a state
    of an older hf_stadyn (a pickle ``probe_state_rank{rank}.pt``, never loaded), another format version,
    or a damaged or incomplete state.
    """
    import torch
    from safetensors.torch import load_file

    directory = Path(directory)
    json_path = directory / _STATE_JSON.format(rank=rank)
    if not json_path.is_file():
        old = directory / _OLD_PICKLE.format(rank=rank)
        if old.is_file():
            raise ValueError(
                f"cannot resume from {directory}: {old.name} is a probe state of an older hf_stadyn (a pickle "
                "file, not loaded); rerun without resume (stadyn probe --overwrite) to start fresh."
            )
        return None

    def damaged(why: str) -> ValueError:
        return ValueError(
            f"cannot resume from {directory}: its probe state {json_path.name} is damaged or incomplete ({why}); "
            "rerun without resume (stadyn probe --overwrite) to start fresh."
        )

    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise damaged(f"unreadable JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != "hf_stadyn probe state":
        raise damaged("not a probe state document")
    if doc.get("version") != PROBE_STATE_VERSION:
        raise ValueError(
            f"cannot resume from {directory}: its probe state has format version {doc.get('version')!r}, this "
            f"hf_stadyn reads version {PROBE_STATE_VERSION}; rerun without resume (stadyn probe --overwrite)."
        )
    try:
        tensor_path = directory / Path(str(doc["tensors"])).name
        if not tensor_path.is_file():
            raise damaged(f"{tensor_path.name} is missing")
        if _file_sha256(tensor_path) != doc["tensors_sha256"]:
            raise damaged(f"{tensor_path.name} does not match its recorded sha256")
        try:
            tensors = load_file(str(tensor_path))
        except Exception as err:  # safetensors' SafetensorError has no public base class to name
            raise damaged(f"{tensor_path.name}: {err}") from None
        est = doc["estimator"]
        state = {
            "version": int(est["version"]),
            "threshold": float(est["threshold"]),
            "num_chunks": int(est["num_chunks"]),
            "confidence": float(est["confidence"]),
            "layers": {
                layer["name"]: {
                    "n": tensors[f"layer{i}.n"].to(torch.float64),
                    "stats": tensors[f"layer{i}.stats"].to(torch.float64),
                    "groups": tensors[f"layer{i}.groups"].to(torch.int64),
                    "next_pair_id": int(layer["next_pair_id"]),
                    "chunking": str(layer["chunking"]),
                }
                for i, layer in enumerate(est["layers"])
            },
        }
        records = _records_from_tensors(tensors)
    except ValueError as err:
        if str(err).startswith("cannot resume"):
            raise
        raise damaged(str(err)) from None
    except (KeyError, TypeError, OSError, RuntimeError) as err:
        raise damaged(f"{type(err).__name__}: {err}") from None
    return state, records, doc
