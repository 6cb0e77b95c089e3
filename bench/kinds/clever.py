"""Suite kind ``clever``: untargeted CLEVER scores (Weng et al. 2018, arXiv:1801.10578) per image.

CLEVER samples gradient norms of the margin ``g = f_c - f_j`` in a ball around ``x``, fits a reverse
Weibull to batch maxima and reads the estimated local Lipschitz constant ``L`` off its location; the
score is ``min_j min(g_j(x) / L_j, radius)``. It is an *estimate* of a lower bound on the minimal
adversarial perturbation, never a certificate (gradient masking inflates it: Goodfellow 2018,
arXiv:1804.07870), so rows carry ``clever_note`` and ``robust_acc`` is null.

Two implementations compute the same numbers from the same seed:

- ``art``: ART's ``art.metrics.clever_u`` as shipped. For each of the 9 target classes it takes
  ``2 * batch_size`` gradient calls of ``pool_factor`` images (one for ``f_c``, one for ``f_j``).
- ``fast`` (default): the same global-``np.random`` draws in the same order (ART's own
  ``random_sphere`` and ``np.random.choice``) and the same Weibull fit, but each target's gradient pool
  goes through the model in large batches with one backward pass on the margin, so it does half the
  gradient work in a few large batches. ``tests/test_clever.py`` checks both give the same scores.

Per-image records (score, score per target class, seconds) go to the store, so runs resume.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from symbench.bench.data import ImageData
from symbench.bench.run.records import make_row
from symbench.bench.run.runner import EpsOutcome, _seed, check_model_output, defense_settings, model_fingerprint
from symbench.bench.run.store import Store, run_key
from symbench.bench.suites import Suite, register_suite_kind

log = logging.getLogger(__name__)

CLEVER_NOTE = ("CLEVER is a sampled extreme-value estimate of a lower bound on the minimal adversarial "
               "perturbation (Weng et al. 2018), not a certificate: it can overestimate robustness, e.g. under "
               "gradient masking (Goodfellow 2018, arXiv:1804.07870). robust_acc is null for CLEVER rows; the "
               "score is capped at the sampling radius (eps of the row).")
ART_NORM = {"l2": 2, "linf": np.inf}
DUAL_ORD = {"l2": 2, "linf": 1}     # the gradient norm CLEVER bounds with: q with 1/p + 1/q = 1
# sampling radius on the [0,1] pixel scale: the CLEVER reference code (huanzhang12/CLEVER,
# estimate_gradient_norm.py) samples Linf perturbations of size 0.1 and L2 norms up to 3 on images of
# range 1 ([-0.5, 0.5]); ART's own tests use 2 (L2) and 0.1 (Linf).
DEFAULT_RADIUS = {"l2": 3.0, "linf": 0.1}


@dataclass(frozen=True)
class CleverParams:
    """ART ``clever_u`` arguments. ``batch_size`` is the paper's N_s, ``nb_batches`` its N_b."""

    norm: str
    radius: float
    nb_batches: int = 500
    batch_size: int = 32
    pool_factor: int = 10
    c_init: float = 1.0

    def __post_init__(self):
        if self.norm not in ART_NORM:
            raise ValueError(f"CLEVER norm must be one of {tuple(ART_NORM)}, got {self.norm!r}")
        if self.radius <= 0 or self.nb_batches < 1 or self.batch_size < 1 or self.pool_factor < 1:
            raise ValueError(f"CLEVER parameters must be positive: {self}")

    @property
    def gradients_per_target(self) -> int:
        return self.pool_factor * self.batch_size


@contextlib.contextmanager
def np_global_seed(seed: int):
    """Seed numpy's global RNG (what ART's CLEVER draws from) and restore its state afterwards."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


def clever_u_art(model: nn.Module, x: torch.Tensor, p: CleverParams, num_classes: int = 10) -> float:
    """ART's ``clever_u`` on one image ``x`` (C,H,W) in [0,1]; draws from numpy's global RNG."""
    from art.metrics import clever_u

    from symbench.bench.attacks.art_adapter import art_classifier

    clf = art_classifier(model, x[None], num_classes)
    return float(clever_u(clf, x.detach().cpu().numpy(), nb_batches=p.nb_batches, batch_size=p.batch_size,
                          radius=p.radius, norm=ART_NORM[p.norm], c_init=p.c_init, pool_factor=p.pool_factor,
                          verbose=False))


def _margin_grad_norms(model: nn.Module, pool: np.ndarray, c: int, j: int, ord_: int, chunk: int,
                       device) -> np.ndarray:
    """Dual norm of grad(f_c - f_j) at every pool point, ``chunk`` images per forward/backward."""
    out = np.empty(len(pool), dtype=np.float32)
    for s in range(0, len(pool), chunk):
        xb = torch.from_numpy(pool[s:s + chunk]).to(device).requires_grad_(True)  # (B,C,H,W)
        logits = model(xb)                                                            # (B,K)
        (g,) = torch.autograd.grad((logits[:, c] - logits[:, j]).sum(), xb)
        out[s:s + chunk] = np.linalg.norm(g.reshape(len(xb), -1).cpu().numpy(), ord=ord_, axis=1)
    return out


def clever_u_fast(model: nn.Module, x: torch.Tensor, p: CleverParams, num_classes: int = 10, *,
                  chunk: int = 250) -> tuple[float, dict[int, float]]:
    """``art.metrics.clever_u`` computed with batched margin gradients; same draws, same fit.

    Args:
        model: eval-mode classifier on [0,1] images.
        x: one image (C,H,W) in [0,1].
        p: CLEVER parameters.
        num_classes: number of logits.
        chunk: images per forward/backward (compute batching only; does not change the result).

    Returns:
        The untargeted score and the score per target class.
    """
    from art.config import ART_NUMPY_DTYPE
    from art.utils import random_sphere
    from scipy.optimize import fmin
    from scipy.stats import weibull_min

    device = x.device
    x_np = x.detach().cpu().numpy().astype(ART_NUMPY_DTYPE)
    with torch.no_grad():
        values = model(torch.from_numpy(x_np[None]).to(device)).cpu().numpy()  # (1,K), like ART's predict
    c = int(np.argmax(values, axis=1)[0])
    n_pool, dim = p.gradients_per_target, x_np.size
    scores = {}
    for j in (k for k in range(num_classes) if k != c):  # ART's order, so the RNG stream matches
        pool = np.reshape(random_sphere(nb_points=n_pool, nb_dims=dim, radius=p.radius, norm=ART_NORM[p.norm]),
                          (n_pool, *x_np.shape))
        pool += np.repeat(np.array([x_np]), n_pool, 0)
        pool = pool.astype(ART_NUMPY_DTYPE)
        np.clip(pool, 0.0, 1.0, out=pool)
        norms = _margin_grad_norms(model, pool, c, j, DUAL_ORD[p.norm], chunk, device)
        maxima = [np.max(norms[np.random.choice(n_pool, p.batch_size)]) for _ in range(p.nb_batches)]
        _, loc, _ = weibull_min.fit(-np.array(maxima), p.c_init, optimizer=fmin)
        value = values[:, c] - values[:, j]
        scores[j] = float(np.min([-value[0] / loc, p.radius]))
    return min(scores.values()), scores


def clever_params(suite: Suite, norm: str) -> CleverParams:
    """Parameters for one norm from the suite's options (``radius_l2``, ``nb_batches`` ...)."""
    return CleverParams(norm=norm, radius=float(suite.option(f"radius_{norm}", DEFAULT_RADIUS[norm])),
                        nb_batches=int(suite.option("nb_batches", 500)),
                        batch_size=int(suite.option("sample_batch_size", 32)),
                        pool_factor=int(suite.option("pool_factor", 10)),
                        c_init=float(suite.option("c_init", 1.0)))


def summarize(scores: list[float]) -> dict:
    """Median and quartiles (plus mean/min/max) of the scored images; None fields when nothing was scored."""
    if not scores:
        return {"n_scored": 0, "median": None, "q1": None, "q3": None, "mean": None, "min": None, "max": None}
    a = np.asarray(scores, dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"n_scored": len(a), "median": float(med), "q1": float(q1), "q3": float(q3), "mean": float(a.mean()),
            "min": float(a.min()), "max": float(a.max())}


@register_suite_kind("clever")
def run_clever(model: nn.Module, suite: Suite, data: ImageData, *, model_name: str,
               store_root=None, device="cpu", progress: bool = True, **_) -> list[dict]:
    """One row per norm: CLEVER score statistics over the correctly classified images of ``data``.

    Misclassified images are skipped, as in the CLEVER paper's code (their score would measure the
    distance to leaving a wrong class); set ``score_misclassified = true`` in the suite to score them.
    """
    impl = str(suite.option("implementation", "fast"))
    if impl not in ("fast", "art"):
        raise ValueError(f"suite {suite.name!r}: implementation must be 'fast' or 'art', got {impl!r}")
    norms = tuple(suite.option("norms", ("l2", "linf")))
    params = [clever_params(suite, n) for n in norms]
    score_wrong = bool(suite.option("score_misclassified", False))
    chunk = suite.batch_size
    card = getattr(model, "card", None)
    num_classes = getattr(card, "num_classes", 10)

    model = model.to(device).eval()
    x_all, y_all = data.x.to(device), data.y.to(device)
    check_model_output(model, x_all, num_classes)
    key = run_key(kind="clever", model=model_fingerprint(model), suite=suite.sha256, data=data.sha256, n=len(data),
                  seed=suite.seed, params=[asdict(p) for p in params], impl=impl, score_misclassified=score_wrong,
                  **defense_settings(model))
    store = Store(store_root, model_name, key)
    store.write_meta({"model": model_name, "suite": suite.id, "data": data.source, "n": len(data), "kind": "clever"})
    with torch.no_grad():
        pred = torch.cat([model(x_all[s:s + chunk]).argmax(1) for s in range(0, len(data), chunk)])
    correct = (pred == y_all).cpu()

    rows = []
    for ni, p in enumerate(params):
        group = f"clever_{p.norm}"
        recs = []
        for i in tqdm(range(len(data)), desc=f"{model_name} CLEVER {p.norm}", disable=not progress, leave=False):
            rec = store.get(group, i)
            if rec is None:
                rec = _score_one(model, x_all[i], p, num_classes, impl, chunk, _seed(suite.seed, ni, i),
                                 skip=not (correct[i] or score_wrong))
                rec.update(index=(data.indices[i] if data.indices else i), label=int(y_all[i]), pred=int(pred[i]),
                           correct=bool(correct[i]))
                store.put(group, i, rec)
            recs.append(rec)
        scored = [r for r in recs if r["score"] is not None]
        stats = summarize([r["score"] for r in scored])
        seconds = sum(r["seconds"] for r in recs)
        n_grad = sum(r["n_gradients"] for r in recs)
        stats.update(seconds_per_image=(seconds / len(scored)) if scored else None)
        log.info("%s CLEVER %s: median %s (q1 %s, q3 %s) over %d images", model_name, p.norm, stats["median"],
                 stats["q1"], stats["q3"], stats["n_scored"])
        outcome = EpsOutcome(p.norm, p.radius, correct.clone(), correct.clone(), {}, n_forward=n_grad,
                             n_backward=n_grad, seconds=seconds)
        rows.append(make_row(model_name=model_name, card=card, ckpt_sha256=model_fingerprint(model), suite=suite,
                             outcome=outcome, data=data, device=device, store_key=key, extra={
                                 "variant": "clever_u", "robust_acc": None,
                                 "clever": {**stats, "params": asdict(p), "implementation": impl,
                                            "toolkit_function": "art.metrics.clever_u",
                                            "scored": "all images" if score_wrong else "correctly classified images"},
                                 "clever_note": CLEVER_NOTE}))
    return rows


def _score_one(model, x, p: CleverParams, num_classes: int, impl: str, chunk: int, seed: int, skip: bool) -> dict:
    if skip:
        return {"score": None, "per_target": {}, "seconds": 0.0, "n_gradients": 0, "seed": seed,
                "skipped": "misclassified"}
    t0 = time.time()
    with np_global_seed(seed):
        if impl == "art":
            score, per_target = clever_u_art(model, x, p, num_classes), {}
            n_grad = 2 * (num_classes - 1) * p.gradients_per_target
        else:
            score, per_target = clever_u_fast(model, x, p, num_classes, chunk=chunk)
            n_grad = (num_classes - 1) * p.gradients_per_target
    return {"score": float(score), "per_target": {str(k): v for k, v in per_target.items()},
            "seconds": time.time() - t0, "n_gradients": n_grad, "seed": seed}
