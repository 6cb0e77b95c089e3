"""Kind ``rotation_curve``: every whole-degree rotation once per example, one row per θ, with its finer check
(see ``spatial.py`` for the kind's definition).

Split out of ``spatial.py`` (issue 25: no module over 400 lines).
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn

from symbench.bench.attacks.spatial import evaluate_transforms, pack_bits, rotation_transforms, unpack_bits
from symbench.bench.data import ImageData
from symbench.bench.kinds.spatial_checks import _checks_fields, _subset, finer_outcomes, finer_status, identity_check
from symbench.bench.kinds.spatial_setup import _batches, _get_clean, _group, _prepare, _progress, log, open_store
from symbench.bench.run.counting import CountingModel
from symbench.bench.run.records import make_row
from symbench.bench.run.runner import EpsOutcome
from symbench.bench.run.store import Store
from symbench.bench.suites import Suite, register_suite_kind

def min_broken_angle(correct: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """(B,) smallest |angle| at which each example is misclassified (inf where never), from (B,T) outcomes."""
    a = angles.abs().view(1, -1).expand_as(correct).to(torch.float64)
    return torch.where(~correct, a, torch.full_like(a, math.inf)).min(1).values


@register_suite_kind("rotation_curve")
def run_rotation_curve(model: nn.Module, suite: Suite, data: ImageData, *, model_name: str, store_root=None,
                       device="cpu", progress: bool = True, **_) -> list[dict]:
    """One row per θ: worst case over rotations within ±θ, from every angle computed once per example."""
    model, card, num_classes, fp = _prepare(model, suite, data, device)
    conv = str(suite.option("interpolation", "bilinear"))
    step = float(suite.option("step", 1.0))
    thetas = [float(t) for t in suite.option("thetas", (0, 5, 10, 15, 30, 45, 90, 180))]
    if not thetas or any(not 0 <= t <= 180 for t in thetas) or any(abs(t / step - round(t / step)) > 1e-9
                                                                   for t in thetas):
        raise ValueError(f"suite {suite.name!r}: thetas must be multiples of step {step:g} in [0, 180], got {thetas}")
    tr = rotation_transforms(180.0, step)                     # (T,3): -180 .. 180 in steps
    angles = tr[:, 0]
    bs = suite.batch_size
    store = open_store("rotation_curve", model, fp, model_name, suite, data, store_root)
    counted = CountingModel(model, num_classes)
    x_all, y_all = data.x, data.y.to(device)
    batches = _batches(len(data), bs)
    zero = int((angles == 0).nonzero()[0, 0])
    bar = _progress(model_name, suite, len(batches) * len(tr), progress)
    clean_recs, correct_parts, recs = [], [], []
    for b, sl in batches:
        x, y = x_all[sl].to(device), y_all[sl]
        crec = _get_clean(store, b, sl, y, num_classes, counted, x)

        def check(r, n=sl.stop - sl.start):
            if len(unpack_bits(r["correct"], len(tr))) != n or len(r["identity_pred"]) != n:
                raise ValueError(f"the record must hold {n} examples")

        rec = store.get("rotation_angles", b, index=(sl.start, sl.stop), check=check)
        if rec is None:
            t0, f0 = time.time(), counted.n_forward
            out = evaluate_transforms(counted, x, y, tr, convention=conv, on_step=bar.update)
            rec = {"correct": pack_bits(out.correct), "identity_pred": out.pred[:, zero].tolist(),
                   "angles": [float(a) for a in angles], "n_forward": counted.n_forward - f0,
                   "seconds": time.time() - t0}
            store.put("rotation_angles", b, rec, index=(sl.start, sl.stop))
        else:
            bar.update(len(tr))
        clean_recs.append(crec)
        recs.append(rec)
        correct_parts.append(unpack_bits(rec["correct"], len(tr)))
    bar.close()
    clean = torch.tensor([v for r in clean_recs for v in r["correct"]], dtype=torch.bool)
    correct = torch.cat(correct_parts)                           # (N,T)
    first_broken = min_broken_angle(correct, angles)             # (N,)
    ident = identity_check(torch.tensor([v for r in clean_recs for v in r["pred"]]),
                           torch.tensor([v for r in recs for v in r["identity_pred"]]))
    robust_at = {t: clean & (first_broken > t + 1e-9) for t in thetas}
    label_of = {t: f"rotations[±{t:g}°,{step:g}°]" for t in thetas}
    # per-θ masks in the runner's layout (derived from the angle records; rewritten only when they differ)
    for t in thetas:
        for (b, sl) in batches:
            want = robust_at[t][sl].tolist()
            want = {"robust": want, "robust_after": {label_of[t]: want}}
            got = store.get(_group("rotation", t), b, index=(sl.start, sl.stop))
            if got != want:
                store.put(_group("rotation", t), b, want, index=(sl.start, sl.stop))
    fine = _finer_rotation_check(counted, suite, step, conv, x_all, y_all, clean, store, device, model_name, progress)
    n_fwd, secs = sum(r["n_forward"] for r in recs), sum(r["seconds"] for r in recs)
    rows = []
    for t in thetas:
        robust, label = robust_at[t], label_of[t]
        outcome = EpsOutcome("rotation", t, clean, robust, {label: robust}, n_forward=n_fwd, seconds=secs)
        at = {f"{s:+g}": correct[:, int(((angles - s).abs() < 1e-9).nonzero()[0, 0])].float().mean().item()
              for s in sorted({t, -t})}
        checks = {"identity_is_clean": ident}
        if fine is not None:
            survivors = [i for i in fine["idx"] if robust[i]]
            broken = sum(1 for i, fb in zip(fine["idx"], fine["fine_min_abs"]) if robust[i] and fb is not None
                         and fb <= t + 1e-9)
            checks["finer_grid"] = finer_status(broken, len(survivors), robust.float().mean().item(),
                                                f"{step / 2:g}° steps within ±{t:g}°")
        block = {"theta": t, "step_deg": step, "n_angles": int((angles.abs() <= t + 1e-9).sum()),
                 "acc_at": at, "interpolation": conv, "padding": "zeros",
                 "angles_note": "every angle -180..180 in steps is computed once per example (the 90° multiples "
                                "exactly); a row's worst case is over |angle| <= theta",
                 "cost_note": "n_forward and wall_seconds are the whole curve's (shared by its rows)"}
        rows.append(make_row(model_name=model_name, card=card, ckpt_sha256=fp, suite=suite, outcome=outcome,
                             data=data, device=device, store_key=store.key, extra={
                                 "eps_display": f"±{t:g}°", "rotation": block, **_checks_fields(checks)}))
    log.info("%s %s: worst-case accuracy within ±θ: %s", model_name, suite.id,
             ", ".join(f"{r['eps']:g}° {r['robust_acc']:.3f}" for r in rows))
    return rows


def _finer_rotation_check(counted, suite: Suite, step: float, conv: str, x_all, y_all, clean: torch.Tensor,
                          store: Store, device, model_name: str = "model", progress: bool = False) -> dict | None:
    """The half-step angles on a seeded subset of clean-correct examples: per example the smallest |angle|
    among them that breaks it (None when none does)."""
    m, factor = int(suite.option("finer_check_n", 100)), int(suite.option("finer_check_factor", 2))
    if m == 0 or factor < 2:
        return None
    fine = rotation_transforms(180.0, step / factor)
    coarse = {round(a, 9) for a in rotation_transforms(180.0, step)[:, 0].tolist()}
    extra = fine[[round(a, 9) not in coarse for a in fine[:, 0].tolist()]]
    idx = _subset(clean, m, suite.seed, "finer_rotation")
    rec = store.get("finer_grid", 0)
    if rec is None or rec.get("idx") != idx.tolist() or rec.get("step") != step / factor:
        t0, f0 = time.time(), counted.n_forward
        first = []
        for out in finer_outcomes(counted, suite, extra, conv, x_all, y_all, idx, device, model_name, progress):
            first += [None if math.isinf(v) else v for v in min_broken_angle(out.correct, extra[:, 0]).tolist()]
        rec = {"idx": idx.tolist(), "fine_min_abs": first, "step": step / factor,
               "n_forward": counted.n_forward - f0, "seconds": time.time() - t0}
        store.put("finer_grid", 0, rec)
    return rec
