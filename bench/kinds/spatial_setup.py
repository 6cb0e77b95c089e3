"""What the spatial kinds share: their options and refusals, the model's preparation, batches, clean records.

Split out of ``spatial.py`` (issue 25: no module over 400 lines); the kinds themselves are documented there.
"""
from __future__ import annotations

import logging

import torch
from torch import nn
from tqdm import tqdm

from symbench.bench.attacks.spatial import CONVENTIONS, SpatialGrid
from symbench.bench.data import ImageData
from symbench.bench.run.preflight import check_labels
from symbench.bench.run.runner import (check_clean_record, check_model_output, defense_settings, model_fingerprint,
                                       scoring_draws)
from symbench.bench.run.store import Store, run_key
from symbench.bench.suites import Suite
from symbench.models.code_hash import code_sha256

log = logging.getLogger("symbench.bench.kinds.spatial")  # the kinds log under the name they had as one module

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


def open_store(kind: str, model: nn.Module, fp: str, model_name: str, suite: Suite, data: ImageData, store_root,
               **extra) -> Store:
    """The run's store: keyed by what determines its per-example outcomes (``extra``: the kind's own parts)."""
    bs = suite.batch_size
    key = run_key(kind=kind, model=fp, code=code_sha256(model), suite=suite.sha256, data=data.sha256, n=len(data),
                  seed=suite.seed, batch_size=bs, **extra, **defense_settings(model))
    store = Store(store_root, model_name, key)
    store.write_meta({"model": model_name, "suite": suite.id, "data": data.source, "data_sha256": data.sha256,
                      "n": len(data), "batch_size": bs, "kind": kind})
    return store


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
