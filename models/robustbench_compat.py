"""Make ``import robustbench`` work with the AutoAttack that is actually installed.

robustbench 1.1.1 does ``from autoattack import AutoAttack`` and ``from autoattack.state import
EvaluationState`` at import time, but its AutoAttack dependency installs as the module
``pyautoattack`` (a faithful repackaging of fra31/auto-attack, see shared/STACK.md). Rather than
editing site-packages, we register ``pyautoattack`` and its submodules under the ``autoattack`` names
before robustbench is imported. Only the import needs this: ``robustbench.eval.benchmark`` stays
incompatible with pyautoattack's API, so symbench runs AutoAttack itself and uses robustbench only
for its model zoo and loader.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import warnings
from types import ModuleType

log = logging.getLogger(__name__)

# submodules of upstream ``autoattack`` that pyautoattack ships under the same names
_SUBMODULES = ("autoattack", "autopgd_base", "checks", "fab_base", "fab_projections", "fab_pt", "other_utils",
               "square", "state")


class RobustBenchUnavailable(ImportError):
    """robustbench (or the AutoAttack it needs) is not installed or does not import."""


def alias_autoattack() -> None:
    """Register ``pyautoattack`` as ``autoattack`` (and its submodules) unless a real one exists.

    Idempotent. An installed upstream ``autoattack`` package is left alone.
    """
    if "autoattack" in sys.modules:
        return
    if importlib.util.find_spec("autoattack") is not None:
        return  # the upstream package is installed; robustbench imports it as is
    try:
        pkg = importlib.import_module("pyautoattack")
    except ImportError as err:
        raise RobustBenchUnavailable("robustbench needs AutoAttack: neither `autoattack` nor `pyautoattack` "
                                     "is installed") from err
    sys.modules["autoattack"] = pkg
    for name in _SUBMODULES:
        try:
            sys.modules.setdefault(f"autoattack.{name}", importlib.import_module(f"pyautoattack.{name}"))
        except ImportError:  # e.g. a future pyautoattack drops a module robustbench does not use
            log.debug("pyautoattack.%s not importable; not aliased", name)
    log.debug("aliased pyautoattack %s as autoattack for robustbench", getattr(pkg, "__version__", "?"))


def import_robustbench() -> ModuleType:
    """Import and return the ``robustbench`` package, aliasing AutoAttack first.

    Raises:
        RobustBenchUnavailable: robustbench is not installed or fails to import.
    """
    if "robustbench" in sys.modules:
        return sys.modules["robustbench"]
    alias_autoattack()
    try:
        with warnings.catch_warnings(), _gdown_cache_in_user_dir():  # import-time noise: deprecation warnings
            warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
            warnings.filterwarnings("ignore", message=".*torch.jit.interface.*is deprecated.*")
            return importlib.import_module("robustbench")
    except ImportError as err:
        raise RobustBenchUnavailable(f"cannot import robustbench: {err} "
                                     "(pip install robustbench; see shared/STACK.md)") from err


@contextlib.contextmanager
def _gdown_cache_in_user_dir():
    """gdown (robustbench's downloader) makes ``~/.cache/gdown`` when imported; make it under symbench's cache.

    Only the import sees the other ``$HOME`` (gdown fixes its cache folder then); downloads later read
    the user's real home (a Hugging Face cache there stays usable).
    """
    if "gdown" in sys.modules:
        yield
        return
    from symbench.paths import user_cache

    old = os.environ.get("HOME")
    os.environ["HOME"] = str(user_cache() / "gdown_home")
    try:
        importlib.import_module("gdown")
    except ImportError:
        pass
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old
    yield
