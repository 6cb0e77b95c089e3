"""Evaluate a model on a suite: clean → robust mask → attacks → per-example worst case → checks → rows.

The library function every entry point calls (the Python API, the CLI, executors, submit, refresh).
"""
from __future__ import annotations

import logging
import time

import torch

from symbench.paths import user_store

log = logging.getLogger("symbench")


def default_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bench(model_name: str, suite_name: str, *, data_dir=None, n=None, eps=None, batch_size=None, seed=None,
          out=None, store=None, device=None, progress=True, model=None, data=None,
          untrained=False, checks=True, model_dir=None, shard=None, checkpoint=None, sha256=None,
          download=False, escalate: bool = False, surrogate: str | None = None, strict: bool = False) -> list[dict]:
    """Run ``suite_name`` on ``model_name``; returns the rows (appended to ``out`` when given).

    ``escalate``: rows flagged for hidden or noisy gradients get remedies that need no knowledge of the
    model's insides (transfer from ``surrogate`` or a defended model's base, APGD with EOT, Square at its
    full budget) and keep both numbers, ``robust_acc`` and ``escalated_robust_acc`` (bench/checks/escalate.py).

    ``strict``: a stored record that fails verification stops the run instead of being recomputed.
    ``store`` None is the user directory's store (``$SYMBENCH_HOME/store``); ``out`` None appends nowhere.
    ``checkpoint`` evaluates your own ``.safetensors`` weights for a registered architecture; their sha256
    (``sha256``, else computed from the file) is what the rows cite and what keys the store.
    ``shard=(i, k)`` computes only shard ``i`` of ``k`` of the run's batches into ``store`` and returns
    no rows (a SLURM array task); the ordinary run afterwards finds them stored and writes the rows.
    """
    from symbench.models import create_model, resolve_name

    from symbench.bench.data import load_cifar10
    from symbench.bench.run.records import append_rows, make_row
    from symbench.bench.run.runner import model_fingerprint, run_suite
    from symbench.bench.suites import load_suite
    from symbench.bench.run.preflight import preflight_bench

    preflight_bench(suite_name, n=n, batch_size=batch_size, out=out, store=store, data=data, model=model)
    suite = load_suite(suite_name).with_overrides(n=n, eps=eps, batch_size=batch_size, seed=seed)
    store = store if store is not None else user_store()
    dev = default_device(device)
    if model is None and model_name.startswith("robustbench:"):  # RobustBench's zoo, see models/robustbench_zoo.py
        from symbench.models.robustbench_zoo import load_robustbench_model
        model = load_robustbench_model(model_name, model_dir)
    if model is None:
        model_name = resolve_name(model_name)
        if checkpoint is not None:
            from symbench.models.checkpoints import sha256_file
            model = create_model(model_name, checkpoint=checkpoint, sha256=sha256 or sha256_file(checkpoint))
        else:
            model = create_model(model_name, pretrained=not untrained)
    data = data if data is not None else load_cifar10("test", data_dir, n=suite.n, download=download)
    if shard is not None:
        return _bench_shard(model, suite, data, model_name, shard, store, dev, progress)
    if suite.kind != "attack":
        rows = _run_other_kind(suite, model, data, model_name=model_name, store=store, device=dev,
                               progress=progress)
        if out:
            append_rows(out, rows)
        return rows
    outcomes, key = run_suite(model, suite, data, model_name=model_name, store_root=store, device=dev, strict=strict,
                              num_classes=getattr(getattr(model, "card", None), "num_classes", 10), progress=progress)
    card = getattr(model, "card", None)
    extra = run_validity_checks(model, suite, data, outcomes, model_name, key, store, dev) if checks else {}
    orbit = run_orbit_columns(model, suite, data, outcomes, model_name, key, store, dev)
    base = None
    if suite.option("base_reference"):  # defended model: the same attacks on its undefended base
        log.info("%s %s: the same suite on the undefended base (for the defense's gain)...", model_name, suite.id)
        base = base_reference(model, suite, data, store_root=store, device=dev, progress=progress)
    from symbench.bench.checks import row_checks
    from symbench.bench.run.runner import row_fields

    gains = None
    if base:  # the defense's gain as a paired difference on the same examples (bench/checks/gain.py)
        from symbench.bench.checks.gain import defense_gains
        gains = defense_gains(model, suite, data, outcomes, store_root=store, device=dev)
    esc = None
    if escalate and checks:
        from symbench.bench.checks.escalate import escalate as escalate_rows
        from symbench.bench.run.store import Store
        esc = escalate_rows(model, suite, data, outcomes, checks=extra, surrogate=surrogate,
                            store=Store(store, model_name, key), device=dev)
    adhoc = {}
    if card is None:  # an ad-hoc nn.Module: its code still keys the store, so the row says which code
        from symbench.models.code_hash import code_sha256
        adhoc = {"code_sha256": code_sha256(model)}
    rows = [make_row(model_name=model_name, card=card, ckpt_sha256=model_fingerprint(model), suite=suite,
                     outcome=o, data=data, device=dev, store_key=key,
                     extra={**row_fields(suite, o), **(row_checks(extra, o) if extra else {}),
                            **({"orbit": orbit[i]} if orbit and orbit[i] else {}), **(base[i] if base else {}),
                            **(gains[i] if gains else {}), **(esc[i].row_fields() if esc and esc[i] else {}), **adhoc})
            for i, o in enumerate(outcomes)]
    if out:
        added = append_rows(out, rows)
        log.info("appended %d new row(s) to %s (%d already recorded)", added, out, len(rows) - added)
    return rows


def _bench_shard(model, suite, data, model_name, shard, store, device, progress) -> list[dict]:
    from symbench.bench.run.runner import run_suite, shard_batches

    if suite.kind != "attack":
        raise ValueError(f"suite {suite.name!r} (kind {suite.kind!r}) has no example batches to shard; run it whole")
    batches = shard_batches(len(data), suite.batch_size, shard)
    computed: dict = {}
    _, key = run_suite(model, suite, data, model_name=model_name, store_root=store, device=device,
                       num_classes=getattr(getattr(model, "card", None), "num_classes", 10), progress=progress,
                       batches=batches, computed=computed)
    span = f"batches {batches[0]}..{batches[-1]}" if batches else "no batches (more shards than batches)"
    log.info("%s %s shard %d/%d: %s, %d record(s) computed, the rest found in %s/%s/%s",
             model_name, suite.id, shard[0], shard[1], span, len(computed), store, model_name, key)
    return []


def parse_shard(text: str) -> tuple[int, int]:
    """'3/16' → (3, 16): shard 3 of 16, counted from 0 like ``$SLURM_ARRAY_TASK_ID``."""
    try:
        i, k = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard wants I/K (e.g. 0/16), got {text!r}") from None
    if k < 1 or not 0 <= i < k:
        raise ValueError(f"--shard {text}: need 0 <= I < K")
    return i, k


def run_validity_checks(model, suite, data, outcomes, model_name, key, store_root, device) -> dict:
    """Checks + verdict + equivariance errors for a run, cached in the run's store."""
    from symbench.bench.checks import cached_checks
    from symbench.bench.run.store import Store

    store = Store(store_root, model_name, key)
    # cached_checks runs only the checks the stored record lacks (new or changed checks judge old runs too)
    log.info("%s %s: validity checks (%d of them; cached in the store once done)...", model_name, suite.id,
             _n_checks())
    t0 = time.time()
    cached = cached_checks(model, suite, data.x.to(device), data.y.to(device), outcomes, store,
                           seed=suite.seed, m=int(suite.option("checks_m", 64)))
    log.info("%s %s: checks done in %.0f s, verdict %s", model_name, suite.id, time.time() - t0, cached["verdict"])
    return cached


def _n_checks() -> int:
    from symbench.bench import checks

    return len(getattr(checks, "CHECKS", ())) or 1


def run_orbit_columns(model, suite, data, outcomes, model_name, key, store_root, device) -> list[dict] | None:
    """The suite's optional ``[orbit]`` table: orbit + attack accuracy per eps on the first ``n`` examples."""
    from symbench.bench.checks.orbit import ORBIT, orbit_outcome
    from symbench.bench.run.store import Store

    spec = dict(suite.option("orbit", ()) or ())
    if not spec:
        return None
    store = Store(store_root, model_name, key)
    n = min(int(spec.pop("n", 100)), len(data))
    attack = spec.pop("attack", "ta_pgd")
    only_eps = spec.pop("eps", None)  # orbit cost = |orbit| attacks per eps: pick a few eps on CPU
    cols = []
    for i, o in enumerate(outcomes):
        if only_eps is not None and not any(abs(o.eps - e) < 1e-9 for e in only_eps):
            cols.append(None)
            continue
        rec = store.get("orbit", i)
        if rec is None:
            log.info("%s %s: orbit column at eps %s (%d transforms x %s on %d examples)...", model_name, suite.id,
                     o.eps_display if hasattr(o, "eps_display") else f"{o.eps:.4g}", len(ORBIT), attack, n)
            res = orbit_outcome(model, data.x[:n].to(device), data.y[:n].to(device), o.eps, attack=attack,
                                norm=o.norm, seed=suite.seed, **spec)
            rec = {"n": n, "attack": attack, "params": spec, "transforms": list(ORBIT),
                   "clean_acc": res["clean"].float().mean().item(), "robust_acc": res["adv"].float().mean().item(),
                   "per_transform": res["per_transform"],
                   "robust_acc_no_orbit": o.robust[:n].float().mean().item()}
            store.put("orbit", i, rec)
        cols.append(rec)
    return cols


def _run_other_kind(suite, model, data, **kw) -> list[dict]:
    from symbench.bench import kinds as suite_kinds  # noqa: F401  (registers the built-in kinds)
    from symbench.bench.suites import SUITE_KINDS

    if suite.kind not in SUITE_KINDS:
        raise ValueError(f"suite {suite.name!r} has unknown kind {suite.kind!r}; known: attack, {', '.join(SUITE_KINDS)}")
    return SUITE_KINDS[suite.kind](model.eval(), suite, data, model_name=kw["model_name"], store_root=kw["store"],
                                   device=kw["device"], progress=kw["progress"])


def base_reference(model, suite, data, *, store_root=None, device="cpu", progress: bool = False,
                   num_classes: int = 10) -> list[dict] | None:
    """Run ``suite`` on the base of a defended model; one dict of extra row fields per (threat, eps).

    Returns None for an undefended model. The fields (``base_model``, ``base_clean_acc``,
    ``base_robust_acc``, ``base_attacks``) let a row show the defense's gain as a difference. The base
    run has its own store entry (under the base's name), so it is resumable and shared with plain
    runs of the base on the same suite and data.
    """
    from symbench.bench.run.runner import run_suite
    from symbench.models.defenses import find_defense

    defense = find_defense(model)
    if defense is None:
        return None
    card = getattr(defense, "card", None) or getattr(model, "card", None)
    base_name = (card.name if card is not None else "model").split("+")[0]
    outcomes, _ = run_suite(defense.base, suite, data, model_name=base_name, store_root=store_root, device=device,
                            num_classes=num_classes, progress=progress)
    return [{"base_model": base_name, "base_clean_acc": o.clean_acc, "base_robust_acc": o.robust_acc,
             "base_attacks": [{"label": k, "acc_after": v} for k, v in o.per_attack_acc().items()]}
            for o in outcomes]
