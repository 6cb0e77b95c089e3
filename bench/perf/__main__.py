"""``make perf``: harness overhead and suite cost, as ratios measured side by side in one run.

Prints (and appends to ``bench/perf/results.jsonl`` with the machine described):
- images/s of PGD-10 through the harness (``ta_pgd``, ``art_pgd``) vs a plain torch PGD loop vs
  ART and torchattacks called directly, on the same model, batch and threads;
- the ``standard`` suite run by our runner (cascade + store + checks off) vs AutoAttack-standard
  alone on the same examples;
- ``make bench MODEL=cascaded`` as a user runs it (a fresh process, an empty store, the quick suite with
  its checks): wall seconds and peak RSS, each against its budget;
- peak RSS of this process.
Targets (issue 4/9): harness PGD >= 0.9x the plain loop; standard suite <= 1.1x AutoAttack alone;
``make bench MODEL=cascaded`` <= 300 s and <= 2 GB peak RSS on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).parent / "results.jsonl"
BENCH_BUDGET_S, BENCH_BUDGET_MB = 300.0, 2048.0  # issue 9: `make bench MODEL=cascaded` on 2 CPU cores


def make_bench_cost(data_dir: str | None, device: str | None, threads: int) -> dict:
    """Run what ``make bench MODEL=cascaded`` runs in a child process, on an empty store, rows discarded.

    Returns wall seconds and the child's peak RSS (``RUSAGE_CHILDREN``: the largest child waited for, so
    this must be the first child this process starts), each also as a fraction of its budget.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "bench", "bench", "--model", "cascaded", "--suite", "quick",
               "--store", str(Path(tmp) / "store"), "--out", "", "--no-progress", "--threads", str(threads)]
        cmd += ["--data-dir", data_dir] if data_dir else []
        cmd += ["--device", device] if device else []
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(rss_mb),
            "seconds_vs_budget": round(seconds / BENCH_BUDGET_S, 3), "rss_vs_budget": round(rss_mb / BENCH_BUDGET_MB, 3)}


def plain_pgd(model, x, y, eps, steps, alpha):
    """The reference: a hand-written Linf PGD loop with random start."""
    delta = (torch.rand_like(x) * 2 - 1) * eps
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
        g, = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1)


def _sync():
    if torch.cuda.is_available():  # CUDA kernels are asynchronous: time the work, not the launches
        torch.cuda.synchronize()


def timed(fn, repeat=3):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cascaded4")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--n-suite", type=int, default=64)
    p.add_argument("--data-dir")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", help="cpu / cuda (default: cuda if available)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--skip-make-bench", action="store_true", help="do not time `make bench MODEL=cascaded`")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    for noisy in ("art", "auto-attack"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)

    from symbench.bench.attacks import create_attack
    from symbench.bench.run.evaluate import default_device
    from symbench.bench.data import DataNotFoundError, load_cifar10, synthetic
    from symbench.bench.run.records import device_string
    from symbench.models import create_model

    device = default_device(args.device)
    make_bench = None if args.skip_make_bench else make_bench_cost(args.data_dir, args.device, args.threads)

    try:
        model = create_model(args.model, pretrained=True)
    except Exception:  # untrained still measures overhead
        model = create_model(args.model)
    model = model.to(device).eval()
    try:
        data = load_cifar10("test", args.data_dir, n=max(args.batch, args.n_suite))
    except DataNotFoundError:
        data = synthetic(max(args.batch, args.n_suite), size=32)
    x, y = data.x[:args.batch].to(device), data.y[:args.batch].to(device)
    eps, steps = 8 / 255, 10
    alpha = 2.5 * eps / steps

    import torchattacks
    from art.attacks.evasion import ProjectedGradientDescent

    from symbench.bench.attacks.art_adapter import art_classifier

    def art_direct():
        clf = art_classifier(model, x, 10)
        ProjectedGradientDescent(clf, eps=eps, eps_step=alpha, max_iter=steps, num_random_init=1,
                                 batch_size=args.batch, verbose=False).generate(x.cpu().numpy(), y=y.cpu().numpy())

    t = {
        "plain_loop": timed(lambda: plain_pgd(model, x, y, eps, steps, alpha)),
        "torchattacks_direct": timed(lambda: torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps)(x, y)),
        "harness_ta_pgd": timed(lambda: create_attack("ta_pgd", steps=steps)(model, x, y, eps)),
        "art_direct": timed(art_direct),
        "harness_art_pgd": timed(lambda: create_attack("art_pgd", steps=steps, batch_size=args.batch)(model, x, y, eps)),
    }
    model.eval()
    ips = {k: args.batch / v for k, v in t.items()}

    # standard suite (Linf 8/255) through our runner vs AutoAttack-standard alone, same examples
    from pyautoattack import AutoAttack

    from dataclasses import replace

    from symbench.bench.data import ImageData
    from symbench.bench.run.runner import run_suite
    from symbench.bench.suites import load_suite

    sub = ImageData(data.x[:args.n_suite], data.y[:args.n_suite], data.source, data.sha256 + f":{args.n_suite}")
    t0 = time.perf_counter()
    AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=0, device=device).run_standard_evaluation(
        sub.x.to(device), sub.y.to(device), batch_size=args.n_suite)
    t_aa = time.perf_counter() - t0
    suite = load_suite("standard")
    suite = replace(suite, threats=tuple(t for t in suite.threats if t.norm == "linf"), batch_size=args.n_suite)
    with tempfile.TemporaryDirectory() as tmp:  # cascade + per-batch store, checks off
        t0 = time.perf_counter()
        run_suite(model, suite, sub, model_name=args.model, store_root=tmp, device=device, progress=False)
        t_suite = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu_peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None

    ratios = {
        "harness_ta_pgd_vs_plain": ips["harness_ta_pgd"] / ips["plain_loop"],
        "harness_art_pgd_vs_plain": ips["harness_art_pgd"] / ips["plain_loop"],
        "harness_art_pgd_vs_art_direct": ips["harness_art_pgd"] / ips["art_direct"],
        "torchattacks_vs_plain": ips["torchattacks_direct"] / ips["plain_loop"],
        "standard_suite_linf_vs_autoattack_alone": t_suite / t_aa,
    }
    result = {"model": args.model, "batch": args.batch, "steps": steps, "threads": args.threads,
              "images_per_s": {k: round(v, 1) for k, v in ips.items()},
              "standard_suite_linf_seconds": round(t_suite, 2), "autoattack_standard_linf_seconds": round(t_aa, 2),
              "n_suite": args.n_suite, "ratios": {k: round(v, 3) for k, v in ratios.items()},
              "peak_rss_mb": round(peak_mb), "torch": torch.__version__,
              **({"make_bench_cascaded": make_bench} if make_bench else {}),
              **({"peak_gpu_mb": round(gpu_peak_mb)} if gpu_peak_mb is not None else {}),
              "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
              "device": device_string(device), "load_avg_1min": round(os.getloadavg()[0], 2),  # other work on the box skews absolutes
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(f"PGD-{steps}, batch {args.batch}, {args.threads} threads, model {args.model}: images/s")
    for k, v in ips.items():
        print(f"  {k:22s} {v:8.1f}")
    print("ratios (target: harness >= 0.9x plain loop; suite <= 1.1x AutoAttack alone):")
    for k, v in ratios.items():
        print(f"  {k:48s} {v:.3f}")
    print(f"  standard suite (Linf) {t_suite:.1f}s vs AutoAttack-standard alone {t_aa:.1f}s on {args.n_suite} images")
    if make_bench:
        print(f"make bench MODEL=cascaded (quick suite, empty store, {args.threads} threads): "
              f"{make_bench['seconds']:.0f} s = {make_bench['seconds_vs_budget']:.2f}x the {BENCH_BUDGET_S:.0f} s budget, "
              f"peak RSS {make_bench['peak_rss_mb']} MB = {make_bench['rss_vs_budget']:.2f}x the {BENCH_BUDGET_MB:.0f} MB budget")
    print(f"peak RSS {peak_mb:.0f} MB" + (f", peak GPU memory {gpu_peak_mb:.0f} MB" if gpu_peak_mb else ""))
    if not args.no_save:
        with open(RESULTS, "a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
