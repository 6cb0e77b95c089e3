"""Reconstruct the exact run behind a published row: which suite settings give its ``store_key``.

A row's store key hashes everything that determines its per-example outcomes (weights, model code, suite
content, the threats and eps it ran, data, n, seed, batch size). The row records the suite, n and its
own (threat, eps), but not whether its run covered the suite's other threats or eps; the per-batch
attack seeds depend on the position of (threat, eps) in the run. So the run is found by trying the few
settings a run can have had (the whole suite, the row's threat alone, the row's eps alone, the eps
override it records) and keeping the one whose key is the row's. No match means today's code or suite
is not the one that computed the row: its outcomes cannot be recomputed, only read from a store.

Rows computed before the model code's hash joined the key (2026-12-02) carry the older key. When that one
matches, the run's settings (weights, suite, eps, data, n, seed, batch size) are the row's, but whether the
model code is the same is unknown: the plan is ``legacy``, its run is stored under today's key, and its
outcomes count only where they give every number of the row (clean and robust accuracy, each attack's).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunPlan:
    """The suite (with overrides) whose run on ``data`` has the row's store key, and the row's place in it."""

    suite: object              # symbench.bench.suites.Suite
    eps: dict | None           # the eps override, as ``bench --eps`` takes it (None: the whole suite)
    threat_index: int          # ti and ei of the row's (threat, eps): they seed its batches
    eps_index: int
    legacy: bool = False       # the row's key is the one before the model code's hash: trust only agreeing numbers

    def cli_eps(self) -> str:
        if not self.eps:
            return ""
        from symbench.bench.suites import eps_display

        return " ".join(f"{t}=" + ",".join(eps_display(e) for e in es) for t, es in self.eps.items())


def candidate_overrides(row: dict, suite) -> list[dict | None]:
    """The eps settings a run that produced ``row`` can have had, most likely first."""
    threats = {t.norm: list(t.eps) for t in suite.threats}
    cands: list[dict | None] = []
    own = row.get("eps_override")
    if own:
        cands.append({k: list(v) for k, v in (own.items() if isinstance(own, dict) else own)})
    cands += [{row["threat"]: [row["eps"]]}, {row["threat"]: threats.get(row["threat"], [row["eps"]])}, None]
    out = []
    for c in cands:
        if c not in out:
            out.append(c)
    return out


def find_run(row: dict, model, data, suite=None) -> RunPlan | None:
    """The :class:`RunPlan` whose store key is ``row['store_key']`` for ``model`` on ``data`` (None: no match).

    ``suite``: the suite (or a .toml path) when it is not a shipped one (a submitter's, a test's).
    """
    from symbench.bench.run.runner import suite_run_key
    from symbench.bench.suites import Suite, load_suite

    base = suite if isinstance(suite, Suite) else load_suite(str(suite) if suite else row["suite"])
    for legacy in (False, True):  # today's key first; then the one before the model code's hash (see above)
        for eps in candidate_overrides(row, base):
            try:
                suite = base.with_overrides(n=row["n"], eps=eps)
            except ValueError:
                continue
            if suite_run_key(model, suite, data, code=not legacy) != row["store_key"]:
                continue
            for ti, t in enumerate(suite.threats):
                for ei, e in enumerate(t.eps):
                    if t.norm == row["threat"] and abs(e - row["eps"]) < 1e-9:
                        return RunPlan(suite, eps, ti, ei, legacy)
    return None


def load_for_row(row: dict, *, checkpoint=None, data_dir=None, download: bool = False):
    """(model, data) a row was computed with: the registered model (or ``checkpoint``) and its first n examples.

    Refuses, before any compute, weights whose sha256 is not the row's or data whose hash is not the row's.
    """
    from symbench.bench.data import load_cifar10
    from symbench.bench.run.runner import model_fingerprint
    from symbench.models import create_model

    name = row["model"]
    if name.startswith(("custom:", "robustbench:")) and checkpoint is None:
        raise ValueError(f"{name}: only registered models (or --checkpoint weights) can be recomputed")
    if checkpoint is not None:
        from symbench.models.checkpoints import sha256_file

        model = create_model(name, checkpoint=checkpoint, sha256=sha256_file(checkpoint))
    else:
        model = create_model(name, pretrained=True)
    model = model.eval()
    fp = model_fingerprint(model)
    if fp != row.get("ckpt_sha256"):
        raise ValueError(f"{name}: the weights' sha256 {fp[:16]} is not the row's {str(row.get('ckpt_sha256'))[:16]}"
                         " (pass the submitted checkpoint with --checkpoint)")
    data = load_cifar10(row.get("data_split", "test"), data_dir, n=row["n"], download=download)
    if data.sha256 != row.get("data_sha256"):
        raise ValueError(f"{name}: the first {row['n']} examples of {data.source} hash to {data.sha256[:12]}, the row "
                         f"was computed on {str(row.get('data_sha256'))[:12]}")
    return model, data
