"""The settings of one ``bench()`` call as a frozen dataclass, apart from the stages that read them.

Split out of ``evaluate.py`` (issue 25: no module over 400 lines); ``evaluate`` re-exports it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


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

