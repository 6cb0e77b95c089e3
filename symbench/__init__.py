"""symbench: adversarial-robustness benchmark harness for symmetry-aware image classifiers.

The API is imported lazily (``symbench.benchmark`` pulls in torch and the toolkits on first use), so
``import symbench`` and ``symbench --help`` stay fast.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {"benchmark", "load_model", "create_model", "list_models", "list_suites", "results", "compare", "rows_frame"}
__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:  # PEP 562: the API on first touch
    if name in _API:
        return getattr(import_module("symbench.api"), name)
    raise AttributeError(f"module 'symbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
