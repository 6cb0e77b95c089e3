"""The suite runner: clean pass → robust mask → each attack on the survivors (AutoAttack's cascade)
→ per-example worst case over every attack, whichever toolkit it came from.

Work is split into fixed batches of the example list; each (threat, eps, batch) is seeded from the
suite seed and its position only, and its outcome is stored atomically, so a resumed run reproduces
an uninterrupted one exactly.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from symbench.bench.run.counting import CountingModel
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

    @property
    def clean_acc(self) -> float:
        return self.clean.float().mean().item()

    @property
    def robust_acc(self) -> float:
        return self.robust.float().mean().item()

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


def _seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def _group(threat: Threat, eps: float) -> str:
    return f"{threat.norm}_{eps:.8f}"


def suite_run_key(model: nn.Module, suite: Suite, data: ImageData) -> str:
    """The store key of a run: what determines its per-example outcomes (a shard elsewhere gets the same)."""
    return run_key(model=model_fingerprint(model), suite=suite.sha256, threats=[(t.norm, t.eps) for t in suite.threats],
                   data=data.sha256, n=len(data), seed=suite.seed, batch_size=suite.batch_size, **defense_settings(model))


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
              store_root: str = "results/store", device: str | torch.device = "cpu",
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
    x_all, y_all = data.x.to(device), data.y.to(device)
    check_model_output(model, x_all, num_classes)
    check_labels(data.y, num_classes, data.source)
    counted = CountingModel(model, num_classes)
    key = suite_run_key(model, suite, data)
    store = Store(store_root, model_name, key, strict=strict)
    bs = suite.batch_size
    store.write_meta({"model": model_name, "suite": suite.id, "data": data.source, "data_sha256": data.sha256,
                      "n": len(data), "batch_size": bs, "batches": math.ceil(len(data) / bs),
                      "groups": suite_groups(suite)})
    batches_all = [(i, slice(s, min(s + bs, len(data)))) for i, s in enumerate(range(0, len(data), bs))]
    shard = batches is not None
    todo = set(batches) if shard else {b for b, _ in batches_all}
    batches = [(b, sl) for b, sl in batches_all if b in todo]

    clean = {}
    for b, sl in batches:
        span = (sl.start, sl.stop)
        rec = store.get("clean", b, index=span, check=lambda r, sl=sl: check_clean_record(r, y_all[sl], num_classes))
        if rec is None:
            with torch.no_grad():
                pred = counted(x_all[sl]).argmax(1)
            rec = {"pred": pred.tolist(), "correct": (pred == y_all[sl]).tolist()}
            store.put("clean", b, rec, index=span)
            if computed is not None:
                computed[("clean", b)] = with_index(rec, span)
        clean[b] = torch.tensor(rec["correct"], dtype=torch.bool)
    clean_mask = torch.cat([clean[b] for b, _ in batches]) if batches else torch.zeros(0, dtype=torch.bool)

    outcomes = []
    for ti, threat in enumerate(suite.threats):
        specs = suite.attacks_for(threat.norm)
        attacks = [s.build(threat.norm) for s in specs]
        for ei, eps in enumerate(threat.eps):
            group = _group(threat, eps)
            out = EpsOutcome(threat.norm, eps, clean_mask.clone(), clean_mask.clone(),
                             {s.label: torch.zeros(0, dtype=torch.bool) for s in specs})
            bar = tqdm(batches, desc=f"{model_name} {suite.name} {threat.norm} eps={eps:.4f}",
                       disable=not progress, leave=False)
            per_batch = []
            for b, sl in bar:
                rec = store.get(group, b, index=(sl.start, sl.stop),
                                check=lambda r, b=b: check_attack_record(r, clean[b], [s.label for s in specs]))
                if rec is None:
                    try:
                        rec = _attack_batch(counted, attacks, specs, x_all[sl], y_all[sl], clean[b].to(device), eps,
                                            _seed(suite.seed, ti, ei, b))
                    except torch.OutOfMemoryError as err:
                        raise MemoryError(
                            f"out of {torch.device(device).type} memory attacking batch {b} ({bs} images) of "
                            f"{suite.name} at {threat.norm} eps={eps:g}: rerun with a smaller --batch-size (e.g. "
                            f"{max(1, bs // 2)}). Batches finished so far are stored, but --batch-size is part "
                            "of the run's key (each batch is seeded), so the smaller run starts afresh.") from err
                    store.put(group, b, rec, index=(sl.start, sl.stop))
                    if computed is not None:
                        computed[(group, b)] = with_index(rec, (sl.start, sl.stop))
                per_batch.append(rec)
            if shard:
                continue
            out.robust = torch.cat([torch.tensor(r["robust"], dtype=torch.bool) for r in per_batch])
            out.robust_after = {s.label: torch.cat([torch.tensor(r["robust_after"][s.label], dtype=torch.bool)
                                                    for r in per_batch]) for s in specs}
            out.n_forward = sum(r["n_forward"] for r in per_batch)
            out.n_backward = sum(r["n_backward"] for r in per_batch)
            out.seconds = sum(r["seconds"] for r in per_batch)
            outcomes.append(out)
    return outcomes, key


def _bool_list(rec: dict, key: str, n: int) -> list[bool]:
    v = rec[key]
    if not isinstance(v, list) or len(v) != n or not all(type(i) is bool for i in v):
        raise ValueError(f"{key!r} must be a list of {n} booleans (one per example of the batch)")
    return v


def check_clean_record(rec: dict, y: torch.Tensor, num_classes: int) -> None:
    """A clean-pass record covers its batch and agrees with the labels: correct == (pred == y)."""
    n = len(y)
    correct = _bool_list(rec, "correct", n)
    pred = rec["pred"]
    if not isinstance(pred, list) or len(pred) != n or not all(type(p) is int and 0 <= p < num_classes for p in pred):
        raise ValueError(f"'pred' must be a list of {n} class indices in 0..{num_classes - 1}")
    if correct != [p == t for p, t in zip(pred, y.tolist())]:
        raise ValueError("'correct' disagrees with 'pred' and the labels")


def check_attack_record(rec: dict, clean: torch.Tensor, labels: list[str]) -> None:
    """An attack record covers its batch; robust ⊆ each cumulative mask ⊆ clean, masks only shrink; counts >= 0."""
    n = len(clean)
    robust = _bool_list(rec, "robust", n)
    after = rec["robust_after"]
    if not isinstance(after, dict) or list(after) != labels:
        raise ValueError(f"'robust_after' must hold the suite's attacks {labels}, got {list(after)[:8]}")
    prev = clean.tolist()
    for label in labels:
        cur = _bool_list(after, label, n)
        if any(c and not p for c, p in zip(cur, prev)):
            raise ValueError(f"robust after {label} marks examples robust that were already broken (or wrong on clean "
                             "input): cumulative masks must only shrink")
        prev = cur
    if robust != prev:
        raise ValueError("'robust' differs from the mask after the last attack")
    for k in ("n_forward", "n_backward", "seconds"):
        v = rec[k]
        if type(v) not in (int, float) or not v >= 0:
            raise ValueError(f"{k!r} must be a number >= 0, got {v!r}")


def _attack_batch(counted: CountingModel, attacks, specs, x, y, clean: torch.Tensor, eps: float, seed: int) -> dict:
    """Cascade over one batch: each attack only sees the examples every earlier attack failed on."""
    t0 = time.time()
    f0, b0 = counted.n_forward, counted.n_backward
    robust = clean.clone()
    after, broken_by = {}, [None] * len(y)
    for ai, (atk, spec) in enumerate(zip(attacks, specs)):
        idx = robust.nonzero().flatten()
        if len(idx):
            x_adv = atk(counted, x[idx], y[idx], eps, seed=_seed(seed, ai))
            with torch.no_grad():
                still = counted(x_adv).argmax(1) == y[idx]
            for i in idx[~still].tolist():
                broken_by[i] = spec.label
            robust[idx] = still
        after[spec.label] = robust.tolist()
    return {"robust": robust.tolist(), "robust_after": after, "broken_by": broken_by,
            "n_forward": counted.n_forward - f0, "n_backward": counted.n_backward - b0,
            "seconds": time.time() - t0}
