"""``import symbench.compat`` makes ``import robustbench`` work in symbench's environment.

robustbench 1.1.1 imports ``autoattack``, but the AutoAttack it depends on installs as ``pyautoattack``
(the same code, repackaged), so a bare ``import robustbench`` fails with ``No module named
'autoattack'``. Importing this module first registers ``pyautoattack`` (and its submodules) under the
``autoattack`` names; an installed upstream ``autoattack`` is left alone. Nothing in site-packages is
changed.

>>> import symbench.compat  # noqa: F401  (one line, before robustbench)
>>> import robustbench
>>> from robustbench.utils import load_model

RobustBench's model zoo and loaders then work as documented. ``robustbench.eval.benchmark`` does
not (it calls AutoAttack's upstream API); ``symbench.benchmark(model, n_examples=..., dataset="cifar10",
threat_model="Linf", eps=8/255)`` takes the same arguments and runs AutoAttack itself.
"""
from __future__ import annotations

from symbench.models.robustbench_compat import RobustBenchUnavailable, alias_autoattack, import_robustbench

alias_autoattack()

__all__ = ["RobustBenchUnavailable", "alias_autoattack", "import_robustbench"]
