"""Does the fast n=10,000 run reproduce the published n=1000 row example by example?

Examples 0..999 are batches 0 and 1 of both runs (batch size 500, same per-batch seeds), so each stored
10k batch is compared with the published outcome masks of the model's `standard` Linf 8/255 n=1000 row
(clean bit, robust bit). Prints, per model, how many of the compared examples differ; for a row whose
outcomes were never published (outcomes_pending.jsonl) it compares the clean and robust counts instead.

    .venv/bin/python tools/full10k_prefix.py [STORE]      (default: $SYMBENCH_HOME/store)
"""
import json
import signal
import sys
from pathlib import Path

from symbench.bench.run.records import read_rows
from symbench.bench.run.store import Store
from symbench.leaderboard.outcomes import load_index
from symbench.paths import published_rows, user_store

signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # `| head` ends quietly, like any Unix filter
MODELS = (Path(__file__).resolve().parents[1] / "runs" / "full10k" / "models").read_text().split()
GROUP = "linf_0.03137255"
root = Path(sys.argv[1]) if len(sys.argv) > 1 else user_store()
index = load_index()
rows = [r for r in read_rows(published_rows()) if r["suite"] == "standard" and r["threat"] == "linf"
        and r["n"] == 1000 and abs(r["eps"] - 8 / 255) < 1e-9]
for m in MODELS:
    row = max((r for r in rows if r["model"] == m), key=lambda r: r["created"], default=None)
    published = index.get(row) if row else None
    runs = [p.parent for p in sorted((root / m).glob("*/meta.json")) if json.loads(p.read_text()).get("n") == 10000]
    if row is None or not runs:
        print(f"{m:30s} {'no published n=1000 row' if row is None else f'no 10k run stored in {root}'}")
        continue
    store = Store(root, m, runs[-1].name)
    if published is None:  # a row from before outcomes were published (outcomes_pending.jsonl): its counts only
        got = [(store.get("clean", b), store.get(GROUP, b)) for b in (0, 1)]
        if any(c is None or a is None for c, a in got):
            print(f"{m:30s} batches 0 and 1 not both stored yet (its n=1000 row has counts only, no outcomes)")
            continue
        clean = sum(sum(c["correct"]) for c, _ in got)
        robust = sum(sum(a["robust"]) for _, a in got)
        want = round(row["clean_acc"] * 1000), round(row["robust_acc"] * 1000)
        print(f"{m:30s} counts only (its n=1000 row's outcomes are pending): clean {clean} vs {want[0]} published, "
              f"robust {robust} vs {want[1]} published{'' if (clean, robust) == want else '  DIFFER'}")
        continue
    compared = differ = robust_10k = robust_pub = 0
    for b in (0, 1):
        crec, arec = store.get("clean", b), store.get(GROUP, b)
        if crec is None or arec is None:
            continue
        for j, (c, r) in enumerate(zip(crec["correct"], arec["robust"])):
            i = b * 500 + j
            compared += 1
            robust_10k += bool(r)
            robust_pub += published.robust[i]
            differ += bool(c) != published.clean[i] or bool(r) != published.robust[i]
    print(f"{m:30s} {differ} of {compared} compared examples differ (robust {robust_10k} in the 10k run, "
          f"{robust_pub} published)")
