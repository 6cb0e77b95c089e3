"""``python -m symbench.bench.perf.gpu_check``: the first thing to run on a machine with a GPU.

The CUDA path of symbench was written and reviewed on CPU-only machines; this script shows, in one
run, whether it holds on a real GPU, and measures what the scale-out estimate (docs/scale-out.md)
had to assume:

1. the ``quick`` suite on one model, on the CPU and on CUDA, from empty stores: the same clean
   predictions, per-example robust masks that agree (float differences may flip a borderline
   example, nothing more), and the GPU speed-up S of the whole cascade;
2. one epoch of training on CUDA, into a temporary directory;
3. ``make perf``'s ratios on CUDA (appended to bench/perf/results.jsonl, device named).

Exits 2 with a message when no CUDA device is visible, 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger("symbench.gpu_check")


def _quick(model_name: str, device: str, store: str, n: int, data_dir: str | None):
    from symbench.bench.run.evaluate import bench

    t = time.perf_counter()
    rows = bench(model_name, "quick", n=n, data_dir=data_dir, store=store, device=device, out=None, progress=False)
    return rows, time.perf_counter() - t


def _records(store: str) -> dict:
    out = {}
    for f in sorted(Path(store).rglob("b*.json")):
        if f.parent.name in ("checks", "orbit"):
            continue
        rec = json.loads(f.read_text())
        out[f"{f.parent.name}/{f.name}"] = rec.get("robust", rec.get("correct"))
    return out


def compare_stores(cpu: dict, gpu: dict) -> tuple[int, int]:
    """(examples whose outcome differs, examples compared) over the records both stores hold."""
    differ = total = 0
    for key in cpu.keys() & gpu.keys():
        a, b = cpu[key], gpu[key]
        total += len(a)
        differ += sum(x != y for x, y in zip(a, b))
    return differ, total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cascaded4")
    p.add_argument("--n", type=int, default=500, help="examples for the CPU-vs-CUDA quick run")
    p.add_argument("--data-dir")
    p.add_argument("--max-differ", type=float, default=0.01, help="tolerated share of flipped outcomes")
    p.add_argument("--skip-perf", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--device", default="cuda", help="device under test (cpu only to smoke-test this script)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else dev
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        cpu_rows, t_cpu = _quick(args.model, "cpu", f"{tmp}/cpu", args.n, args.data_dir)
        gpu_rows, t_gpu = _quick(args.model, dev, f"{tmp}/gpu", args.n, args.data_dir)
        differ, total = compare_stores(_records(f"{tmp}/cpu"), _records(f"{tmp}/gpu"))
        clean_same = cpu_rows[0]["clean_acc"] == gpu_rows[0]["clean_acc"]
        print(f"quick suite on {args.model}, n={args.n}: CPU {t_cpu:.1f}s, {name} {t_gpu:.1f}s, "
              f"speed-up S = {t_cpu / t_gpu:.1f}x (torch threads on CPU: {torch.get_num_threads()})")
        print(f"  clean acc CPU {cpu_rows[0]['clean_acc']:.4f} / CUDA {gpu_rows[0]['clean_acc']:.4f}; robust acc "
              f"CPU {cpu_rows[0]['robust_acc']:.4f} / CUDA {gpu_rows[0]['robust_acc']:.4f}; "
              f"{differ} of {total} per-example outcomes differ")
        print(f"  checks on {name}: " + ", ".join(f"{k} {v['status']}" for k, v in gpu_rows[0]["checks"].items()))
        if not clean_same:
            failures.append("clean accuracy differs between CPU and CUDA")
        if total == 0 or differ > args.max_differ * total:
            failures.append(f"{differ}/{total} per-example outcomes differ (tolerance {args.max_differ:.0%})")
        if any(v["status"] == "warn" and "could not run" in v["detail"] for v in gpu_rows[0]["checks"].values()):
            failures.append("a validity check crashed on CUDA (see its detail)")

        if not args.skip_train:
            from symbench.bench.train import train

            t = time.perf_counter()
            card = train("baseline_cnn4", data_dir=args.data_dir, out_dir=Path(tmp) / "ckpt", resume=False,
                         state_root=Path(tmp) / "state", progress=False, device=dev, epochs=1)
            print(f"train baseline_cnn4, 1 epoch on {card['train_device']}: {time.perf_counter() - t:.1f}s, "
                  f"clean acc {card['clean_acc']:.4f}")
    if not args.skip_perf:
        from symbench.bench.perf.__main__ import main as perf

        perf(["--device", dev] + (["--data-dir", args.data_dir] if args.data_dir else []))
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
