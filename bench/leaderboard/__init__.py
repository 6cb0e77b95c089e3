"""``symbench leaderboard``: pages generated from rows, never typed by hand.

``build`` renders ``leaderboard/v1/README.md`` (markdown tables), ``leaderboard/v1/index.html`` (one
self-contained page: sortable tables, every row's validity verdict, model cards, plots inlined) and
the PNG plots in ``leaderboard/v1/plots/``. Every number on those pages comes from a row of
``rows.jsonl``, from ``robustbench_reference.jsonl`` (reported baselines) or from ``seed_claims.json``
(the seed paper's printed numbers, labelled as claims). The output is a pure function of those files
and the model cards, so rebuilding without new rows changes nothing.

``validate`` checks every row against ``schema.json``; ``check-append-only`` checks that a rows file
only grew since a git revision (rows are appended by tools, never edited).

Modules, in the order the data flows: ``rows`` (read, validate, pick the rows each section takes),
``tables`` (Cell/Col/Table and their markdown/HTML renderings), ``cards`` (model-card facts),
``sections`` (the tables built from rows), ``claims`` (seed claims beside measured rows), ``plots``
(matplotlib PNGs), ``page`` (collect, render, build), ``browser`` (headless Chromium), ``commands`` (CLI).
"""
from __future__ import annotations

from .browser import CHROMIUM_FLAGS, dump_dom, find_chromium, run_chromium, take_screenshot
from .cards import cards_table, model_cards
from .claims import CLAIMS_PATH, EPS_TOL, ClaimMatch, claims_sentence, claims_table, load_claims, match_claims
from .commands import add_leaderboard_commands
from .page import CSS, HEADER_NOTE, JS, BuildResult, Page, build, collect, render_html, render_markdown
from .plots import PLOT_PREFIXES, plot_clever, plot_corruptions, plot_robust_vs_eps
from .rows import (DEFAULT_ROWS, LEADERBOARD_DIR, ROOT, _is_attack, check_append_only, failing_checks, fgsm_alone,
                   latest_rows, read_jsonl, validate_rows_file)
from .sections import (clever_table, corrupted_adv_table, corruption_summary, corruption_table, paper_pivot_table,
                       protocol, reference_picks, reference_table, results_table, seed_corrupted_means)
from .tables import Cell, Col, Table, num, pct, table_html, table_markdown

__all__ = [
    "CHROMIUM_FLAGS", "CLAIMS_PATH", "CSS", "DEFAULT_ROWS", "EPS_TOL", "HEADER_NOTE", "JS",
    "LEADERBOARD_DIR", "PLOT_PREFIXES", "ROOT",
    "BuildResult", "Cell", "ClaimMatch", "Col", "Page", "Table",
    "add_leaderboard_commands", "build", "cards_table", "check_append_only", "claims_sentence", "claims_table",
    "clever_table", "collect", "corrupted_adv_table", "corruption_summary", "corruption_table", "dump_dom",
    "failing_checks", "fgsm_alone", "find_chromium", "latest_rows", "load_claims", "match_claims", "model_cards",
    "num", "paper_pivot_table", "pct", "plot_clever", "plot_corruptions", "plot_robust_vs_eps", "protocol",
    "read_jsonl", "reference_picks", "reference_table", "render_html", "render_markdown", "results_table",
    "run_chromium", "seed_corrupted_means", "table_html", "table_markdown", "take_screenshot", "validate_rows_file",
    "_is_attack",  # private, but tests/test_leaderboard.py uses it as lb._is_attack
]
