#!/usr/bin/env bash
# Once every model has 20 of 20 batches (tools/full10k_status.py): merge each into its row (validity checks
# run here), publish the five rows together with their outcomes, regenerate the findings (they pair at the
# largest n two rows share, so at 10,000), rebuild the pages, validate. Publish all five at once: the Linf
# board ranks at the largest n at least two models share, so one model at 10k would leave the ranking.
set -eu
cd "$(dirname "$0")/.."
export SYMBENCH_HOME=${SYMBENCH_HOME:-/work/symhome} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
MODELS=$(cat runs/full10k/models)
for m in $MODELS; do
  .venv/bin/python -m symbench bench --model "$m" --suite standard --n 10000 --eps linf=8/255 --fast --no-progress \
    --format json > /dev/null
done
rows=$(mktemp --suffix=.jsonl)
.venv/bin/python - "$rows" $MODELS <<'PY'
import json, sys
from symbench.bench.run.records import read_rows
from symbench.paths import user_rows
out, models = sys.argv[1], sys.argv[2:]
best = {}
for r in read_rows(user_rows()):
    if r["model"] in models and r["suite"] == "standard" and r["threat"] == "linf" and r["n"] == 10000:
        if r["model"] not in best or r["created"] > best[r["model"]]["created"]:
            best[r["model"]] = r
missing = sorted(set(models) - set(best))
if missing:
    sys.exit(f"no n=10000 row for {missing}")
with open(out, "w") as f:
    f.writelines(json.dumps(best[m]) + "\n" for m in models)
for m in models:
    r = best[m]
    print(f"{m:30s} clean {r['clean_acc']:.4f} robust {r['robust_acc']:.4f} verdict {r.get('verdict')}")
PY
# a pair whose outcomes this store lacks would silently leave the findings: refuse before anything is published
.venv/bin/python -m symbench leaderboard findings --strict --rows leaderboard/v1/rows.jsonl "$rows" \
  --store "$SYMBENCH_HOME/store" > /dev/null
.venv/bin/python -m symbench leaderboard add "$rows" --store "$SYMBENCH_HOME/store"
.venv/bin/python -m symbench leaderboard findings --strict --rows leaderboard/v1/rows.jsonl --store "$SYMBENCH_HOME/store" \
  --out leaderboard/v1/findings.json --readme README.md > /dev/null
SYMBENCH_HOME=$(mktemp -d) .venv/bin/python -m symbench leaderboard build --publish --screenshot
.venv/bin/python -m symbench leaderboard validate
.venv/bin/python -m symbench leaderboard verify --model '*_pgdat' --suite standard --sample 16 || true
echo "now: git diff --stat leaderboard README.md; tools/full10k_prefix.py; commit"
