#!/usr/bin/env bash
# The GPU check in one run (bench/gpu_check.py says what it runs). First installs the
# wheels carried in .gpu-wheels/ (bench/fetch_gpu_wheels.sh) into a folder of their own,
# for a machine that cannot download; grpo_lab comes from this checkout, not installed.
#   bash bench/gpu_check.sh [--out DIR]         on a machine with a CUDA GPU
#   bash bench/gpu_check.sh --cpu-dry-run       the same on CPU: tiny model, one step each
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-.gpu-wheels}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  site=${TMPDIR:-/tmp}/grpo-lab-gpu-site
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$WHEELS"/*.whl
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  echo "gpu_check: installed $(ls "$WHEELS"/*.whl | wc -l) carried wheels into $site"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
exec "$PYTHON" bench/gpu_check.py "$@"
