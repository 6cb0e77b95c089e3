"""``symbench.leaderboard``: pages generated from rows, never typed by hand.

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
(matplotlib PNGs), ``boards`` (one ranked board per question), ``page`` (collect, render, build from ``templates/``), ``browser`` (headless Chromium); ``submit``, ``refresh`` and ``robustbench_ref`` sit on top.
Nothing is imported here, so reading the package data (schema, reference rows, claims) stays cheap.
"""
