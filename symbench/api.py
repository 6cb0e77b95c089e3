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
    """Registered model names matching a shell pattern (``pretrained=True``: only those with shipped weights).

    Aliases count as their model, as in :func:`load_model`: ``list_models("cascaded")`` is ``["cascaded4"]``.
    """
    from symbench.models import get_card
    from symbench.models import list_models as _list

    names = _list(pattern)
    return [n for n in names if get_card(n).sha256] if pretrained else names


def create_model(name: str, pretrained: bool = False, **kwargs) -> "nn.Module":
    """timm's name for building a registered model (random weights unless ``pretrained=True``); see
    :func:`symbench.models.create_model`. :func:`load_model` is the same with ``pretrained=True``."""
    from symbench.models import create_model as _create

    return _create(name, pretrained=pretrained, **kwargs)


def load_model(name: str | None = None, pretrained: bool = True, *, checkpoint: str | Path | None = None,
               sha256: str | None = None, dataset: str | None = None, threat_model: str | None = None,
               model_dir: str | Path | None = None, model_name: str | None = None, **kwargs) -> "nn.Module":
    """A registered model in eval mode (``cascaded`` → ``cascaded4``; ``<model>+<defense>`` too).

    Args:
        name: registered name, alias, ``<model>+<defense>[:k=v]`` or ``robustbench:<Name>``
            (``model_name=`` is RobustBench's spelling of the same argument).
        pretrained: load the shipped checkpoint (verified against the card's sha256).
        checkpoint: your own ``.safetensors`` for this architecture instead (``sha256`` checked if given).
        dataset: RobustBench's argument; only ``"cifar10"`` exists here, anything else is an error.
        threat_model: RobustBench's ``"Linf"``/``"L2"``/``"corruptions"``: picks the zoo of a
            ``robustbench:<Name>`` model; a symbench model is not tied to a threat, so it is only checked.
        model_dir: where RobustBench checkpoints live (default ``$SYMBENCH_HOME/cache/robustbench``); for a
            symbench model, a folder holding its checkpoint file (verified against the card's sha256).
        **kwargs: architecture arguments of the model's factory (an unknown one is refused, naming those it takes).

    >>> symbench.load_model("robustbench:Standard", dataset="cifar10", threat_model="Linf")  # doctest: +SKIP
    """
    if name is None and model_name is None:
        raise TypeError("load_model() needs a model name, e.g. load_model(\"cascaded4\")")
    if name is not None and model_name is not None and name != model_name:
        raise TypeError(f"load_model() got two names, {name!r} and model_name={model_name!r}")
    name = name if name is not None else model_name
    if not isinstance(name, str):
        raise TypeError(f"load_model() takes a model name (str), got {type(name).__name__}")
    from symbench.arguments import enum_value, check_dataset, parse_threat_model
    from symbench.models.robustbench_zoo import PREFIX, parse_name

    check_dataset(dataset)
    threat = parse_threat_model(threat_model)

    if name.startswith(PREFIX):
        from symbench.models.robustbench_zoo import load_robustbench_model

        if kwargs:
            raise TypeError(f"load_model({name!r}): a RobustBench model takes no architecture arguments "
                            f"({', '.join(sorted(kwargs))})")
        if threat is not None:
            spec = parse_name(name)
            explicit = "/" in name[len(PREFIX):]
            want = {"linf": "Linf", "l2": "L2", "corruptions": "corruptions"}[threat]
            if explicit and spec.threat != want:
                raise ValueError(f"load_model({name!r}, threat_model={enum_value(threat_model)!r}): the name already "
                                 f"picks RobustBench's {spec.threat} zoo")
            name = f"{PREFIX}{want}/{spec.name}" if want != "Linf" else f"{PREFIX}{spec.name}"
        return load_robustbench_model(name, model_dir)
    from symbench.models import create_model as _create

    if model_dir is not None:
        if checkpoint is not None:
            raise TypeError("load_model(): give checkpoint= or model_dir=, not both")
        checkpoint, sha256 = _checkpoint_in(name, Path(model_dir)), sha256
    return _create(name, pretrained=pretrained and checkpoint is None, checkpoint=checkpoint, sha256=sha256,
                   **kwargs)


def _checkpoint_in(name: str, model_dir: Path) -> Path:
    """A registered model's checkpoint file inside ``model_dir`` (the card's file name), checked to exist."""
    from symbench.models import get_card

    card = get_card(name)
    if not card.checkpoint:
        raise ValueError(f"model {card.name!r} has no checkpoint file in its card to look for in {model_dir}")
    path = model_dir / Path(card.checkpoint).name
    if not path.is_file():
        raise FileNotFoundError(f"model_dir={str(model_dir)!r}: no {path.name} there (the checkpoint of {card.name}); "
                                "symbench's shipped weights need no model_dir")
    return path


def benchmark(model_or_name: "str | nn.Module", suite: str | Path | None = None, *, n: int | None = None,
              n_examples: int | None = None, dataset: str | None = None, threat_model: str | None = None,
              eps: "float | list[float] | dict[str, float | list[float]] | None" = None,
              data_dir: str | Path | None = None, device: str | None = None, progress: bool = True,
              batch_size: int | None = None, seed: int | None = None, name: str | None = None,
              model_name: str | None = None, rows: str | Path | None | bool = True,
              store: str | Path | None = None, checkpoint: str | Path | None = None,
              download: bool = False, **kwargs: Any) -> "pd.DataFrame":
    """Run a suite on a model; one DataFrame row per (threat, eps).

    RobustBench's call works with RobustBench's meaning:
    ``benchmark(model, n_examples=64, dataset="cifar10", threat_model="Linf", eps=8/255)`` runs
    AutoAttack standard (suite ``standard``) at Linf 8/255 on the first 64 test images.

    Args:
        model_or_name: a registered name, or any ``nn.Module`` mapping [0,1] NCHW images to logits
            (normalization inside, eval mode; like ``robustbench.benchmark``).
        suite: suite name (``symbench.list_suites()``) or a ``.toml`` path; default ``quick``, or
            ``standard`` (AutoAttack, as RobustBench) when ``threat_model`` is given.
        n: test examples (default: the suite's); ``n_examples`` is RobustBench's name for it.
        dataset: ``"cifar10"`` (the only one here; anything else is an error).
        threat_model: ``"Linf"`` or ``"L2"`` runs only that threat of the suite; ``"corruptions"`` the
            ``corruptions`` suite.
        eps: on the [0,1] scale, replacing the suite's: a float or a list for the chosen threat (or a
            one-threat suite), or ``{"linf": [1/255, 2/255], "l2": 0.25}`` per threat.
        data_dir: CIFAR-10 (default: ``$SYMBENCH_DATA``, then a ``shared/data`` beside the checkout).
        device: ``"cuda"``/``"cpu"`` (default: CUDA when available). batch_size: examples per stored batch.
        name: the name rows carry for an unregistered module (default ``custom:<ClassName>``; RobustBench:
            ``model_name``).
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

    if suite is not None and not isinstance(suite, (str, Path)):
        hint = (f"; for the number of test examples write n_examples={suite} (RobustBench's name) or n={suite}"
                if isinstance(suite, int) and not isinstance(suite, bool) else "")
        raise TypeError(f"benchmark(model, {suite!r}): the second argument is the suite (a name such as \"quick\" "
                        f"or a .toml path), got {type(suite).__name__}{hint}")
    import inspect

    from symbench.arguments import check_benchmark_kwargs, check_dataset, eps_argument, one_of, parse_threat_model

    check_benchmark_kwargs(kwargs, set(inspect.signature(benchmark).parameters))
    check_dataset(dataset)
    threat = parse_threat_model(threat_model)
    n = one_of("n", n, "n_examples", n_examples)
    name = one_of("name", name, "model_name", model_name)
    for arg, v in (("n", n), ("batch_size", batch_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"benchmark(): {arg} must be a positive integer, got {v!r}")
    if threat == "corruptions":
        if suite is not None and str(suite) != "corruptions":
            raise ValueError(f"benchmark(): threat_model=\"corruptions\" is the `corruptions` suite, not {str(suite)!r}")
        if eps is not None:
            raise ValueError("benchmark(): threat_model=\"corruptions\" has no eps")
        suite, threat = "corruptions", None
    if suite is None:
        suite = "standard" if threat else "quick"
        if threat:
            log.info("threat_model given and no suite: running `standard` (AutoAttack standard, as "
                     "robustbench.benchmark) at %s", threat)
    eps = eps_argument(eps, threat, str(suite))

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
    out = user_rows() if rows is True else (Path(rows) if rows else None)
    got = bench(model_name, str(suite), data_dir=data_dir or default_data_dir(), n=n, eps=eps, batch_size=batch_size,
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
            store: str | Path | None = None, metric: str = "robust", outcomes: str | Path | None = None
            ) -> "pd.DataFrame":
    """Paired comparison of two models on the same examples, one row per (threat, eps) both were run at.

    Reads the per-example outcomes behind each model's row (the largest-n row of ``suite``) from your
    store when it holds the run, else from the published outcomes shipped with symbench, so a published
    row pairs on a fresh install with no compute, and your own ``custom:MyNet`` row pairs with any
    published row run on the same examples (same data, same n). Gives accuracies, the difference with
    its 95% interval and the exact McNemar p-value. ``df.attrs["sentences"]`` says each comparison in
    one sentence, ``df["source_a"]``/``df["source_b"]`` where the outcomes came from, and
    ``df.attrs["refused"]`` the (threat, eps) that could not be paired and why (an error if none could).

    Args:
        rows: rows file (default: the user's rows, then the published board's).
        store: the store to look in first (default: the user's).
        metric: ``robust`` (worst case over the suite's attacks) or ``clean``.
        outcomes: published outcomes file (default: the shipped ``leaderboard/v1/outcomes.jsonl``).
    """
    import pandas as pd

    from symbench.bench.run.records import read_rows
    from symbench.leaderboard.pairing import pair_models
    from symbench.paths import published_rows, user_rows

    sources = [Path(rows)] if rows else [user_rows(), published_rows()]
    every = [r for src in sources for r in read_rows(src)]
    res = pair_models(every, model_a, model_b, suite, store=store, metric=metric, outcomes=outcomes)
    df = pd.DataFrame.from_records([{**r.to_json(), "source_a": sa, "source_b": sb}
                                    for r, (sa, sb) in zip(res.comparisons, res.sources)])
    df.attrs["sentences"] = [r.sentence() for r in res.comparisons]
    df.attrs["refused"] = res.refused
    return df
