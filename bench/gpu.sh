#!/usr/bin/env bash
# The GPU checks of the tweetnlp engine, in one go, for a machine with a GPU and no network.
#
#   bash bench/gpu.sh wheels        # here, with PyPI: the wheels the GPU machine lacks, in .whl/
#   bash bench/gpu.sh run [DEVICE]  # there: install them aside, then benchmarks and CUDA tests
#
# Such a machine has Python 3.12 with torch and transformers 5 but not tweetnlp, which needs
# transformers 4 (docs/nlp.md): `wheels` fetches the pinned versions of what the engine's path
# imports, for CPython 3.12 on x86-64 Linux (WHEEL_PYTHON to change it); `run` installs them into
# /tmp/site, first on the path, and writes its logs to $OUT (./bench/out without it). DEVICE is
# cuda by default; `run cpu` runs the same steps on a CPU, smaller, to check this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned as requirements.txt resolves them here (transformers 4, its tokenizers and hub), plus
# what tweetnlp and its preprocessing import, and the tweetnlp tests (duckdb for the warehouse
# test, tenacity for the CLI's), that such a machine lacks.
WHEELS=(
  transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2 tweetnlp==0.4.5
  urlextract==1.10.0 uritools==6.1.5 platformdirs==4.14.8 evaluate==0.4.6 datasets==5.0.1
  dill==0.4.1 multiprocess==0.70.19 duckdb==2.0.1 tenacity==9.1.2
)

wheels() {
  local python=${WHEEL_PYTHON:-3.12}
  rm -rf .whl && mkdir .whl
  python -m pip download -q --no-deps --only-binary=:all: --python-version "$python" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
  du -sh .whl
}

run() {
  local device=${1:-cuda} out=${OUT:-bench/out} failed=()
  mkdir -p "$out"
  rm -rf /tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  # tweetnlp imports ray.tune at import time, for training only; ray's wheel (~70 MB) is more
  # than such a machine can be sent, so an empty ray.tune stands in for it there
  mkdir -p /tmp/site/ray && touch /tmp/site/ray/__init__.py /tmp/site/ray/tune.py
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
  local sizes=()
  [ "$device" = cuda ] || sizes=(--posts 256 --baseline-posts 16)
  # each step logs to $out/NAME.log; a failed one does not stop the others
  step() {
    local name=$1; shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$out/$name.log" || failed+=("$name")
  }
  if [ "$device" = cuda ]; then
    step gpu nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  fi
  step tests python3 -m pytest -q -p no:cacheprovider tests/test_nlp_tweetnlp.py
  step nlp python3 -m bench.nlp --device "$device" "${sizes[@]}" --profile
  # last, bounded, the engine's figure only matters: compiling can take minutes
  step nlp-compile timeout 300 python3 -m bench.nlp --device "$device" --compile \
    --posts "${COMPILE_POSTS:-100000}" --baseline-posts 8
  echo "failed: ${failed[*]:-none}"
  [ ${#failed[@]} -eq 0 ]
}

case "${1:-}" in
  wheels) wheels ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash bench/gpu.sh wheels | run [cuda|cpu]" >&2; exit 2 ;;
esac
