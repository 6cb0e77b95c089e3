"""Attack registry: one adapter per file over ART, AutoAttack, torchattacks, plus symbench's own."""
from symbench.bench.attacks.base import (Attack, UnknownAttackError, attack_class, create_attack, list_attacks, project,
                   register_attack, seed_everything)


def _load_all():
    from symbench.bench.attacks import art_adapter, autoattack_adapter, torchattacks_adapter  # noqa: F401
    from symbench.bench.attacks import adaptive, bpda, transfer  # noqa: F401  (symbench's own: BPDA/EOT, adaptive, transfer)


_load_all()

__all__ = ["Attack", "UnknownAttackError", "attack_class", "create_attack", "list_attacks", "project",
           "register_attack", "seed_everything"]
