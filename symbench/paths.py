"""Where symbench reads and writes: package data, the user directory, the data directory, the checkout.

Package data (suites, schema, reference rows, seed claims, shipped checkpoints and cards, the published
rows) is read through :mod:`importlib.resources` and never written. Everything a user's run makes —
rows, the per-example store, trained weights, training state, every cache — goes under one user directory:
``$SYMBENCH_HOME``, else the platform's user data dir (``~/.local/share/symbench`` on Linux). The
repository's ``leaderboard/v1/rows.jsonl`` changes only by an explicit publish (``--publish`` or
``symbench leaderboard add``), which needs a source checkout.

This module imports nothing from symbench, so every layer may use it.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

HOME_ENV = "SYMBENCH_HOME"
DATA_ENV = "SYMBENCH_DATA"
CACHE_ENV = "SYMBENCH_CACHE"


def package_file(package: str, *parts: str) -> Path:
    """A data file (or folder) shipped inside ``package``, as a path (wheels are installed unpacked)."""
    return Path(str(resources.files(package).joinpath(*parts)))


def home() -> Path:
    """The user directory for rows, store, checkpoints and training state (not created here)."""
    env = os.environ.get(HOME_ENV)
    if env:  # absolute: a relative $SYMBENCH_HOME must not move with the working directory
        return Path(env).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_data_dir("symbench", appauthor=False))


def user_rows() -> Path:
    """The user's rows file: every ``bench``/``submit`` appends here unless told otherwise."""
    return home() / "rows.jsonl"


def user_store() -> Path:
    """The per-example outcome store (what makes runs resumable)."""
    return home() / "store"


def user_checkpoints() -> Path:
    """Where ``symbench train`` writes weights and cards by default."""
    return home() / "checkpoints"


def user_cache() -> Path:
    """Downloads and derived data symbench may delete and refetch: ``$SYMBENCH_CACHE``, else
    ``$SYMBENCH_HOME/cache`` (RobustBench weights, torchvision's CIFAR-10, generated corruptions)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else home() / "cache"


def user_train_state() -> Path:
    """Resumable training state, one folder per (model, recipe, data)."""
    return home() / "train_state"


def checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or None for an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "leaderboard" / "v1").is_dir() and (root / "models").is_dir():
        return root
    return None


def published_rows() -> Path:
    """The committed leaderboard rows (package data; read-only from a wheel)."""
    return package_file("symbench.leaderboard", "v1", "rows.jsonl")


def publish_target() -> Path:
    """The rows file a publish appends to: the checkout's ``leaderboard/v1/rows.jsonl``."""
    root = checkout_root()
    if root is None:
        raise ValueError("publishing appends to a source checkout's leaderboard/v1/rows.jsonl, and this symbench "
                         "is an installed package; clone the repository, or pass --board FILE")
    return root / "leaderboard" / "v1" / "rows.jsonl"


def default_data_dir() -> Path | None:
    """``$SYMBENCH_DATA``, else a ``shared/data`` beside the checkout (or beside the working directory)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    candidates = [Path.cwd().parent / "shared" / "data"]
    root = checkout_root()
    if root is not None:
        candidates.insert(0, root.parent / "shared" / "data")
    for c in candidates:
        if (c / "cifar10").is_dir():
            return c
    return None


def describe(path: Path) -> str:
    """A path as a user should read it: absolute, so it can be pasted from any directory; relative only for a
    file of the source checkout while working inside it (``leaderboard/v1/rows.jsonl``)."""
    p = Path(path).expanduser().resolve()
    root, cwd = checkout_root(), Path.cwd().resolve()
    if root is not None and p.is_relative_to(root.resolve()) and cwd.is_relative_to(root.resolve()):
        try:
            return str(p.relative_to(cwd))
        except ValueError:
            pass
    return str(p)
