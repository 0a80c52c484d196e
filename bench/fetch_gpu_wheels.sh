#!/usr/bin/env bash
# Downloads the wheels of bench/gpu_wheels.txt for the GPU machine (CPython 3.12, linux
# x86_64) into .gpu-wheels/ (ignored by git; carry it to the machine with the working
# tree), builds the source-only ones into wheels, and prints the total size.
#   bash bench/fetch_gpu_wheels.sh [DEST]        PY_VERSION=3.11 for another Python
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.gpu-wheels}
PYTHON=${PYTHON:-python3}
PY_VERSION=${PY_VERSION:-3.12}
ABI=cp${PY_VERSION/./}
# Carried paths and the working tree travel together under 64 MiB; the tree is ~2 MiB.
LIMIT_MB=${LIMIT_MB:-48}

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
mapfile -t wanted < <(sed 's/#.*//' bench/gpu_wheels.txt | awk NF)
for req in "${wanted[@]}"; do
  if ! "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$DEST" \
      --python-version "$PY_VERSION" --implementation cp --abi "$ABI" --abi abi3 --abi none \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      "$req" 2>/dev/null; then
    # Published as source only (antlr4-python3-runtime 4.9.3): pure Python, so the wheel built here is py3-none-any.
    "$PYTHON" -m pip wheel -q --no-deps -w "$DEST" "$req"
  fi
done
for whl in "$DEST"/*.whl; do
  case "$whl" in
    *-none-any.whl|*-"$ABI"-*.whl|*-abi3-*.whl) ;;
    *) echo "fetch_gpu_wheels: $whl does not install on CPython $PY_VERSION" >&2; exit 1 ;;
  esac
done
count=$(ls "$DEST"/*.whl | wc -l)
if [ "$count" -ne "${#wanted[@]}" ]; then
  echo "fetch_gpu_wheels: $count wheels for ${#wanted[@]} requirements in bench/gpu_wheels.txt" >&2
  exit 1
fi
total_kb=$(du -sk "$DEST" | cut -f1)
ls -l "$DEST"
echo "$count wheels, $((total_kb / 1024)).$(( (total_kb % 1024) * 10 / 1024 )) MiB in $DEST"
if [ "$total_kb" -gt $((LIMIT_MB * 1024)) ]; then
  echo "fetch_gpu_wheels: over ${LIMIT_MB} MiB; the tree plus carried paths must stay under 64 MiB" >&2
  exit 1
fi
