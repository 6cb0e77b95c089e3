"""The argument parser: every subcommand and its options (building it imports no torch)."""
from __future__ import annotations

import argparse

from symbench.cli.args import _Parser, eps_value, eps_spec, positive_int, shard_value, _add_format, _add_run_options
from symbench.cli.commands import _cmd_list, _cmd_models_table, _cmd_suites, _cmd_attacks, _cmd_bench, _cmd_train, _cmd_compare, _cmd_submit, _cmd_refresh, _cmd_add, _cmd_findings, _cmd_rb_build, _cmd_rb_list, _cmd_store_export, _cmd_store_import


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
    s.add_argument("--no-escalate", action="store_true", help="publish rows flagged for hidden or noisy gradients "
                   "without an escalated number (refused by default); the rows say so")
    s.set_defaults(func=_cmd_add)
    s = lsub.add_parser("findings", help="does symmetry help under adversarial training? paired tests from the store")
    s.add_argument("--rows", nargs="+", help="rows files (default: the published rows and yours)")
    s.add_argument("--store", help="the store holding the runs' per-example outcomes (default: $SYMBENCH_HOME/store)")
    s.add_argument("--spec", help="comparisons to make (default: the shipped leaderboard/findings.toml)")
    s.add_argument("--out", help="write the findings JSON here (the published one is leaderboard/v1/findings.json)")
    s.add_argument("--readme", help="rewrite the findings section between its markers in this Markdown file")
    s.add_argument("--strict", action="store_true", help="fail, writing nothing, if any comparison cannot be made "
                   "(rows or outcomes missing) instead of listing it as not yet measured")
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
    s.add_argument("--publish", action="store_true", help="refresh the published board: each pair's rows are "
                   "published with their outcomes as it finishes, flagged rows escalated first")
    s.add_argument("--no-escalate", action="store_true", help="with --publish: do not escalate flagged rows; the rows "
                   "say so")
    s.add_argument("--data-dir", help="CIFAR-10 directory (default: $SYMBENCH_DATA, then shared/data)")
    s.add_argument("--store", help="per-example outcome store (default: $SYMBENCH_HOME/store)")
    s.add_argument("--device", help="driver device for checks and local runs (default: cuda if available)")
    s.add_argument("--threads", type=positive_int,
                   help="driver CPU threads (default: $OMP_NUM_THREADS, else all cores)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_refresh)

    p_st = sub.add_parser("store", help="move your per-example store between machines (export, import)")
    ssub = p_st.add_subparsers(dest="store_cmd", required=True, metavar="COMMAND")
    s = ssub.add_parser("export", help="write the store's records your key verifies to one .jsonl.gz (no key in it)")
    s.add_argument("out", help="the export file to write (.jsonl.gz)")
    s.add_argument("--store", help="the store to export (default: $SYMBENCH_HOME/store)")
    s.add_argument("--model", nargs="+", metavar="PATTERN", help="only runs whose model matches one of these shell patterns")
    s.set_defaults(func=_cmd_store_export)
    s = ssub.add_parser("import", help="re-sign an export's records into your store: you vouch for them "
                                       "(docs/scale-out.md)")
    s.add_argument("src", help="an export file written by `symbench store export`")
    s.add_argument("--store", help="the store to import into (default: $SYMBENCH_HOME/store)")
    s.set_defaults(func=_cmd_store_import)

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
