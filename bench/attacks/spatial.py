"""Spatial attacks: worst-case rotations and translations by exhaustive grid and by random tries.

Engstrom et al. 2019, "Exploring the Landscape of Spatial Robustness" (arXiv:1712.02779, code
MadryLab/adversarial_spatial): on CIFAR-10 an adversary rotates the image within ±30° and translates it
within ±3 px in x and y; the exhaustive grid is ``linspace(-3, 3, 5)`` px × ``linspace(-3, 3, 5)`` px ×
``linspace(-30, 30, 31)``° = 775 transforms (2° steps, half-pixel translations 1.5 px), and the random
attack draws 10 transforms per example uniformly from the continuous box. An example survives only
if every transform tried is classified correctly.

The transform (:func:`rotate_translate`) follows the paper's order: rotate about the image centre by
``angle`` degrees, counter-clockwise as displayed (row 0 at the top; the direction of ``torch.rot90``
with ``dims=(-2, -1)`` and of ``scipy.ndimage.rotate``), then translate by ``tx`` px to the right and
``ty`` px down; zeros outside the image, bilinear interpolation. It is one ``grid_sample`` of the
composed inverse map (``align_corners=False``: pixel centres at ``(2i+1)/W - 1``), where the paper's
TF code interpolates twice (rotate, then translate, on a zero-padded 64 px canvas): the two agree
exactly on lattice-preserving transforms and differ by interpolation error elsewhere.

Exact where it should be: for angles that are multiples of 90° the rotation matrix is exactly
(0, ±1), and the sampling grid is built in float64, so on images whose side is a power of two (CIFAR's
32) the identity, integer translations and quarter turns land on pixel centres exactly and reproduce
shifted / ``rot90``-ed pixels bit for bit (tests/test_spatial.py).

The search (:func:`evaluate_transforms`) is batched over transforms: one no-grad forward of the whole
batch per transform, recording per (example, transform) whether it is classified correctly and its
cross-entropy loss (the spatial + Linf kind attacks the highest-loss ones).

``convention="art"`` replays ART's ``SpatialTransformation`` transform instead (scipy.ndimage ``shift``
then ``rotate``, cubic spline, zero fill, clip to [0,1], one image at a time as ART does), so the ART
cross-check can compare the two searches on one transform (see ``art_spatial.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONVENTIONS = ("bilinear", "art")


def _as_column(v, n: int) -> torch.Tensor:
    """A float or a length-n sequence/tensor as an (n,) float64 tensor on the CPU."""
    t = torch.as_tensor(v, dtype=torch.float64).reshape(-1).cpu()
    if t.numel() == 1:
        return t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"expected one transform parameter or one per image ({n}), got {t.numel()}")
    return t


def _cos_sin(angle_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of angles in degrees (float64), exactly 0/±1 at multiples of 90°."""
    rad = angle_deg * (math.pi / 180.0)
    c, s = torch.cos(rad), torch.sin(rad)
    quarter = torch.remainder(angle_deg, 90.0) == 0
    return torch.where(quarter, c.round(), c), torch.where(quarter, s.round(), s)


def sampling_grid(angle_deg, tx, ty, n: int, h: int, w: int) -> torch.Tensor:
    """(n,h,w,2) float32 ``grid_sample`` grid (align_corners=False) of rotate-then-translate per image.

    Output pixel (row i, col j) reads the input at ``R(-angle) (u - tx, v - ty) + centre`` with
    ``(u, v) = (j, i) - centre`` and ``centre = ((w-1)/2, (h-1)/2)``; in these coordinates (v down) a
    counter-clockwise turn as displayed is ``(u, v) -> (u cos + v sin, -u sin + v cos)``.
    """
    a, tx, ty = _as_column(angle_deg, n), _as_column(tx, n), _as_column(ty, n)
    c, s = _cos_sin(a)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    u = (torch.arange(w, dtype=torch.float64) - cx).view(1, 1, w) - tx.view(-1, 1, 1)   # (n,1,w)
    v = (torch.arange(h, dtype=torch.float64) - cy).view(1, h, 1) - ty.view(-1, 1, 1)   # (n,h,1)
    c, s = c.view(-1, 1, 1), s.view(-1, 1, 1)
    col = c * u - s * v + cx                                                             # (n,h,w)
    row = s * u + c * v + cy                                                             # (n,h,w)
    gx, gy = (2 * col + 1) / w - 1, (2 * row + 1) / h - 1
    return torch.stack([gx, gy], dim=-1).float()                                         # (n,h,w,2)


def rotate_translate(x: torch.Tensor, angle_deg=0.0, tx=0.0, ty=0.0, *, convention: str = "bilinear") -> torch.Tensor:
    """Rotate each image about its centre by ``angle_deg`` (counter-clockwise as displayed), then translate
    it ``tx`` px right and ``ty`` px down; zeros come in from outside.

    Args:
        x: (N,C,H,W) images in [0,1].
        angle_deg, tx, ty: one value for all images, or one per image (sequence or tensor of length N).
        convention: "bilinear" (one bilinear interpolation, this module's) or "art" (ART's scipy
            shift-then-rotate with a cubic spline, see :func:`art_convention`).

    Returns:
        (N,C,H,W) transformed images on ``x``'s device and dtype.
    """
    if x.ndim != 4:
        raise ValueError(f"images must be NCHW, got shape {tuple(x.shape)}")
    if convention == "art":
        return art_convention(x, angle_deg, tx, ty)
    if convention != "bilinear":
        raise ValueError(f"unknown spatial convention {convention!r}; use one of {CONVENTIONS}")
    n, _, h, w = x.shape
    shared = all(torch.as_tensor(v).numel() == 1 for v in (angle_deg, tx, ty))   # one transform for every image
    grid = sampling_grid(angle_deg, tx, ty, 1 if shared else n, h, w).to(x.device, x.dtype)
    grid = grid.expand(n, -1, -1, -1) if shared else grid
    # bilinear weights sum to 1, so only float error can leave [0,1]; clamping keeps attacks' input checks happy
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0.0, 1.0)


def art_convention(x: torch.Tensor, angle_deg=0.0, tx=0.0, ty=0.0) -> torch.Tensor:
    """ART 1.20's ``SpatialTransformation._perturb`` on channels-last images, one image at a time:
    ``scipy.ndimage.shift`` by (ty rows, tx columns), then ``scipy.ndimage.rotate(angle, reshape=False)``,
    both cubic-spline with zero fill, then clip to [0,1]. ART passes one image per call, and scipy's
    spline prefilter runs along every axis (batch and channel too), so batching images would change
    the float result; this keeps ART's shapes exactly.
    """
    from scipy.ndimage import rotate, shift

    n = len(x)
    a, tx, ty = (_as_column(v, n).tolist() for v in (angle_deg, tx, ty))
    imgs = x.detach().permute(0, 2, 3, 1).cpu().numpy()           # (N,H,W,C), ART's channels-last layout
    out = np.empty_like(imgs)
    for i in range(n):
        xi = shift(imgs[i:i + 1], [0, ty[i], tx[i], 0])
        xi = rotate(xi, angle=a[i], axes=(1, 2), reshape=False)
        out[i] = np.clip(xi, 0.0, 1.0)[0]
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(x.device, x.dtype)


def _symmetric_values(limit: float, count: int) -> np.ndarray:
    """``np.linspace(-limit, limit, count)`` as Engstrom's config uses it (count odd, so 0 is included)."""
    return np.linspace(-limit, limit, count) if count > 1 else np.zeros(1)


@dataclass(frozen=True)
class SpatialGrid:
    """The exhaustive grid: ``n_translations``² translations in ±``max_translation`` px times
    ``n_rotations`` rotations in ±``max_rotation`` degrees, evenly spaced (``np.linspace``)."""

    max_rotation: float = 30.0
    n_rotations: int = 31
    max_translation: float = 3.0
    n_translations: int = 5

    def __post_init__(self):
        for name in ("n_rotations", "n_translations"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % 2 == 0:
                raise ValueError(f"spatial grid {name} must be an odd integer >= 1 (so the identity is on the grid), "
                                 f"got {v!r}")
        if not 0 <= self.max_rotation <= 180:
            raise ValueError(f"spatial grid max_rotation must lie in [0, 180] degrees, got {self.max_rotation}")
        if not 0 <= self.max_translation <= 64:
            raise ValueError(f"spatial grid max_translation must lie in [0, 64] px, got {self.max_translation}")

    @property
    def rotations(self) -> np.ndarray:
        return _symmetric_values(self.max_rotation, self.n_rotations)

    @property
    def translations(self) -> np.ndarray:
        return _symmetric_values(self.max_translation, self.n_translations)

    @property
    def size(self) -> int:
        return self.n_rotations * self.n_translations ** 2

    def transforms(self) -> torch.Tensor:
        """(size, 3) float64 rows (angle_deg, tx, ty), in Engstrom's order: tx outermost, then ty, then angle."""
        t = torch.as_tensor(self.translations, dtype=torch.float64)
        r = torch.as_tensor(self.rotations, dtype=torch.float64)
        tx, ty, a = torch.meshgrid(t, t, r, indexing="ij")
        return torch.stack([a.flatten(), tx.flatten(), ty.flatten()], dim=1)

    def identity_index(self) -> int:
        tr = self.transforms()
        return int(((tr == 0).all(1)).nonzero()[0, 0])

    def finer(self, factor: int = 2) -> "SpatialGrid":
        """The same box with ``factor`` times the rotation resolution (it contains this grid)."""
        return SpatialGrid(self.max_rotation, (self.n_rotations - 1) * factor + 1, self.max_translation,
                           self.n_translations)

    def to_json(self) -> dict:
        return {"grid_size": self.size,
                "rotations_deg": {"max": float(self.max_rotation), "n": self.n_rotations,
                                  "step": (2 * self.max_rotation / (self.n_rotations - 1)) if self.n_rotations > 1
                                  else 0.0},
                "translations_px": {"max": float(self.max_translation), "n": self.n_translations,
                                    "values": [float(v) for v in self.translations]}}


def rotation_transforms(max_angle: float = 180.0, step: float = 1.0) -> torch.Tensor:
    """(m, 3) rotations only, ``-max_angle .. max_angle`` in ``step`` degrees (0 and the multiples of 90
    that fall in range are exact values), as (angle, 0, 0) rows."""
    k = int(round(max_angle / step))
    if abs(k * step - max_angle) > 1e-9:
        raise ValueError(f"max_angle {max_angle} is not a multiple of the step {step}")
    a = torch.arange(-k, k + 1, dtype=torch.float64) * step
    return torch.stack([a, torch.zeros_like(a), torch.zeros_like(a)], dim=1)


def random_transforms(n_tries: int, grid: SpatialGrid, seed: int) -> torch.Tensor:
    """(n_tries, 3) transforms drawn uniformly from the grid's continuous box (Engstrom's random attack),
    from a generator seeded with ``seed`` alone (one seed per example: independent of batching)."""
    g = torch.Generator().manual_seed(int(seed))
    u = torch.rand(n_tries, 3, generator=g, dtype=torch.float64) * 2 - 1
    return u * torch.tensor([grid.max_rotation, grid.max_translation, grid.max_translation], dtype=torch.float64)


class TransformOutcome(NamedTuple):
    """Per (example, transform): correct or not, cross-entropy loss, predicted class (CPU tensors (B,T))."""

    correct: torch.Tensor
    loss: torch.Tensor
    pred: torch.Tensor


def evaluate_transforms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, transforms: torch.Tensor, *,
                        convention: str = "bilinear", on_step=None) -> TransformOutcome:
    """Classify every image under every transform: one no-grad forward of the batch per transform.

    Args:
        model: eval-mode classifier on [0,1] images.
        x: (B,C,H,W) images; y: (B,) labels.
        transforms: (T,3) rows (angle_deg, tx, ty) applied to the whole batch, or (B,T,3) one per image.
        convention: the transform's, see :func:`rotate_translate`.
        on_step: called after each transform (progress).
    """
    per_image = transforms.ndim == 3
    n_t = transforms.shape[1] if per_image else transforms.shape[0]
    loss = torch.zeros(len(x), n_t, dtype=torch.float32)
    pred = torch.zeros(len(x), n_t, dtype=torch.int64)
    with torch.inference_mode():
        for t in range(n_t):
            a, tx, ty = transforms[:, t].unbind(1) if per_image else transforms[t].tolist()
            logits = model(rotate_translate(x, a, tx, ty, convention=convention))           # (B,K)
            pred[:, t] = logits.argmax(1).cpu()
            loss[:, t] = F.cross_entropy(logits.float(), y, reduction="none").cpu()
            if on_step is not None:
                on_step()
    correct = pred == y.cpu().view(-1, 1)
    return TransformOutcome(correct, loss, pred)


def pack_bits(mask: torch.Tensor) -> list[str]:
    """(B,T) bool → one hex string per row (``np.packbits``, big-endian bit order): compact store records."""
    return [bytes(r).hex() for r in np.packbits(mask.cpu().numpy().astype(np.uint8), axis=1)]


def unpack_bits(rows: list[str], n_bits: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: hex strings → (B, n_bits) bool."""
    want = (n_bits + 7) // 8
    out = np.zeros((len(rows), n_bits), dtype=bool)
    for i, h in enumerate(rows):
        if not isinstance(h, str) or len(h) != 2 * want:
            raise ValueError(f"packed row {i} must be {2 * want} hex characters for {n_bits} transforms")
        out[i] = np.unpackbits(np.frombuffer(bytes.fromhex(h), dtype=np.uint8))[:n_bits].astype(bool)
    return torch.from_numpy(out)
