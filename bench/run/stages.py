"""The stages of an evaluation: what they share (``Run``), their base class, and the nine built-in ones.

Split out of ``evaluate.py`` (issue 25: no module over 400 lines), which keeps their order (``STAGES``),
runs them and re-exports these names.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from symbench.bench.run.bench_config import BenchConfig
from symbench.bench.run.stage_work import base_reference, run_orbit_columns, run_validity_checks

log = logging.getLogger("symbench")


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

