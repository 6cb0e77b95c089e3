"""RobustBench's argument names for the API: check them and translate them into symbench's, before any compute.

``symbench.benchmark(model, n_examples=64, dataset="cifar10", threat_model="Linf", eps=8/255)`` means what
it means in RobustBench; anything symbench cannot honour is one clear error here, not a TypeError from
deep inside the evaluation.
"""
from __future__ import annotations

from typing import Any

# RobustBench's names for what symbench calls a threat (``ThreatModel`` values) and its datasets
THREAT_MODELS = {"linf": "linf", "l2": "l2", "corruptions": "corruptions"}
DATASETS = ("cifar10",)


def enum_value(v: Any) -> Any:
    """RobustBench passes enums (``ThreatModel.Linf``); their ``.value`` is the string."""
    return getattr(v, "value", v)


def check_dataset(dataset: Any) -> None:
    """Only CIFAR-10 is benchmarked here; anything else is one clear error."""
    if dataset is None:
        return
    d = str(enum_value(dataset)).lower().replace("-", "")
    if d not in DATASETS:
        raise ValueError(f"dataset {enum_value(dataset)!r}: symbench benchmarks CIFAR-10 only (dataset=\"cifar10\"); "
                         "its suites, models and reference rows are all CIFAR-10")


def parse_threat_model(threat_model: Any) -> str | None:
    """``"Linf"``/``"L2"``/``"corruptions"`` (or RobustBench's ``ThreatModel``) → symbench's ``linf``/``l2``/``corruptions``."""
    if threat_model is None:
        return None
    t = str(enum_value(threat_model)).lower()
    if t not in THREAT_MODELS:
        raise ValueError(f"threat_model {enum_value(threat_model)!r}: expected \"Linf\", \"L2\" or \"corruptions\" "
                         "(RobustBench's names)")
    return THREAT_MODELS[t]


_ROBUSTBENCH_ONLY = {
    "to_disk": "rows always go to $SYMBENCH_HOME/rows.jsonl (rows=False: nowhere, rows=PATH: a file)",
    "log_path": "progress goes to the `symbench` logger on stderr",
    "aa_state_path": "every batch is stored in $SYMBENCH_HOME/store and a rerun resumes from it",
    "preprocessing": "put preprocessing inside the model (it takes [0,1] images)",
    "corruptions": "threat_model=\"corruptions\" runs all 19 corruptions (suite `corruptions`)",
}


def one_of(a: str, va: Any, b: str, vb: Any) -> Any:
    """Two names for one argument (ours and RobustBench's): either, or both when equal."""
    if va is not None and vb is not None and va != vb:
        raise TypeError(f"benchmark() got {a}={va!r} and {b}={vb!r}: the same argument twice, with different values")
    return va if va is not None else vb


def check_benchmark_kwargs(kwargs: dict, own: set[str]) -> None:
    """Keyword arguments the evaluation does not take (``own``: the caller's named ones): one clear line."""
    import inspect

    import dataclasses

    from symbench.bench.run import evaluate

    config = getattr(evaluate, "BenchConfig", None)  # the evaluation's settings, one field each
    takes = ({f.name for f in dataclasses.fields(config)} if config is not None
             else set(inspect.signature(evaluate.bench).parameters)) - {"model_name", "suite_name", "out", "model"}
    for k in kwargs:
        if k in _ROBUSTBENCH_ONLY:
            raise TypeError(f"benchmark(): RobustBench's {k}= has no counterpart here: {_ROBUSTBENCH_ONLY[k]}")
        if k not in takes:
            raise TypeError(f"benchmark() got an unexpected keyword argument {k!r}; besides its own it passes "
                            f"{', '.join(sorted(takes - own))} to the evaluation")


def eps_argument(eps: Any, threat: str | None, suite: str) -> "list[float] | dict[str, list[float]] | None":
    """``eps`` as the evaluation takes it: None, a list (for a one-threat suite) or ``{threat: [eps]}``.

    ``threat`` (from ``threat_model``) names the threat a bare eps belongs to and runs only that threat.
    """
    if isinstance(eps, dict):
        table = {}
        for k, v in eps.items():
            t = parse_threat_model(k)
            if t not in ("linf", "l2"):
                raise ValueError(f"benchmark(): eps dict keys are threats (\"linf\", \"l2\"), got {k!r}")
            table[t] = _eps_list(v)
        if threat is not None:
            if threat not in table:
                raise ValueError(f"benchmark(): threat_model={threat!r} but the eps dict names only {sorted(table)}")
            table = {threat: table[threat]}
        return table
    values = None if eps is None else _eps_list(eps)
    if threat is None and values is None:
        return None
    from symbench.bench.suites import load_suite

    threats = {t.norm: list(t.eps) for t in load_suite(suite).threats}
    if threat is None:
        if len(threats) > 1:
            raise ValueError(f"benchmark(): suite {suite!r} has {len(threats)} threats ({', '.join(threats)}); say which "
                             f"the eps belong to: threat_model=\"Linf\", or eps={{\"linf\": {values}}}")
        return values
    if threat not in threats:
        raise ValueError(f"benchmark(): suite {suite!r} has no {threat} threat (its threats: "
                         f"{', '.join(threats) or 'none'}); suite=\"standard\" has Linf and L2")
    return {threat: values if values is not None else threats[threat]}


def _eps_list(v: Any) -> list[float]:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return [float(v)]
    if isinstance(v, (list, tuple)) and v and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v):
        return [float(e) for e in v]
    raise TypeError(f"benchmark(): eps must be a number, a non-empty list of numbers or a {{threat: eps}} dict, "
                    f"got {v!r}")
