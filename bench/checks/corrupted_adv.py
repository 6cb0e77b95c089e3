"""Validity checks for ``corrupted_adv`` rows (seed 1's Table 1: FGSM then PGD on CIFAR-10-C inputs).

Those rows are attacks of the same FGSM + PGD kind whose ``paper`` rows the stronger-attack spot check found
3-6 points too high, so they get the checks that apply to an attack cascade, per corruption, at a bounded
cost: the gradient checks on a diagnostic subset of that corruption's images (``iterative_beats_single_step``,
``more_steps_converged``, ``large_eps_breaks_all``, ``gradients_nonzero``, ``outputs_are_logits``) and the
APGD spot check per row (``apgd_not_stronger``). The spot check's budget is bounded unless the suite sets its
own ``spot_check_*`` options (:data:`BOUNDED`): 19 corruptions x 4 eps would otherwise cost an AutoAttack
run per model. Checks left out (``black_box_not_stronger``, ``transfer_not_stronger``, ``monotone_in_eps``,
``deterministic_or_eot``) are the costlier or eps-curve ones; the rows list exactly what ran.

A ``mean/<severity>`` row aggregates its corruptions: each check's worst status over them, naming the
corruption it came from.
"""
from __future__ import annotations

import logging
from dataclasses import replace

log = logging.getLogger(__name__)

CHECKS_FOR_CORRUPTED = ("iterative_beats_single_step", "more_steps_converged", "large_eps_breaks_all",
                        "gradients_nonzero", "apgd_not_stronger", "outputs_are_logits")
# per corruption: 16 diagnostic images; the spot check on 32 survivors (growing to 64 while undecided),
# 20 APGD iterations and 3 target classes (the suite's own spot_check_* / checks_m options win)
BOUNDED = {"checks_m": 16, "spot_check_n": 32, "spot_check_max_n": 64, "spot_check_iters": 20,
           "spot_check_targets": 3}
_RANK = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


def check_suite(suite):
    """The suite as its checks see it: an attack suite with the bounded check budgets as defaults."""
    options = {**BOUNDED, **dict(suite.options)}
    return replace(suite, kind="attack", options=tuple(sorted(options.items())))


def corrupted_adv_checks(model, suite, data, rows: list[dict], *, model_name: str, store_root, device,
                         progress: bool = False) -> list[dict | None]:
    """Row fields (``checks``, ``verdict``, ``checks_id``, ``equivariance``) for each of ``rows`` (the rows
    ``run_corrupted_adv`` returned, in any order); per-corruption results are cached in each corruption's run."""
    from symbench.bench.checks import cached_checks, row_checks, verdict_of
    from symbench.bench.kinds.corruptions import _corruption_list, corrupted, resolve_source
    from symbench.bench.run.runner import run_suite
    from symbench.bench.run.store import Store

    names, sevs = _corruption_list(suite)
    source, found = resolve_source(suite, data)
    opts = dict(source=source, seed=suite.seed, official_dir=found, rb_dir=suite.option("robustbench_dir"),
                cache_dir=suite.option("cache_dir"))
    attack_suite, checked = replace(suite, kind="attack"), check_suite(suite)
    num_classes = getattr(getattr(model, "card", None), "num_classes", 10)
    m = int(checked.option("checks_m"))
    per: dict[tuple, dict] = {}  # (variant, norm, eps) -> row fields
    for s in sevs:
        for i, c in enumerate(names):
            log.info("%s %s: checks on corruption %s/%d (%d of %d)", model_name, suite.id, c, s, i + 1, len(names))
            cdata = corrupted(data, c, s, **opts)
            outcomes, key = run_suite(model, attack_suite, cdata, model_name=model_name, store_root=store_root,
                                      device=device, num_classes=num_classes, progress=False)  # from the store
            rec = cached_checks(model, checked, cdata.x.to(device), cdata.y.to(device), outcomes,
                                Store(store_root, model_name, key), seed=suite.seed, m=m, only=CHECKS_FOR_CORRUPTED)
            for o in outcomes:
                per[(f"{c}/{s}", o.norm, round(float(o.eps), 9))] = row_checks(rec, o)
    out = []
    for r in rows:
        k = (r.get("variant"), r["threat"], round(float(r["eps"]), 9))
        if k in per:
            out.append(per[k])
            continue
        parts = [(v.split("/")[0], f) for (v, t, e), f in per.items()
                 if t == k[1] and e == k[2] and v.split("/")[1] == str(r.get("severity"))]
        if not parts:
            out.append(None)
            continue
        checks = {}
        for name in parts[0][1]["checks"]:
            worst_c, worst = max(parts, key=lambda p: _RANK[p[1]["checks"][name]["status"]])
            w = worst["checks"][name]
            bad = sum(p[1]["checks"][name]["status"] in ("warn", "fail") for p in parts)
            checks[name] = {"status": w["status"],
                            "detail": f"worst of {len(parts)} corruptions ({bad} warn/fail), {worst_c}: {w['detail']}"}
        out.append({"checks": checks, "verdict": verdict_of(checks), "checks_id": parts[0][1]["checks_id"]})
    return out
