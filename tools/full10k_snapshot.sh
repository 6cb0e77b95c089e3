#!/usr/bin/env bash
# Carry issue 27's n=10,000 shards to the next machine: export the runs of runs/full10k/models from the
# store (it holds only these runs) into runs/full10k/store.jsonl.gz; commit it. tools/full10k_resume.sh
# imports it on the next machine.
set -eu
cd "$(dirname "$0")/.."
exec 9>/tmp/full10k_snapshot.lock; flock 9   # one snapshot at a time (the lanes call it after each shard)
export SYMBENCH_HOME=${SYMBENCH_HOME:-/work/symhome}
.venv/bin/python -m symbench store export runs/full10k/store.jsonl.gz --model $(cat runs/full10k/models)
