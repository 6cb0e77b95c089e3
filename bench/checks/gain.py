"""A defense's gain over its undefended base as a paired difference on the same examples.

Two robust accuracies of 29% and 27% on 100 examples say nothing on their own: most examples are
robust under both or neither, and only the ones on which the two disagree carry information. The gain
is therefore the mean per-example difference with its 95% interval and an exact McNemar p-value
(``bench.run.stats.paired_comparison``), so a board can say "no significant gain" when that is so.
"""
from __future__ import annotations

from symbench.bench.run.stats import PairedComparison, paired_comparison


def gain_fields(pc: PairedComparison) -> dict:
    """Row fields of a paired comparison (defended = a, base = b)."""
    return {"diff": pc.diff, "low": pc.diff_low, "high": pc.diff_high, "p_value": pc.p_value,
            "significant": pc.significant, "n": pc.n, "only_defended": pc.only_a, "only_base": pc.only_b}


def base_name_of(model) -> str:
    from symbench.models.defenses import find_defense

    defense = find_defense(model)
    card = getattr(defense, "card", None) or getattr(model, "card", None)
    return (card.name if card is not None else "model").split("+")[0]


def defense_gains(model, suite, data, outcomes: list, *, store_root=None, device="cpu", progress: bool = False,
                  num_classes: int = 10) -> list[dict] | None:
    """Per row ``{"defense_gain": {...}, "defense_clean_gain": {...}}`` of a defended model over its base on the
    same examples (robust: worst of k for the defended model), or None for an undefended model.

    The base's per-example outcomes come from its own run of the suite (``base_reference`` computes and stores
    it; here it is read back from the store, or computed once if absent).
    """
    from symbench.bench.run.runner import run_suite
    from symbench.models.defenses import find_defense

    defense = find_defense(model)
    if defense is None:
        return None
    base_outs, _ = run_suite(defense.base, suite, data, model_name=base_name_of(model), store_root=store_root,
                             device=device, num_classes=num_classes, progress=progress)
    rows = []
    for o, b in zip(outcomes, base_outs):
        rows.append({"defense_gain": gain_fields(paired_comparison(o.robust.tolist(), b.robust.tolist())),
                     "defense_clean_gain": gain_fields(paired_comparison(o.clean.tolist(), b.clean.tolist()))})
    return rows
