"""Issue 27's n=10,000 runs: batches stored per model (of 20), CPU-hours so far (sum of the records' seconds).

    .venv/bin/python tools/full10k_status.py [STORE]      (default: $SYMBENCH_HOME/store)
"""
import json
import os
import sys
from pathlib import Path

MODELS = (Path(__file__).resolve().parents[1] / "runs" / "full10k" / "models").read_text().split()
GROUP = "linf_0.03137255"
root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(os.environ.get("SYMBENCH_HOME", "~/.local/share/symbench"),
                                                                      "store")).expanduser()
total_s = 0.0
for m in MODELS:
    for run in sorted((root / m).glob("*/meta.json")):
        meta = json.loads(run.read_text())
        if meta.get("n") != 10000 or not str(meta.get("suite", "")).startswith("standard@"):
            continue
        done = sorted((run.parent / GROUP).glob("b*.json"))
        partial = sorted((run.parent / f"{GROUP}.partial").glob("b*.json"))
        secs = sum(json.loads(p.read_text()).get("seconds", 0.0) for p in [*done, *partial])
        secs += sum(json.loads(p.read_text()).get("seconds", 0.0) for p in (run.parent / "clean").glob("b*.json"))
        total_s += secs
        masks = [json.loads(p.read_text())["robust"] for p in done]
        robust, n = sum(map(sum, masks)), sum(map(len, masks))
        clean = sum(sum(json.loads((run.parent / "clean" / p.name).read_text())["correct"]) for p in done)
        acc = f"  clean {clean / n:.2%} robust {robust / n:.2%} of {n} (unchecked store records)" if n else ""
        print(f"{m:30s} {run.parent.name}  {len(done):2d}/{meta['batches']} batches"
              f"{f' (+{len(partial)} part-done)' if partial else ''}  {secs / 3600:5.2f} CPU-h{acc}")
print(f"{'total':30s} {'':16s}  {total_s / 3600:5.2f} CPU-h (records' wall seconds, 1 thread each)")
