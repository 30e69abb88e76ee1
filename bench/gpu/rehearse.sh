#!/usr/bin/env bash
# The GPU check's rehearsal on this machine (CI runs it): the bundle for this Python, installed with
# no package index into a fresh virtual environment that holds only torch and what the GPU machine's
# image has, then bench/gpu/run.sh --cpu (tiny sizes, the same code) to the end.
#
#   bench/gpu/rehearse.sh             # both steps, a few minutes; its summary lands in runs/gpu-kit/
#   bench/gpu/rehearse.sh prepare     # pack, the environment and the offline install (no Ray: CI runs it beside the tests)
#   bench/gpu/rehearse.sh run         # run.sh --cpu in the prepared environment
set -euo pipefail
cd "$(dirname "$0")/../.."
STEP="${1:-all}"

# The environment, the bundle's site and DeepSpeed's compiled CPU op (its shared-memory all-reduce,
# built at the first training step) live at fixed places of the rehearsal's own: torch keys that
# build by the sources' paths, so sharing its folder with the test suite's DeepSpeed (another path)
# would rebuild it back and forth, and a fixed path lets the next rehearsal reuse it.
CACHE="${RT_RAY_REHEARSAL_CACHE:-$HOME/.cache/rt-ray/gpu-rehearsal}"
VENV="$CACHE/venv"
export TORCH_EXTENSIONS_DIR="$CACHE/torch-extensions"

if [ "$STEP" = all ] || [ "$STEP" = prepare ]; then
  PY_VERSION=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  bench/gpu/pack.sh --python "$PY_VERSION" --out .gpu-bundle-cpu
  # The device's side, made anew: a bare environment with the image's packages (not rt-ray's, not the bundle's).
  rm -rf "$VENV" "$CACHE/site"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet torch==2.13.0
  "$VENV/bin/python" -m pip install --quiet -r bench/gpu/device-image.txt -r .gpu-bundle-cpu/device-provided.txt
  # From here on no index: what the bundle lacks fails the install or the check.
  PIP_NO_INDEX=1 PYTHON="$VENV/bin/python" bench/gpu/run.sh --cpu --install-only --bundle .gpu-bundle-cpu --site "$CACHE/site"
  PYTHONPATH="$CACHE/site" "$VENV/bin/python" bench/gpu/bundle.py check bench/gpu/requirements.txt
fi
if [ "$STEP" = all ] || [ "$STEP" = run ]; then
  PIP_NO_INDEX=1 PYTHON="$VENV/bin/python" bench/gpu/run.sh --cpu --bundle .gpu-bundle-cpu --site "$CACHE/site"
fi
