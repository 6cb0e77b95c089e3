"""Suite kinds ``spatial``, ``rotation_curve`` and ``spatial_linf``: worst-case rotations and translations.

- ``spatial``: Engstrom et al. 2019's exhaustive grid (±30° in 31 rotations × ±3 px in 5 × 5
  translations = 775 transforms, bilinear, zero padding; see ``bench/attacks/spatial.py``) plus their
  worst-of-10 random tries. One row, threat ``spatial``, ``eps`` = the rotation budget in degrees.
  An example counts robust only if it is correct on the clean image, on every grid point and on
  every random try (robust accuracy is the per-example worst case over every attack run, as everywhere
  in symbench); the grid alone (``spatial.grid_acc``, exact over the grid) and the random tries alone
  (``spatial.random_acc``, the paper's second number) are in the row beside it.
- ``rotation_curve``: rotations only, every whole degree in [-180, 180] computed once per example;
  one row per θ (threat ``rotation``, ``eps`` = θ in degrees) with the worst case over |angle| <= θ,
  and the accuracy at exactly ±θ (``rotation.acc_at``), where a P4-invariant model shows its 90°.
- ``spatial_linf``: the grid, then APGD-CE at Linf eps on each example's k highest-loss grid
  transforms (the Linf perturbation is added to the transformed image); an example survives only if
  the grid and all k attacks leave it correct. Only k of the 775 transforms are attacked, so the row
  is an upper bound on the combined worst case (``spatial_linf.bound``).

Per-example outcomes go to the run's store per batch (``clean`` and ``<threat>_<eps>`` groups in the
runner's layout, so paired comparisons read them like any row's), so a killed run resumes.

Validity (each row's ``checks`` and verdict): ``identity_is_clean`` (the identity transform,
through the same transform code, gives the clean predictions on every example) and, for the grids,
``finer_grid``: a seeded subset of the examples a row counts robust is searched again at twice the
rotation resolution (the rotations between grid points, same translations); the share it breaks,
scaled to the row (``broken / subset × robust_acc``, as the attack suites' spot check), fails the row
above 2 points and warns above 1.
"""
from __future__ import annotations

import logging
import math
import time

import torch
from torch import nn
from tqdm import tqdm

from symbench.bench.attacks.spatial import (CONVENTIONS, SpatialGrid, evaluate_transforms, pack_bits,
                                            random_transforms, rotate_translate, rotation_transforms, unpack_bits)
from symbench.bench.data import ImageData
from symbench.bench.run.counting import CountingModel
from symbench.bench.run.preflight import check_labels
from symbench.bench.run.records import make_row
from symbench.bench.run.runner import (EpsOutcome, _seed, check_clean_record, check_model_output, defense_settings,
                                       model_fingerprint, scoring_draws)
from symbench.bench.run.store import Store, run_key
from symbench.bench.suites import Suite, register_suite_kind
from symbench.models.code_hash import code_sha256

log = logging.getLogger(__name__)

FAIL_POINTS, WARN_POINTS = 0.02, 0.01    # finer_grid: the attack suites' spot-check thresholds
CHECK_VERSIONS = {"identity_is_clean": 1, "finer_grid": 1}
ORDER = ("rotate about the image centre (counter-clockwise as displayed), then translate (tx right, ty down); "
         "one bilinear interpolation of the composed map, zeros outside the image")
GRID_EXACT = ("exact over the grid: every example was classified under every grid transform, so grid_acc is the "
              "accuracy at each example's worst grid point; transforms between grid points are not covered "
              "(finer_grid samples them)")
_GRID_KEYS = {"max_rotation", "n_rotations", "max_translation", "n_translations", "interpolation", "padding",
              "finer_check_n", "finer_check_factor", "finer_check_max_n"}
OPTIONS = {"spatial": _GRID_KEYS | {"random_tries"},
           "rotation_curve": {"thetas", "step", "interpolation", "padding", "finer_check_n", "finer_check_factor"},
           "spatial_linf": (_GRID_KEYS - {"finer_check_n", "finer_check_factor", "finer_check_max_n"}) | {"k", "chunk"}}


# ----------------------------------------------------------------------------------------------------------------
# Settings, refusals, batches
# ----------------------------------------------------------------------------------------------------------------

def _check_options(suite: Suite) -> None:
    """Unknown option keys (a typo would silently run the default) and unsupported settings, before any compute."""
    known = OPTIONS[suite.kind]
    unknown = sorted(k for k, _ in suite.options if k not in known)
    if unknown:
        raise ValueError(f"suite {suite.name!r} (kind {suite.kind}): unknown option(s) {unknown}; known: "
                         f"{sorted(known)}")
    interp = str(suite.option("interpolation", "bilinear"))
    if interp not in CONVENTIONS:
        raise ValueError(f"suite {suite.name!r}: interpolation must be one of {CONVENTIONS} ('art' replays ART's "
                         f"scipy cubic-spline transform), got {interp!r}")
    if str(suite.option("padding", "zeros")) != "zeros":
        raise ValueError(f"suite {suite.name!r}: only padding = 'zeros' is implemented")
    for key in ("finer_check_n", "finer_check_factor", "finer_check_max_n", "random_tries", "k", "chunk"):
        v = suite.option(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ValueError(f"suite {suite.name!r}: {key} must be an integer >= 0, got {v!r}")
    if suite.kind == "spatial_linf":
        if len(suite.threats) != 1 or suite.threats[0].norm != "linf" or len(suite.attacks) != 1:
            raise ValueError(f"suite {suite.name!r}: spatial_linf needs one [[threats]] entry with norm = 'linf' and "
                             "exactly one [[attacks]] entry (the attack run on each top-k transform)")
        if int(suite.option("k", 10)) < 1 or int(suite.option("chunk", 25)) < 1:
            raise ValueError(f"suite {suite.name!r}: k and chunk must be >= 1")


def grid_of(suite: Suite) -> SpatialGrid:
    return SpatialGrid(float(suite.option("max_rotation", 30.0)), int(suite.option("n_rotations", 31)),
                       float(suite.option("max_translation", 3.0)), int(suite.option("n_translations", 5)))


def _prepare(model: nn.Module, suite: Suite, data: ImageData, device):
    """Checks before compute; returns (model on device, card, num_classes, fingerprint)."""
    _check_options(suite)
    card = getattr(model, "card", None)
    num_classes = getattr(card, "num_classes", 10)
    model = model.to(device).eval()
    check_model_output(model, data.x[:2].to(device), num_classes)
    check_labels(data.y, num_classes, data.source)
    if scoring_draws(model, suite, data.x[:4].to(device)) > 1:
        raise ValueError(f"suite {suite.name!r}: the spatial kinds judge deterministic models (one forward per "
                         "transform); this model is randomized (its card says so, or two forward passes differ). "
                         "Evaluate its deterministic base, or leave it out of the spatial boards with this reason")
    return model, card, num_classes, model_fingerprint(model)


def _batches(n: int, bs: int) -> list[tuple[int, slice]]:
    return [(b, slice(s, min(s + bs, n))) for b, s in enumerate(range(0, n, bs))]


def _group(threat: str, eps: float) -> str:
    return f"{threat}_{eps:.8f}"   # the runner's layout: bench/run/compare.py reads "robust" from it


def _bools(rec: dict, key: str, n: int) -> list[bool]:
    v = rec[key]
    if not isinstance(v, list) or len(v) != n or not all(type(i) is bool for i in v):
        raise ValueError(f"{key!r} must be a list of {n} booleans")
    return v


def _clean_record(counted, x, y) -> dict:
    with torch.inference_mode():
        pred = counted(x).argmax(1)
    return {"pred": pred.tolist(), "correct": (pred == y).tolist()}


def _get_clean(store: Store, b: int, sl: slice, y: torch.Tensor, num_classes: int, counted, x) -> dict:
    rec = store.get("clean", b, index=(sl.start, sl.stop), check=lambda r: check_clean_record(r, y, num_classes))
    if rec is None:
        rec = _clean_record(counted, x, y)
        store.put("clean", b, rec, index=(sl.start, sl.stop))
    return rec


def _progress(model_name: str, suite: Suite, total: int, progress: bool) -> tqdm:
    # stderr, one update per transform of a batch: a few per second on a CPU, never more than ~10 s apart
    return tqdm(total=total, desc=f"{model_name} {suite.name}", unit="fwd", disable=not progress, leave=False,
                mininterval=1.0)


# ----------------------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------------------
# The grid over a batch (shared by spatial and spatial_linf)
# ----------------------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------------------
# Kind "spatial"
# ----------------------------------------------------------------------------------------------------------------

@register_suite_kind("spatial")
def run_spatial(model: nn.Module, suite: Suite, data: ImageData, *, model_name: str, store_root=None,
                device="cpu", progress: bool = True, **_) -> list[dict]:
    """One row: the exhaustive grid and the random tries, per-example worst case, with checks."""
    model, card, num_classes, fp = _prepare(model, suite, data, device)
    grid, conv = grid_of(suite), str(suite.option("interpolation", "bilinear"))
    tries = int(suite.option("random_tries", 10))
    bs = suite.batch_size
    key = run_key(kind="spatial", model=fp, code=code_sha256(model), suite=suite.sha256, data=data.sha256,
                  n=len(data), seed=suite.seed, batch_size=bs, **defense_settings(model))
    store = Store(store_root, model_name, key)
    store.write_meta({"model": model_name, "suite": suite.id, "data": data.source, "data_sha256": data.sha256,
                      "n": len(data), "batch_size": bs, "kind": "spatial"})
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
                   device=device, store_key=key, extra={
                       "eps_display": f"±{grid.max_rotation:g}°, ±{grid.max_translation:g} px", "spatial": block,
                       **_checks_fields(checks)})
    log.info("%s %s: clean %.3f, grid %.3f (%d transforms, exact over the grid), random-%d %s, worst case %.3f [%s]",
             model_name, suite.id, outcome.clean_acc, block["grid_acc"], grid.size, tries,
             f"{block['random_acc']:.3f}" if tries else "-", outcome.robust_acc, row["verdict"])
    return [row]


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


def _search(counted, suite: Suite, extra: torch.Tensor, conv: str, x_all, y_all, idx: list[int], device,
            model_name: str, progress: bool) -> dict:
    """Which of the examples ``idx`` some transform of ``extra`` breaks (a finer_grid stage's record)."""
    t0, f0 = time.time(), counted.n_forward
    broken = []
    starts = range(0, len(idx), suite.batch_size)
    with _progress(model_name, suite, len(starts) * len(extra), progress) as bar:
        bar.set_description(f"{model_name} {suite.name} finer_grid check")
        for s in starts:
            i = torch.tensor(idx[s:s + suite.batch_size], dtype=torch.long)
            out = evaluate_transforms(counted, x_all[i].to(device), y_all[i.to(y_all.device)], extra,
                                      convention=conv, on_step=bar.update)
            broken += (~out.correct.all(1)).tolist()
    return {"idx": list(idx), "broken": broken, "n_forward": counted.n_forward - f0, "seconds": time.time() - t0}


# ----------------------------------------------------------------------------------------------------------------
# Kind "rotation_curve"
# ----------------------------------------------------------------------------------------------------------------

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
    key = run_key(kind="rotation_curve", model=fp, code=code_sha256(model), suite=suite.sha256, data=data.sha256,
                  n=len(data), seed=suite.seed, batch_size=bs, **defense_settings(model))
    store = Store(store_root, model_name, key)
    store.write_meta({"model": model_name, "suite": suite.id, "data": data.source, "data_sha256": data.sha256,
                      "n": len(data), "batch_size": bs, "kind": "rotation_curve"})
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
                             data=data, device=device, store_key=key, extra={
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
        starts = range(0, len(idx), suite.batch_size)
        with _progress(model_name, suite, len(starts) * len(extra), progress) as bar:
            bar.set_description(f"{model_name} {suite.name} finer_grid check")
            for s in starts:
                i = idx[s:s + suite.batch_size]
                out = evaluate_transforms(counted, x_all[i].to(device), y_all[i.to(y_all.device)], extra,
                                          convention=conv, on_step=bar.update)
                first += [None if math.isinf(v) else v for v in min_broken_angle(out.correct, extra[:, 0]).tolist()]
        rec = {"idx": idx.tolist(), "fine_min_abs": first, "step": step / factor,
               "n_forward": counted.n_forward - f0, "seconds": time.time() - t0}
        store.put("finer_grid", 0, rec)
    return rec


# ----------------------------------------------------------------------------------------------------------------
# Kind "spatial_linf"
# ----------------------------------------------------------------------------------------------------------------

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
    key = run_key(kind="spatial_linf", model=fp, code=code_sha256(model), suite=suite.sha256, data=data.sha256,
                  n=len(data), seed=suite.seed, batch_size=bs, eps=list(threat.eps), **defense_settings(model))
    store = Store(store_root, model_name, key)
    store.write_meta({"model": model_name, "suite": suite.id, "data": data.source, "data_sha256": data.sha256,
                      "n": len(data), "batch_size": bs, "kind": "spatial_linf"})
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
                             data=data, device=device, store_key=key, extra={
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
