"""The Python API: what a notebook calls (RobustBench-style names), over the same evaluation as the CLI.

>>> import symbench
>>> model = symbench.load_model("cascaded4")                      # shipped, sha256-verified weights
>>> df = symbench.benchmark(model, suite="quick", n=100)           # one row per (threat, eps)
>>> df[["model", "eps_display", "clean_acc", "robust_acc", "robust_low", "robust_high", "verdict"]]
>>> symbench.results(model="cascaded4")                           # every stored row, as a DataFrame

Results go to the user directory (``$SYMBENCH_HOME``, else the platform's user data dir): rows to
``rows.jsonl`` there, per-example outcomes to ``store/`` (a rerun resumes and costs nothing). The
repository's published leaderboard is never written from here.
"""
from __future__ import annotations

import fnmatch
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from torch import nn

log = logging.getLogger("symbench")

# the columns every benchmark/results frame starts with (then one ``acc_after:<attack>`` per attack)
COLUMNS = ["model", "suite", "suite_id", "threat", "eps", "eps_display", "n", "clean_acc", "robust_acc",
           "robust_low", "robust_high", "verdict", "failing_checks", "ckpt_sha256", "created"]


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Registered model names matching a shell pattern (``pretrained=True``: only those with shipped weights)."""
    from symbench.models import get_card
    from symbench.models import list_models as _list

    names = _list(pattern)
    return [n for n in names if get_card(n).sha256] if pretrained else names


def load_model(name: str, pretrained: bool = True, *, checkpoint: str | Path | None = None,
               sha256: str | None = None, **kwargs) -> "nn.Module":
    """A registered model in eval mode (``cascaded`` → ``cascaded4``; ``<model>+<defense>`` too).

    Args:
        name: registered name, alias, ``<model>+<defense>[:k=v]`` or ``robustbench:<Name>``.
        pretrained: load the shipped checkpoint (verified against the card's sha256).
        checkpoint: your own ``.safetensors`` for this architecture instead (``sha256`` checked if given).
    """
    if name.startswith("robustbench:"):
        from symbench.models.robustbench_zoo import load_robustbench_model

        return load_robustbench_model(name, kwargs.pop("model_dir", None))
    from symbench.models import create_model

    return create_model(name, pretrained=pretrained and checkpoint is None, checkpoint=checkpoint, sha256=sha256,
                        **kwargs)


def benchmark(model_or_name: "str | nn.Module", suite: str = "quick", *, n: int | None = None,
              eps: float | list[float] | None = None, data_dir: str | Path | None = None,
              device: str | None = None, progress: bool = True, batch_size: int | None = None,
              seed: int | None = None, name: str | None = None, rows: str | Path | None | bool = True,
              store: str | Path | None = None, checkpoint: str | Path | None = None,
              download: bool = False, **kwargs: Any) -> "pd.DataFrame":
    """Run a suite on a model; one DataFrame row per (threat, eps).

    Args:
        model_or_name: a registered name, or any ``nn.Module`` mapping [0,1] NCHW images to logits
            (normalization inside, eval mode; like ``robustbench.benchmark``).
        suite: suite name (``symbench.list_suites()``) or a ``.toml`` path.
        n: test examples (default: the suite's). eps: eps on the [0,1] scale (8/255), replacing the suite's.
        data_dir: CIFAR-10 (default: ``$SYMBENCH_DATA``, then a ``shared/data`` beside the checkout).
        name: the name rows carry for an unregistered module (default ``custom:<ClassName>``).
        rows: where rows are appended: True = the user's ``rows.jsonl``, a path, or False/None for nowhere.
        store: per-example store (default: the user's); reruns resume from it.
        download: let torchvision download CIFAR-10 when no local copy is found.
        **kwargs: passed to the evaluation (``checks=False``, ``untrained=True``, ``escalate=True`` ...).

    Returns:
        columns ``model, suite, threat, eps, eps_display, n, clean_acc, robust_acc, robust_low, robust_high``
        (95% Wilson interval), ``verdict``, ``failing_checks`` and ``acc_after:<attack>`` (the cumulative
        accuracy after each attack of the suite); ``DataFrame.attrs["rows"]`` holds the full JSON rows.
    """
    from torch import nn

    from symbench.bench.run.evaluate import bench
    from symbench.paths import default_data_dir, user_rows

    if progress:
        _log_to_stderr()
    model = None
    if isinstance(model_or_name, nn.Module):
        model = model_or_name
        if model.training:
            raise ValueError("the model is in train mode; call model.eval() first (BatchNorm/dropout would change "
                             "every forward pass and the attacks would see another model)")
        card = getattr(model, "card", None)
        model_name = name or (card.name if card is not None else f"custom:{type(model).__name__}")
    elif isinstance(model_or_name, str):
        model_name = model_or_name
    else:
        raise TypeError(f"benchmark() takes a model name or an nn.Module, got {type(model_or_name).__name__}")
    if isinstance(eps, (int, float)):
        eps = [float(eps)]
    out = user_rows() if rows is True else (Path(rows) if rows else None)
    got = bench(model_name, suite, data_dir=data_dir or default_data_dir(), n=n, eps=eps, batch_size=batch_size,
                seed=seed, out=out, store=store, device=device, progress=progress, model=model,
                checkpoint=checkpoint, download=download, **kwargs)
    if out is not None:
        log.info("rows appended to %s", out)
    return rows_frame(got)


def results(model: str | None = None, suite: str | None = None, *, published: bool = False,
            path: str | Path | None = None) -> "pd.DataFrame":
    """Stored rows as a DataFrame: the user's (default), the published board's, or any rows file.

    ``model`` and ``suite`` are shell patterns over the rows' model and suite names.
    """
    from symbench.bench.run.records import read_rows
    from symbench.paths import published_rows, user_rows

    src = Path(path) if path else (published_rows() if published else user_rows())
    got = [r for r in read_rows(src)
           if (model is None or fnmatch.fnmatch(r["model"], model))
           and (suite is None or fnmatch.fnmatch(r["suite"], suite))]
    return rows_frame(got)


def list_suites() -> list[str]:
    from symbench.bench.suites import list_suites as _list

    return _list()


def rows_frame(rows: list[dict]) -> "pd.DataFrame":
    """Flatten result rows into a DataFrame (one row each), with the 95% Wilson interval of robust accuracy."""
    import pandas as pd

    from symbench.bench.run.stats import accuracy_interval

    records = []
    for r in rows:
        ci = accuracy_interval(r.get("robust_acc"), r.get("n") or 0)
        rec = {"model": r["model"], "suite": r["suite"], "suite_id": r.get("suite_id"), "threat": r["threat"],
               "eps": r["eps"], "eps_display": r.get("eps_display"), "n": r.get("n"),
               "clean_acc": r.get("clean_acc"), "robust_acc": r.get("robust_acc"),
               "robust_low": ci[0] if ci else None, "robust_high": ci[1] if ci else None,
               "verdict": r.get("verdict"),
               "failing_checks": ",".join(k for k, c in sorted((r.get("checks") or {}).items())
                                          if c.get("status") == "fail"),
               "ckpt_sha256": r.get("ckpt_sha256"), "created": r.get("created")}
        for a in r.get("attacks") or []:
            rec[f"acc_after:{a['label']}"] = a.get("acc_after")
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame(columns=COLUMNS)
    df.attrs["rows"] = rows
    return df


def _log_to_stderr() -> None:
    """Progress lines in a notebook or script: an INFO handler on the ``symbench`` logger unless one exists."""
    logger = logging.getLogger("symbench")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("symbench: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def compare(model_a: str, model_b: str, suite: str = "standard", *, rows: str | Path | None = None,
            store: str | Path | None = None, metric: str = "robust") -> "pd.DataFrame":
    """Paired comparison of two models on the same examples, one row per (threat, eps) both were run at.

    Reads the per-example outcomes behind each model's row (the largest-n row of ``suite``) from the
    store: accuracies, difference with its 95% interval, exact McNemar p-value; refuses rows run on
    different examples. ``df.attrs["sentences"]`` says each comparison in one honest sentence.

    Args:
        rows: rows file (default: the user's rows, then the published board's).
        store: the store holding both runs (default: the user's).
        metric: ``robust`` (worst case over the suite's attacks) or ``clean``.
    """
    import pandas as pd

    from symbench.bench.run.compare import compare_rows, matching_rows
    from symbench.bench.run.records import read_rows
    from symbench.paths import published_rows, user_rows

    sources = [Path(rows)] if rows else [user_rows(), published_rows()]
    every = [r for src in sources for r in read_rows(src)]
    a, b = matching_rows(every, model_a, suite), matching_rows(every, model_b, suite)
    if not a or not b:
        missing = model_a if not a else model_b
        raise ValueError(f"no {suite!r} rows for {missing!r} in {', '.join(map(str, sources))}: run "
                         f"`symbench bench --model {missing} --suite {suite}` first")
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"{model_a} and {model_b} share no (threat, eps) in suite {suite!r}")
    results = [compare_rows(a[k], b[k], store, metric) for k in common]
    df = pd.DataFrame.from_records([r.to_json() for r in results])
    df.attrs["sentences"] = [r.sentence() for r in results]
    return df
