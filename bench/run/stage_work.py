"""What the checks, orbit and base-reference stages compute, as functions of the model, suite and data.

Split out of ``evaluate.py`` (issue 25: no module over 400 lines); ``evaluate`` re-exports these names.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("symbench")


def run_validity_checks(model, suite, data, outcomes, model_name, key, store_root, device) -> dict:
    """Checks + verdict + equivariance errors for a run, cached in the run's store."""
    from symbench.bench.checks import cached_checks
    from symbench.bench.run.store import Store

    store = Store(store_root, model_name, key)
    # cached_checks runs only the checks the stored record lacks (new or changed checks judge old runs too)
    log.info("%s %s: validity checks (%d of them; cached in the store once done)...", model_name, suite.id,
             _n_checks())
    t0 = time.time()
    cached = cached_checks(model, suite, data.x.to(device), data.y.to(device), outcomes, store,
                           seed=suite.seed, m=int(suite.option("checks_m", 64)))
    log.info("%s %s: checks done in %.0f s, verdict %s", model_name, suite.id, time.time() - t0, cached["verdict"])
    return cached


def _n_checks() -> int:
    from symbench.bench import checks

    return len(getattr(checks, "CHECKS", ())) or 1


def run_orbit_columns(model, suite, data, outcomes, model_name, key, store_root, device) -> list[dict] | None:
    """The suite's optional ``[orbit]`` table: orbit + attack accuracy per eps on the first ``n`` examples."""
    from symbench.bench.checks.orbit import ORBIT, orbit_outcome
    from symbench.bench.run.store import Store

    spec = dict(suite.option("orbit", ()) or ())
    if not spec:
        return None
    store = Store(store_root, model_name, key)
    n = min(int(spec.pop("n", 100)), len(data))
    attack = spec.pop("attack", "ta_pgd")
    only_eps = spec.pop("eps", None)  # orbit cost = |orbit| attacks per eps: pick a few eps on CPU
    cols = []
    for i, o in enumerate(outcomes):
        if only_eps is not None and not any(abs(o.eps - e) < 1e-9 for e in only_eps):
            cols.append(None)
            continue
        rec = store.get("orbit", i)
        if rec is None:
            log.info("%s %s: orbit column at eps %s (%d transforms x %s on %d examples)...", model_name, suite.id,
                     o.eps_display if hasattr(o, "eps_display") else f"{o.eps:.4g}", len(ORBIT), attack, n)
            res = orbit_outcome(model, data.x[:n].to(device), data.y[:n].to(device), o.eps, attack=attack,
                                norm=o.norm, seed=suite.seed, **spec)
            rec = {"n": n, "attack": attack, "params": spec, "transforms": list(ORBIT),
                   "clean_acc": res["clean"].float().mean().item(), "robust_acc": res["adv"].float().mean().item(),
                   "per_transform": res["per_transform"],
                   "robust_acc_no_orbit": o.robust[:n].float().mean().item()}
            store.put("orbit", i, rec)
        cols.append(rec)
    return cols


def base_reference(model, suite, data, *, store_root=None, device="cpu", progress: bool = False,
                   num_classes: int = 10) -> list[dict] | None:
    """Run ``suite`` on the base of a defended model; one dict of extra row fields per (threat, eps).

    Returns None for an undefended model. The fields (``base_model``, ``base_clean_acc``,
    ``base_robust_acc``, ``base_attacks``) let a row show the defense's gain as a difference. The base
    run has its own store entry (under the base's name), so it is resumable and shared with plain
    runs of the base on the same suite and data.
    """
    from symbench.bench.run.runner import run_suite
    from symbench.models.defenses import find_defense

    defense = find_defense(model)
    if defense is None:
        return None
    card = getattr(defense, "card", None) or getattr(model, "card", None)
    base_name = (card.name if card is not None else "model").split("+")[0]
    outcomes, _ = run_suite(defense.base, suite, data, model_name=base_name, store_root=store_root, device=device,
                            num_classes=num_classes, progress=progress)
    return [{"base_model": base_name, "base_clean_acc": o.clean_acc, "base_robust_acc": o.robust_acc,
             "base_attacks": [{"label": k, "acc_after": v} for k, v in o.per_attack_acc().items()]}
            for o in outcomes]
