"""The spatial kinds' validity checks: ``identity_is_clean`` and ``finer_grid`` (see ``spatial.py``).

Split out of ``spatial.py`` (issue 25: no module over 400 lines).
"""
from __future__ import annotations

import time

import torch

from symbench.bench.attacks.spatial import SpatialGrid, evaluate_transforms
from symbench.bench.kinds.spatial_setup import _progress
from symbench.bench.run.store import Store
from symbench.bench.suites import Suite

FAIL_POINTS, WARN_POINTS = 0.02, 0.01    # finer_grid: the attack suites' spot-check thresholds
CHECK_VERSIONS = {"identity_is_clean": 1, "finer_grid": 1}


def identity_check(pred_clean: torch.Tensor, pred_identity: torch.Tensor) -> dict:
    """``identity_is_clean``: the identity transform reproduces every clean prediction exactly."""
    bad = int((pred_clean != pred_identity).sum())
    n = len(pred_clean)
    if bad:
        return {"status": "fail", "detail": f"the identity transform (0°, 0 px) changed {bad} of {n} clean "
                                            "predictions: the transform code is not an exact identity"}
    return {"status": "pass", "detail": f"the identity transform (0°, 0 px) gives the clean prediction on all {n} "
                                        "examples"}


def finer_status(broken: int, subset: int, robust_acc: float, what: str) -> dict:
    """``finer_grid`` from ``broken`` of ``subset`` robust examples broken by the finer search, scaled to the row."""
    from symbench.bench.run.stats import wilson_interval

    if subset == 0:
        return {"status": "skip", "detail": f"no example the row counts robust to search again ({what})"}
    share = broken / subset
    points = share * robust_acc
    lo, hi = wilson_interval(broken, subset)
    status = "fail" if points > FAIL_POINTS else ("warn" if points > WARN_POINTS else "pass")
    return {"status": status,
            "detail": f"{what}: broke {broken} of {subset} examples the row counts robust (seeded subset; {share:.1%}, "
                      f"95% {lo:.1%}-{hi:.1%}), so the row over-reports by about {100 * points:.1f} points "
                      f"(fail above {100 * FAIL_POINTS:.0f}, warn above {100 * WARN_POINTS:.0f})"}


def _subset(mask: torch.Tensor, m: int, seed: int, name: str) -> torch.Tensor:
    from symbench.bench.checks.spot import sample_survivors, seed_of

    return sample_survivors(mask, m, seed_of(seed, name))


def _checks_fields(checks: dict) -> dict:
    from symbench.bench.checks import checks_id, verdict_of

    versions = {k: CHECK_VERSIONS[k] for k in checks}
    return {"checks": checks, "verdict": verdict_of(checks), "checks_id": checks_id(versions)}


def _finer_grid_check(counted, suite: Suite, grid: SpatialGrid, conv: str, x_all, y_all, robust: torch.Tensor,
                      store: Store, device, model_name: str = "model", progress: bool = False) -> dict:
    """Search a seeded subset of the row's robust examples at ``finer_check_factor`` x the rotation resolution.

    While the 95% interval of the over-report straddles the 2-point line the subset doubles (nested: the
    seeded order makes each subset contain the last, so only the added examples are searched), up to
    ``finer_check_max_n`` examples or every survivor. Each stage is one store record (group ``finer_grid``).
    """
    from symbench.bench.run.stats import wilson_interval

    m, factor = int(suite.option("finer_check_n", 100)), int(suite.option("finer_check_factor", 2))
    max_n = max(m, int(suite.option("finer_check_max_n", 400)))
    if m == 0 or factor < 2:
        return {"status": "skip", "detail": "finer-grid check turned off (finer_check_n = 0 or finer_check_factor < 2)"}
    fine = grid.finer(factor)
    coarse = set(grid.rotations.tolist())
    tr = fine.transforms()
    extra = tr[[a not in coarse for a in tr[:, 0].tolist()]]   # the rotations between grid points, every translation
    what = (f"{fine.n_rotations} rotations ({fine.to_json()['rotations_deg']['step']:g}° steps) x "
            f"{grid.n_translations ** 2} translations")
    acc, survivors = robust.float().mean().item(), int(robust.sum())
    searched: list[int] = []
    broken: list[bool] = []
    n_fwd, stage, size = 0, 0, m
    while True:
        idx = _subset(robust, min(size, max_n), suite.seed, "finer_grid").tolist()
        added = sorted(set(idx) - set(searched))
        rec = store.get("finer_grid", stage)
        if rec is None or rec.get("idx") != added or rec.get("grid") != fine.to_json():
            rec = _search(counted, suite, extra, conv, x_all, y_all, added, device, model_name, progress)
            rec["grid"] = fine.to_json()
            store.put("finer_grid", stage, rec)
        searched += rec["idx"]
        broken += rec["broken"]
        n_fwd += rec["n_forward"]
        lo, hi = wilson_interval(sum(broken), len(broken)) if broken else (0.0, 1.0)
        decided = hi * acc <= FAIL_POINTS or lo * acc > FAIL_POINTS
        if decided or len(searched) >= min(survivors, max_n):
            break
        stage, size = stage + 1, size * 2
    res = finer_status(sum(broken), len(broken), acc, what)
    if len(broken) >= survivors:
        note = "every survivor searched"
    elif not decided:
        note = f"still undecided at the largest subset ({max_n}, suite option finer_check_max_n)"
    else:
        note = f"{stage + 1} stage(s) of a doubling subset"
    res["detail"] += f"; {note}; {n_fwd} image forwards"
    return res


def finer_outcomes(counted, suite: Suite, extra: torch.Tensor, conv: str, x_all, y_all, idx, device,
                   model_name: str, progress: bool):
    """Each batch's outcome of the examples ``idx`` under the ``extra`` transforms: the finer check's passes,
    with a progress bar (both kinds' finer checks run them)."""
    starts = range(0, len(idx), suite.batch_size)
    with _progress(model_name, suite, len(starts) * len(extra), progress) as bar:
        bar.set_description(f"{model_name} {suite.name} finer_grid check")
        for s in starts:
            i = torch.as_tensor(idx[s:s + suite.batch_size], dtype=torch.long)
            yield evaluate_transforms(counted, x_all[i].to(device), y_all[i.to(y_all.device)], extra,
                                      convention=conv, on_step=bar.update)


def _search(counted, suite: Suite, extra: torch.Tensor, conv: str, x_all, y_all, idx: list[int], device,
            model_name: str, progress: bool) -> dict:
    """Which of the examples ``idx`` some transform of ``extra`` breaks (a finer_grid stage's record)."""
    t0, f0 = time.time(), counted.n_forward
    broken = []
    for out in finer_outcomes(counted, suite, extra, conv, x_all, y_all, idx, device, model_name, progress):
        broken += (~out.correct.all(1)).tolist()
    return {"idx": list(idx), "broken": broken, "n_forward": counted.n_forward - f0, "seconds": time.time() - t0}
