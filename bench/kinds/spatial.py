"""Suite kinds ``spatial``, ``rotation_curve`` and ``spatial_linf``: worst-case rotations and translations.

- ``spatial``: Engstrom et al. 2019's exhaustive grid (±30° in 31 rotations × ±3 px in 5 × 5
  translations = 775 transforms, bilinear, zero padding; see ``bench/attacks/spatial.py``) plus their
  worst-of-10 random tries. One row, threat ``spatial``, ``eps`` = the rotation budget in degrees.
  An example counts robust only if it is correct on the clean image, on every grid point and on
  every random try (robust accuracy is the per-example worst case over every attack run, as everywhere
  in symbench); the grid alone (``spatial.grid_acc``, exact over the grid) and the random tries alone
  (``spatial.random_acc``, the paper's second number) are in the row beside it.
- ``rotation_curve``: rotations only, every whole degree in [-180, 180] computed once per example;
  one row per θ (threat ``rotation``, ``eps`` = θ in degrees) with the worst case over |angle| <= θ,
  and the accuracy at exactly ±θ (``rotation.acc_at``), where a P4-invariant model shows its 90°.
- ``spatial_linf``: the grid, then APGD-CE at Linf eps on each example's k highest-loss grid
  transforms (the Linf perturbation is added to the transformed image); an example survives only if
  the grid and all k attacks leave it correct. Only k of the 775 transforms are attacked, so the row
  is an upper bound on the combined worst case (``spatial_linf.bound``).

Per-example outcomes go to the run's store per batch (``clean`` and ``<threat>_<eps>`` groups in the
runner's layout, so paired comparisons read them like any row's), so a killed run resumes.

Validity (each row's ``checks`` and verdict): ``identity_is_clean`` (the identity transform,
through the same transform code, gives the clean predictions on every example) and, for the grids,
``finer_grid``: a seeded subset of the examples a row counts robust is searched again at twice the
rotation resolution (the rotations between grid points, same translations); the share it breaks,
scaled to the row (``broken / subset × robust_acc``, as the attack suites' spot check), fails the row
above 2 points and warns above 1.

Where each part lives (issue 25: no module over 400 lines): ``spatial_setup`` (options, refusals, batches),
``spatial_checks`` (the checks), ``spatial_grid`` (kind ``spatial`` and the per-batch grid record),
``spatial_rotation`` (kind ``rotation_curve``), ``spatial_linf`` (kind ``spatial_linf``). This module
imports them in that order, so the kinds register as before, and re-exports their public names.
"""
from __future__ import annotations

from symbench.bench.kinds.spatial_setup import GRID_EXACT, OPTIONS, ORDER, grid_of
from symbench.bench.kinds.spatial_checks import CHECK_VERSIONS, FAIL_POINTS, WARN_POINTS, finer_status, identity_check
from symbench.bench.kinds.spatial_grid import run_spatial
from symbench.bench.kinds.spatial_rotation import min_broken_angle, run_rotation_curve
from symbench.bench.kinds.spatial_linf import run_spatial_linf

__all__ = ["CHECK_VERSIONS", "FAIL_POINTS", "GRID_EXACT", "OPTIONS", "ORDER", "WARN_POINTS", "finer_status", "grid_of",
           "identity_check", "min_broken_angle", "run_rotation_curve", "run_spatial", "run_spatial_linf"]
