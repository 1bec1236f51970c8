#!/usr/bin/env bash
# Run latency_tests/gpu_check.py on a GPU machine without network access.
#
#   latency_tests/gpu_check.sh PARTS_DIR [OUT_DIR]
#
# PARTS_DIR holds the onnxruntime-gpu wheel, whole (*.whl) or split with `split -b 50M` into
# pieces named <wheel file name>.part-aa, .part-ab, ... (the device tool carries at most 64 MiB per
# call; see docs/performance.md, "GPU check"). The pieces are joined, the wheel is installed with
# `pip install --no-deps --target` into a folder beside them (never into the system Python), and the
# check runs with that folder first on sys.path. OUT_DIR (default: $OUT, else ./gpu-check-out)
# receives gpu_check.json and gpu_check.md. Extra arguments after OUT_DIR go to gpu_check.py.
set -euo pipefail
parts=${1:?usage: gpu_check.sh PARTS_DIR [OUT_DIR] [gpu_check.py options]}
out=${2:-${OUT:-gpu-check-out}}
shift $(( $# >= 2 ? 2 : 1 ))
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
target="$parts/site"
if [ ! -d "$target/onnxruntime" ]; then
  wheel=$(ls "$parts"/onnxruntime*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    first=$(ls "$parts"/onnxruntime*.whl.part-aa 2>/dev/null | head -n 1 || true)
    [ -n "$first" ] || { echo "no onnxruntime*.whl or onnxruntime*.whl.part-aa in $parts" >&2; exit 2; }
    wheel=${first%.part-aa}
    cat "$wheel".part-* > "$wheel"
  fi
  "$python" -m pip install --quiet --no-deps --no-index --target "$target" "$wheel"
fi
# PyNvVideoCodec (--decode nvdec), if its wheel was carried too: 27 MB, one piece
nvc=$(ls "$parts"/pynvvideocodec-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$nvc" ] && [ ! -d "$target/PyNvVideoCodec" ]; then
  "$python" -m pip install --quiet --no-deps --no-index --target "$target" "$nvc"
fi
exec "$python" "$here/gpu_check.py" --ort-path "$target" --out "$out" "$@"
