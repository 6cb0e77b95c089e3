"""Kind ``spatial``: the exhaustive grid plus random tries, and the per-batch grid record ``spatial_linf`` also
computes (see ``spatial.py`` for the kind's definition).

Split out of ``spatial.py`` (issue 25: no module over 400 lines).
"""
from __future__ import annotations

import time

import torch
from torch import nn

from symbench.bench.attacks.spatial import SpatialGrid, evaluate_transforms, pack_bits, random_transforms, unpack_bits
from symbench.bench.data import ImageData
from symbench.bench.kinds.spatial_checks import _checks_fields, _finer_grid_check, identity_check
from symbench.bench.kinds.spatial_setup import (GRID_EXACT, ORDER, _batches, _bools, _get_clean, _group, _prepare,
                                                _progress, grid_of, log, open_store)
from symbench.bench.run.counting import CountingModel
from symbench.bench.run.records import make_row
from symbench.bench.run.runner import EpsOutcome, _seed
from symbench.bench.suites import Suite, register_suite_kind

def _grid_record(counted: CountingModel, x, y, clean: torch.Tensor, grid: SpatialGrid, conv: str, bar,
                 *, topk: int = 0, tries: int = 0, seed: int = 0, start: int = 0) -> dict:
    """Every grid transform (and ``tries`` random ones per example) on one batch; the store record."""
    t0, f0 = time.time(), counted.n_forward
    out = evaluate_transforms(counted, x, y, grid.transforms(), convention=conv, on_step=bar.update)
    grid_robust = clean & out.correct.all(1)
    rec = {"grid_correct": pack_bits(out.correct), "grid_robust": grid_robust.tolist(),
           "identity_pred": out.pred[:, grid.identity_index()].tolist(),
           "worst": out.loss.argmax(1).tolist()}
    if topk:
        rec["topk"] = out.loss.topk(min(topk, grid.size), dim=1).indices.tolist()
    if tries:
        trs = torch.stack([random_transforms(tries, grid, _seed(seed, 1, start + i)) for i in range(len(x))])
        rnd = evaluate_transforms(counted, x, y, trs, convention=conv, on_step=bar.update)
        rec["random_robust"] = (clean & rnd.correct.all(1)).tolist()
    rec.update(n_forward=counted.n_forward - f0, seconds=time.time() - t0)
    return rec


def _check_grid_record(rec: dict, clean: list[bool], grid: SpatialGrid, topk: int, tries: int) -> None:
    n = len(clean)
    bits = unpack_bits(rec["grid_correct"], grid.size)
    if len(bits) != n:
        raise ValueError(f"'grid_correct' must hold {n} examples")
    want = (torch.tensor(clean) & bits.all(1)).tolist()
    if _bools(rec, "grid_robust", n) != want:
        raise ValueError("'grid_robust' disagrees with the clean mask and the per-transform outcomes")
    pred = rec["identity_pred"]
    if not isinstance(pred, list) or len(pred) != n or not all(type(p) is int for p in pred):
        raise ValueError(f"'identity_pred' must be {n} class indices")
    if topk and (len(rec.get("topk", [])) != n or any(len(t) != min(topk, grid.size) for t in rec["topk"])):
        raise ValueError(f"'topk' must list {topk} transforms per example")
    if tries:
        rnd = _bools(rec, "random_robust", n)
        if any(r and not c for r, c in zip(rnd, clean)):
            raise ValueError("'random_robust' marks an example robust that is wrong on clean input")



@register_suite_kind("spatial")
def run_spatial(model: nn.Module, suite: Suite, data: ImageData, *, model_name: str, store_root=None,
                device="cpu", progress: bool = True, **_) -> list[dict]:
    """One row: the exhaustive grid and the random tries, per-example worst case, with checks."""
    model, card, num_classes, fp = _prepare(model, suite, data, device)
    grid, conv = grid_of(suite), str(suite.option("interpolation", "bilinear"))
    tries = int(suite.option("random_tries", 10))
    bs = suite.batch_size
    store = open_store("spatial", model, fp, model_name, suite, data, store_root)
    group = _group("spatial", grid.max_rotation)
    grid_label, random_label = f"grid[{grid.size}]", f"random{tries}"
    labels = [grid_label] + ([random_label] if tries else [])
    counted = CountingModel(model, num_classes)
    x_all, y_all = data.x, data.y.to(device)
    batches = _batches(len(data), bs)
    clean_recs, recs = [], []
    bar = _progress(model_name, suite, len(batches) * (grid.size + tries), progress)
    for b, sl in batches:
        x, y = x_all[sl].to(device), y_all[sl]
        crec = _get_clean(store, b, sl, y, num_classes, counted, x)
        clean = torch.tensor(crec["correct"], dtype=torch.bool)

        def check(r, clean=crec["correct"]):
            _check_grid_record(r, clean, grid, 0, tries)
            robust = [g and r2 for g, r2 in zip(r["grid_robust"], r.get("random_robust", r["grid_robust"]))]
            if _bools(r, "robust", len(clean)) != robust or list(r["robust_after"]) != labels:
                raise ValueError("'robust' / 'robust_after' disagree with the grid and random outcomes")

        rec = store.get(group, b, index=(sl.start, sl.stop), check=check)
        if rec is None:
            rec = _grid_record(counted, x, y, clean.to(y.device), grid, conv, bar, tries=tries, seed=suite.seed,
                               start=sl.start)
            robust = [g and r for g, r in zip(rec["grid_robust"], rec.get("random_robust", rec["grid_robust"]))]
            rec.update(robust=robust, robust_after={grid_label: rec["grid_robust"],
                                                    **({random_label: robust} if tries else {})})
            store.put(group, b, rec, index=(sl.start, sl.stop))
        else:
            bar.update(grid.size + tries)
        clean_recs.append(crec)
        recs.append(rec)
    bar.close()

    cat = lambda key, rs=recs: torch.tensor([v for r in rs for v in r[key]])  # noqa: E731
    clean, robust, grid_robust = cat("correct", clean_recs), cat("robust"), cat("grid_robust")
    random_robust = cat("random_robust") if tries else None
    checks = {"identity_is_clean": identity_check(cat("pred", clean_recs), cat("identity_pred"))}
    checks["finer_grid"] = _finer_grid_check(counted, suite, grid, conv, x_all, y_all, robust, store, device,
                                             model_name, progress)
    outcome = EpsOutcome("spatial", grid.max_rotation, clean, robust,
                         {grid_label: grid_robust, **({random_label: robust} if tries else {})},
                         n_forward=sum(r["n_forward"] for r in recs), seconds=sum(r["seconds"] for r in recs))
    block = {**grid.to_json(), "order": ORDER, "interpolation": conv, "padding": "zeros",
             "grid_acc": grid_robust.float().mean().item(), "grid_exact": GRID_EXACT,
             "random_tries": tries,
             "random_acc": random_robust.float().mean().item() if tries else None,
             "random_draws": ("per example, uniform over the box (angle, tx, ty), seeded by the suite seed and the "
                              "example's position") if tries else None,
             "robust_is": "correct on the clean image, every grid point" + (" and every random try" if tries else "")}
    row = make_row(model_name=model_name, card=card, ckpt_sha256=fp, suite=suite, outcome=outcome, data=data,
                   device=device, store_key=store.key, extra={
                       "eps_display": f"±{grid.max_rotation:g}°, ±{grid.max_translation:g} px", "spatial": block,
                       **_checks_fields(checks)})
    log.info("%s %s: clean %.3f, grid %.3f (%d transforms, exact over the grid), random-%d %s, worst case %.3f [%s]",
             model_name, suite.id, outcome.clean_acc, block["grid_acc"], grid.size, tries,
             f"{block['random_acc']:.3f}" if tries else "-", outcome.robust_acc, row["verdict"])
    return [row]
