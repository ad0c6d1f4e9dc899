"""A tiny video instance segmentation (VIS) training loop for VidEoMT on StaDyn-Synth (docs/vis.md).

transformers' ``VideomtForUniversalSegmentation`` computes no loss for video inputs, so this module
has its own, in the spirit of Mask2Former / VidEoMT's video set loss:

- **Matching** (per clip, Hungarian, ``scipy.optimize.linear_sum_assignment``): query ``q`` and
  instance ``g`` cost ``class_weight * (-p_q(object))`` + ``mask_weight * BCE`` + ``dice_weight * dice``,
  the mask terms over the whole clip (``T x H x W``: one query follows one instance through the
  clip, as VidEoMT's query propagation means), ``p_q`` the frame-mean class probability.
- **Loss**: cross-entropy of every query's class at every frame (matched: the instance's class,
  others: "no object", weight ``no_object_weight``), plus BCE and dice of the matched queries' mask
  logits against their instance's masks over the clip, each averaged over the instances of the batch.

Evaluation (:func:`evaluate_vis`): every query is a predicted instance with score = its frame-mean
object probability and masks = sigmoid > 0.5 per frame; **video mask AP** as YouTube-VIS computes
it (spatio-temporal IoU = summed intersections / summed unions over frames; greedy matching by score
per IoU threshold 0.5, 0.55, ..., 0.95; COCO 101-point precision), and **per-instance J**: each
ground-truth instance is matched one-to-one (Hungarian on the spatio-temporal IoU) to a query with
score >= ``score_threshold``, its J is the per-frame region IoU (DAVIS, both empty = 1) averaged over
frames, 0 when unmatched; reported for all, camouflaged and visible instances, with the recall at
spatio-temporal IoU >= 0.5.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "VisTrainingConfig",
    "evaluate_vis",
    "instance_targets",
    "match_queries",
    "predict_instances",
    "tiny_videomt_config",
    "train_vis",
    "video_mask_ap",
    "vis_loss",
]

logger = logging.getLogger(__name__)

_MEAN = (0.485, 0.456, 0.406)  # VideomtVideoProcessor's statistics (IMAGENET_DEFAULT)
_STD = (0.229, 0.224, 0.225)


@dataclass
class VisTrainingConfig:
    """Settings of :func:`train_vis` (docs/vis.md records the ones used)."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 50
    grad_clip: float = 1.0
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tiny_videomt_config(image_size: int = 32, **overrides: Any) -> Any:
    """A CPU-sized ``VideomtConfig``: hidden 32, 4 layers (the last 2 with queries), 8 queries, patch 4,
    two upscale blocks (mask logits at full ``image_size``), one class ("object")."""
    from transformers import VideomtConfig

    kwargs: dict[str, Any] = dict(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=image_size, patch_size=4,
        num_blocks=2, num_queries=8, num_register_tokens=2, num_upscale_blocks=2, num_labels=1,
        id2label={0: "object"}, label2id={"object": 0},
    )  # fmt: skip
    kwargs.update(overrides)
    return VideomtConfig(**kwargs)


def _pixels(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, T, H, W, 3)`` -> normalised ``(B, T, 3, H, W)`` float32."""
    from hf_stadyn.probing.mixin import clips_to_pixel_values

    return clips_to_pixel_values(frames, _MEAN, _STD)


def _split(out: Any, b: int, t: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-major outputs -> mask logits ``(B, Q, T, H, W)`` at ``size`` and class logits ``(B, Q, T, K + 1)``."""
    masks = out.masks_queries_logits  # (T * B, Q, h, w)
    if tuple(masks.shape[-2:]) != size:
        masks = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
    q = masks.shape[1]
    masks = masks.reshape(t, b, q, *size).permute(1, 2, 0, 3, 4)
    logits = out.class_queries_logits.reshape(t, b, q, -1).permute(1, 2, 0, 3)
    return masks, logits


def instance_targets(instances: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """An instance map ``(T, H, W)`` (0 background, ``k + 1`` object ``k``) -> ``(G, T, H, W)`` float
    masks of the objects visible in at least one frame, and their object indices ``k``."""
    ids = [int(i) for i in torch.unique(instances).tolist() if i > 0]
    if not ids:
        return torch.zeros((0, *instances.shape)), []
    masks = torch.stack([(instances == i) for i in ids]).float()
    return masks, [i - 1 for i in ids]


def _pair_costs(mask_logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE and dice cost of every (query, instance): ``(Q, G)`` each; masks flattened over the clip."""
    x = mask_logits.flatten(1)  # (Q, P)
    y = targets.flatten(1)  # (G, P)
    pos = F.binary_cross_entropy_with_logits(x, torch.ones_like(x), reduction="none")
    neg = F.binary_cross_entropy_with_logits(x, torch.zeros_like(x), reduction="none")
    bce = (pos @ y.T + neg @ (1 - y).T) / x.shape[1]
    p = x.sigmoid()
    dice = 1 - (2 * p @ y.T + 1) / (p.sum(1, keepdim=True) + y.sum(1)[None] + 1)
    return bce, dice


def match_queries(
    mask_logits: torch.Tensor, class_logits: torch.Tensor, targets: torch.Tensor, cfg: VisTrainingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of one clip: ``(Q, T, H, W)`` mask logits, ``(Q, T, K + 1)`` class logits and
    ``(G, T, H, W)`` instance masks -> (query indices, instance indices)."""
    from scipy.optimize import linear_sum_assignment

    if targets.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    with torch.no_grad():
        p_obj = class_logits.float().softmax(-1)[..., 0].mean(1)  # (Q,) class 0 = "object"
        bce, dice = _pair_costs(mask_logits.float(), targets)
        cost = cfg.mask_weight * bce + cfg.dice_weight * dice - cfg.class_weight * p_obj[:, None]
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return rows.astype(np.int64), cols.astype(np.int64)


def vis_loss(
    mask_logits: torch.Tensor, class_logits: torch.Tensor, targets: list[torch.Tensor], cfg: VisTrainingConfig
) -> dict[str, torch.Tensor]:
    """The set loss of a batch: ``(B, Q, T, H, W)`` mask logits, ``(B, Q, T, K + 1)`` class logits and one
    ``(G_b, T, H, W)`` target per clip -> ``{"loss", "loss_class", "loss_mask", "loss_dice"}``."""
    b, q, t = class_logits.shape[:3]
    k1 = class_logits.shape[-1]
    weight = torch.ones(k1, device=class_logits.device)
    weight[-1] = cfg.no_object_weight
    labels = torch.full((b, q), k1 - 1, dtype=torch.long, device=class_logits.device)
    bce_terms, dice_terms = [], []
    for i in range(b):
        rows, cols = match_queries(mask_logits[i], class_logits[i], targets[i], cfg)
        if not len(rows):
            continue
        labels[i, torch.as_tensor(rows)] = 0
        x = mask_logits[i, torch.as_tensor(rows)].flatten(1)
        y = targets[i][torch.as_tensor(cols)].flatten(1).to(x.device)
        bce_terms.append(F.binary_cross_entropy_with_logits(x, y, reduction="none").mean(1))
        p = x.sigmoid()
        dice_terms.append(1 - (2 * (p * y).sum(1) + 1) / (p.sum(1) + y.sum(1) + 1))
    loss_class = F.cross_entropy(
        class_logits.reshape(-1, k1), labels[:, :, None].expand(b, q, t).reshape(-1), weight=weight
    )
    zero = mask_logits.sum() * 0.0
    loss_mask = torch.cat(bce_terms).mean() if bce_terms else zero
    loss_dice = torch.cat(dice_terms).mean() if dice_terms else zero
    loss = cfg.class_weight * loss_class + cfg.mask_weight * loss_mask + cfg.dice_weight * loss_dice
    return {"loss": loss, "loss_class": loss_class, "loss_mask": loss_mask, "loss_dice": loss_dice}


def train_vis(
    model: nn.Module,
    frames: torch.Tensor,
    instances: torch.Tensor,
    cfg: VisTrainingConfig | None = None,
    *,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Train a ``VideomtForUniversalSegmentation`` on uint8 clips ``(N, T, H, W, 3)`` and instance maps
    ``(N, T, H, W)``: AdamW, linear warm-up then cosine decay, clipped gradients, shuffled batches
    seeded by ``cfg.seed``. Returns one ``{"epoch", "loss", ... , "seconds"}`` row per epoch."""
    from tqdm.auto import tqdm

    cfg = cfg or VisTrainingConfig()
    n, t, h, w = instances.shape
    if frames.shape[:4] != (n, t, h, w):
        raise ValueError(f"frames {tuple(frames.shape)} and instances {tuple(instances.shape)} differ in (N, T, H, W).")
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    targets_all = [instance_targets(instances[i])[0] for i in range(n)]
    history: list[dict[str, float]] = []
    model.train()
    bar = tqdm(total=total, disable=not progress, desc="training VIS", unit="step")
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        sums: dict[str, float] = {}
        start = time.perf_counter()
        for s in range(steps_per_epoch):
            idx = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            out = model(pixel_values_videos=_pixels(frames[idx]))
            masks, logits = _split(out, len(idx), t, (h, w))
            terms = vis_loss(masks, logits, [targets_all[int(i)] for i in idx], cfg)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            bar.update(1)
        row = {"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in sums.items()}}
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        logger.info("VIS epoch %d: %s", epoch + 1, row)
    bar.close()
    model.eval()
    return history


@torch.no_grad()
def predict_instances(model: nn.Module, frames: torch.Tensor, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Every query of every clip as a predicted instance: scores ``(N, Q)`` (frame-mean object
    probability) and masks ``(N, Q, T, H, W)`` bool (sigmoid > 0.5), for uint8 clips ``(N, T, H, W, 3)``."""
    was = model.training
    model.eval()
    n, t, h, w = frames.shape[:4]
    scores, masks = [], []
    for s in range(0, n, batch_size):
        x = frames[s : s + batch_size]
        ml, cl = _split(model(pixel_values_videos=_pixels(x)), len(x), t, (h, w))
        scores.append(cl.float().softmax(-1)[..., 0].mean(2).numpy())
        masks.append((ml > 0).numpy())
    model.train(was)
    return np.concatenate(scores), np.concatenate(masks)


def _st_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Spatio-temporal IoU of every (prediction, instance): ``(P, T, H, W)``, ``(G, T, H, W)`` -> ``(P, G)``."""
    p = pred.reshape(pred.shape[0], -1).astype(np.float64)
    g = gt.reshape(gt.shape[0], -1).astype(np.float64)
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def video_mask_ap(
    scores: list[np.ndarray],
    preds: list[np.ndarray],
    gts: list[np.ndarray],
    thresholds: tuple[float, ...] | None = None,
) -> dict[str, float]:
    """YouTube-VIS-style video mask AP (one class): per clip ``scores`` ``(P,)``, predicted masks
    ``(P, T, H, W)`` and ground-truth masks ``(G, T, H, W)`` -> ``{"AP", "AP50", "AP75"}`` (COCO
    101-point interpolated precision, greedy matching by score at each spatio-temporal IoU threshold)."""
    thresholds = thresholds or tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
    num_gt = sum(len(g) for g in gts)
    if num_gt == 0:
        raise ValueError("video_mask_ap needs at least one ground-truth instance.")
    ious = [_st_iou(p, g) if len(g) else np.zeros((len(p), 0)) for p, g in zip(preds, gts)]
    dets = sorted(((float(s), c, j) for c, sc in enumerate(scores) for j, s in enumerate(sc)), key=lambda d: -d[0])
    aps = {}
    for th in thresholds:
        taken = [np.zeros(len(g), dtype=bool) for g in gts]
        tp = np.zeros(len(dets))
        for k, (_, c, j) in enumerate(dets):
            if not len(gts[c]):
                continue
            cand = np.where(~taken[c], ious[c][j], -1.0)
            best = int(np.argmax(cand))
            if cand[best] >= th:
                taken[c][best] = True
                tp[k] = 1
        ctp = np.cumsum(tp)
        recall = ctp / num_gt
        precision = ctp / np.arange(1, len(dets) + 1)
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # the precision envelope
        grid = np.linspace(0, 1, 101)
        pos = np.searchsorted(recall, grid, side="left")
        aps[th] = float(np.mean([precision[i] if i < len(precision) else 0.0 for i in pos]))
    return {
        "AP": float(np.mean(list(aps.values()))),
        "AP50": aps.get(0.5, float("nan")),
        "AP75": aps.get(0.75, float("nan")),
    }


def evaluate_vis(
    model: nn.Module,
    frames: torch.Tensor,
    instances: torch.Tensor,
    camouflaged: torch.Tensor | None = None,
    *,
    score_threshold: float = 0.5,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Segmentation quality on clips ``(N, T, H, W, 3)`` with instance maps ``(N, T, H, W)`` and, optionally,
    which objects are camouflaged ``(N, num_objects)`` bool (see the module docstring).

    Returns:
        ``{"AP", "AP50", "AP75", "J", "recall50", "num_instances", "J_camouflaged", "J_visible",
        "recall50_camouflaged", "recall50_visible", "num_camouflaged", "num_visible"}`` (the
        camouflage split only with ``camouflaged``; NaN for an empty group).
    """
    from scipy.optimize import linear_sum_assignment

    from .seg_metrics import region_iou

    scores, masks = predict_instances(model, frames, batch_size)
    gts: list[np.ndarray] = []
    js: list[float] = []
    hits: list[bool] = []
    camo: list[bool] = []
    for i in range(len(frames)):
        gt_t, objs = instance_targets(instances[i])
        gt = gt_t.numpy().astype(bool)
        gts.append(gt)
        keep = np.where(scores[i] >= score_threshold)[0]
        j = np.zeros(len(gt))
        hit = np.zeros(len(gt), dtype=bool)
        if len(keep) and len(gt):
            iou = _st_iou(masks[i][keep], gt)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                pred = masks[i][keep[r]]
                j[c] = float(np.mean([region_iou(pred[f], gt[c][f]) for f in range(gt.shape[1])]))
                hit[c] = iou[r, c] >= 0.5
        js.extend(j)
        hits.extend(hit)
        if camouflaged is not None:
            camo.extend(bool(camouflaged[i][k]) for k in objs)
    out: dict[str, Any] = video_mask_ap(list(scores), list(masks), gts)
    js_a, hits_a = np.asarray(js), np.asarray(hits)
    out.update({"J": float(js_a.mean()), "recall50": float(hits_a.mean()), "num_instances": len(js_a)})
    if camouflaged is not None:
        c = np.asarray(camo, dtype=bool)
        for name, sel in (("camouflaged", c), ("visible", ~c)):
            out[f"J_{name}"] = float(js_a[sel].mean()) if sel.any() else float("nan")
            out[f"recall50_{name}"] = float(hits_a[sel].mean()) if sel.any() else float("nan")
            out[f"num_{name}"] = int(sel.sum())
    return out
