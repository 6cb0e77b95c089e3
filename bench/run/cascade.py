"""One batch's attack cascade and the records it leaves in the store (what ``runner.run_suite`` calls per batch).

Each attack sees only the examples every earlier attack failed on; after each attack but the last the
batch's state is stored (``<group>.partial``), so a run interrupted mid-batch resumes at the next
attack, and its final record equals an uninterrupted run's (each attack is seeded by its position).
"""
from __future__ import annotations

import hashlib
import logging
import time

import torch
from torch import nn

from symbench.bench.run.counting import CountingModel
from symbench.bench.run.progress import Heartbeat

log = logging.getLogger(__name__)


def _seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


@torch.no_grad()
def correct_fraction(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int) -> torch.Tensor:
    """(N,) share of ``draws`` fresh forward passes that classify each image correctly."""
    hits = torch.zeros(len(y), device=y.device)
    for _ in range(draws):
        hits += (model(x).argmax(1) == y).float()
    return hits / draws


def partial_group(group: str) -> str:
    """Store group of the attacks a batch finished before an interruption (``<group>.partial``)."""
    return f"{group}.partial"


def _lines_above_bars(progress: bool):
    """Log lines printed above tqdm's bars instead of through them (when bars are shown)."""
    import contextlib
    import logging as _logging
    import sys

    def console(lg):  # a logger printing to stderr/stdout itself (the CLI's root handler, the API's symbench one)
        return any(type(h) is _logging.StreamHandler and h.stream in (sys.stdout, sys.stderr) for h in lg.handlers)
    loggers = [lg for lg in (_logging.getLogger(), _logging.getLogger("symbench")) if console(lg)]
    if not progress or not loggers:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm(loggers=loggers)


def discard(store, group: str, batch: int) -> None:
    """Delete a (partial) record the final one supersedes."""
    path = getattr(store, "_path", None)
    if callable(path):
        path(group, batch).unlink(missing_ok=True)


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


def check_partial_record(rec: dict, clean: torch.Tensor, labels: list[str]) -> None:
    """A batch's record after its first ``done`` attacks: an attack record over those attacks, plus the state."""
    done = rec["done"]
    if type(done) is not int or not 1 <= done < len(labels):
        raise ValueError(f"'done' must count 1..{len(labels) - 1} finished attacks, got {done!r}")
    check_attack_record(rec, clean, labels[:done])
    p = rec["p_state"]
    if not isinstance(p, list) or len(p) != len(clean) or not all(type(v) in (int, float) and 0 <= v <= 1 for v in p):
        raise ValueError(f"'p_state' must be a list of {len(clean)} shares in [0,1]")
    if not isinstance(rec["broken_by"], list) or len(rec["broken_by"]) != len(clean):
        raise ValueError(f"'broken_by' must be a list of {len(clean)} entries")


def _attack_batch(counted: CountingModel, attacks, specs, x, y, clean: torch.Tensor, eps: float, seed: int,
                  draws: int = 1, p_clean: torch.Tensor | None = None, *, beat: Heartbeat | None = None,
                  where: str = "", resume: dict | None = None, on_attack=None) -> dict:
    """Cascade over one batch: each attack only sees the examples every earlier attack failed on.

    With ``draws`` k > 1 (a randomized model) each adversarial example is judged on k fresh draws: an
    example stays robust (and in the cascade) only while every draw classifies it correctly.
    ``p_correct`` is the share of draws correct at its worst adversarial example found, so its mean is
    the expected single-draw accuracy, an upper bound (an example leaves the cascade at its first
    fooled draw; attacking on until every draw is fooled cost every attack on nearly every example of a
    noisy defense). With k = 1 this is the plain cascade.

    ``on_attack(partial)`` receives the batch's state after each attack but the last (``done`` attacks
    finished); ``resume`` is such a state, whose attacks are not run again. Each attack is seeded by
    its position alone, so a resumed batch's record equals an uninterrupted one's (but for ``seconds``).
    ``beat`` is told which attack runs, for progress lines.
    """
    t0 = time.time()
    f0, b0 = counted.n_forward, counted.n_backward
    robust = clean.clone()
    p = (p_clean if p_clean is not None else clean.float()).clone().to(y.device)
    after, broken_by = {}, [None] * len(y)
    done, f_prev, b_prev, s_prev = 0, 0, 0, 0.0
    if resume is not None:
        done, broken_by = resume["done"], list(resume["broken_by"])
        robust = torch.tensor(resume["robust"], dtype=torch.bool, device=clean.device)
        p = torch.tensor(resume["p_state"], dtype=p.dtype, device=p.device)
        after = {s.label: resume["robust_after"][s.label] for s in specs[:done]}
        f_prev, b_prev, s_prev = resume["n_forward"], resume["n_backward"], resume["seconds"]
        log.info("%s: %d of %d attacks were finished before an interruption; resuming at %s", where or "batch",
                 done, len(specs), specs[done].label)
    for ai, (atk, spec) in enumerate(zip(attacks, specs)):
        if ai < done:
            continue
        idx = robust.nonzero().flatten()
        if beat is not None:
            beat.set(f"{where + ', ' if where else ''}{spec.label} ({ai + 1}/{len(specs)}) on {len(idx)} examples",
                     examples=len(idx), budget=_budget(atk))
        if len(idx):
            x_adv = atk(counted, x[idx], y[idx], eps, seed=_seed(seed, ai))
            frac = correct_fraction(counted, x_adv, y[idx], draws)
            still = frac == 1
            for i in idx[robust[idx] & ~still].tolist():
                broken_by[i] = spec.label
            robust[idx] &= still
            p[idx] = torch.minimum(p[idx], frac)
        after[spec.label] = robust.tolist()
        if on_attack is not None and ai + 1 < len(specs):
            on_attack({"done": ai + 1, "robust": robust.tolist(), "robust_after": dict(after), "broken_by": broken_by,
                       "p_state": p.tolist(), "n_forward": counted.n_forward - f0 + f_prev,
                       "n_backward": counted.n_backward - b0 + b_prev, "seconds": time.time() - t0 + s_prev})
    rec = {"robust": robust.tolist(), "robust_after": after, "broken_by": broken_by,
           "n_forward": counted.n_forward - f0 + f_prev, "n_backward": counted.n_backward - b0 + b_prev,
           "seconds": time.time() - t0 + s_prev}
    if draws > 1:
        rec.update(draws=draws, p_correct=p.tolist())
    return rec


def _budget(atk) -> tuple[int, str] | None:
    fn = getattr(atk, "progress_budget", None)
    return fn() if callable(fn) else None
