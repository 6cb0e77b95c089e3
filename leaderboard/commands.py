"""CLI: ``symbench leaderboard build|validate|audit`` (symbench/cli.py adds ``add`` and ``refresh``).

Library modules are imported inside the commands: building the parser must not import torch.
"""
from __future__ import annotations

from pathlib import Path

from symbench.paths import home, package_file, publish_target, published_rows

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

    paths = args.paths or sorted(LEADERBOARD_DIR.glob("v*/rows.jsonl")) + [REFERENCE_PATH]
    bad = 0
    for p in paths:
        errors = validate_rows_file(p)
        if args.append_only:
            errors += check_append_only(p, args.base)
        bad += len(errors)
        print(f"{_rel(Path(p))}: {len(read_jsonl(p))} row(s), {'ok' if not errors else f'{len(errors)} problem(s)'}")
        for err in errors[:20]:
            print(f"  {err}")
    return 1 if bad else 0


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
    return lsub
