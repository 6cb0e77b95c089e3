"""symbench: adversarial-robustness benchmark for symmetry-aware classifiers.

The command line is a thin layer over the library: it parses, calls one function, prints. Library
modules are imported inside each command, so ``symbench --help`` never pays for torch. Results are
printed to stdout (``--format table|json|csv``); where they were written goes to stderr, so output
pipes and parses.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from fractions import Fraction

log = logging.getLogger("symbench")

FORMATS = ("table", "json", "csv")


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to a flag's help when it has a real default (not None/False)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" not in text and action.default not in (None, False, argparse.SUPPRESS) \
                and action.option_strings:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """Every (sub)command shows each flag's default in --help (subparsers inherit the class)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)


# ------------------------------------------------------------------------------------------------
# argument types: wrong input fails here, before anything is computed
# ------------------------------------------------------------------------------------------------

def eps_value(text: str) -> float:
    """'8/255' or '0.0314' → float on the [0,1] pixel scale; refuses the 0-255 scale and negatives."""
    try:
        v = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"eps {text!r} is not a number or fraction (e.g. 8/255 or 0.03)") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"eps {text} is negative; eps must be >= 0")
    if v > 1:
        raise argparse.ArgumentTypeError(f"eps {text} > 1 looks like the 0-255 scale; eps is on the [0,1] pixel "
                                         f"scale, e.g. 8/255")
    return v


def eps_spec(text: str) -> str:
    """One ``--eps`` item: ``8/255`` or ``linf=1/255,2/255`` (an eps list for one threat), checked now."""
    norm, eq, rest = text.partition("=")
    if eq:
        if norm.strip().lower() not in ("linf", "l2"):
            raise argparse.ArgumentTypeError(f"--eps {text!r}: unknown threat {norm!r}; use linf=... or l2=...")
        values = [v for v in rest.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"--eps {text!r} lists no eps")
    else:
        values = [v for v in text.split(",") if v.strip()]
    for v in values:
        eps_value(v)
    return text


def _eps_arg(args):
    """``--eps`` items → what the evaluation takes: a list (one-threat suite) or {threat: [eps]}."""
    if not args.eps:
        return None
    from symbench.bench.suites import parse_eps_overrides

    return parse_eps_overrides(args.eps)


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def shard_value(text: str) -> tuple[int, int]:
    from symbench.bench.run.evaluate import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# ------------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------------

def emit(records: list[dict], fmt: str, table: str) -> None:
    """Print ``records`` as JSON (a list), CSV (pandas, flat columns) or the human ``table`` text."""
    if fmt == "json":
        json.dump(records, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    elif fmt == "csv":
        import pandas as pd

        pd.json_normalize(records).convert_dtypes().to_csv(sys.stdout, index=False)
    else:
        print(table)


def _where(kind: str, path) -> None:
    from symbench.paths import describe

    print(f"symbench: {kind}: {describe(path)}", file=sys.stderr)


def _data_dir(args):
    from symbench.paths import default_data_dir

    return args.data_dir or default_data_dir()


def _threads(args) -> None:
    import torch

    from symbench.bench.run.fastpath import default_threads, set_fast

    torch.set_num_threads(args.threads or default_threads())  # the row's device field records it
    if getattr(args, "fast", False):
        set_fast(True)


def _no_match(what: str, pattern: str, known: list[str]) -> int:
    import difflib

    close = difflib.get_close_matches(pattern.strip("*"), known, n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    print(f"symbench: no {what} matches {pattern!r}.{hint} Patterns are shell-style (e.g. 'cascaded*'); "
          f"there are {len(known)} in all.", file=sys.stderr)
    return 1


# ------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------

def _cmd_list(args) -> int:
    from symbench.models import get_card, list_models

    names = list_models(args.pattern)
    if not names:
        return _no_match("model", args.pattern, list_models())
    cards = [get_card(n) for n in names]
    recs = [{"model": c.name, "family": c.family, "group": c.group, "depth": c.depth, "params": c.params,
             "clean_acc": c.clean_acc, "sha256": c.sha256, "source": c.source} for c in cards]
    lines = [f"{'model':28s} {'family':18s} {'group':10s} {'depth':>5s} {'clean_acc':>9s}  checkpoint"]
    for c in cards:
        acc = f"{c.clean_acc:.4f}" if c.clean_acc is not None else "-"
        lines.append(f"{c.name:28s} {c.family:18s} {c.group:10s} {c.depth:5d} {acc:>9s}  "
                     f"{c.sha256[:12] if c.sha256 else 'untrained'}")
    emit(recs, args.format, "\n".join(lines))
    return 0


def _cmd_models_table(args) -> int:
    from symbench.models.table import models_table, update_readme

    if args.write:
        print("README.md updated" if update_readme(args.write) else "README.md already current")
    else:
        print(models_table())
    return 0


def _cmd_suites(args) -> int:
    from symbench.bench.suites import list_suites, load_suite

    suites = [load_suite(n) for n in list_suites()]
    recs = [{"suite": s.id, "name": s.name, "kind": s.kind, "n": s.n, "seed": s.seed,
             "threats": [[t.norm, list(t.eps)] for t in s.threats], "attacks": [a.label for a in s.attacks],
             "description": s.description} for s in suites]
    table = "\n".join(f"{s.id:24s} n={s.n:<5d} {', '.join(a.label for a in s.attacks)}\n    {s.description}"
                      for s in suites)
    emit(recs, args.format, table)
    return 0


def _cmd_attacks(args) -> int:
    from symbench.bench.attacks import attack_class, list_attacks

    recs = []
    for name in list_attacks():
        cls = attack_class(name)
        recs.append({"attack": name, "toolkit": cls.toolkit, "norms": list(cls.norms),
                     "description": (cls.__doc__ or "").strip().splitlines()[0]})
    table = "\n".join(f"{r['attack']:18s} {r['toolkit']:13s} {'/'.join(r['norms']):8s} {r['description']}" for r in recs)
    emit(recs, args.format, table)
    return 0


def _bench_kwargs(args) -> dict:
    return dict(data_dir=_data_dir(args), n=args.n, eps=_eps_arg(args), batch_size=args.batch_size, seed=args.seed,
                store=args.store, device=args.device, progress=not args.no_progress, untrained=args.untrained,
                checks=not args.skip_checks, model_dir=args.model_dir, checkpoint=args.checkpoint,
                sha256=args.sha256, download=args.download, strict=args.strict, **_escalation_kwargs(args))


def _escalation_kwargs(args) -> dict:
    """``--escalate`` opts in; ``--publish`` escalates flagged rows unless ``--no-escalate`` (said in the rows)."""
    if getattr(args, "escalate", False) or (getattr(args, "publish", False) and not getattr(args, "no_escalate", False)):
        return {"escalate": True, "surrogate": args.surrogate}
    return {"escalate_skipped": "--no-escalate"} if getattr(args, "no_escalate", False) else {}


def _escalation_hints(rows: list[dict]) -> None:
    """For each flagged row left unescalated, the one command that escalates it (on stderr)."""
    from symbench.bench.checks.escalate import escalate_command, flagged

    for r in rows:
        if r.get("escalated_robust_acc") is None and not r.get("escalation_skipped") and flagged(r):
            print(f"symbench: {r['suite']} {r['threat']} eps={r['eps_display']} is flagged ({', '.join(flagged(r))}): "
                  f"its robust accuracy may be inflated; escalate it with: {escalate_command(r)}", file=sys.stderr)


def _rows_out(args):
    from pathlib import Path

    from symbench.paths import user_rows

    if args.out is None:
        return user_rows()
    return Path(args.out) if args.out else None


def _cmd_bench(args) -> int:
    from symbench.bench.run.evaluate import bench
    from symbench.bench.run.records import format_rows
    from symbench.paths import user_store

    if args.publish:
        from symbench.leaderboard.publish import check_publishable
        from symbench.paths import publish_target

        check_publishable(args.suite, args.n, args.force)
        board = args.board or publish_target()  # a wheel without --board fails here, before any compute
    _threads(args)
    out = _rows_out(args)
    _where("store", args.store or user_store())
    kw = _bench_kwargs(args)
    if args.shard is not None and args.defense_eps_v:
        raise ValueError("--shard and --defense-eps-v do not combine: shard one <model>+<defense> name at a time")
    if args.defense_eps_v:  # seed 2 Table 6: the same suite over a grid of purification budgets
        from symbench.models.defenses import with_params

        table = []
        for e in args.defense_eps_v:
            rows = bench(with_params(args.model, eps_v=e), args.suite, out=out, **kw)
            table += [(e, r) for r in rows]
        lines = [f"{'eps_v':>8s} {'eps':>8s} {'clean':>6s} {'robust':>6s}  verdict"]
        lines += [f"{e:8.4f} {r['eps_display']:>8s} {r['clean_acc']:6.3f} {r['robust_acc']:6.3f}  {r['verdict']}"
                  for e, r in table]
        emit([dict(r, defense_eps_v=e) for e, r in table], args.format, "\n".join(lines))
        rows = [r for _, r in table]
    elif args.shard is not None:
        if args.executor != "local":
            raise ValueError("--shard runs one shard in this process; it does not combine with --executor ray")
        bench(args.model, args.suite, shard=args.shard, **kw)
        print(f"shard {args.shard[0]}/{args.shard[1]} stored; no rows written. When every shard is done, the same "
              f"command without --shard merges them (and computes anything missing).", file=sys.stderr)
        return 0
    else:
        from symbench.bench.run.executors import make_executor

        run = make_executor(args.executor, address=args.address, shards=args.shards,
                            shared_store=args.shared_store).bench
        rows = run(args.model, args.suite, out=out, **kw)
        emit(rows, args.format, format_rows(rows) + _details(rows))
        _escalation_hints(rows)
    if out is not None:
        _where(f"{len(rows)} row(s) in", out)
    if args.publish:
        from symbench.leaderboard.publish import publish_rows

        target, added = publish_rows(rows, board, force=args.force, store=args.store)
        _where(f"published {added} new row(s) and their outcomes to", target)
    return 0


def _details(rows: list[dict]) -> str:
    """The check table, defense gain, orbit column and equivariance errors under the rows table."""
    lines = []
    for name, c in (rows[0].get("checks") or {}).items() if rows else []:
        lines.append(f"  check {name:28s} {c['status']:5s} {c['detail']}")
    for r in rows:
        if r.get("base_robust_acc") is not None:
            lines.append(f"  undefended {r['base_model']}: clean {r['base_clean_acc']:.3f} robust "
                         f"{r['base_robust_acc']:.3f} (defense gain {_gain(r)})")
        if r.get("escalated_robust_acc") is not None:
            esc = r["escalation"]
            lines.append(f"  escalated eps={r['eps_display']}: {r['escalated_robust_acc']:.3f} (the suite's "
                         f"{r['robust_acc']:.3f}; surrogate {esc.get('surrogate') or 'none'}): " + "; ".join(
                             f"{e['remedy']} broke {e['broke']} of {e['attacked']}" for e in esc.get("effects", [])))
        if r.get("orbit"):
            o = r["orbit"]
            lines.append(f"  orbit eps={r['eps_display']}: orbit alone {o['clean_acc']:.3f}, orbit+{o['attack']} "
                         f"{o['robust_acc']:.3f} (suite's robust acc on the same {o['n']}: {o['robust_acc_no_orbit']:.3f})")
    if rows and rows[0].get("equivariance"):
        for kind, errs in rows[0]["equivariance"].items():
            lines.append(f"  equivariance error ({kind}): " + ", ".join(f"{k} {v:.3g}" for k, v in errs.items()))
    return ("\n" + "\n".join(lines)) if lines else ""


def _gain(r: dict) -> str:
    """The defense's gain over its base as the Defenses board reads it (``boards.defense_gain``): difference,
    95% interval, McNemar p when paired, and "no significant gain" when the interval contains 0."""
    from symbench.leaderboard.boards import defense_gain

    gain, lo, hi, p, paired = defense_gain(r)
    test = f"McNemar p={p:.2g}" if paired else "unpaired, Newcombe"
    verdict = "no significant gain" if lo <= 0 <= hi else "significant"
    return f"{gain:+.3f} [{lo:+.3f}, {hi:+.3f}], {test}: {verdict}"


def _cmd_train(args) -> int:
    from symbench.bench.train import train

    card = train(args.model, data_dir=_data_dir(args), out_dir=args.out, resume=not args.no_resume,
                 epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                 adv=args.adv, adv_eps=args.adv_eps, threads=args.threads, device=args.device)
    from pathlib import Path

    from symbench.paths import user_checkpoints

    path = (Path(args.out) if args.out else user_checkpoints()) / card["checkpoint"]
    print(f"{card['name']}: clean accuracy {card['clean_acc']:.4f} on {card['n_test']} test images; "
          f"sha256 {card['sha256']}")
    _where("checkpoint", path)
    print(f"evaluate it with: symbench bench --model {card['name']} --checkpoint {path}", file=sys.stderr)
    return 0


def _cmd_compare(args) -> int:
    from symbench.api import compare

    df = compare(args.model_a, args.model_b, suite=args.suite, rows=args.rows, store=args.store,
                 metric=args.metric)
    recs = df.to_dict(orient="records")
    lines = [f"{'threat':6s} {'eps':>8s} {'n':>5s} {args.model_a[:14]:>14s} {args.model_b[:14]:>14s} "
             f"{'diff':>7s} {'95% interval':>17s} {'McNemar p':>9s}"]
    for r in recs:
        lines.append(f"{r['threat']:6s} {r['eps_display']:>8s} {r['n']:5d} {r['acc_a']:14.3f} {r['acc_b']:14.3f} "
                     f"{r['diff']:+7.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}] {r['p_value']:9.3g}")
    lines += [f"  {s}" for s in df.attrs.get("sentences", [])]
    lines += [f"  outcomes: {r['threat']} {r['eps_display']}: {args.model_a} from {r['source_a']}, {args.model_b} from "
              f"{r['source_b']}" for r in recs]
    for why in df.attrs.get("refused", []):
        print(f"symbench: not paired: {why}", file=sys.stderr)
    emit(recs, args.format, "\n".join(lines))
    return 0


def _cmd_submit(args) -> int:
    from symbench.bench.run.records import format_rows
    from symbench.leaderboard.submit import submit

    if args.publish:
        from symbench.leaderboard.publish import check_publishable

        for s in args.suites:
            check_publishable(s, args.n, args.force)
    _threads(args)
    out = _rows_out(args)
    rows, message = submit(args.model, file=args.file, checkpoint=args.checkpoint, sha256=args.sha256,
                           suites=args.suites, n=args.n, eps=_eps_arg(args), data_dir=_data_dir(args), out=out,
                           store=args.store, escalate=not args.no_escalate, surrogate=args.surrogate,
                           device=args.device, progress=not args.no_progress)
    emit(rows, args.format, format_rows(rows))  # the message below carries every row's checks
    print(message, file=sys.stderr)
    if args.publish:
        from symbench.leaderboard.publish import publish_rows

        target, added = publish_rows(rows, args.board, force=args.force, store=args.store)
        _where(f"published {added} new row(s) and their outcomes to", target)
    return 0


def _cmd_refresh(args) -> int:
    from symbench.leaderboard.refresh import refresh
    from symbench.paths import publish_target, user_rows

    _threads(args)
    suites = [s for s in args.suites.split(",") if s]
    rows = args.rows or (publish_target() if args.publish else user_rows())
    plan = refresh(executor=args.executor, address=args.address, shards=args.shards, models=args.models,
                   suites=suites, rows=rows, data_dir=_data_dir(args), store=args.store, device=args.device,
                   progress=not args.no_progress, dry_run=args.dry_run or args.plain, n=args.n)
    if args.plain:  # for scripts (examples/slurm/submit_all.sh): one "model suite" per line, nothing else
        print("\n".join(f"{model} {suite}" for model, suite, _ in plan))
        return 0
    if not plan:
        print(f"{rows}: every trained model × {','.join(suites)} is current")
        return 0
    print(("would run" if args.dry_run else "ran") + f" {len(plan)} model × suite pair(s):")
    for model, suite, why in plan:
        print(f"  {model:24s} {suite:10s} {why}")
    return 0


def _cmd_add(args) -> int:
    from symbench.bench.run.records import read_rows
    from symbench.leaderboard.publish import publish_rows
    from symbench.paths import user_rows

    src = args.rows or user_rows()
    rows = [r for r in read_rows(src) if not args.model or r["model"] == args.model]
    if not rows:
        raise ValueError(f"no rows to publish in {src}" + (f" for model {args.model!r}" if args.model else ""))
    target, added = publish_rows(rows, args.board, force=args.force, store=args.store)
    print(f"published {added} new row(s) of {len(rows)} (with their per-example outcomes) to {target}; rebuild the pages with "
          f"`symbench leaderboard build --publish`")
    return 0


def _cmd_findings(args) -> int:
    from pathlib import Path

    from symbench.bench.run.records import read_rows
    from symbench.leaderboard import findings
    from symbench.paths import published_rows, user_rows

    sources = [Path(r) for r in args.rows] if args.rows else [published_rows(), user_rows()]
    rows = [r for src in sources for r in read_rows(src)]
    got = findings.compute(rows, args.store, findings.load_spec(args.spec) if args.spec else None)
    if args.out:
        _where("findings", findings.write(got, args.out))
    if args.readme:
        changed = findings.update_readme(got, args.readme)
        print(f"symbench: {args.readme} {'updated' if changed else 'already current'}", file=sys.stderr)
    emit([got], args.format, findings.markdown(got))
    return 0


def _cmd_rb_build(args) -> int:
    from symbench.leaderboard.robustbench_ref import THREATS, build_reference, write_reference

    rows = build_reference(args.model_info, commit=args.commit)
    out = write_reference(rows, args.out) if args.out else write_reference(rows)
    by = {t: sum(r["threat"] == t.lower() for r in rows) for t in THREATS}
    print(f"wrote {len(rows)} reference rows ({', '.join(f'{t} {k}' for t, k in by.items())}) to {out}")
    return 0


def _cmd_rb_list(args) -> int:
    from symbench.leaderboard.robustbench_ref import format_reference, reference_rows

    rows = reference_rows(args.threat, args.reference) if args.reference else reference_rows(args.threat)
    if not rows:
        raise ValueError(f"no RobustBench reference rows for threat {args.threat} "
                         f"(the reference table {args.reference or 'shipped with symbench'} is empty or missing)")
    rows = rows[: args.top] if args.top else rows
    emit(rows, args.format, format_reference(rows))
    return 0


# ------------------------------------------------------------------------------------------------
# the parser
# ------------------------------------------------------------------------------------------------

def _add_format(s) -> None:
    s.add_argument("--format", choices=FORMATS, default="table", help="output: a table for people, json or csv")


def _add_run_options(s, *, rows_help: str) -> None:
    """Flags shared by bench and submit: data, where results go, publishing, device."""
    s.add_argument("--n", type=positive_int, help="test examples (default: the suite's n)")
    s.add_argument("--data-dir", help="CIFAR-10 directory (cifar10/{train,test}.npz or torchvision files); default: "
                                      "$SYMBENCH_DATA, then a shared/data beside the checkout")
    s.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 if no local copy exists")
    s.add_argument("--out", help=rows_help)
    s.add_argument("--store", help="per-example outcome store, what makes runs resumable (default: "
                                   "$SYMBENCH_HOME/store)")
    s.add_argument("--publish", action="store_true",
                   help="also append the rows to the published leaderboard (a checkout's leaderboard/v1/rows.jsonl)")
    s.add_argument("--board", help="with --publish: the rows file to publish to instead of the checkout's")
    s.add_argument("--force", action="store_true", help="with --publish: publish rows with n below the suite's n")
    s.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    s.add_argument("--threads", type=positive_int, help="CPU threads (default: all cores)")
    s.add_argument("--fast", action="store_true", help="channels_last where measured faster (bench/run/fastpath.py); "
                                                       "rows and store key then record the layout")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_format(s)


def build_parser() -> argparse.ArgumentParser:
    from symbench import __version__

    p = _Parser(prog="symbench", description="Adversarial-robustness benchmark for symmetry-aware classifiers. "
                "Rows and the per-example store go to $SYMBENCH_HOME (else the user data dir); the published "
                "leaderboard changes only with --publish.")
    p.add_argument("--version", action="version", version=f"symbench {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list registered models (shipped and third-party)")
    s.add_argument("pattern", nargs="?", default="*", help="shell pattern over model names")
    _add_format(s)
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("suites", help="list the attack suites")
    _add_format(s)
    s.set_defaults(func=_cmd_suites)

    s = sub.add_parser("attacks", help="list the registered attacks and the toolkit behind each")
    _add_format(s)
    s.set_defaults(func=_cmd_attacks)

    s = sub.add_parser("bench", help="run a suite on a model; rows go to your user directory")
    s.add_argument("--model", required=True, help="registered name or alias (`symbench list`), <model>+<defense>, "
                                                  "or robustbench:<Name>")
    s.add_argument("--suite", default="quick", help="suite name (`symbench suites`) or a .toml path")
    s.add_argument("--eps", type=eps_spec, nargs="+", metavar="EPS",
                   help="eps on the [0,1] scale, per threat: linf=1/255,2/255 l2=0.25 (a bare 8/255 only for a "
                        "one-threat suite); the rows keep the suite's name and record the override "
                        "(default: the suite's)")
    s.add_argument("--batch-size", type=positive_int, help="examples per batch (default: the suite's)")
    s.add_argument("--seed", type=int, help="attack seed (default: the suite's)")
    s.add_argument("--checkpoint", help="your own .safetensors weights for this architecture (sha256 recorded)")
    s.add_argument("--sha256", help="expected sha256 of --checkpoint (default: computed from the file)")
    s.add_argument("--untrained", action="store_true", help="allow a model without trained weights")
    s.add_argument("--skip-checks", action="store_true", help="skip the validity checks (rows are then 'unchecked')")
    s.add_argument("--strict", action="store_true",
                   help="a stored record that fails verification stops the run (default: report it and recompute)")
    s.add_argument("--escalate", action="store_true",
                   help="when a row is flagged for hidden or noisy gradients, also run the remedies that need no "
                        "knowledge of the model (full-budget Square, transfer, APGD with EOT); the row keeps both numbers")
    s.add_argument("--surrogate", help="with --escalate: a registered model to transfer from (default: a defended "
                                       "model's base, a card's base=, else a shipped CNN by a stated rule)")
    s.add_argument("--no-escalate", action="store_true",
                   help="with --publish (which escalates flagged rows by default): do not; the rows say so")
    s.add_argument("--defense-eps-v", type=eps_value, nargs="+", metavar="EPS_V",
                   help="for a <model>+<defense> name: run the suite once per purification budget (seed 2 Table 6)")
    s.add_argument("--model-dir", help="RobustBench model directory for robustbench:<Name> "
                                       "(default: $SYMBENCH_HOME/cache/robustbench)")
    s.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local, or ray: one task per (model, suite, example shard), see docs/scale-out.md")
    s.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local Ray)")
    s.add_argument("--shards", type=positive_int, help="example shards for --executor ray (default: the cluster's "
                                                      "GPUs/CPUs)")
    s.add_argument("--shared-store", action="store_true", help="ray workers also write to --store (a shared path)")
    s.add_argument("--shard", type=shard_value, metavar="I/K",
                   help="compute only shard I of K (from 0) into --store and write no rows (a SLURM array task); "
                        "see docs/scale-out.md")
    _add_run_options(s, rows_help="rows file to append to (default: $SYMBENCH_HOME/rows.jsonl; '' for none)")
    s.set_defaults(func=_cmd_bench)

    s = sub.add_parser("compare", help="paired comparison of two models on the same examples (McNemar)")
    s.add_argument("model_a", help="first model (as its rows name it)")
    s.add_argument("model_b", help="second model")
    s.add_argument("--suite", default="standard", help="suite both were run on")
    s.add_argument("--metric", choices=["robust", "clean"], default="robust", help="which per-example outcome")
    s.add_argument("--rows", help="rows file (default: your rows, then the published board)")
    s.add_argument("--store", help="the store that holds both runs' outcomes (default: $SYMBENCH_HOME/store)")
    _add_format(s)
    s.set_defaults(func=_cmd_compare)

    s = sub.add_parser("train", help="train a registered model on CIFAR-10 (seeded, resumable)")
    s.add_argument("model", help="registered model name")
    s.add_argument("--epochs", type=positive_int, help="epochs (default: the card's recipe)")
    s.add_argument("--batch-size", type=positive_int, help="batch size (default: the recipe's)")
    s.add_argument("--lr", type=float, help="one-cycle peak learning rate (default: the recipe's)")
    s.add_argument("--seed", type=int, help="seed of data order and init (default: the recipe's)")
    s.add_argument("--threads", type=positive_int, help="CPU threads (default: the recipe's)")
    s.add_argument("--adv", choices=["pgd", "fgsm_rs"], help="adversarial training (default: the recipe's)")
    s.add_argument("--adv-eps", type=eps_value, help="Linf eps of adversarial training, e.g. 8/255 "
                                                     "(default: the recipe's)")
    s.add_argument("--data-dir", help="CIFAR-10 directory (default: $SYMBENCH_DATA, then shared/data beside the "
                                      "checkout)")
    s.add_argument("--out", help="folder for <name>.safetensors/.json (default: $SYMBENCH_HOME/checkpoints; the "
                                 "shipped checkpoints are never overwritten unless you name their folder)")
    s.add_argument("--no-resume", action="store_true", help="ignore saved training state and start afresh")
    s.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("models-table", help="markdown table of the models and their trained checkpoints")
    s.add_argument("--write", nargs="?", const="README.md", help="update the table inside this README")
    s.set_defaults(func=_cmd_models_table)

    s = sub.add_parser("submit", help="validate an outside model, run the required suites, write its rows")
    s.add_argument("--model", help="registered name (an installed package's entry point, or one --file registers)")
    s.add_argument("--file", help="a single .py file that registers the model with @register_model")
    s.add_argument("--checkpoint", help=".safetensors weights (default: the card's checkpoint)")
    s.add_argument("--sha256", help="expected sha256 of the checkpoint (default: the card's)")
    s.add_argument("--suites", nargs="+", default=["quick"], help="suites to run")
    s.add_argument("--eps", type=eps_spec, nargs="+", metavar="EPS",
                   help="eps per threat, e.g. linf=1/255,2/255 (default: each suite's)")
    s.add_argument("--no-escalate", action="store_true",
                   help="do not escalate rows flagged for hidden or noisy gradients (by default they are); the rows "
                        "say so")
    s.add_argument("--surrogate", help="a registered model to transfer from when escalating (default: the card's "
                                       "base=, else a shipped CNN by a stated rule)")
    _add_run_options(s, rows_help="rows file to append to (default: $SYMBENCH_HOME/rows.jsonl)")
    s.set_defaults(func=_cmd_submit)

    from symbench.leaderboard.commands import add_leaderboard_commands

    lsub = add_leaderboard_commands(sub)  # build, validate
    s = lsub.add_parser("add", help="publish rows (yours by default) to the repository's leaderboard/v1/rows.jsonl")
    s.add_argument("rows", nargs="?", help="rows file to publish from (default: $SYMBENCH_HOME/rows.jsonl)")
    s.add_argument("--model", help="publish only this model's rows")
    s.add_argument("--board", help="the rows file to publish to (default: the checkout's leaderboard/v1/rows.jsonl)")
    s.add_argument("--force", action="store_true", help="publish rows with n below their suite's n")
    s.add_argument("--store", help="the store holding the rows' per-example outcomes, published with them (default: "
                                   "$SYMBENCH_HOME/store)")
    s.set_defaults(func=_cmd_add)
    s = lsub.add_parser("findings", help="does symmetry help under adversarial training? paired tests from the store")
    s.add_argument("--rows", nargs="+", help="rows files (default: the published rows and yours)")
    s.add_argument("--store", help="the store holding the runs' per-example outcomes (default: $SYMBENCH_HOME/store)")
    s.add_argument("--spec", help="comparisons to make (default: the shipped leaderboard/findings.toml)")
    s.add_argument("--out", help="write the findings JSON here (the published one is leaderboard/v1/findings.json)")
    s.add_argument("--readme", help="rewrite the findings section between its markers in this Markdown file")
    _add_format(s)
    s.set_defaults(func=_cmd_findings)
    s = lsub.add_parser("refresh", help="rerun every trained model × suite whose rows are missing or stale")
    s.add_argument("--executor", choices=["local", "ray"], default="local", help="where to run")
    s.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local Ray)")
    s.add_argument("--shards", type=positive_int, help="example shards per model × suite (default: the cluster's)")
    s.add_argument("--models", default="*", help="shell pattern over registered model names")
    s.add_argument("--suites", default="quick,paper", help="comma-separated suites")
    s.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    s.add_argument("--n", type=positive_int, help="examples per suite instead of each suite's n (rows must match it)")
    s.add_argument("--plain", action="store_true", help="implies --dry-run; print only MODEL SUITE lines, for scripts")
    s.add_argument("--rows", help="rows file to check and append to (default: yours; with --publish the checkout's "
                                  "leaderboard/v1/rows.jsonl)")
    s.add_argument("--publish", action="store_true", help="refresh the published board")
    s.add_argument("--data-dir", help="CIFAR-10 directory (default: $SYMBENCH_DATA, then shared/data)")
    s.add_argument("--store", help="per-example outcome store (default: $SYMBENCH_HOME/store)")
    s.add_argument("--device", help="driver device for checks and local runs (default: cuda if available)")
    s.add_argument("--threads", type=positive_int, help="driver CPU threads (default: all cores)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_refresh)

    p_rb = sub.add_parser("robustbench", help="RobustBench's reported numbers (list them, rebuild the table)")
    rsub = p_rb.add_subparsers(dest="rb_cmd", required=True, metavar="COMMAND")
    s = rsub.add_parser("list", help="RobustBench's reported CIFAR-10 numbers, best robust accuracy first")
    s.add_argument("--threat", default="Linf", choices=["Linf", "L2", "corruptions"], help="threat model")
    s.add_argument("--top", type=positive_int, help="show only the first N")
    s.add_argument("--reference", help="reference JSONL to read (default: the one shipped with symbench)")
    _add_format(s)
    s.set_defaults(func=_cmd_rb_list)
    s = rsub.add_parser("build-reference", help="rebuild the reference table from RobustBench's model_info/")
    s.add_argument("--model-info", required=True, help="RobustBench's model_info directory (or its checkout)")
    s.add_argument("--commit", help="RobustBench commit the files are from (default: git HEAD of the directory)")
    s.add_argument("--out", help="output JSONL, rewritten (default: the package's robustbench_reference.jsonl)")
    s.set_defaults(func=_cmd_rb_build)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error argparse already explained
        return done.code if isinstance(done.code, int) else 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="e2cnn")
    for noisy in ("art", "auto-attack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except BrokenPipeError:  # `symbench list | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # the store keeps every finished batch; a traceback would only hide that
        where = ""
        if hasattr(args, "store"):
            from symbench.paths import user_store
            where = f" in {args.store or user_store()}"
        print(f"symbench: interrupted; finished work is kept{where}: run the same command again to resume",
              file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - known error kinds become one line; anything else stays a traceback
        if _is_user_error(err):
            print(f"symbench: error: {err}", file=sys.stderr)
            return 2
        raise


def _is_user_error(err: Exception) -> bool:
    """Errors that describe bad input or a missing file, not a bug: shown as one line, exit 2."""
    from symbench.models import CheckpointError, UnknownModelError

    from symbench.bench.attacks import UnknownAttackError
    from symbench.bench.data import DataNotFoundError
    from symbench.bench.suites import UnknownSuiteError
    kinds = (UnknownModelError, UnknownSuiteError, UnknownAttackError, CheckpointError, DataNotFoundError,
             ValueError, FileNotFoundError, MemoryError, PermissionError, IsADirectoryError)
    try:
        from symbench.leaderboard.submit import SubmissionError
        kinds += (SubmissionError,)
    except ImportError:  # pragma: no cover
        pass
    return isinstance(err, kinds)
