"""Orbit attacks: the worst case over a symmetry group composed with an Lp attack.

For each example, the model must be right on every transformed copy g(x) (rot90 ×4, horizontal flip,
rescaling ×0.8/×1.25) *and* under the Lp attack run on each copy. ``orbit_clean`` is the orbit alone
(no perturbation): an invariant model loses nothing there, a plain CNN a lot. Reported as its own
column next to the suite's robust accuracy, never mixed into it (its threat model is larger).
"""
from __future__ import annotations

import torch

from symbench.bench.attacks import create_attack
from symbench.bench.checks.equivariance import zoom
from symbench.bench.run.progress import PassCounter, Heartbeat

ORBIT = {
    "id": lambda x: x,
    "rot90": lambda x: torch.rot90(x, 1, (-2, -1)),
    "rot180": lambda x: torch.rot90(x, 2, (-2, -1)),
    "rot270": lambda x: torch.rot90(x, 3, (-2, -1)),
    "hflip": lambda x: x.flip(-1),
    "zoom0.8": lambda x: zoom(x, 0.8),
    "zoom1.25": lambda x: zoom(x, 1.25),
}


def orbit_outcome(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, attack: str = "ta_pgd", norm: str = "linf",
                  seed: int = 0, transforms: dict | None = None, **attack_params) -> dict:
    """Per-example correctness over the orbit, clean and attacked.

    Returns ``{"clean": (N,) bool, "adv": (N,) bool, "per_transform": {name: adv accuracy}}``.
    """
    transforms = transforms or ORBIT
    atk = create_attack(attack, norm=norm, **attack_params)
    clean = torch.ones(len(y), dtype=torch.bool)
    adv = torch.ones(len(y), dtype=torch.bool)
    per = {}
    with PassCounter(model) as fc, Heartbeat(f"orbit column eps={eps:.4g}", counter=fc) as beat:  # moving progress
        for i, (name, g) in enumerate(transforms.items()):
            xg = g(x).clamp(0, 1)
            with torch.no_grad():
                ok = model(xg).argmax(1) == y
            clean &= ok.cpu()
            ok_adv = ok.clone()
            idx = ok.nonzero().flatten()
            beat.set(f"{name} then {attack} ({i + 1}/{len(transforms)}) on {len(idx)} examples")
            if len(idx) and eps > 0:
                x_adv = atk(model, xg[idx], y[idx], eps, seed=seed + i)
                with torch.no_grad():
                    ok_adv[idx] = model(x_adv).argmax(1) == y[idx]
            adv &= ok_adv.cpu()
            per[name] = ok_adv.float().mean().item()
    return {"clean": clean, "adv": adv, "per_transform": per}
