"""``symbench bench``: run a suite on a registered model and append its rows."""
from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger("symbench")


def default_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(args):
    from models import create_model

    if args.checkpoint:
        return create_model(args.model, checkpoint=args.checkpoint, sha256=args.sha256)
    return create_model(args.model, pretrained=not args.untrained)


def bench(model_name: str, suite_name: str, *, data_dir=None, n=None, eps=None, batch_size=None, seed=None,
          out=None, store="results/store", device=None, progress=True, model=None, data=None,
          untrained=False, checks=True, model_dir=None, shard=None) -> list[dict]:
    """Run ``suite_name`` on ``model_name``; returns the rows (appended to ``out`` when given).

    ``shard=(i, k)`` computes only shard ``i`` of ``k`` of the run's batches into ``store`` and returns
    no rows (a SLURM array task); the ordinary run afterwards finds them stored and writes the rows.
    """
    from models import create_model, resolve_name

    from .data import load_cifar10
    from .records import append_rows, make_row
    from .runner import model_fingerprint, run_suite
    from .suites import load_suite

    suite = load_suite(suite_name).with_overrides(n=n, eps=eps, batch_size=batch_size, seed=seed)
    dev = default_device(device)
    if model is None and model_name.startswith("robustbench:"):  # RobustBench's zoo, see models/robustbench_zoo.py
        from models.robustbench_zoo import load_robustbench_model
        model = load_robustbench_model(model_name, model_dir)
    if model is None:
        model_name = resolve_name(model_name)
        model = create_model(model_name, pretrained=not untrained)
    data = data if data is not None else load_cifar10("test", data_dir, n=suite.n)
    if shard is not None:
        return _bench_shard(model, suite, data, model_name, shard, store, dev, progress)
    if suite.kind != "attack":
        rows = _run_other_kind(suite, model, data, model_name=model_name, store=store, device=dev,
                               progress=progress)
        if out:
            append_rows(out, rows)
        return rows
    outcomes, key = run_suite(model, suite, data, model_name=model_name, store_root=store, device=dev,
                              num_classes=getattr(getattr(model, "card", None), "num_classes", 10), progress=progress)
    card = getattr(model, "card", None)
    extra = run_validity_checks(model, suite, data, outcomes, model_name, key, store, dev) if checks else {}
    orbit = run_orbit_columns(model, suite, data, outcomes, model_name, key, store, dev)
    base = None
    if suite.option("base_reference"):  # defended model: the same attacks on its undefended base
        from .attacks.adaptive import base_reference
        base = base_reference(model, suite, data, store_root=store, device=dev, progress=progress)
    rows = [make_row(model_name=model_name, card=card, ckpt_sha256=model_fingerprint(model), suite=suite,
                     outcome=o, data=data, device=dev, store_key=key,
                     extra={**extra, **({"orbit": orbit[i]} if orbit and orbit[i] else {}), **(base[i] if base else {})})
            for i, o in enumerate(outcomes)]
    if out:
        added = append_rows(out, rows)
        log.info("appended %d new row(s) to %s (%d already recorded)", added, out, len(rows) - added)
    return rows


def _bench_shard(model, suite, data, model_name, shard, store, device, progress) -> list[dict]:
    from .runner import run_suite, shard_batches

    if suite.kind != "attack":
        raise ValueError(f"suite {suite.name!r} (kind {suite.kind!r}) has no example batches to shard; run it whole")
    batches = shard_batches(len(data), suite.batch_size, shard)
    computed: dict = {}
    _, key = run_suite(model, suite, data, model_name=model_name, store_root=store, device=device,
                       num_classes=getattr(getattr(model, "card", None), "num_classes", 10), progress=progress,
                       batches=batches, computed=computed)
    span = f"batches {batches[0]}..{batches[-1]}" if batches else "no batches (more shards than batches)"
    log.info("%s %s shard %d/%d: %s, %d record(s) computed, the rest found in %s/%s/%s",
             model_name, suite.id, shard[0], shard[1], span, len(computed), store, model_name, key)
    return []


def parse_shard(text: str) -> tuple[int, int]:
    """'3/16' → (3, 16): shard 3 of 16, counted from 0 like ``$SLURM_ARRAY_TASK_ID``."""
    try:
        i, k = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard wants I/K (e.g. 0/16), got {text!r}") from None
    if k < 1 or not 0 <= i < k:
        raise ValueError(f"--shard {text}: need 0 <= I < K")
    return i, k


def run_validity_checks(model, suite, data, outcomes, model_name, key, store_root, device) -> dict:
    """Checks + verdict + equivariance errors for a run, cached in the run's store."""
    from .checks import run_checks
    from .store import Store

    store = Store(store_root, model_name, key)
    cached = store.get("checks", 0)
    if cached is None:
        checks, verdict, info = run_checks(model, suite, data.x.to(device), data.y.to(device), outcomes,
                                           seed=suite.seed, m=int(suite.option("checks_m", 64)))
        cached = {"checks": checks, "verdict": verdict, **info}
        store.put("checks", 0, cached)
    return cached


def run_orbit_columns(model, suite, data, outcomes, model_name, key, store_root, device) -> list[dict] | None:
    """The suite's optional ``[orbit]`` table: orbit + attack accuracy per eps on the first ``n`` examples."""
    from .orbit import ORBIT, orbit_outcome
    from .store import Store

    spec = dict(suite.option("orbit", ()) or ())
    if not spec:
        return None
    store = Store(store_root, model_name, key)
    n = min(int(spec.pop("n", 100)), len(data))
    attack = spec.pop("attack", "ta_pgd")
    only_eps = spec.pop("eps", None)  # orbit cost = |orbit| attacks per eps: pick a few eps on CPU
    cols = []
    for i, o in enumerate(outcomes):
        if only_eps is not None and not any(abs(o.eps - e) < 1e-9 for e in only_eps):
            cols.append(None)
            continue
        rec = store.get("orbit", i)
        if rec is None:
            res = orbit_outcome(model, data.x[:n].to(device), data.y[:n].to(device), o.eps, attack=attack,
                                norm=o.norm, seed=suite.seed, **spec)
            rec = {"n": n, "attack": attack, "params": spec, "transforms": list(ORBIT),
                   "clean_acc": res["clean"].float().mean().item(), "robust_acc": res["adv"].float().mean().item(),
                   "per_transform": res["per_transform"],
                   "robust_acc_no_orbit": o.robust[:n].float().mean().item()}
            store.put("orbit", i, rec)
        cols.append(rec)
    return cols


def _run_other_kind(suite, model, data, **kw) -> list[dict]:
    from . import suite_kinds  # noqa: F401  (registers the built-in kinds)
    from .suites import SUITE_KINDS

    if suite.kind not in SUITE_KINDS:
        raise ValueError(f"suite {suite.name!r} has unknown kind {suite.kind!r}; known: attack, {', '.join(SUITE_KINDS)}")
    return SUITE_KINDS[suite.kind](model.eval(), suite, data, model_name=kw["model_name"], store_root=kw["store"],
                                   device=kw["device"], progress=kw["progress"])


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'model':22s} {'suite':10s} {'threat':6s} {'eps':>8s} {'clean':>6s} {'robust':>6s}  per-attack (cumulative)"]
    for r in rows:
        per = ", ".join(f"{a['label']} {a['acc_after']:.3f}" for a in r["attacks"])
        if r.get("clever"):  # CLEVER rows: an estimate, robust_acc is null
            c = r["clever"]
            per = (f"CLEVER median {c['median']:.4g} (q1 {c['q1']:.4g}, q3 {c['q3']:.4g}, n={c['n_scored']})"
                   if c.get("median") is not None else "CLEVER: no image scored")
        robust = "  null" if r["robust_acc"] is None else f"{r['robust_acc']:6.3f}"
        variant = f" {r['variant']}" if r.get("variant") else ""
        lines.append(f"{r['model']:22s} {r['suite']:10s} {r['threat']:6s} {r['eps_display']:>8s} "
                     f"{r['clean_acc']:6.3f} {robust}  {per}{variant}  [{r['verdict']}]")
    return "\n".join(lines)


def _shard_arg(text: str) -> tuple[int, int]:
    import argparse

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parse_eps(text: str) -> float:
    """'8/255' or '0.03' → float (eps on the [0,1] pixel scale)."""
    from fractions import Fraction

    return float(Fraction(text))


def _cmd_bench(args) -> int:
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.shard is not None and args.defense_eps_v:
        raise ValueError("--shard and --defense-eps-v do not combine: shard one <model>+<defense> name at a time")
    if args.defense_eps_v:  # seed 2 Table 6: the same suite over a grid of purification budgets
        from models.defenses import with_params

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
    from .executors import make_executor
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
    from .suites import list_suites, load_suite

    for name in list_suites():
        s = load_suite(name)
        print(f"{s.id:24s} n={s.n:<5d} {', '.join(a.label for a in s.attacks)}\n    {s.description}")
    return 0


def _cmd_attacks(args) -> int:
    from .attacks import attack_class, list_attacks

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

    from .robustbench_ref import add_robustbench_commands
    add_robustbench_commands(sub)
    s = sub.add_parser("suites", help="list attack suites")
    s.set_defaults(func=_cmd_suites)
    s = sub.add_parser("attacks", help="list registered attacks")
    s.set_defaults(func=_cmd_attacks)
    from .leaderboard import add_leaderboard_commands
    add_leaderboard_commands(sub)  # `leaderboard build|validate` and `submit`
