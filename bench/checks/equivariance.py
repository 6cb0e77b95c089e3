"""Measured equivariance error: is a model really invariant to the symmetries it claims?"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def zoom(x: torch.Tensor, factor: float = 1.25) -> torch.Tensor:
    """Rescale about the centre (bilinear), cropping or reflect-padding back to the input size."""
    h, w = x.shape[-2:]
    size = (round(h * factor), round(w * factor))
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if factor >= 1:
        top, left = (size[0] - h) // 2, (size[1] - w) // 2
        return y[..., top:top + h, left:left + w]
    ph, pw = h - size[0], w - size[1]
    return F.pad(y, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect")


TRANSFORMS = {
    "rot90": [lambda x, k=k: torch.rot90(x, k, (-2, -1)) for k in (1, 2, 3)],
    "hflip": [lambda x: x.flip(-1)],
    "scale": [lambda x: zoom(x, 1.25), lambda x: zoom(x, 0.8)],
}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1).clamp_min(1e-12)).mean().item()


@torch.no_grad()
def equivariance_errors(model, x: torch.Tensor) -> dict[str, float]:
    """Mean relative change of the logits ||f(gx) - f(x)|| / ||f(x)|| per transformation family.

    With ``model.features`` also the rot90 *equivariance* error of the features,
    ||F(rot x) - rot F(x)|| / ||F(x)||, which is ~0 for a P4 model's group-pooled features.
    """
    base = model(x)
    out = {name: sum(_rel(model(g(x)), base) for g in gs) / len(gs) for name, gs in TRANSFORMS.items()}
    feats = getattr(model, "features", None)
    if callable(feats):
        try:
            f = feats(x)
            if f.ndim == 4 and f.shape[-1] == f.shape[-2]:
                out["features_rot90"] = sum(_rel(feats(g(x)), torch.rot90(f, k, (-2, -1)))
                                            for k, g in zip((1, 2, 3), TRANSFORMS["rot90"])) / 3
        except (AttributeError, RuntimeError, NotImplementedError):
            pass
    return {k: round(v, 6) for k, v in out.items()}
