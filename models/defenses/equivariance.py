"""Seed 2's test-time defense (Mao et al., "Robust Perception through Equivariance", ICML 2023).

Algorithm 1: starting from the input, take T signed steps that increase the equivariance of the
features, with Gaussian noise on the normalized gradient annealed linearly to zero (an SGLD-then-MAP
schedule), projecting onto the eps_v ball around the input and [0,1]; classify the result.

Equivariance loss (Eq. 2), per example: the mean over transformations g_i of
cos(g_i⁻¹ F g_i(x), F(x)), with F = ``base.features`` (the last feature map before global pooling)
and rotated-away corners masked out as in the official code. The invariance baseline (§4.3-4.4)
compares globally average-pooled features cos(pool F(g_i x), pool F(x)) instead.

Deviations from the paper/official code (cvlab-columbia/Equi4Rob), each for a reason:
- the gradient is L2-normalized per example, not over the whole batch, so an example's defended
  prediction does not depend on which other examples share its batch;
- Eq. 2 pairs each transformed view with F(x) (the paper's formula); the code summed over all pairs;
- defaults are CPU-sized: T=5 steps (paper 20) and K=5 transformations (paper 8), eps_v = 8/255 with
  step 2·eps_v (paper: eps_v = 1.5-2.5·eps of a 4/255 attack, step 2·eps_v).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from symbench.models.defenses.base import Defense
from symbench.models.defenses.transforms import Transform, parse_transforms, transforms_spec

DEFAULT_TRANSFORMS = "flip|resize0.75|resize1.5|rot15|jitter0.2"


def equivariance_loss(features: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                      transforms: Sequence[Transform], *, invariance: bool = False) -> torch.Tensor:
    """Per-example L_equi (Eq. 2, averaged over transformations), (N,), in [-1, 1]; higher = more equivariant.

    Args:
        features: x (N,3,H,W) → feature map (N,C,h,w), e.g. ``model.features``.
        x: images in [0,1]; gradients flow through every term, including F(x).
        transforms: the g_i; random ones draw fresh parameters per call and example.
        invariance: compare pooled features (the invariance baseline) instead of aligned maps.
    """
    f0 = features(x)  # (N,C,h,w)
    sims = []
    for t in transforms:
        p = t.sample(x)
        fg = features(t.apply(x, p))  # (N,C,h',w')
        if invariance:
            a, b = f0.mean((2, 3)), fg.mean((2, 3))  # (N,C)
        else:
            b = t.invert(fg, p, f0.shape[-2:])  # (N,C,h,w), aligned with f0
            m = t.mask(f0, p)
            a, b = (f0, b) if m is None else (f0 * m, b * m)
        sims.append(F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=1e-8))
    return torch.stack(sims, 1).mean(1)


def invariance_loss(features, x, transforms) -> torch.Tensor:
    """Per-example invariance similarity of pooled features (the paper's invariance baseline), (N,)."""
    return equivariance_loss(features, x, transforms, invariance=True)


@torch.no_grad()
def equivariance_score(model, x: torch.Tensor, transforms: str | Sequence = DEFAULT_TRANSFORMS,
                       batch_size: int = 256) -> torch.Tensor:
    """The equivariance measurement of the paper's Table 4: per-example L_equi of ``model.features``, (N,).

    For a defended model pass its ``base`` and the purified images to measure "restored" images.
    """
    ts = parse_transforms(transforms)
    return torch.cat([equivariance_loss(model.features, x[i:i + batch_size], ts)
                      for i in range(0, len(x), batch_size)])


def _sign_ste(z: torch.Tensor) -> torch.Tensor:
    """sign(z) forward, identity backward (sign's true derivative is zero almost everywhere)."""
    return z + (z.sign() - z).detach()


class EquivarianceDefense(Defense):
    """Seed 2's equivariance defense (Algorithm 1): restore feature equivariance at test time.

    Args (``PARAMS``):
        eps_v: Linf bound of the reverse vector r on the [0,1] scale (paper: 1.5-2.5x the attack eps).
        steps: T, the number of signed steps (paper 20).
        step_factor: step size η = step_factor · eps_v (paper 2).
        noise: scale of the annealed Gaussian noise, std noise·(T-1-t)/T at step t = 0..T-1 (paper 1).
        transforms: the g_i as a spec string, see ``models.defenses.transforms``.
        random_start: start from a uniform draw in the eps_v ball, as the official code does.
    """

    name = "equi_defense"
    PARAMS = {"eps_v": 8 / 255, "steps": 5, "step_factor": 2.0, "noise": 1.0, "transforms": DEFAULT_TRANSFORMS,
              "random_start": True}
    randomized = True
    test_time_opt = True
    needs_features = True
    paper = "seed 2: Mao et al. ICML 2023, Algorithm 1"
    invariance = False

    def __init__(self, base, **params):
        super().__init__(base, **params)
        self.transforms = parse_transforms(self.cfg["transforms"])
        self.cfg["transforms"] = transforms_spec(self.transforms)

    @classmethod
    def forward_passes(cls, params: dict) -> int:
        k = len(parse_transforms(params.get("transforms", cls.PARAMS["transforms"])))
        return int(params.get("steps", cls.PARAMS["steps"])) * (k + 1) + 1

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        """The per-example quantity the defense maximizes, (N,)."""
        return equivariance_loss(self.base.features, x, self.transforms, invariance=self.invariance)

    def purify(self, x: torch.Tensor, *, unrolled: bool = False) -> torch.Tensor:
        eps_v, steps = float(self.cfg["eps_v"]), int(self.cfg["steps"])
        if eps_v <= 0 or steps <= 0:
            return x
        eta, noise = float(self.cfg["step_factor"]) * eps_v, float(self.cfg["noise"])
        delta0 = (torch.rand_like(x) * 2 - 1) * eps_v if self.cfg["random_start"] else torch.zeros_like(x)
        xp = (x + delta0).clamp(0, 1)
        for t in range(steps):
            graph = unrolled and xp.requires_grad
            xi = xp if graph else xp.detach().requires_grad_(True)
            with torch.enable_grad():
                g, = torch.autograd.grad(self.objective(xi).sum(), xi, create_graph=graph)
            g = g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-10)
            z = g + torch.randn_like(g) * (noise * (steps - 1 - t) / steps)
            s = _sign_ste(z) if graph else z.sign().detach()
            # the projection keeps xp a function of x, so autograd through forward() is the exact gradient
            xp = (x + (xp + eta * s - x).clamp(-eps_v, eps_v)).clamp(0, 1)
        return xp


class InvarianceDefense(EquivarianceDefense):
    """The paper's invariance baseline: Algorithm 1 maximizing the similarity of pooled features."""

    name = "inv_defense"
    invariance = True
    paper = "seed 2: Mao et al. ICML 2023, §4.3 invariance baseline"
