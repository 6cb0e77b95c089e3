#!/usr/bin/env bash
# Carry issue 27's n=10,000 shards to the next machine: export the five models' runs from the store into
# runs/full10k/store.jsonl.gz (commit it). The next session imports it: tools/full10k_resume.sh.
set -eu
cd "$(dirname "$0")/.."
exec 9>/tmp/full10k_snapshot.lock; flock 9   # one snapshot at a time (the lanes call it after each shard)
export SYMBENCH_HOME=${SYMBENCH_HOME:-/work/symhome}
tmp=$(mktemp -d)
for m in baseline_cnn10_narrow_pgdat equivariant10_pgdat baseline_cnn10_pgdat cascaded10_pgdat parallel_rot10_pgdat; do
  [ -d "$SYMBENCH_HOME/store/$m" ] || continue
  .venv/bin/python -m symbench store export "$tmp/$m.jsonl.gz" --model "$m"
done
# one file: keep only the 10k runs' lines (meta n=10000) of each export, header once
.venv/bin/python - "$tmp" runs/full10k/store.jsonl.gz <<'PY'
import gzip, json, sys, pathlib
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
keep, lines = set(), []
for f in sorted(src.glob("*.jsonl.gz")):
    for i, line in enumerate(gzip.open(f, "rt")):
        it = json.loads(line)
        if i == 0:
            lines = lines or [line.rstrip("\n")]
        elif "meta" in it:
            if it["meta"].get("n") == 10000:
                keep.add((it["model_dir"], it["key"])); lines.append(line.rstrip("\n"))
        elif (it["model_dir"], it["key"]) in keep:
            lines.append(line.rstrip("\n"))
import os, tempfile
fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".store.", suffix=".tmp"); os.close(fd); tmp = pathlib.Path(tmp)
tmp.chmod(0o644)
with gzip.GzipFile(tmp, "wb", mtime=0) as g:
    g.write(("\n".join(lines) + "\n").encode())
tmp.replace(out)
print(f"{out}: {len(keep)} run(s), {len(lines) - 1 - len(keep)} record(s), {out.stat().st_size} bytes")
PY
rm -rf "$tmp"
