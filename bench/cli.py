"""symbench: adversarial-robustness benchmark for symmetry-aware classifiers (list, train, bench, leaderboard, submit)."""
from __future__ import annotations

import argparse
import logging
import sys
import warnings

log = logging.getLogger("symbench")


def _cmd_list(args) -> int:
    from models import get_card, list_models

    rows = [get_card(n) for n in list_models(args.pattern)]
    print(f"{'model':24s} {'family':18s} {'group':10s} {'depth':>5s} {'clean_acc':>9s}  checkpoint")
    for c in rows:
        acc = f"{c.clean_acc:.4f}" if c.clean_acc is not None else "-"
        ck = (c.sha256[:12] if c.sha256 else "untrained")
        print(f"{c.name:24s} {c.family:18s} {c.group:10s} {c.depth:5d} {acc:>9s}  {ck}")
    return 0


def _cmd_table(args) -> int:
    from models.table import models_table, update_readme

    if args.write:
        print("README.md updated" if update_readme(args.write) else "README.md already current")
    else:
        print(models_table())
    return 0


def _cmd_train(args) -> int:
    from .train import train

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

    from .commands import add_commands

    add_commands(sub)  # bench, suites, attacks, robustbench, leaderboard, submit
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="e2cnn")
    for noisy in ("art", "auto-attack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from models import CheckpointError, UnknownModelError

    from .attacks import UnknownAttackError
    from .data import DataNotFoundError
    from .suites import UnknownSuiteError
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
