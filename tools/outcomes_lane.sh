#!/usr/bin/env bash
# One background lane of the outcomes backfill (docs/outcomes.md): recompute, one thread, the runs of slice
# I/K whose published rows have no published outcomes, and publish each run's outcomes into
# leaderboard/v1/outcomes.jsonl as it finishes (its row's numbers must agree). Resumable: a run stored in
# $SYMBENCH_HOME/store is found, not recomputed. Each published run also leaves the pending list at once, so
# leaderboard/v1/outcomes.jsonl and outcomes_pending.jsonl can be committed together at any moment.
#   nohup tools/outcomes_lane.sh 0/2 > $WORK/../outA.log 2>&1 &     (and 1/2)
set -u
cd "$(dirname "$0")/.."
export SYMBENCH_HOME=${SYMBENCH_HOME:-/work/symhome} OMP_NUM_THREADS=1
echo "$(date -u +%FT%TZ) outcomes backfill ${1:?usage: outcomes_lane.sh I/K}"
nice -n 5 .venv/bin/python -m symbench leaderboard outcomes --recompute --jobs "$1" --threads 1 --no-progress
echo "$(date -u +%FT%TZ) outcomes lane $1 finished (rc $?)"
