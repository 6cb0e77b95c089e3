"""CLI: ``symbench leaderboard build|validate|audit`` (symbench/cli.py adds ``add`` and ``refresh``).

Library modules are imported inside the commands: building the parser must not import torch.
"""
from __future__ import annotations

from pathlib import Path

from symbench.paths import default_data_dir, home, package_file, publish_target, published_rows

CLAIMS_PATH = package_file("symbench.leaderboard", "seed_claims.json")


def _build_paths(args) -> tuple[Path, Path]:
    """(rows, out): the published rows into ``$SYMBENCH_HOME/leaderboard`` unless --publish (the checkout's v1/)."""
    if args.publish:
        board = publish_target()
        return Path(args.rows) if args.rows else board, Path(args.out) if args.out else board.parent
    return Path(args.rows) if args.rows else published_rows(), Path(args.out) if args.out else home() / "leaderboard"


def _cmd_build(args) -> int:
    from symbench.leaderboard.page import build
    from symbench.leaderboard.rows import _rel

    rows, out = _build_paths(args)
    res = build(rows, out, args.reference, args.claims, plots=not args.no_plots, screenshot=args.screenshot)
    print(f"wrote {_rel(res.readme)}, {_rel(res.html)}, {len(res.model_pages)} model page(s) in "
          f"{_rel(res.html.parent / 'models')}, {len(res.downloads)} download(s) in {_rel(res.html.parent / 'data')}"
          + (f", {len(res.plots)} plot(s) in {_rel(res.html.parent / 'plots')}" if res.plots else ", no plots")
          + "".join(f", {_rel(p)}" for p in res.screenshots))
    return 0


def _cmd_validate(args) -> int:
    from symbench.leaderboard.robustbench_ref import REFERENCE_PATH
    from symbench.leaderboard.rows import LEADERBOARD_DIR, _rel, check_append_only, read_jsonl, validate_rows_file

    from symbench.leaderboard import outcomes

    paths = args.paths or sorted(LEADERBOARD_DIR.glob("v*/rows.jsonl")) + [REFERENCE_PATH]
    bad = 0
    for p in paths:
        errors = validate_rows_file(p)
        if args.append_only:
            errors += check_append_only(p, args.base)
            errors += check_append_only(outcomes.beside(p), args.base) if outcomes.beside(p).is_file() else []
        pending = 0
        if Path(p).resolve() != Path(REFERENCE_PATH).resolve():  # RobustBench's reported numbers have no outcomes
            out_errors, pending = outcomes.validate(p)
            errors += out_errors
        bad += len(errors)
        waiting = f", {pending} from before outcomes were published (listed in {outcomes.PENDING_FILE})" if pending else ""
        print(f"{_rel(Path(p))}: {len(read_jsonl(p))} row(s){waiting}, "
              f"{'ok' if not errors else f'{len(errors)} problem(s)'}")
        for err in errors[:20]:
            print(f"  {err}")
        if Path(p).resolve() != Path(REFERENCE_PATH).resolve():
            _unescalated_lines(read_jsonl(p))
    return 1 if bad else 0


def _unescalated_lines(rows: list[dict]) -> None:
    """Issue 26's debt, said where maintainers look: shown rows a hidden- or noisy-gradient check flagged that carry
    no escalated number (rows published before escalation landed; new ones are refused by ``publish_rows``)."""
    from symbench.bench.checks.escalate import escalate_command
    from symbench.leaderboard.board_common import pick_rows
    from symbench.leaderboard.publish import unescalated

    todo = unescalated(pick_rows(rows)[0])
    if todo:
        commands = dict.fromkeys(escalate_command(r) for r in todo)  # one command per run, in board order
        print(f"  {len(todo)} shown row(s) flagged for hidden or noisy gradients carry no escalated number yet; "
              f"these {len(commands)} command(s) escalate them (each escalated row supersedes its row):")
        for c in list(commands)[:20]:
            print(f"    {c}")


def _threads(args) -> None:
    """``--threads`` of a command that recomputes (default: ``OMP_NUM_THREADS``, else the cores it may use)."""
    from symbench.bench.run.fastpath import use_threads

    use_threads(args.threads)


THREADS_HELP = "CPU threads (default: $OMP_NUM_THREADS, else the cores this process may use)"


def _cmd_outcomes(args) -> int:
    """Publish the outcomes of already-published rows from a store (recomputing their runs with --recompute)."""
    from symbench.leaderboard.backfill import backfill

    _threads(args)
    rows = Path(args.rows) if args.rows else publish_target()
    report = backfill(rows, store=args.store, model=args.model, suite=args.suite, recompute=args.recompute,
                      data_dir=args.data_dir or default_data_dir(), dry_run=args.dry_run, jobs=args.jobs,
                      progress=not args.no_progress)
    for line in report.lines:
        print(line)
    print(report.summary())
    return 0


def _cmd_verify(args) -> int:
    from symbench.bench.run.records import read_rows
    from symbench.leaderboard.outcomes import beside, load_index
    from symbench.leaderboard.verify import DEFAULT_SAMPLE, select_rows, verify_row

    _threads(args)
    rows_path = Path(args.rows) if args.rows else published_rows()
    index = load_index(Path(args.outcomes) if args.outcomes else beside(rows_path))
    chosen = select_rows(read_rows(rows_path), model=args.model, suite=args.suite)
    if not chosen:
        raise ValueError(f"no published attack rows in {rows_path} match --model {args.model!r} --suite {args.suite!r}")
    failed = 0
    for row in chosen:
        outcome = index.get(row)
        if outcome is None:
            print(f"skip  {row['model']} {row['suite']} {row['threat']} eps {row.get('eps_display')}: no published "
                  f"outcomes in {index.path}")
            continue
        check = verify_row(row, outcome, sample=args.sample or DEFAULT_SAMPLE, seed=args.seed,
                           checkpoint=args.checkpoint, data_dir=args.data_dir or default_data_dir(),
                           device=args.device or "cpu", tolerance=args.tolerance)
        print(check.line(), flush=True)
        failed += not check.ok
    print(f"{len(chosen) - failed} of {len(chosen)} row(s) verified" + (f", {failed} FAILED" if failed else ""))
    return 1 if failed else 0


def _cmd_audit(args) -> int:
    import json

    from symbench.leaderboard.audit import audit, summary
    from symbench.leaderboard.rows import read_jsonl

    entries = audit(read_jsonl(Path(args.rows) if args.rows else published_rows()))
    shown = [e for e in entries if args.all or e["status"] in ("unaudited", "failed")]
    if args.format == "json":
        print(json.dumps(shown, indent=1))
    else:
        for e in shown:
            print(f"{e['status']:13s} {e['model']:32s} {e['suite']:12s} {e['threat']:5s} {e['eps']:>7} n={e['n']:<5d} "
                  f"{100 * e['robust_acc']:5.1f}%  {e['detail']}")
        print(summary(entries))
    return 1 if any(e["status"] == "unaudited" for e in entries) else 0


def add_leaderboard_commands(sub):
    """Register ``symbench leaderboard build|validate``; returns the ``leaderboard`` subparsers for more."""
    p = sub.add_parser("leaderboard", help="build the leaderboard pages from rows, or validate rows")
    lsub = p.add_subparsers(dest="leaderboard_cmd", required=True)
    s = lsub.add_parser("build", help="render leaderboard/v1/README.md, index.html and plots/ from rows.jsonl")
    s.add_argument("--rows", help="rows file (default: the published leaderboard/v1/rows.jsonl)")
    s.add_argument("--out", help="output directory (default: $SYMBENCH_HOME/leaderboard; with --publish the "
                                 "checkout's leaderboard/v1)")
    s.add_argument("--publish", action="store_true", help="rebuild the checkout's published pages in leaderboard/v1")
    s.add_argument("--reference", help="RobustBench reported rows (default leaderboard/robustbench_reference.jsonl)")
    s.add_argument("--claims", default=str(CLAIMS_PATH), help="seed paper claims (default leaderboard/seed_claims.json)")
    s.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    s.add_argument("--screenshot", action="store_true",
                   help="also write full-page screenshot.png (1400 px) and screenshot-390.png (390 px), headless Chromium")
    s.set_defaults(func=_cmd_build)
    s = lsub.add_parser("validate", help="validate rows files against leaderboard/schema.json")
    s.add_argument("paths", nargs="*", help="rows files (default: leaderboard/v*/rows.jsonl and the reference table)")
    s.add_argument("--append-only", action="store_true", help="also check the files only grew since --base")
    s.add_argument("--base", default="HEAD", help="git revision for --append-only (default HEAD)")
    s.set_defaults(func=_cmd_validate)
    s = lsub.add_parser("audit", help="list trusted rows that could sit >2 points above APGD-CE + APGD-T (exit 1 "
                                      "while any is unaudited)")
    s.add_argument("--rows", help="rows file (default: the published leaderboard/v1/rows.jsonl)")
    s.add_argument("--all", action="store_true", help="list every trusted attack row, not only the unaudited ones")
    s.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    s.set_defaults(func=_cmd_audit)
    s = lsub.add_parser("verify", help="recompute a seeded sample of published rows' examples and compare them with "
                                       "the published per-example outcomes (exit 1 on a mismatch)")
    s.add_argument("--model", help="model name or shell pattern (default: every model)")
    s.add_argument("--suite", help="suite name or pattern (default: every attack suite)")
    s.add_argument("--rows", help="rows file, e.g. a submission's (default: the published rows); its outcomes.jsonl "
                                  "is read from the same folder")
    s.add_argument("--outcomes", help="outcomes file (default: outcomes.jsonl beside the rows)")
    s.add_argument("--checkpoint", help="the submitted .safetensors (default: the registered model's shipped weights)")
    s.add_argument("--sample", type=int, help="examples per row (default 16: about a CPU minute for a standard row)")
    s.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    s.add_argument("--tolerance", type=float, help="share of sampled examples allowed to differ (default: 0 for a "
                                                   "deterministic model, 0.25 for a randomized one)")
    s.add_argument("--data-dir", help="CIFAR-10 directory (default: $SYMBENCH_DATA, then shared/data)")
    s.add_argument("--device", help="cpu or cuda (default cpu)")
    s.add_argument("--threads", type=int, help=THREADS_HELP)
    s.set_defaults(func=_cmd_verify)
    s = lsub.add_parser("outcomes", help="maintainers: publish the per-example outcomes of rows already on the board "
                                         "from a store (--recompute: rerun their runs first)")
    s.add_argument("--rows", help="published rows file (default: the checkout's leaderboard/v1/rows.jsonl)")
    s.add_argument("--store", help="store to read (default: $SYMBENCH_HOME/store)")
    s.add_argument("--model", help="model name or shell pattern")
    s.add_argument("--suite", help="suite name or pattern")
    s.add_argument("--recompute", action="store_true", help="rerun (resumably, into --store) every run whose outcomes "
                                                            "are missing and whose store key this code reproduces")
    s.add_argument("--jobs", help="I/K: take every K-th run from the I-th (split the work over K processes; on one "
                                  "machine give each --threads)")
    s.add_argument("--threads", type=int, help=THREADS_HELP)
    s.add_argument("--data-dir", help="CIFAR-10 directory (default: $SYMBENCH_DATA, then shared/data)")
    s.add_argument("--dry-run", action="store_true", help="say what would be published or recomputed, change nothing")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_outcomes)
    return lsub
