#!/usr/bin/env bash
# The GPU check in one call: engine CUDA tests, a bf16 trainer and distillation step, and the benchmark against
# Liger-Kernel (ls_llm/bench/device_check.py says what and why). Runs from the checkout (no install), with the
# machine's own torch / transformers; packages the machine lacks travel as wheels in .whl/ (`make device-wheels`
# here, then carry .whl). On a machine without CUDA the CUDA parts are skipped, so CI checks that it starts.
#
#   bash scripts/device_check.sh [--out DIR] [--tokens 8192 16384] [--skip-bench]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-python3}
WHEELS=${DEVICE_WHEELS_DIR:-$ROOT/.whl}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  SITE=$(mktemp -d)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
cd "$ROOT"
exec "$PY" -m ls_llm.bench.device_check "$@"
