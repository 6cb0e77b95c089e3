#!/usr/bin/env bash
# One background lane of issue 27's n=10,000 standard Linf runs: claims the next shard no lane holds,
# computes it into $SYMBENCH_HOME/store, repeats. Start two (2 cores), one thread each:
#   nohup tools/full10k.sh > $WORK/laneA.log 2>&1 &     (and laneB)
# Resumable: a shard whose batch is stored is found, not recomputed; an interrupted one resumes at its attack.
set -u
cd "$(dirname "$0")/.."
WORK=${WORK:-/work/logs/full10k}
export SYMBENCH_HOME=${SYMBENCH_HOME:-/work/symhome}
export OMP_NUM_THREADS=1
K=20
MODELS=${MODELS:-$(cat runs/full10k/models)}   # in this order
mkdir -p "$WORK/locks" "$WORK/done"
for m in $MODELS; do
  for i in $(seq 0 $((K-1))); do
    tag="$m.$i"
    [ -e "$WORK/done/$tag" ] && continue
    mkdir "$WORK/locks/$tag" 2>/dev/null || continue
    echo "$(date -u +%FT%TZ) start $tag"
    if nice -n 5 .venv/bin/python -m symbench bench --model "$m" --suite standard --n 10000 --eps linf=8/255 \
         --fast --threads 1 --shard "$i/$K" --no-progress > "$WORK/$tag.log" 2>&1; then
      touch "$WORK/done/$tag"; echo "$(date -u +%FT%TZ) done $tag"
      tools/full10k_snapshot.sh > /dev/null 2>&1 || echo "snapshot failed"   # runs/full10k/store.jsonl.gz, to commit
    else
      echo "$(date -u +%FT%TZ) FAILED $tag (see $WORK/$tag.log)"
    fi
    rmdir "$WORK/locks/$tag"
  done
done
echo "$(date -u +%FT%TZ) lane finished"
