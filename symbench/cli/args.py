"""Argument types and options shared by the subcommands: eps as fractions on the [0,1] scale, counts, shards."""
from __future__ import annotations

import argparse
from fractions import Fraction


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
    s.add_argument("--threads", type=positive_int, help="CPU threads (default: $OMP_NUM_THREADS, else all cores)")
    s.add_argument("--fast", action="store_true", help="channels_last where measured faster (bench/run/fastpath.py); "
                                                       "rows and store key then record the layout")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_format(s)
