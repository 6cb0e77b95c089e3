"""Evaluate a model on a suite, as an ordered list of stages: measure (the attack cascade, or the suite kind's
own runner) → checks → orbit → base reference → gains → escalation → code hash. Each stage says which suites it
applies to and returns its own row fields; a new threat model is one attack file, one suite TOML, one stage
(or a registered suite kind) and one board section.

The library function every entry point calls (the Python API, the CLI, executors, submit, refresh).

This module keeps the order of the stages (``STAGES``), runs them and holds ``bench()``; the settings are in
``bench_config``, the stages in ``stages``, what the checks/orbit/base-reference stages compute in ``stage_work``
(issue 25: no module over 400 lines). It re-exports their names, so callers import from here as before.
"""
from __future__ import annotations

import logging

import torch

from symbench.paths import user_store
from symbench.bench.run.bench_config import BenchConfig
from symbench.bench.run.stage_work import base_reference, run_orbit_columns, run_validity_checks
from symbench.bench.run.stages import (Attacks, BaseReference, Checks, CodeHash, CorruptedAdvChecks, Escalation, Gains,
                                       Orbit, Run, Stage, SuiteKind)

__all__ = ["Attacks", "BaseReference", "BenchConfig", "Checks", "CodeHash", "CorruptedAdvChecks", "Escalation",
           "Gains", "Orbit", "Run", "STAGES", "Stage", "SuiteKind", "base_reference", "bench", "default_device",
           "parse_shard", "register_stage", "run_orbit_columns", "run_stages", "run_validity_checks"]

log = logging.getLogger("symbench")


def default_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


STAGES: list[Stage] = [Attacks(), SuiteKind(), Checks(), CorruptedAdvChecks(), Orbit(), BaseReference(), Gains(),
                       Escalation(), CodeHash()]


def register_stage(stage: Stage, *, before: str | None = None) -> Stage:
    """Add ``stage`` to the evaluation, before the stage named ``before`` (default: before ``code_hash``)."""
    names = [s.name for s in STAGES]
    if stage.name in names:
        raise ValueError(f"a stage named {stage.name!r} is already registered")
    at = names.index(before or "code_hash")
    STAGES.insert(at, stage)
    return stage


def run_stages(run: Run, stages: list[Stage] | None = None) -> list[dict]:
    """Run every stage that applies, in order; the first that makes rows makes them, the rest add fields."""
    for stage in stages if stages is not None else STAGES:
        if not stage.applies(run):
            continue
        got = stage(run)
        if stage.makes_rows:
            if run.rows is not None:
                raise RuntimeError(f"stage {stage.name} makes rows, but stage(s) before it already made them")
            run.rows = list(got)
            continue
        if run.rows is None:
            raise RuntimeError(f"stage {stage.name} adds row fields, but no stage before it made rows")
        if got is None:
            continue
        if len(got) != len(run.rows):
            raise RuntimeError(f"stage {stage.name} returned {len(got)} field sets for {len(run.rows)} rows")
        for row, extra in zip(run.rows, got):
            row.update(extra or {})
    if run.rows is None:
        raise RuntimeError(f"no stage makes rows for suite kind {run.suite.kind!r}")
    return run.rows


# ------------------------------------------------------------------------------------------------
# bench()
# ------------------------------------------------------------------------------------------------

def bench(model_name: str, suite_name: str, config: BenchConfig | None = None, **kwargs) -> list[dict]:
    """Run ``suite_name`` on ``model_name``; returns the rows (appended to ``out`` when given).

    Settings are :class:`BenchConfig`'s fields, as a ``config`` or as keywords (keywords win). The ones
    with consequences worth knowing:

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
    from symbench.bench.run.records import append_rows
    from symbench.bench.suites import load_suite
    from symbench.bench.run.preflight import preflight_bench

    cfg = BenchConfig.of(config, **kwargs)
    preflight_bench(suite_name, n=cfg.n, batch_size=cfg.batch_size, out=cfg.out, store=cfg.store, data=cfg.data,
                    model=cfg.model)
    suite = load_suite(suite_name).with_overrides(n=cfg.n, eps=cfg.eps, batch_size=cfg.batch_size, seed=cfg.seed)
    store = cfg.store if cfg.store is not None else user_store()
    dev = default_device(cfg.device)
    model = cfg.model
    if model is None and model_name.startswith("robustbench:"):  # RobustBench's zoo, see models/robustbench_zoo.py
        from symbench.models.robustbench_zoo import load_robustbench_model
        model = load_robustbench_model(model_name, cfg.model_dir)
    if model is None:
        model_name = resolve_name(model_name)
        if cfg.checkpoint is not None:
            from symbench.models.checkpoints import sha256_file
            model = create_model(model_name, checkpoint=cfg.checkpoint,
                                 sha256=cfg.sha256 or sha256_file(cfg.checkpoint))
        else:
            model = create_model(model_name, pretrained=not cfg.untrained)
    data = cfg.data if cfg.data is not None else load_cifar10("test", cfg.data_dir, n=suite.n, download=cfg.download)
    if cfg.shard is not None:
        return _bench_shard(model, suite, data, model_name, cfg.shard, store, dev, cfg.progress)
    run = Run(model_name, model, suite, data, store, dev, cfg)
    rows = run_stages(run)
    if cfg.out:
        added = append_rows(cfg.out, rows)
        log.info("appended %d new row(s) to %s (%d already recorded)", added, cfg.out, len(rows) - added)
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
