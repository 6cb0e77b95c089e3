"""Boards, one per question a reader brings: each a ranked table with one row per model.

Every board is computed from rows only. Which row stands for a model: among its rows of the
board's threat and eps, the strongest suite it has (``standard`` before ``adaptive`` before
``quick``), and within a suite the row with the largest n (``pick_rows``: a smaller-n rerun never
replaces a larger-n row). Ranks are bands: a model's best rank is one plus the number of models
whose 95% Wilson interval lies entirely above its own, its worst rank the number of models not
entirely below it; models whose intervals overlap therefore share part of a band (statistically
tied) instead of being ordered by noise.

Each board lives in its own module (``board_threat``, ``board_eps``, ``board_symmetry``, ``board_corruptions``,
``board_clever``, ``board_defenses``) over ``board_common``; this module gathers them, so
``symbench.leaderboard.boards`` stays the one place to import a board from.
"""
from __future__ import annotations

from symbench.leaderboard.board_common import (EPS_TOL, LINF_EPS, L2_EPS, SUITE_STRENGTH, Board, pick_rows, interval,
                                               rank_bands, diff_interval, suite_n, n_cell, acc_cell, headline_acc,
                                               robust_cell, escalation_effects, verdict_cell, rank_cell, model_file,
                                               model_cell, ranking_n, split_protocol, apart_reason, paper_cell,
                                               architecture, extra_data_cell, params_cell, reported_params,
                                               reported_params_of, apart_table)
from symbench.leaderboard.board_threat import REPORTED_FEW, reported_shown, reported_table, strongest_rows, threat_board
from symbench.leaderboard.board_eps import eps_board
from symbench.leaderboard.board_symmetry import symmetry_board
from symbench.leaderboard.board_corruptions import corrupted_adv_table, corruption_boards
from symbench.leaderboard.board_clever import clever_board
from symbench.leaderboard.board_defenses import defense_board, defense_gain

__all__ = ["Board", "EPS_TOL", "L2_EPS", "LINF_EPS", "REPORTED_FEW", "SUITE_STRENGTH", "acc_cell", "apart_reason",
           "apart_table", "architecture", "clever_board", "corrupted_adv_table", "corruption_boards",
           "defense_board", "defense_gain", "diff_interval", "eps_board", "escalation_effects", "extra_data_cell",
           "headline_acc", "interval", "model_cell", "model_file", "n_cell", "paper_cell", "params_cell",
           "pick_rows", "rank_bands", "rank_cell", "ranking_n", "reported_params", "reported_params_of",
           "reported_shown", "reported_table", "robust_cell", "split_protocol", "strongest_rows", "suite_n",
           "symmetry_board", "threat_board", "verdict_cell"]
