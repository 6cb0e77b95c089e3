#!/usr/bin/env bash
# Start of a session on a new machine: import the carried shards (re-signed with this machine's key),
# then start two background lanes (tools/full10k.sh), one thread each; a lane that finishes its shards goes on
# to half of the outcomes backfill (tools/outcomes_lane.sh), so the two cores stay busy.
set -eu
cd "$(dirname "$0")/.."
export SYMBENCH_HOME=${SYMBENCH_HOME:-/work/symhome}
WORK=${WORK:-/work/logs/full10k}
mkdir -p "$WORK"
make -s venv   # a new machine has no .venv (about 2 minutes)
# a refused record (exit 1) is kept out and recomputed by the lanes; it must not stop them from starting
if [ -f runs/full10k/store.jsonl.gz ]; then
  .venv/bin/python -m symbench store import runs/full10k/store.jsonl.gz || [ $? = 1 ]
fi
rm -rf "$WORK/locks"
nohup sh -c 'tools/full10k.sh; tools/outcomes_lane.sh 0/2' > "$WORK/../laneA.log" 2>&1 &
sleep 20
nohup sh -c 'tools/full10k.sh; tools/outcomes_lane.sh 1/2' > "$WORK/../laneB.log" 2>&1 &
echo "lanes started; progress: .venv/bin/python tools/full10k_status.py"
