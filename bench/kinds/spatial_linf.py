"""Kind ``spatial_linf``: the grid, then a Linf attack on each example's k highest-loss grid transforms
(see ``spatial.py`` for the kind's definition).

Split out of ``spatial.py`` (issue 25: no module over 400 lines).
"""
from __future__ import annotations

import time

import torch
from torch import nn
from tqdm import tqdm

from symbench.bench.attacks.spatial import rotate_translate
from symbench.bench.data import ImageData
from symbench.bench.kinds.spatial_checks import _checks_fields, identity_check
from symbench.bench.kinds.spatial_grid import _check_grid_record, _grid_record
from symbench.bench.kinds.spatial_setup import (ORDER, _batches, _bools, _get_clean, _group, _prepare, _progress,
                                                grid_of, log, open_store)
from symbench.bench.run.counting import CountingModel
from symbench.bench.run.records import make_row
from symbench.bench.run.runner import EpsOutcome, _seed
from symbench.bench.suites import Suite, register_suite_kind

@register_suite_kind("spatial_linf")
def run_spatial_linf(model: nn.Module, suite: Suite, data: ImageData, *, model_name: str, store_root=None,
                     device="cpu", progress: bool = True, **_) -> list[dict]:
    """One row per eps: the grid, then the attack on each example's k highest-loss grid transforms."""
    model, card, num_classes, fp = _prepare(model, suite, data, device)
    grid, conv = grid_of(suite), str(suite.option("interpolation", "bilinear"))
    k, chunk = int(suite.option("k", 10)), int(suite.option("chunk", 25))
    spec, threat = suite.attacks[0], suite.threats[0]
    attack = spec.build(threat.norm)
    bs = suite.batch_size
    store = open_store("spatial_linf", model, fp, model_name, suite, data, store_root, eps=list(threat.eps))
    counted = CountingModel(model, num_classes)
    x_all, y_all = data.x, data.y.to(device)
    batches = _batches(len(data), bs)
    grid_label, atk_label = f"grid[{grid.size}]", f"{spec.label}[top{k}]"
    tr = grid.transforms()
    bar = _progress(model_name, suite, len(batches) * grid.size, progress)
    clean_recs, grid_recs = [], []
    for b, sl in batches:
        x, y = x_all[sl].to(device), y_all[sl]
        crec = _get_clean(store, b, sl, y, num_classes, counted, x)
        clean = torch.tensor(crec["correct"], dtype=torch.bool)
        rec = store.get("spatial_grid", b, index=(sl.start, sl.stop),
                        check=lambda r, c=crec["correct"]: _check_grid_record(r, c, grid, k, 0))
        if rec is None:
            rec = _grid_record(counted, x, y, clean.to(y.device), grid, conv, bar, topk=k)
            store.put("spatial_grid", b, rec, index=(sl.start, sl.stop))
        else:
            bar.update(grid.size)
        clean_recs.append(crec)
        grid_recs.append(rec)
    bar.close()
    clean = torch.tensor([v for r in clean_recs for v in r["correct"]], dtype=torch.bool)
    grid_robust = torch.tensor([v for r in grid_recs for v in r["grid_robust"]], dtype=torch.bool)
    ident = identity_check(torch.tensor([v for r in clean_recs for v in r["pred"]]),
                           torch.tensor([v for r in grid_recs for v in r["identity_pred"]]))
    rows = []
    for ei, eps in enumerate(threat.eps):
        group = _group("spatial_linf", eps)
        recs = []
        abar = tqdm(total=int(grid_robust.sum()) * k, desc=f"{model_name} {suite.name} {spec.label} top-{k} "
                    f"eps={eps:.4f}", unit="attack", disable=not progress, leave=False, mininterval=1.0)
        for (b, sl), grec in zip(batches, grid_recs):
            def check(r, g=grec["grid_robust"]):
                robust = _bools(r, "robust", len(g))
                if any(v and not w for v, w in zip(robust, g)) or list(r["robust_after"]) != [grid_label, atk_label]:
                    raise ValueError("'robust' must be a subset of the grid's survivors, with both cascade steps")
            rec = store.get(group, b, index=(sl.start, sl.stop), check=check)
            if rec is None:
                rec = _topk_attack(counted, attack, x_all[sl].to(device), y_all[sl], grec, tr, eps, k, chunk,
                                   _seed(suite.seed, ei, b), conv, abar)
                rec["robust_after"] = {grid_label: grec["grid_robust"], atk_label: rec["robust"]}
                store.put(group, b, rec, index=(sl.start, sl.stop))
            else:
                abar.update(sum(grec["grid_robust"]) * k)
            recs.append(rec)
        abar.close()
        robust = torch.tensor([v for r in recs for v in r["robust"]], dtype=torch.bool)
        outcome = EpsOutcome("spatial_linf", eps, clean, robust, {grid_label: grid_robust, atk_label: robust},
                             n_forward=sum(r["n_forward"] for r in grid_recs + recs),
                             n_backward=sum(r.get("n_backward", 0) for r in recs),
                             seconds=sum(r["seconds"] for r in grid_recs + recs))
        block = {**grid.to_json(), "k": k, "attack": spec.label, "attack_params": attack.params(), "order": ORDER,
                 "interpolation": conv, "padding": "zeros", "grid_acc": grid_robust.float().mean().item(),
                 "perturbation": "the Linf perturbation is added to the transformed image (transform, then attack)",
                 "bound": (f"upper bound on the combined worst case: only each example's {k} highest-loss grid "
                           f"transforms (of {grid.size}) are attacked")}
        rows.append(make_row(model_name=model_name, card=card, ckpt_sha256=fp, suite=suite, outcome=outcome,
                             data=data, device=device, store_key=store.key, extra={
                                 "spatial_linf": block, **_checks_fields({"identity_is_clean": ident})}))
        log.info("%s %s eps=%s: clean %.3f, grid %.3f, grid + %s on the top %d: %.3f (an upper bound)", model_name,
                 suite.id, rows[-1]["eps_display"], outcome.clean_acc, block["grid_acc"], spec.label, k,
                 outcome.robust_acc)
    return rows


def _topk_attack(counted, attack, x, y, grec: dict, tr: torch.Tensor, eps: float, k: int, chunk: int, seed: int,
                 conv: str, bar) -> dict:
    """For rank j = 0..k-1: each still-robust example's j-th highest-loss transform, then ``attack`` on it."""
    t0, f0, b0 = time.time(), counted.n_forward, counted.n_backward
    alive = torch.tensor(grec["grid_robust"], dtype=torch.bool)
    topk = torch.tensor(grec["topk"], dtype=torch.long)          # (B,k)
    broken_at: list[int | None] = [None] * len(alive)
    for j in range(topk.shape[1]):
        idx = alive.nonzero().flatten()
        for ci, s in enumerate(range(0, len(idx), chunk)):
            i = idx[s:s + chunk]
            a, tx, ty = tr[topk[i, j]].unbind(1)
            with torch.no_grad():
                xt = rotate_translate(x[i.to(x.device)], a, tx, ty, convention=conv)
            yi = y[i.to(y.device)]
            x_adv = attack(counted, xt, yi, eps, seed=_seed(seed, j, ci))
            with torch.no_grad():
                ok = (counted(x_adv).argmax(1) == yi).cpu()
            for e in i[~ok].tolist():
                broken_at[e] = j
            alive[i[~ok]] = False
            bar.update(len(i) + int((~ok).sum()) * (topk.shape[1] - j - 1))  # a broken example skips its later ranks
    return {"robust": alive.tolist(), "broken_at_rank": broken_at, "n_forward": counted.n_forward - f0,
            "n_backward": counted.n_backward - b0, "seconds": time.time() - t0}
