#!/bin/bash
# Every (model, suite) that `leaderboard refresh --dry-run` lists as missing or stale becomes one shard
# array plus its dependent merge job.  Usage: STORE=/shared/store SHARDS=16 [N=200] examples/slurm/submit_all.sh
set -euo pipefail
: "${STORE:?set STORE to a path every node mounts}"
SHARDS=${SHARDS:-16}
here=$(dirname "$0")
.venv/bin/symbench leaderboard refresh --dry-run --store "$STORE" ${DATA_DIR:+--data-dir "$DATA_DIR"} ${N:+--n "$N"} --plain |
while read -r model suite; do
    array=$(sbatch --parsable --array=0-$((SHARDS - 1)) --export=ALL,MODEL="$model",SUITE="$suite" "$here/shard.sbatch")
    sbatch --dependency=afterany:"$array" --export=ALL,MODEL="$model",SUITE="$suite" "$here/merge.sbatch"
done
