"""symbench: adversarial-robustness benchmark for symmetry-aware classifiers.

The command line is a thin layer over the library: it parses, calls one function, prints. Library
modules are imported inside each command, so ``symbench --help`` never pays for torch. Results are
printed to stdout (``--format table|json|csv``); where they were written goes to stderr, so output
pipes and parses.

The package: ``args`` (argument types), ``parser`` (the subcommands), ``commands`` (what each runs),
``output`` (what it prints), and :func:`main` here.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

from symbench.cli.parser import build_parser


# names earlier versions exported from symbench/cli.py
from symbench.cli.commands import _escalation_kwargs, _threads  # noqa: E402,F401
from symbench.cli.output import _details, _escalation_hints, emit  # noqa: E402,F401
from symbench.cli.args import eps_value, eps_spec, positive_int, shard_value  # noqa: E402,F401


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
