#!/usr/bin/env bash
# Run a sweep on two cores: two shards of one torch thread each, then one report from every finished cell.
# Resumable: run it again and finished cells are skipped.   Usage: sweeps/run.sh [SWEEP.yaml] [SHARDS]
set -euo pipefail
SWEEP=${1:-sweeps/paper_cpu.yaml}
SHARDS=${2:-2}
PY=${PY:-.venv/bin/python}
LOGS=outputs/sweeps/logs/$(basename "$SWEEP" .yaml)
mkdir -p "$LOGS"
pids=()
for ((i = 0; i < SHARDS; i++)); do
  OMP_NUM_THREADS=1 "$PY" -m ls_llm.cli sweep "$SWEEP" --shard "$i/$SHARDS" --threads 1 >"$LOGS/shard$i.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
"$PY" -m ls_llm.cli sweep "$SWEEP" --report
exit $status
