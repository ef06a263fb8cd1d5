"""What the FCOS-style output means: targets for every point, the losses, and boxes out.

The model's output is (B, P, C + 5): C class logits, left/top/right/bottom distances in pixels,
and a centre-ness logit, for the P points that `FCOS.points` lists. Targets are given as a padded
(B, M, 5) tensor of [label, x1, y1, x2, y2] rows, label -1 for padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, generalized_box_iou_loss, sigmoid_focal_loss

# max(l, t, r, b) range each level answers for, in pixels (FCOS's, for strides 8 / 16 / 32)
RANGES = {8.0: (0.0, 64.0), 16.0: (64.0, 128.0), 32.0: (128.0, float("inf"))}
RADIUS = 1.5   # centre sampling: only points within 1.5 strides of a box's centre are its positives


def assign(points: torch.Tensor, strides: torch.Tensor, targets: torch.Tensor):
    """For each point, the index of the box it learns (or -1 for background), and its ltrb target.
    A point inside several candidate boxes takes the smallest, as FCOS does."""
    labels, boxes = targets[..., 0], targets[..., 1:]                      # (B, M), (B, M, 4)
    px, py = points[:, 0][None, :, None], points[:, 1][None, :, None]      # (1, P, 1)
    x1, y1, x2, y2 = (boxes[..., i][:, None, :] for i in range(4))         # (B, 1, M)
    ltrb = torch.stack([px - x1, py - y1, x2 - px, y2 - py], -1)           # (B, P, M, 4)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = (strides * RADIUS)[None, :, None]
    near = ((px - cx).abs() < r) & ((py - cy).abs() < r)
    inside = ltrb.amin(-1) > 0
    lo = torch.tensor([RANGES[float(s)][0] for s in strides.unique()], device=points.device)
    hi = torch.tensor([RANGES[float(s)][1] for s in strides.unique()], device=points.device)
    level = torch.bucketize(strides, strides.unique())
    reach = ltrb.amax(-1)
    in_range = (reach >= lo[level][None, :, None]) & (reach <= hi[level][None, :, None])
    ok = near & inside & in_range & (labels >= 0)[:, None, :]
    area = ((x2 - x1) * (y2 - y1)).expand_as(ok)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(-1)                                          # (B, P)
    match = torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))
    ltrb = ltrb.gather(2, best.clamp(min=0)[..., None, None].expand(-1, -1, 1, 4)).squeeze(2)
    return match, ltrb


def centerness(ltrb: torch.Tensor) -> torch.Tensor:
    lr, tb = ltrb[..., [0, 2]], ltrb[..., [1, 3]]
    return torch.sqrt((lr.amin(-1) / lr.amax(-1).clamp(min=1e-6)) * (tb.amin(-1) / tb.amax(-1).clamp(min=1e-6)))


def to_boxes(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    return torch.cat([points - ltrb[..., :2], points + ltrb[..., 2:]], -1)


def loss(out: torch.Tensor, targets: torch.Tensor, points: torch.Tensor, strides: torch.Tensor,
         parts: dict | None = None) -> torch.Tensor:
    """Focal loss on the classes, GIoU on the boxes (weighted by centre-ness), BCE on centre-ness;
    each normalised by the number of positive points, as FCOS does."""
    out = out.float()
    c = out.shape[-1] - 5
    match, ltrb_t = assign(points, strides, targets)
    pos = match >= 0
    n_pos = max(float(pos.sum()), 1.0)
    onehot = torch.zeros_like(out[..., :c])
    labels = targets[..., 0].long().gather(1, match.clamp(min=0))
    onehot[pos] = F.one_hot(labels[pos], c).to(onehot.dtype)
    cls_loss = sigmoid_focal_loss(out[..., :c], onehot, reduction="sum") / n_pos
    if pos.any():
        ctr_t = centerness(ltrb_t[pos])
        pts = points[None].expand(out.shape[0], -1, -1)[pos]
        giou = generalized_box_iou_loss(to_boxes(pts, out[..., c:c + 4][pos]), to_boxes(pts, ltrb_t[pos]))
        box_loss = (giou * ctr_t).sum() / ctr_t.sum().clamp(min=1e-6)
        ctr_loss = F.binary_cross_entropy_with_logits(out[..., -1][pos], ctr_t, reduction="sum") / n_pos
    else:
        box_loss = ctr_loss = out[..., c:].sum() * 0
    if parts is not None:
        parts.update(cls=cls_loss.item(), box=box_loss.item(), ctr=ctr_loss.item())
    return cls_loss + box_loss + ctr_loss


def distill(out: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """A student detector's loss to a teacher's outputs at the same points. Classes: BCE to the teacher's
    probabilities, weighted by the squared gap (as quality focal loss weights, so that the many background
    points the two already agree on stay quiet). Boxes (GIoU of the two ltrb boxes around the point) and
    centre-ness (BCE): weighted by the teacher's score there, sqrt(top class prob x centre-ness), so that they
    follow the teacher where it sees an object. Each part normalised by the sum of those scores."""
    out, soft = out.float(), soft.float()
    c = out.shape[-1] - 5
    t_cls, t_ctr = soft[..., :c].sigmoid(), soft[..., -1].sigmoid()
    w = torch.sqrt(t_cls.amax(-1) * t_ctr)                                    # (B, P)
    norm = w.sum().clamp(min=1.0)
    s_cls = out[..., :c]
    cls = (F.binary_cross_entropy_with_logits(s_cls, t_cls, reduction="none")
           * (s_cls.sigmoid() - t_cls).pow(2)).sum() / norm
    origin = torch.zeros_like(out[..., :2])
    giou = generalized_box_iou_loss(to_boxes(origin, out[..., c:c + 4]).reshape(-1, 4),
                                    to_boxes(origin, soft[..., c:c + 4]).reshape(-1, 4), reduction="none")
    box = (giou * w.reshape(-1)).sum() / norm
    # less the teacher's own entropy, a constant: 0 where the two agree
    ctr = ((F.binary_cross_entropy_with_logits(out[..., -1], t_ctr, reduction="none")
            - F.binary_cross_entropy_with_logits(soft[..., -1], t_ctr, reduction="none")) * w).sum() / norm
    return cls + box + ctr


@torch.no_grad()
def decode(out: torch.Tensor, points: torch.Tensor, size: tuple[int, int], conf: float = 0.05, iou: float = 0.6,
           max_dets: int = 100, pre_nms: int | None = None) -> list[dict]:
    """Boxes, scores and labels per image: score = sqrt(class prob x centre-ness), top `pre_nms`
    (default 3 x max_dets) over `conf`, class-wise NMS at `iou`, the best `max_dets` kept."""
    # NMS costs the square of its input: 300 candidates instead of FCOS's 1,000 gave the same
    # COCO mAP on shapes (0.6208) and 1.3x the images/s at inference
    pre_nms = pre_nms or 3 * max_dets
    out = out.float()
    c = out.shape[-1] - 5
    h, w = size
    scores = torch.sqrt(out[..., :c].sigmoid() * out[..., -1:].sigmoid())   # (B, P, C)
    boxes = to_boxes(points[None], out[..., c:c + 4])
    boxes[..., 0::2] = boxes[..., 0::2].clamp(0, w)
    boxes[..., 1::2] = boxes[..., 1::2].clamp(0, h)
    results = []
    for b in range(out.shape[0]):
        s = scores[b].flatten()
        keep = (s > conf).nonzero().squeeze(1)
        if keep.numel() > pre_nms:
            keep = keep[s[keep].topk(pre_nms).indices]
        point, label = keep // c, keep % c
        bx, sc = boxes[b, point], s[keep]
        kept = batched_nms(bx, sc, label, iou)[:max_dets]
        results.append({"boxes": bx[kept], "scores": sc[kept], "labels": label[kept]})
    return results
