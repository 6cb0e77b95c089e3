"""The suite runner: clean pass → robust mask → each attack on the survivors (AutoAttack's cascade)
→ per-example worst case over every attack, whichever toolkit it came from.

Work is split into fixed batches of the example list; each (threat, eps, batch) is seeded from the
suite seed and its position only, and its outcome is stored atomically, so a resumed run reproduces
an uninterrupted one exactly.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from symbench.bench.run.counting import CountingModel
from symbench.bench.run.cascade import (_attack_batch, _lines_above_bars, _seed, check_attack_record,  # noqa: F401
                                      check_clean_record, check_partial_record, correct_fraction,
                                      discard, partial_group)
from symbench.bench.run.progress import Heartbeat
from symbench.bench.run.fastpath import layout_for, prepare as prepare_layout
from symbench.models.code_hash import code_sha256
from symbench.bench.run.preflight import check_labels
from symbench.bench.data import ImageData
from symbench.bench.run.store import Store, run_key, with_index
from symbench.bench.suites import Suite, Threat

log = logging.getLogger(__name__)


@dataclass
class EpsOutcome:
    """Per-example outcomes of one (threat, eps): what a row is computed from."""

    norm: str
    eps: float
    clean: torch.Tensor                 # (N,) bool, correct on clean input
    robust: torch.Tensor                # (N,) bool, correct under every attack
    robust_after: dict[str, torch.Tensor] = field(default_factory=dict)  # cumulative, per attack label
    n_forward: int = 0
    n_backward: int = 0
    seconds: float = 0.0
    draws: int = 1                      # k: fresh draws of the model's randomness each example is judged on
    p_clean: torch.Tensor | None = None   # (N,) float, share of the k draws correct on clean input
    p_robust: torch.Tensor | None = None  # (N,) float, same at the example's worst adversarial example found
    layout: str | None = None           # the fast path's memory layout (bench/run/fastpath.py); None: eager NCHW

    @property
    def clean_acc(self) -> float:
        """Correct in all k draws (for a deterministic model, k = 1)."""
        return self.clean.float().mean().item()

    @property
    def robust_acc(self) -> float:
        """Correct in all k draws at every adversarial example any attack produced (worst of k)."""
        return self.robust.float().mean().item()

    @property
    def clean_acc_expected(self) -> float:
        """Expected accuracy of one draw of the model on clean input."""
        return (self.p_clean if self.p_clean is not None else self.clean.float()).mean().item()

    @property
    def robust_acc_expected(self) -> float:
        """Expected single-draw accuracy at each example's worst adversarial example found (an upper
        bound: the cascade stops attacking an example at its first fooled draw)."""
        return (self.p_robust if self.p_robust is not None else self.robust.float()).mean().item()

    def per_attack_acc(self) -> dict[str, float]:
        return {k: v.float().mean().item() for k, v in self.robust_after.items()}


def model_fingerprint(model: nn.Module) -> str:
    """The checkpoint sha256 from the card, else a hash of the weights (untrained / ad-hoc models)."""
    card = getattr(model, "card", None)
    if card is not None and card.sha256:
        return card.sha256
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return "weights:" + h.hexdigest()


def check_model_output(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Fail before any work if the model is not a [0,1]→(N, classes) classifier in eval mode."""
    if model.training:
        raise ValueError("model is in train mode; call model.eval() (BN/dropout would change every pass)")
    with torch.no_grad():
        out = model(x[:2])
    if not isinstance(out, torch.Tensor) or out.shape != (min(2, len(x)), num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must map (N,3,H,W) images to (N, {num_classes}) logits, got {shape}")
    if not torch.isfinite(out).all():
        raise ValueError("model produced NaN or infinite logits on clean input")


def _group(threat: Threat, eps: float) -> str:
    return f"{threat.norm}_{eps:.8f}"


def suite_run_key(model: nn.Module, suite: Suite, data: ImageData, *, code: bool = True) -> str:
    """The store key of a run: what determines its per-example outcomes (a shard elsewhere gets the same).

    ``code=False``: the key as computed before the model code's hash joined it (8372566, 2026-12-02), which
    the rows of that time carry; only :func:`symbench.leaderboard.recover.find_run` asks for it.
    """
    k = scoring_draws(model, suite, data.x)
    layout = layout_for(model)  # None (eager, the default): the key hashes exactly what it did before the fast path
    return run_key(model=model_fingerprint(model), suite=suite.sha256, threats=[(t.norm, t.eps) for t in suite.threats],
                   data=data.sha256, n=len(data), seed=suite.seed, batch_size=suite.batch_size, **defense_settings(model),
                   **({"code": code_sha256(model)} if code else {}),  # changed model code: a new run
                   **({"draws": k} if k > 1 else {}), **({"layout": layout} if layout else {}))


DEFAULT_DRAWS = 8


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Run the body from a seeded random state and leave the caller's as it was.

    The clean pass of a randomized model draws from it: unseeded, it drew from whatever state model
    construction and earlier runs left, so a recomputed run (same key) gave other expected accuracies.
    Attack batches are seeded by ``seed_everything`` in each attack already.
    """
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _model_device(model: nn.Module) -> torch.device:
    t = next(iter(model.parameters()), None)
    if t is None:
        t = next(iter(model.buffers()), None)
    return t.device if t is not None else torch.device("cpu")


def forward_is_random(model: nn.Module, x: torch.Tensor) -> bool:
    """Two forward passes of the same images differ: the model draws randomness at test time."""
    if not len(x):
        return False
    x = x[:4].to(_model_device(model))
    with torch.no_grad():
        return not torch.equal(model(x), model(x))


def scoring_draws(model: nn.Module, suite: Suite, x: torch.Tensor | None = None) -> int:
    """k, the draws of the model's randomness every example is judged on: the suite's ``draws`` (8 by
    default) for a model whose card says ``randomized`` or whose forward pass is random on ``x``, else 1.

    One draw per example over-reports a randomized model's robustness (an adversarial example that fools
    half the draws counts as robust half the time); worst of k counts it broken.
    """
    k = int(suite.option("draws", DEFAULT_DRAWS))
    if k < 1:
        raise ValueError(f"suite {suite.name!r}: draws must be >= 1, got {k}")
    card = getattr(model, "card", None)
    if getattr(card, "randomized", False) or (x is not None and forward_is_random(model, x)):
        return k
    return 1


def row_fields(suite: Suite, outcome: EpsOutcome) -> dict:
    """Scoring fields of a row beyond make_row's: k, the expected single-draw accuracies, and every attack's
    resolved parameters (what ran, defaults included)."""
    return {"draws_k": int(outcome.draws), "clean_acc_expected": outcome.clean_acc_expected,
            "robust_acc_expected": outcome.robust_acc_expected,
            "attack_params": [{"label": s.label, "params": s.build(outcome.norm).params()}
                              for s in suite.attacks_for(outcome.norm)],
            **({"layout": outcome.layout} if outcome.layout else {})}


def defense_settings(model: nn.Module) -> dict:
    """``{"defense": {name, settings}}`` for a defended model, else ``{}``: part of every store key.

    A defense's settings live in code, not in the base's sha256, so a changed default must key a new run.
    """
    from symbench.models.defenses.base import find_defense

    defense = find_defense(model)
    return {} if defense is None else {"defense": {"name": defense.name, **defense.cfg}}


def split_batches(items: list[int], k: int) -> list[list[int]]:
    """``k`` contiguous, near-equal shards of ``items`` (the first ones one longer)."""
    q, r = divmod(len(items), k)
    out, i = [], 0
    for s in range(k):
        j = i + q + (s < r)
        out.append(items[i:j])
        i = j
    return out


def shard_batches(n_examples: int, batch_size: int, shard: tuple[int, int]) -> list[int]:
    """Batch indices of shard ``i`` of ``k`` over all of a run's batches (``--shard i/k``).

    Depends on (n, batch size, i, k) only, so independent jobs (a SLURM array) agree on the split
    without talking to each other, and together cover every batch exactly once.
    """
    i, k = shard
    return split_batches(list(range(math.ceil(n_examples / batch_size))), k)[i]


def suite_groups(suite: Suite) -> list[str]:
    """Store groups of a run: the clean pass, then one per (threat, eps)."""
    return ["clean"] + [_group(t, eps) for t in suite.threats for eps in t.eps]


def run_suite(model: nn.Module, suite: Suite, data: ImageData, *, model_name: str,
              store_root=None, device: str | torch.device = "cpu",
              num_classes: int = 10, progress: bool = True, batches: Collection[int] | None = None,
              computed: dict | None = None, strict: bool = False) -> tuple[list[EpsOutcome], str]:
    """Run every (threat, eps) of ``suite`` on ``data``; returns the outcomes and the store key.

    Args:
        batches: compute only these batch indices (one shard of a fan-out, see bench/executors.py);
            a shard cannot aggregate, so the outcomes are then ``[]``. None: every batch.
        computed: receives ``{(group, batch): record}`` for each batch computed here (not found in
            the store), so a remote shard can hand its records to the driver's store.
        strict: a stored record that fails verification is an error (:class:`StoreRecordError`)
            instead of being reported and recomputed.
    """
    model = model.to(device)
    layout = prepare_layout(model)  # the fast path's layout, None (eager) unless --fast applies to this model
    x_all, y_all = data.x.to(device), data.y.to(device)
    check_model_output(model, x_all, num_classes)
    check_labels(data.y, num_classes, data.source)
    counted = CountingModel(model, num_classes)
    key = suite_run_key(model, suite, data)
    draws = scoring_draws(model, suite, x_all)
    store = Store(store_root, model_name, key, strict=strict)
    bs = suite.batch_size
    store.write_meta({"model": model_name, "suite": suite.id, "data": data.source, "data_sha256": data.sha256,
                      "n": len(data), "batch_size": bs, "batches": math.ceil(len(data) / bs),
                      "groups": suite_groups(suite)})
    batches_all = [(i, slice(s, min(s + bs, len(data)))) for i, s in enumerate(range(0, len(data), bs))]
    shard = batches is not None
    todo = set(batches) if shard else {b for b, _ in batches_all}
    batches = [(b, sl) for b, sl in batches_all if b in todo]

    clean, p_clean = {}, {}
    for b, sl in batches:
        span = (sl.start, sl.stop)
        rec = store.get("clean", b, index=span, check=lambda r, sl=sl: check_clean_record(r, y_all[sl], num_classes))
        if rec is None:
            with _seeded(_seed(suite.seed, -1, b), x_all.device):  # a randomized model's k draws, reproducible
                with torch.no_grad():
                    pred = counted(x_all[sl]).argmax(1)
                rec = {"pred": pred.tolist(), "correct": (pred == y_all[sl]).tolist()}
                if draws > 1:  # pred/correct: the first draw; the clean mask: correct in all k draws
                    p = correct_fraction(counted, x_all[sl], y_all[sl], draws - 1) * (draws - 1) / draws
                    p += (pred == y_all[sl]).float() / draws
                    rec.update(draws=draws, p_correct=p.tolist(), correct_all=(p == 1).tolist())
            store.put("clean", b, rec, index=span)
            if computed is not None:
                computed[("clean", b)] = with_index(rec, span)
        clean[b] = torch.tensor(rec.get("correct_all", rec["correct"]), dtype=torch.bool)
        p_clean[b] = torch.tensor(rec["p_correct"]) if "p_correct" in rec else clean[b].float()
    clean_mask = torch.cat([clean[b] for b, _ in batches]) if batches else torch.zeros(0, dtype=torch.bool)
    p_clean_all = torch.cat([p_clean[b] for b, _ in batches]) if batches else torch.zeros(0)

    outcomes = []
    for ti, threat in enumerate(suite.threats):
        specs = suite.attacks_for(threat.norm)
        attacks = [s.build(threat.norm) for s in specs]
        for ei, eps in enumerate(threat.eps):
            group = _group(threat, eps)
            out = EpsOutcome(threat.norm, eps, clean_mask.clone(), clean_mask.clone(),
                             {s.label: torch.zeros(0, dtype=torch.bool) for s in specs}, draws=draws,
                             p_clean=p_clean_all.clone(), layout=layout)
            label = f"{model_name} {suite.name} {threat.norm} eps={eps:.4f}"
            bar = tqdm(batches, desc=label, disable=not progress, leave=False)
            per_batch = []
            labels = [s.label for s in specs]
            with Heartbeat(label, counter=counted, enabled=progress) as beat, _lines_above_bars(progress):
                for bi, (b, sl) in enumerate(bar):
                    span = (sl.start, sl.stop)
                    rec = store.get(group, b, index=span, check=lambda r, b=b: check_attack_record(r, clean[b], labels))
                    if rec is None:  # attacks this batch finished before an interruption resume from their record
                        partial = store.get(partial_group(group), b, index=span,
                                            check=lambda r, b=b: check_partial_record(r, clean[b], labels))
                        try:
                            rec = _attack_batch(counted, attacks, specs, x_all[sl], y_all[sl], clean[b].to(device),
                                                eps, _seed(suite.seed, ti, ei, b), draws=draws,
                                                p_clean=p_clean[b].to(device), beat=beat,
                                                where=f"batch {bi + 1}/{len(batches)}", resume=partial,
                                                on_attack=lambda r, b=b, span=span: store.put(partial_group(group), b,
                                                                                              r, index=span))
                        except torch.OutOfMemoryError as err:
                            raise MemoryError(
                                f"out of {torch.device(device).type} memory attacking batch {b} ({bs} images) of "
                                f"{suite.name} at {threat.norm} eps={eps:g}: rerun with a smaller --batch-size (e.g. "
                                f"{max(1, bs // 2)}). Batches finished so far are stored, but --batch-size is part "
                                "of the run's key (each batch is seeded), so the smaller run starts afresh.") from err
                        store.put(group, b, rec, index=span)
                        if partial is not None or len(specs) > 1:
                            discard(store, partial_group(group), b)  # the batch's record now holds it all
                        if computed is not None:
                            computed[(group, b)] = with_index(rec, span)
                    per_batch.append(rec)
            if shard:
                continue
            out.robust = torch.cat([torch.tensor(r["robust"], dtype=torch.bool) for r in per_batch])
            out.robust_after = {s.label: torch.cat([torch.tensor(r["robust_after"][s.label], dtype=torch.bool)
                                                    for r in per_batch]) for s in specs}
            out.n_forward = sum(r["n_forward"] for r in per_batch)
            out.n_backward = sum(r["n_backward"] for r in per_batch)
            out.seconds = sum(r["seconds"] for r in per_batch)
            out.p_robust = torch.cat([torch.tensor(r["p_correct"]) if "p_correct" in r
                                      else torch.tensor(r["robust"], dtype=torch.float) for r in per_batch])
            outcomes.append(out)
    return outcomes, key
