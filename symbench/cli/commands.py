"""The subcommands: each parses nothing, calls one library function and prints (library imports inside)."""
from __future__ import annotations

import sys

from symbench.cli.args import _eps_arg
from symbench.cli.output import emit, _where, _no_match, _details, _escalation_hints


def _data_dir(args):
    from symbench.paths import default_data_dir

    return args.data_dir or default_data_dir()


def _threads(args) -> None:
    from symbench.bench.run.fastpath import set_fast, use_threads

    use_threads(args.threads)  # the row's device field records it
    if getattr(args, "fast", False):
        set_fast(True)


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
                   progress=not args.no_progress, dry_run=args.dry_run or args.plain, n=args.n,
                   publish=args.publish, escalate=not args.no_escalate)
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
    target, added = publish_rows(rows, args.board, force=args.force, store=args.store, no_escalate=args.no_escalate)
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
    if args.strict and got["missing"]:  # before writing anything: a publish must not lose a pair quietly
        lost = "; ".join(f"{m['model']}: {m['how']}" for m in got["missing"])
        raise ValueError(f"--strict: {len(got['missing'])} comparison(s) cannot be made, nothing written: {lost}")
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


def _store_root(args):
    from symbench.paths import user_store

    return args.store or user_store()


def _cmd_store_export(args) -> int:
    from symbench.bench.run.store_transfer import export_store

    root = _store_root(args)
    got = export_store(root, args.out, models=args.model)
    print(got.line("exported", f"from {root} to {args.out}"))
    return 0


def _cmd_store_import(args) -> int:
    from symbench.bench.run.store_transfer import import_store

    root = _store_root(args)
    got = import_store(args.src, root)
    print(got.line("imported", f"from {args.src} into {root}, signed with your key"))
    for reason in got.refused[:20]:
        print(f"  refused: {reason}", file=sys.stderr)
    return 1 if got.refused else 0
