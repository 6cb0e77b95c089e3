"""symbench: adversarial-robustness benchmark for symmetry-aware classifiers (list, train, bench, leaderboard, submit)."""
from __future__ import annotations

import argparse
import logging
import sys
import warnings

log = logging.getLogger("symbench")


def _cmd_list(args) -> int:
    from symbench.models import get_card, list_models

    rows = [get_card(n) for n in list_models(args.pattern)]
    print(f"{'model':24s} {'family':18s} {'group':10s} {'depth':>5s} {'clean_acc':>9s}  checkpoint")
    for c in rows:
        acc = f"{c.clean_acc:.4f}" if c.clean_acc is not None else "-"
        ck = (c.sha256[:12] if c.sha256 else "untrained")
        print(f"{c.name:24s} {c.family:18s} {c.group:10s} {c.depth:5d} {acc:>9s}  {ck}")
    return 0


def _cmd_table(args) -> int:
    from symbench.models.table import models_table, update_readme

    if args.write:
        print("README.md updated" if update_readme(args.write) else "README.md already current")
    else:
        print(models_table())
    return 0


def _cmd_train(args) -> int:
    from symbench.bench.train import train

    card = train(args.model, data_dir=args.data_dir, out_dir=args.out, resume=not args.no_resume,
                 epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                 adv=args.adv, adv_eps=args.adv_eps, threads=args.threads, device=args.device)
    print(f"{card['name']}: clean accuracy {card['clean_acc']:.4f} on {card['n_test']} test images; "
          f"wrote {card['checkpoint']} sha256 {card['sha256']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symbench", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("list", help="list registered models")
    s.add_argument("pattern", nargs="?", default="*")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("models-table", help="markdown table of the models and their trained checkpoints")
    s.add_argument("--write", nargs="?", const="README.md", help="update the table inside README.md")
    s.set_defaults(func=_cmd_table)

    s = sub.add_parser("train", help="train a registered model on CIFAR-10 (resumable)")
    s.add_argument("model")
    s.add_argument("--epochs", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--seed", type=int)
    s.add_argument("--threads", type=int)
    s.add_argument("--adv", choices=["pgd", "fgsm_rs"], help="adversarial training")
    s.add_argument("--adv-eps", type=float, help="Linf eps on the [0,1] scale (default 8/255)")
    s.add_argument("--data-dir")
    s.add_argument("--out", help="directory for <name>.safetensors/.json (default models/checkpoints)")
    s.add_argument("--no-resume", action="store_true", help="ignore saved training state")
    s.add_argument("--device", help="cpu / cuda (default: cuda if available)")
    s.set_defaults(func=_cmd_train)

    add_commands(sub)  # bench, suites, attacks, robustbench, leaderboard, submit
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="e2cnn")
    for noisy in ("art", "auto-attack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from symbench.models import CheckpointError, UnknownModelError

    from symbench.bench.attacks import UnknownAttackError
    from symbench.bench.data import DataNotFoundError
    from symbench.bench.suites import UnknownSuiteError
    try:
        return args.func(args)
    except (UnknownModelError, UnknownSuiteError, UnknownAttackError, CheckpointError, DataNotFoundError,
            ValueError, FileNotFoundError, MemoryError) as err:
        print(f"symbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the store keeps every finished batch; a traceback would only hide that
        where = f" in {args.store}" if getattr(args, "store", None) else ""
        print(f"symbench: interrupted; finished work is kept{where}: run the same command again to resume",
              file=sys.stderr)
        return 130


def _shard_arg(text: str) -> tuple[int, int]:
    from symbench.bench.run.evaluate import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parse_eps(text: str) -> float:
    """'8/255' or '0.03' → float (eps on the [0,1] pixel scale)."""
    from fractions import Fraction

    return float(Fraction(text))


def _cmd_bench(args) -> int:
    import os

    import torch

    from symbench.bench.run.evaluate import bench
    from symbench.bench.run.records import format_rows

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.shard is not None and args.defense_eps_v:
        raise ValueError("--shard and --defense-eps-v do not combine: shard one <model>+<defense> name at a time")
    if args.defense_eps_v:  # seed 2 Table 6: the same suite over a grid of purification budgets
        from symbench.models.defenses import with_params

        table = []
        for e in args.defense_eps_v:
            name = with_params(args.model, eps_v=e)
            rows = bench(name, args.suite, data_dir=args.data_dir, n=args.n, eps=args.eps, batch_size=args.batch_size,
                         seed=args.seed, out=args.out, store=args.store, device=args.device,
                         progress=not args.no_progress, untrained=args.untrained, checks=not args.skip_checks)
            table += [(e, r) for r in rows]
        print(f"{'eps_v':>8s} {'eps':>8s} {'clean':>6s} {'robust':>6s}  verdict")
        for e, r in table:
            print(f"{e:8.4f} {r['eps_display']:>8s} {r['clean_acc']:6.3f} {r['robust_acc']:6.3f}  {r['verdict']}")
        return 0
    if args.shard is not None:
        if args.executor != "local":
            raise ValueError("--shard runs one shard in this process; it does not combine with --executor ray")
        bench(args.model, args.suite, data_dir=args.data_dir, n=args.n, eps=args.eps, batch_size=args.batch_size,
              seed=args.seed, store=args.store, device=args.device, progress=not args.no_progress,
              untrained=args.untrained, model_dir=args.model_dir, shard=args.shard)
        print(f"shard {args.shard[0]}/{args.shard[1]} stored in {args.store}; no rows written. When every shard is "
              f"done, the same command without --shard merges them (and computes anything missing).")
        return 0
    from symbench.bench.run.executors import make_executor
    run = make_executor(args.executor, address=args.address, shards=args.shards, shared_store=args.shared_store).bench
    rows = run(args.model, args.suite, data_dir=args.data_dir, n=args.n, eps=args.eps, batch_size=args.batch_size,
               seed=args.seed, out=args.out, store=args.store, device=args.device, progress=not args.no_progress,
               untrained=args.untrained, checks=not args.skip_checks, model_dir=args.model_dir)
    print(format_rows(rows))
    for name, c in (rows[0].get("checks") or {}).items() if rows else []:
        print(f"  check {name:28s} {c['status']:5s} {c['detail']}")
    for r in rows:
        if r.get("base_robust_acc") is not None:
            print(f"  undefended {r['base_model']}: clean {r['base_clean_acc']:.3f} robust {r['base_robust_acc']:.3f} "
                  f"(defense gain {r['robust_acc'] - r['base_robust_acc']:+.3f})")
        if r.get("orbit"):
            o = r["orbit"]
            print(f"  orbit eps={r['eps_display']}: orbit alone {o['clean_acc']:.3f}, orbit+{o['attack']} "
                  f"{o['robust_acc']:.3f} (suite's robust acc on the same {o['n']}: {o['robust_acc_no_orbit']:.3f})")
    if rows and rows[0].get("equivariance"):
        for kind, errs in rows[0]["equivariance"].items():
            print(f"  equivariance error ({kind}): " + ", ".join(f"{k} {v:.3g}" for k, v in errs.items()))
    return 0


def _cmd_suites(args) -> int:
    from symbench.bench.suites import list_suites, load_suite

    for name in list_suites():
        s = load_suite(name)
        print(f"{s.id:24s} n={s.n:<5d} {', '.join(a.label for a in s.attacks)}\n    {s.description}")
    return 0


def _cmd_attacks(args) -> int:
    from symbench.bench.attacks import attack_class, list_attacks

    for name in list_attacks():
        cls = attack_class(name)
        print(f"{name:18s} {cls.toolkit:13s} {'/'.join(cls.norms):8s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    return 0


def add_commands(sub) -> None:
    s = sub.add_parser("bench", help="run an attack suite on a model and append result rows")
    s.add_argument("--model", required=True, help="registered model name or alias (see `symbench list`)")
    s.add_argument("--suite", default="quick", help="suite name (see `symbench suites`) or a .toml path")
    s.add_argument("--n", type=int, help="number of test examples (default: the suite's)")
    s.add_argument("--eps", type=float, nargs="+", help="eps values on the [0,1] pixel scale (default: the suite's)")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--data-dir", help="directory with cifar10/{train,test}.npz or torchvision files ($SYMBENCH_DATA)")
    s.add_argument("--out", default="leaderboard/v1/rows.jsonl", help="rows file to append to ('' for none)")
    s.add_argument("--store", default="results/store", help="per-example outcome store (resumable)")
    s.add_argument("--device", help="cpu / cuda (default: cuda if available)")
    s.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    s.add_argument("--untrained", action="store_true", help="allow a model without a trained checkpoint")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--skip-checks", action="store_true", help="skip validity checks (rows are then 'unchecked')")
    s.add_argument("--defense-eps-v", type=_parse_eps, nargs="+", metavar="EPS_V",
                   help="for a <model>+<defense> name: run the suite once per purification budget (seed 2 Table 6)")
    s.add_argument("--model-dir", help="RobustBench model dir for robustbench:<Name> ($SYMBENCH_CACHE/robustbench)")
    s.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local, or ray: one task per (model, suite, example shard), see docs/scale-out.md")
    s.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local Ray)")
    s.add_argument("--shards", type=int, help="example shards for --executor ray (default: the cluster's GPUs/CPUs)")
    s.add_argument("--shared-store", action="store_true", help="ray workers also write to --store (a shared path)")
    s.add_argument("--shard", type=_shard_arg, metavar="I/K",
                   help="compute only shard I of K (from 0) into --store and write no rows, e.g. a SLURM array task "
                        "with --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; see docs/scale-out.md")
    s.set_defaults(func=_cmd_bench)

    from symbench.leaderboard.robustbench_ref import add_robustbench_commands
    add_robustbench_commands(sub)
    s = sub.add_parser("suites", help="list attack suites")
    s.set_defaults(func=_cmd_suites)
    s = sub.add_parser("attacks", help="list registered attacks")
    s.set_defaults(func=_cmd_attacks)
    from symbench.leaderboard.commands import add_leaderboard_commands
    add_leaderboard_commands(sub)  # `leaderboard build|validate` and `submit`
