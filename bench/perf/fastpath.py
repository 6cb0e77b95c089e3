"""``make perf-fast``: the fast path's speed-up over eager, what the suite's passes explain, the board's cost.

Prints (and appends to ``bench/perf/results.jsonl``):
- per model and layout, CPU ms per image of a forward-only pass and of a forward+backward (input
  gradient) pass, and the layout the suite's pass mix favours next to the one ``FAMILY_LAYOUT`` picks;
- the ``standard`` suite (Linf 8/255) run by the runner, eager and fast side by side on the same examples
  for a 4-layer and a 10-layer model (chunks in ABBA order, so drift in the machine's load hits both):
  the fast path's speed-up, and how many per-example outcomes differ;
- the same runs' time against their counted passes × the per-pass time (the ratio should stay ≈ 1: the
  cost of a suite is its passes);
- the published board's CPU-hours from its rows' own pass counts, at the suites' n and at n=10,000
  (RobustBench's), eager and fast, and the five PGD-7 models' standard Linf rows at n=10,000.

Times are CPU time of this process on ``--threads`` threads (1 by default, what the published rows and a
sharded run use per core): on a loaded machine wall time measures the other jobs too, so only ratios
measured side by side in one run mean anything, and the absolute hours are per core of this machine.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import re
import tempfile
import time
import warnings
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).parent / "results.jsonl"
SUITE_MODELS = ("baseline_cnn4", "baseline_cnn10_pgdat")  # a 4-layer and a 10-layer model (issue 27)
PGD7 = ("baseline_cnn10_pgdat", "baseline_cnn10_narrow_pgdat", "equivariant10_pgdat", "cascaded10_pgdat",
        "parallel_rot10_pgdat")
FULL_N = 10_000  # RobustBench evaluates on the whole CIFAR-10 test set
TARGET = 1.4     # issue 27: fast path >= 1.4x eager on the standard suite for baseline_cnn10_pgdat


def _cpu() -> float:
    return time.process_time()


def pass_times(model, layouts, batch: int, reps: int = 3, seed: int = 0) -> dict:
    """CPU ms per image of a forward-only pass (``fwd``) and a forward+backward to the input (``fwd_bwd``),
    per layout (None = eager), best of ``reps``, the layouts interleaved within each repeat."""
    from symbench.bench.attacks.base import input_gradients_only
    from symbench.bench.run import fastpath

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)

    def fwd():
        with torch.no_grad():
            model(x)

    def fwd_bwd():  # weights frozen, as every attack runs (bench/attacks/base.py: input_gradients_only)
        xg = x.clone().requires_grad_(True)
        with input_gradients_only(model):
            F.cross_entropy(model(xg), y).backward()

    best = {lay: {"fwd": math.inf, "fwd_bwd": math.inf} for lay in layouts}
    for _ in range(reps):
        for lay in layouts:
            fastpath.prepare(model, lay)
            for kind, fn in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
                fn()  # warm-up: oneDNN builds its kernels per shape and layout
                t = _cpu()
                fn()
                best[lay][kind] = min(best[lay][kind], (_cpu() - t) * 1000 / batch)
    fastpath.prepare(model, None)
    return best


def mix_cost(t: dict, fwd: float, bwd: float) -> float:
    """CPU ms of ``fwd`` forward passes of which ``bwd`` also ran backward (images), from per-image times."""
    return (fwd - bwd) * t["fwd"] + bwd * t["fwd_bwd"]


# the standard suite's pass mix on an AT model (baseline_cnn10_pgdat's published Linf row, n=1000)
STANDARD_AT_MIX = (2_616_532, 656_991)


def family_table(names, batch: int) -> list[dict]:
    """Every layout's per-pass times per model, and the layout the standard suite's AT pass mix favours."""
    from symbench.bench.run import fastpath
    from symbench.models import create_model, get_card

    out = []
    for name in names:
        model = create_model(name, pretrained=bool(get_card(name).sha256)).eval()
        t = pass_times(model, (None, *fastpath.LAYOUTS), batch)
        cost = {lay or "eager": mix_cost(v, *STANDARD_AT_MIX) for lay, v in t.items()}
        with _fast(True):
            chosen = fastpath.layout_for(model) or "eager"
        out.append({"model": name, "family": get_card(name).family, "batch": batch,
                    "ms_per_image": {lay or "eager": {k: round(v, 4) for k, v in d.items()} for lay, d in t.items()},
                    "best_for_standard_mix": min(cost, key=cost.get), "chosen": chosen,
                    "chosen_speedup_standard_mix": round(cost["eager"] / cost[chosen], 3)})
    return out


def compile_cost(name: str, batches=(128, 97), reps: int = 3) -> dict:
    """torch.compile on top of the fast path: seconds to compile per new batch size (the suite's survivor
    subsets change size every batch and attack) and per-pass CPU ms/image, compiled vs not."""
    from symbench.bench.attacks.base import input_gradients_only
    from symbench.bench.run import fastpath
    from symbench.models import create_model

    model = create_model(name, pretrained=True).eval()
    with _fast(True):
        layout = fastpath.prepare(model)
    compiled = torch.compile(model)
    out = {"model": name, "layout": layout, "batches": {}}
    for bs in batches:
        x = torch.rand(bs, 3, 32, 32)

        def fwd(m):
            with torch.no_grad():
                m(x)

        def fwd_bwd(m):
            xg = x.clone().requires_grad_(True)
            with input_gradients_only(model):
                m(xg).sum().backward()

        row = {}
        for kind, fn in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
            w = time.perf_counter()
            fn(compiled)
            row[f"{kind}_first_call_wall_s"] = round(time.perf_counter() - w, 1)
            best = {"fast": math.inf, "compiled": math.inf}
            for _ in range(reps):
                for k, m in (("fast", model), ("compiled", compiled)):
                    t = _cpu()
                    fn(m)
                    best[k] = min(best[k], (_cpu() - t) * 1000 / bs)
            row[f"{kind}_ms_per_image"] = {k: round(v, 4) for k, v in best.items()}
        out["batches"][bs] = row
    fastpath.prepare(model, None)
    return out


class _fast:
    """Context: the fast path on or off (restores the environment afterwards)."""

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        from symbench.bench.run import fastpath

        self.old = os.environ.get(fastpath.ENV)
        fastpath.set_fast(self.on)

    def __exit__(self, *exc):
        from symbench.bench.run import fastpath

        if self.old is None:
            os.environ.pop(fastpath.ENV, None)
        else:
            os.environ[fastpath.ENV] = self.old


def suite_side_by_side(name: str, data, n: int, chunks: int = 2) -> dict:
    """The standard suite (Linf 8/255) on the first ``n`` examples, eager and fast, in ``chunks`` chunks run in
    ABBA order; CPU and wall seconds, counted passes and per-example outcomes of each, and their differences."""
    from symbench.bench.data import ImageData
    from symbench.bench.run import fastpath
    from symbench.bench.run.runner import run_suite
    from symbench.bench.suites import load_suite
    from symbench.models import create_model

    model = create_model(name, pretrained=True).eval()
    suite = load_suite("standard")
    size = math.ceil(n / chunks)
    suite = replace(suite, threats=tuple(t for t in suite.threats if t.norm == "linf"), batch_size=size)
    acc = {lay: defaultdict(float) for lay in ("eager", "fast")}
    masks = {lay: {"clean": [], "robust": [], "after": defaultdict(list)} for lay in ("eager", "fast")}
    layout = None
    for c in range(chunks):
        lo, hi = c * size, min(n, (c + 1) * size)
        sub = ImageData(data.x[lo:hi], data.y[lo:hi], data.source, f"{data.sha256}:{lo}-{hi}")
        for lay in (("eager", "fast") if c % 2 == 0 else ("fast", "eager")):
            with _fast(lay == "fast"), tempfile.TemporaryDirectory() as tmp:
                t, w = _cpu(), time.perf_counter()
                (o,), _ = run_suite(model, suite, sub, model_name=name, store_root=tmp, progress=False)
                acc[lay]["cpu_s"] += _cpu() - t
                acc[lay]["wall_s"] += time.perf_counter() - w
                if lay == "fast":
                    layout = o.layout
            acc[lay]["n_forward"] += o.n_forward
            acc[lay]["n_backward"] += o.n_backward
            masks[lay]["clean"].append(o.clean)
            masks[lay]["robust"].append(o.robust)
            for k, v in o.robust_after.items():
                masks[lay]["after"][k].append(v)
    fastpath.prepare(model, None)
    cat = {lay: {"clean": torch.cat(m["clean"]), "robust": torch.cat(m["robust"]),
                 "after": {k: torch.cat(v) for k, v in m["after"].items()}} for lay, m in masks.items()}
    differ = {"clean": int((cat["eager"]["clean"] != cat["fast"]["clean"]).sum()),
              "robust": int((cat["eager"]["robust"] != cat["fast"]["robust"]).sum()),
              **{f"after:{k}": int((v != cat["fast"]["after"][k]).sum()) for k, v in cat["eager"]["after"].items()}}
    t_pass = pass_times(model, (None, layout) if layout else (None,), size)
    res = {"model": name, "n": n, "chunks": chunks, "batch": size, "layout": layout,
           "eager": {k: round(v, 2) for k, v in acc["eager"].items()},
           "fast": {k: round(v, 2) for k, v in acc["fast"].items()},
           "robust_acc": {lay: round(cat[lay]["robust"].float().mean().item(), 4) for lay in cat},
           "outcomes_differ": differ,
           "speedup_cpu": round(acc["eager"]["cpu_s"] / acc["fast"]["cpu_s"], 3),
           "speedup_wall": round(acc["eager"]["wall_s"] / acc["fast"]["wall_s"], 3),
           "pass_ms_per_image": {lay or "eager": {k: round(v, 4) for k, v in d.items()} for lay, d in t_pass.items()}}
    for lay, key in (("eager", None), ("fast", layout)):
        a = acc[lay]
        predicted = mix_cost(t_pass[key], a["n_forward"], a["n_backward"]) / 1000
        res[lay]["passes_x_per_pass_s"] = round(predicted, 2)
        res[lay]["cpu_vs_passes"] = round(a["cpu_s"] / predicted, 3)
        res[lay]["wall_vs_passes"] = round(a["wall_s"] / predicted, 3)
    return res


def _row_threads(r: dict) -> int:
    m = re.search(r"x(\d+)threads$", r.get("device") or "")
    return int(m.group(1)) if m else 1


def board_cost(rows_path, batch: int) -> dict:
    """CPU-hours of the published board's rows, eager and fast, at the rows' n and at n=10,000.

    Model compute = the row's own pass counts × this machine's per-pass CPU time (batch ``batch``, 1 thread).
    Recorded = the row's wall seconds × its threads (what it took, on a shared machine). The fast path saves
    model compute only, so a row's fast estimate is its recorded cost minus the compute saved; both scale
    linearly with n (per-example cascades)."""
    from symbench.bench.run import fastpath
    from symbench.models import create_model

    rows = [json.loads(line) for line in Path(rows_path).read_text().splitlines() if line.strip()]
    seen, todo = set(), []
    for r in rows:  # a row published twice was computed once
        key = (r["model"], r.get("suite_id"), r.get("threat"), r.get("eps"), r.get("variant"), r.get("store_key"), r["n"])
        if key not in seen and r.get("n_forward") is not None:
            seen.add(key)
            todo.append(r)
    times, layouts = {}, {}
    for name in sorted({r["model"] for r in todo}):
        model = create_model(name, pretrained=True).eval()
        with _fast(True):
            layouts[name] = fastpath.layout_for(model)
        defended = "+" in name  # ~30 base passes per forward: a small batch is enough
        t = pass_times(model, (None, layouts[name]) if layouts[name] else (None,), 16 if defended else batch,
                       reps=1 if defended else 3)
        times[name] = {"eager": t[None], "fast": t[layouts[name]]}

    def cost(r: dict) -> dict:
        """Hours of one row at its n: model compute eager/fast, recorded, and the fast estimate."""
        eager, fast = (mix_cost(times[r["model"]][lay], r["n_forward"], r["n_backward"]) / 3.6e6
                       for lay in ("eager", "fast"))
        recorded = (r.get("wall_seconds") or 0) * _row_threads(r) / 3600
        return {"compute_eager": eager, "compute_fast": fast, "eager": recorded, "fast": recorded - (eager - fast)}

    keys = ("compute_eager", "compute_fast", "eager", "fast")
    total = dict.fromkeys([*keys, *(f"{k}_10k" for k in keys)], 0.0)
    per_suite = defaultdict(lambda: dict.fromkeys(total, 0.0))
    for r in todo:
        c, scale = cost(r), FULL_N / r["n"]
        for k in keys:
            for d in (total, per_suite[r["suite"]]):
                d[k] += c[k]
                d[f"{k}_10k"] += c[k] * scale
    pgd7 = {}
    for name in PGD7:
        found = [r for r in todo if r["model"] == name and r["suite"] == "standard" and r["threat"] == "linf"]
        if found:
            r = max(found, key=lambda r: r["n"])
            c, scale = cost(r), FULL_N / r["n"]
            pgd7[name] = {"from_n": r["n"], "layout": layouts[name] or "eager",
                          **{k: round(v * scale, 2) for k, v in c.items()}}
    pgd7_total = {k: round(sum(v[k] for v in pgd7.values()), 1) for k in keys}
    return {"rows": len(todo), "batch": batch,
            "hours": {k: round(v, 3) for k, v in total.items()},
            "per_suite_hours": {s: {k: round(v, 3) for k, v in d.items()} for s, d in sorted(per_suite.items())},
            "pgd7_standard_linf_10k_hours": pgd7, "pgd7_total_hours": pgd7_total,
            "layouts": {k: v or "eager" for k, v in layouts.items()},
            "ms_per_image": {k: {lay: {kk: round(vv, 4) for kk, vv in d.items()} for lay, d in v.items()}
                             for k, v in times.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: the published rows' setting)")
    p.add_argument("--n", type=int, default=500, help="examples for the 10-layer model's side-by-side suite run "
                   "(default 500: one batch, as the n=10,000 shards run; ~25 CPU-minutes, --n 64 for a quick look)")
    p.add_argument("--n-small", type=int, default=64, help="examples for the 4-layer model's run")
    p.add_argument("--chunks", type=int, default=1, help="chunks per model, eager/fast in ABBA order (each chunk "
                   "one batch: small batches measure per-call overhead, not the passes)")
    p.add_argument("--batch", type=int, default=128, help="batch of the per-pass timings")
    p.add_argument("--skip-suite", action="store_true")
    p.add_argument("--skip-board", action="store_true")
    p.add_argument("--families", action="store_true", help="also time every layout for one model per family")
    p.add_argument("--rows", help="rows file for the board estimate (default: the published leaderboard)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile on top of the fast path "
                                                          "(minutes: it compiles once per new batch size)")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    for noisy in ("art", "auto-attack"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)

    from symbench.bench.data import load_cifar10
    from symbench.paths import default_data_dir, published_rows

    result = {"kind": "fastpath", "threads": args.threads, "torch": torch.__version__,
              "machine": f"{platform.machine()} {os.cpu_count()} cores", "load_avg_1min": round(os.getloadavg()[0], 2),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(f"times are CPU time on {args.threads} thread(s); the machine's 1-min load is {os.getloadavg()[0]:.1f}: "
          "only ratios measured side by side in this run mean anything")
    if args.families:
        names = ("baseline_cnn4", "baseline_cnn10_pgdat", "cascaded10_pgdat", "parallel_rot10_pgdat",
                 "parallel_rotscale4", "weighted_rotscale4", "equivariant4", "equivariant10_pgdat")
        result["families"] = family_table(names, args.batch)
        print(f"\nper-pass CPU ms/image, batch {args.batch} (fwd / fwd+bwd); the standard suite's AT mix "
              f"({STANDARD_AT_MIX[1] / STANDARD_AT_MIX[0]:.0%} of forwards also backward) decides:")
        for f in result["families"]:
            cells = "  ".join(f"{k} {v['fwd']:.3f}/{v['fwd_bwd']:.3f}" for k, v in f["ms_per_image"].items())
            flag = "" if f["best_for_standard_mix"] == f["chosen"] else f"  (measured best here: {f['best_for_standard_mix']})"
            print(f"  {f['model']:22s} {cells}  -> {f['chosen']} {f['chosen_speedup_standard_mix']:.2f}x{flag}")
    if args.compile:
        c = result["compile"] = compile_cost("baseline_cnn10_pgdat")
        print(f"\ntorch.compile on top of the fast path ({c['layout']}), baseline_cnn10_pgdat:")
        for bs, r in c["batches"].items():
            print(f"  batch {bs}: compiling took {r['fwd_first_call_wall_s']:.0f} s (forward) + "
                  f"{r['fwd_bwd_first_call_wall_s']:.0f} s (backward) wall; ms/image fwd {r['fwd_ms_per_image']}, "
                  f"fwd+bwd {r['fwd_bwd_ms_per_image']}")
    if not args.skip_suite:
        data = load_cifar10("test", args.data_dir or default_data_dir(), n=max(args.n, args.n_small))
        result["standard_suite"] = []
        for name, n in zip(SUITE_MODELS, (args.n_small, args.n)):
            r = suite_side_by_side(name, data, n, args.chunks)
            result["standard_suite"].append(r)
            e, f = r["eager"], r["fast"]
            order = f"{args.chunks} chunks of {r['batch']}, ABBA" if args.chunks > 1 else "one batch, eager then fast"
            print(f"\nstandard suite (Linf 8/255), {name}, n={n} ({order}), layout {r['layout'] or 'eager'}:")
            print(f"  eager {e['cpu_s']:.1f} s CPU ({e['wall_s']:.1f} s wall), fast {f['cpu_s']:.1f} s CPU "
                  f"({f['wall_s']:.1f} s wall): fast path {r['speedup_cpu']:.2f}x eager (CPU), {r['speedup_wall']:.2f}x (wall)")
            print(f"  robust acc eager {r['robust_acc']['eager']:.3f}, fast {r['robust_acc']['fast']:.3f}; "
                  f"per-example outcomes that differ: {r['outcomes_differ']}")
            for lay in ("eager", "fast"):
                a = r[lay]
                print(f"  {lay}: {int(a['n_forward'])} forwards, {int(a['n_backward'])} backwards x per-pass time = "
                      f"{a['passes_x_per_pass_s']:.1f} s; CPU / that = {a['cpu_vs_passes']:.2f}, wall / that = "
                      f"{a['wall_vs_passes']:.2f}")
        ref = result["standard_suite"][-1]
        ok = ref["speedup_cpu"] >= TARGET
        print(f"\n{ref['model']}: fast path {ref['speedup_cpu']:.2f}x eager on the standard suite "
              f"(target >= {TARGET}x: {'met' if ok else 'NOT met'})")
    if not args.skip_board:
        b = board_cost(args.rows or published_rows(), args.batch)
        result["board"] = b
        h = b["hours"]
        print(f"\npublished board: {b['rows']} distinct rows. CPU-hours = each row's recorded wall x threads; fast = "
              f"that minus the model compute the fast path saves (its pass counts x per-pass CPU time, batch "
              f"{b['batch']}); the checks' cost is not in the rows' counts:")
        print(f"  at the suites' n: eager {h['eager']:.1f} h, fast {h['fast']:.1f} h   (model compute "
              f"{h['compute_eager']:.1f} h -> {h['compute_fast']:.1f} h)")
        print(f"  at n={FULL_N:,}:    eager {h['eager_10k']:.0f} h, fast {h['fast_10k']:.0f} h   (model compute "
              f"{h['compute_eager_10k']:.0f} h -> {h['compute_fast_10k']:.0f} h)")
        for s, d in b["per_suite_hours"].items():
            print(f"    {s:14s} eager {d['eager']:6.2f} h, fast {d['fast']:6.2f} h   at n={FULL_N:,}: "
                  f"eager {d['eager_10k']:7.1f} h, fast {d['fast_10k']:7.1f} h")
        print(f"  the five PGD-7 models, standard Linf 8/255 at n={FULL_N:,}:")
        for name, d in b["pgd7_standard_linf_10k_hours"].items():
            print(f"    {name:28s} eager {d['eager']:5.1f} h, fast {d['fast']:5.1f} h   (model compute "
                  f"{d['compute_eager']:.1f} -> {d['compute_fast']:.1f} h; {d['layout']}; scaled from n={d['from_n']})")
        t = b["pgd7_total_hours"]
        print(f"    {'total':28s} eager {t['eager']:5.1f} h, fast {t['fast']:5.1f} h   (2 shards at a time on 2 "
              f"cores: {t['eager'] / 2:.1f} h vs {t['fast'] / 2:.1f} h of wall)")
    if not args.no_save:
        with open(RESULTS, "a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
