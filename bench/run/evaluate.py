"""Evaluate a model on a suite, as an ordered list of stages: measure (the attack cascade, or the suite kind's
own runner) → checks → orbit → base reference → gains → escalation → code hash. Each stage says which suites it
applies to and returns its own row fields; a new threat model is one attack file, one suite TOML, one stage
(or a registered suite kind) and one board section.

The library function every entry point calls (the Python API, the CLI, executors, submit, refresh).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from symbench.paths import user_store

log = logging.getLogger("symbench")


def default_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class BenchConfig:
    """The settings of one :func:`bench` call (its keyword arguments), one line each."""

    data_dir: Any = None            # CIFAR-10 directory (default: $SYMBENCH_DATA, then shared/data)
    n: int | None = None            # test examples (default: the suite's)
    eps: Any = None                 # per-threat eps override, {"linf": [...]} or a list for a one-threat suite
    batch_size: int | None = None   # examples per batch (default: the suite's)
    seed: int | None = None         # attack seed (default: the suite's)
    out: Any = None                 # rows file to append to; None appends nowhere
    store: Any = None               # per-example store (None: $SYMBENCH_HOME/store)
    device: str | None = None       # cpu / cuda (default: cuda when available)
    progress: bool = True           # progress bars on stderr
    model: Any = None               # an nn.Module to evaluate instead of building ``model_name``
    data: Any = None                # an ImageData instead of CIFAR-10 (tests)
    untrained: bool = False         # allow a registered model without trained weights
    checks: bool = True             # run the validity checks (rows are 'unchecked' without)
    model_dir: Any = None           # RobustBench model directory for robustbench:<Name>
    shard: tuple[int, int] | None = None  # (i, k): compute shard i of k into the store, write no rows
    checkpoint: Any = None          # your own .safetensors for a registered architecture
    sha256: str | None = None       # expected sha256 of ``checkpoint`` (default: computed from the file)
    download: bool = False          # let torchvision download CIFAR-10
    escalate: bool = False          # escalate rows flagged for hidden or noisy gradients (bench/checks/escalate.py)
    surrogate: Any = None           # with escalate: a registered name or module to transfer from
    escalate_skipped: str | None = None  # not escalating on purpose (e.g. "--no-escalate"): said in flagged rows
    strict: bool = False            # a stored record failing verification stops the run

    @classmethod
    def of(cls, config: "BenchConfig | None" = None, **kwargs) -> "BenchConfig":
        """``config`` with ``kwargs`` replaced; an unknown keyword is a TypeError naming the known ones."""
        unknown = sorted(set(kwargs) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"bench() got unknown keyword(s) {', '.join(unknown)}; it takes "
                            + ", ".join(f.name for f in fields(cls)))
        return replace(config or cls(), **kwargs)


@dataclass
class Run:
    """What the stages share: the model, suite and data, where results go, and what earlier stages produced."""

    model_name: str
    model: Any
    suite: Any
    data: Any
    store_root: Any
    device: torch.device
    cfg: BenchConfig
    outcomes: list | None = None    # per (threat, eps) of an attack suite: what its rows are computed from
    key: str | None = None          # the run's store key
    rows: list[dict] | None = None
    results: dict = field(default_factory=dict)  # stage name -> what it computed, for later stages

    @property
    def card(self):
        return getattr(self.model, "card", None)

    @property
    def num_classes(self) -> int:
        return getattr(self.card, "num_classes", 10)

    def store(self):
        from symbench.bench.run.store import Store

        return Store(self.store_root, self.model_name, self.key)


class Stage:
    """One step of an evaluation: the suites it applies to and the row fields it adds.

    ``kinds``: the suite kinds it applies to (None: every kind); ``applies`` may narrow that further (a
    suite option, a setting). ``__call__`` returns one dict of row fields per row (None or {} adds
    nothing to that row), or None for no fields at all; a stage with ``makes_rows`` returns the rows.
    """

    name = "stage"
    kinds: tuple[str, ...] | None = ("attack",)
    makes_rows = False

    def applies(self, run: Run) -> bool:
        return self.kinds is None or run.suite.kind in self.kinds

    def __call__(self, run: Run) -> list[dict | None] | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<stage {self.name}>"


# ------------------------------------------------------------------------------------------------
# the stages, in order
# ------------------------------------------------------------------------------------------------

class Attacks(Stage):
    """Clean pass → robust mask → each attack on the survivors → per-example worst case (bench/run/runner.py)."""

    name, makes_rows = "attacks", True

    def __call__(self, run: Run) -> list[dict]:
        from symbench.bench.run.records import make_row
        from symbench.bench.run.runner import model_fingerprint, row_fields, run_suite

        run.outcomes, run.key = run_suite(run.model, run.suite, run.data, model_name=run.model_name,
                                          store_root=run.store_root, device=run.device, strict=run.cfg.strict,
                                          num_classes=run.num_classes, progress=run.cfg.progress)
        fp = model_fingerprint(run.model)
        return [make_row(model_name=run.model_name, card=run.card, ckpt_sha256=fp, suite=run.suite, outcome=o,
                         data=run.data, device=run.device, store_key=run.key, extra=row_fields(run.suite, o))
                for o in run.outcomes]


class SuiteKind(Stage):
    """A suite kind with its own runner (CLEVER, corruptions, corrupted_adv, spatial ...: ``register_suite_kind``),
    which returns its rows."""

    name, kinds, makes_rows = "kind", None, True

    def applies(self, run: Run) -> bool:
        return run.suite.kind != "attack"

    def __call__(self, run: Run) -> list[dict]:
        from symbench.bench import kinds as suite_kinds  # noqa: F401  (registers the built-in kinds)
        from symbench.bench.suites import SUITE_KINDS

        kind = run.suite.kind
        if kind not in SUITE_KINDS:
            raise ValueError(f"suite {run.suite.name!r} has unknown kind {kind!r}; known: attack, "
                             f"{', '.join(SUITE_KINDS)}")
        return SUITE_KINDS[kind](run.model.eval(), run.suite, run.data, model_name=run.model_name,
                                 store_root=run.store_root, device=run.device, progress=run.cfg.progress)


class Checks(Stage):
    """Validity checks + verdict + equivariance errors (bench/checks/), cached in the run's store."""

    name = "checks"

    def applies(self, run: Run) -> bool:
        return super().applies(run) and run.cfg.checks

    def __call__(self, run: Run) -> list[dict]:
        from symbench.bench.checks import row_checks

        cached = run_validity_checks(run.model, run.suite, run.data, run.outcomes, run.model_name, run.key,
                                     run.store_root, run.device)
        run.results["checks"] = cached
        return [row_checks(cached, o) for o in run.outcomes] if cached else None


class CorruptedAdvChecks(Stage):
    """``corrupted_adv`` rows are attacks too: the gradient checks and the APGD spot check per corruption, at a
    bounded cost (bench/checks/corrupted_adv.py)."""

    name, kinds = "corrupted_adv_checks", ("corrupted_adv",)

    def applies(self, run: Run) -> bool:
        return super().applies(run) and run.cfg.checks

    def __call__(self, run: Run) -> list[dict | None]:
        from symbench.bench.checks.corrupted_adv import corrupted_adv_checks

        return corrupted_adv_checks(run.model, run.suite, run.data, run.rows, model_name=run.model_name,
                                    store_root=run.store_root, device=run.device, progress=run.cfg.progress)


class Orbit(Stage):
    """The suite's optional ``[orbit]`` table: orbit + attack accuracy per eps, beside robust_acc."""

    name = "orbit"

    def applies(self, run: Run) -> bool:
        return super().applies(run) and bool(run.suite.option("orbit", ()))

    def __call__(self, run: Run) -> list[dict]:
        cols = run_orbit_columns(run.model, run.suite, run.data, run.outcomes, run.model_name, run.key,
                                 run.store_root, run.device)
        return [{"orbit": c} if c else None for c in cols] if cols else None


class BaseReference(Stage):
    """A defended model (suite option ``base_reference``): the same attacks on its undefended base."""

    name = "base_reference"

    def applies(self, run: Run) -> bool:
        return super().applies(run) and bool(run.suite.option("base_reference"))

    def __call__(self, run: Run) -> list[dict] | None:
        log.info("%s %s: the same suite on the undefended base (for the defense's gain)...", run.model_name,
                 run.suite.id)
        base = base_reference(run.model, run.suite, run.data, store_root=run.store_root, device=run.device,
                              progress=run.cfg.progress)
        run.results["base_reference"] = base
        return base


class Gains(Stage):
    """The defense's gain over its base as a paired difference on the same examples (bench/checks/gain.py)."""

    name = "gains"

    def applies(self, run: Run) -> bool:
        return super().applies(run) and bool(run.results.get("base_reference"))

    def __call__(self, run: Run) -> list[dict] | None:
        from symbench.bench.checks.gain import defense_gains

        return defense_gains(run.model, run.suite, run.data, run.outcomes, store_root=run.store_root,
                             device=run.device)


class Escalation(Stage):
    """Rows flagged for hidden or noisy gradients, attacked again by remedies that need no knowledge of the
    model's insides (bench/checks/escalate.py); or, when escalation was skipped on purpose, the reason."""

    name = "escalation"

    def applies(self, run: Run) -> bool:
        return super().applies(run) and run.cfg.checks and bool(run.cfg.escalate or run.cfg.escalate_skipped)

    def __call__(self, run: Run) -> list[dict]:
        from symbench.bench.checks.escalate import escalate, flagged

        if not run.cfg.escalate:
            return [{"escalation_skipped": run.cfg.escalate_skipped} if flagged(r) else None for r in run.rows]
        esc = escalate(run.model, run.suite, run.data, run.outcomes, checks=run.results.get("checks"),
                       surrogate=run.cfg.surrogate, store=run.store(), device=run.device)
        return [e.row_fields() if e else None for e in esc]


class CodeHash(Stage):
    """An ad-hoc nn.Module (no card): its code still keys the store, so the row says which code."""

    name = "code_hash"

    def applies(self, run: Run) -> bool:
        return super().applies(run) and run.card is None

    def __call__(self, run: Run) -> list[dict]:
        from symbench.models.code_hash import code_sha256

        h = code_sha256(run.model)
        return [{"code_sha256": h} for _ in run.rows]


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
