"""AutoAttack (Croce & Hein 2020) through ``pyautoattack``, a faithful repackaging of fra31/auto-attack.

Each component is run with the parameters of the ``standard`` version (apgd-ce 100 iterations,
apgd-t and fab-t over 9 target classes, square 5000 queries); the symbench runner does the cascade
across components, so ``apgd_ce`` then ``apgd_t`` ... on survivors is AutoAttack-standard.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from symbench.bench.attacks.base import Attack, register_attack

logging.getLogger("auto-attack").setLevel(logging.ERROR)
_AA_NORM = {"linf": "Linf", "l2": "L2"}


@dataclass
class _AutoAttack(Attack):
    toolkit = "autoattack"
    randomized = True
    components: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[str] = "standard"
    batch_size: int = 500
    iters: int | None = None      # None: the standard budget (100); smaller only for tests / smoke runs
    queries: int | None = None    # Square's query budget (standard 5000)
    targets: int | None = None    # target classes of apgd-t / fab-t (standard 9)
    eot_iter: int | None = None   # gradient draws averaged per APGD step (None: the version's, 1 standard / 20 rand)

    def run(self, model, x, y, eps):
        from pyautoattack import AutoAttack

        seed = int(__import__("torch").initial_seed() % 2**31)  # set by Attack.__call__
        aa = AutoAttack(model, eps=eps, norm=_AA_NORM[self.norm], version=self.version, seed=seed,
                        device=x.device)
        if self.components:
            aa.attacks_to_run = list(self.components)
        for sub in (aa.apgd, aa.apgd_targeted, aa.fab):
            if self.iters is not None:
                sub.n_iter = self.iters
            if self.targets is not None and hasattr(sub, "n_target_classes"):
                sub.n_target_classes = self.targets
        if self.queries is not None:
            aa.square.n_queries = self.queries
        if self.eot_iter is not None:  # APGD with EOT against a randomized model (AutoAttack's 'rand' recipe)
            if self.eot_iter < 1:
                raise ValueError(f"{self.name} eot_iter must be >= 1, got {self.eot_iter}")
            aa.apgd.eot_iter = aa.apgd_targeted.eot_iter = self.eot_iter
        self.configure(aa)
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=self.batch_size)
        return x_adv

    def configure(self, aa) -> None:
        """Last changes to the built ``AutoAttack`` before it runs (subclasses)."""

    # the standard version's budgets (pyautoattack's set_version('standard')): what progress lines count against
    _BUDGET = {"apgd-ce": ("iters", 100, "steps"), "apgd-t": ("iters", 100, "steps"),
               "apgd-dlr": ("iters", 100, "steps"), "fab-t": ("iters", 100, "steps"),
               "square": ("queries", 5000, "queries")}

    def progress_budget(self):
        if len(self.components) != 1 or self.components[0] not in self._BUDGET:
            return None
        comp = self.components[0]
        field, default, unit = self._BUDGET[comp]
        n = getattr(self, field) or default
        if comp in ("apgd-t", "fab-t"):
            n *= self.targets or 9
        if comp.startswith("apgd"):
            n *= self.eot_iter or 1
        return n, unit


def _component(attack_name: str, aa_name: str, doc: str, black_box: bool = False):
    cls = type(f"AA_{attack_name}", (_AutoAttack,), {"__doc__": doc, "__annotations__": {}})
    cls.name, cls.components, cls.black_box = attack_name, (aa_name,), black_box
    return register_attack(dataclass(cls))


APGDCE = _component("apgd_ce", "apgd-ce", "APGD with cross-entropy loss, 100 iterations (AutoAttack standard).")
APGDDLR = _component("apgd_dlr", "apgd-dlr", "Untargeted APGD with DLR loss, 100 iterations (AutoAttack rand's "
                                              "second attack, after apgd-ce).")
APGDTargeted = _component("apgd_t", "apgd-t", "Targeted APGD with DLR loss over 9 target classes (AutoAttack standard).")
FABTargeted = _component("fab_t", "fab-t", "Targeted FAB over 9 target classes (AutoAttack standard).")
Square = _component("square", "square", "Square Attack, black-box, 5000 queries (AutoAttack standard).", black_box=True)


@register_attack
@dataclass
class AutoAttackStandard(_AutoAttack):
    """The whole AutoAttack-standard cascade (apgd-ce, apgd-t, fab-t, square) in one call."""

    name = "autoattack"


@register_attack
@dataclass
class AutoAttackRand(_AutoAttack):
    """AutoAttack 'rand' for randomized defenses: APGD-CE and APGD-DLR with EOT over 20 draws."""

    name = "autoattack_rand"
    version = "rand"
    handles_randomness = True
    eot_iter: int = 20            # gradient draws averaged per step (AutoAttack's rand default)
