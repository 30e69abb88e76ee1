#!/usr/bin/env bash
# The GPU check in one call: install the offline bundle (bench/gpu/pack.sh) into a site folder, check
# that nothing is missing, then run each part of bench/gpu/kit.py under its own time limit and write
# summary.json and summary.md into $OUT (or runs/gpu-kit) with one RESULT line.
#
#   bench/gpu/run.sh                  # on the GPU machine: a GPT-2-small-sized student, bf16, about 8 minutes
#   bench/gpu/run.sh --cpu            # the rehearsal: tiny sizes, the same code, on this machine
#   bench/gpu/run.sh --install-only   # a first call that carries .gpu-bundle/part1 only (two-part bundles)
#
# A part that fails or runs out of time is written down as such and the next one runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

MODE=gpu
INSTALL_ONLY=0
BUNDLE=.gpu-bundle
SITE=.gpu-site
BUDGET_S=470
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu; shift ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    --bundle) BUNDLE="$2"; shift 2 ;;
    --site) SITE="$2"; shift 2 ;;
    --budget-s) BUDGET_S="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument $1 (--cpu, --install-only, --bundle DIR, --site DIR, --budget-s N)" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-python3}"
RESULTS="${OUT:-$REPO/runs/gpu-kit}"
WORK="$REPO/runs/gpu-kit/parts"
mkdir -p "$RESULTS" "$SITE"
SITE=$(cd "$SITE" && pwd)
LOG="$RESULTS/kit.log"
STARTED=$SECONDS

# Each part of the bundle once: a second call on a warm machine finds the first part installed.
for part in "$BUNDLE"/part*; do
  [ -d "$part" ] || continue
  stamp="$SITE/.installed-$(basename "$part")"
  listing=$(ls "$part")
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$listing" ]; then
    echo "bundle $part: installed already"
    continue
  fi
  echo "installing bundle $part offline into $SITE"
  "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check --target "$SITE" "$part"/*.whl \
    || { echo "run.sh: the offline install of $part failed" >&2; exit 3; }
  printf '%s' "$listing" > "$stamp"
done
export PYTHONPATH="$SITE:$REPO"  # the bundle first: where the image has another version, the bundle's is the one checked
[ "$INSTALL_ONLY" = 1 ] && { echo "installed in $((SECONDS - STARTED)) s"; exit 0; }
"$PYTHON" bench/gpu/bundle.py check bench/gpu/requirements.txt || exit 3
echo "installed in $((SECONDS - STARTED)) s"

rm -rf "$WORK"
# Seconds each part may take: GPU sizes, or the rehearsal's on 2 CPU cores.
if [ "$MODE" = gpu ]; then
  LIMITS="train=150 zero3=75 lora=60 evaluate=60 serve=90 pipeline=150"
else
  # generous: CI runs the rehearsal at a lower priority beside the test suite
  LIMITS="train=480 zero3=360 lora=360 evaluate=360 serve=480 pipeline=720"
fi
failed=0
for entry in $LIMITS; do
  part=${entry%%=*}
  limit=${entry##*=}
  left=$((BUDGET_S - (SECONDS - STARTED)))
  if [ "$MODE" = gpu ] && [ "$left" -lt 60 ]; then
    echo "part $part: skipped, $left s of the budget left"
    continue
  fi
  [ "$MODE" = gpu ] && [ "$limit" -gt "$left" ] && limit=$left
  echo "part $part: up to $limit s"
  timeout --kill-after=10 "$limit" "$PYTHON" bench/gpu/kit.py "$part" --mode "$MODE" --work "$WORK" >>"$LOG" 2>&1
  status=$?
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    printf '{"ok": false, "error": "timed out after %s s"}\n' "$limit" > "$WORK/$part.json"
  fi
  [ "$status" = 0 ] || failed=$((failed + 1))
  grep -h "^part $part:" "$LOG" | tail -1
done
"$PYTHON" bench/gpu/kit.py summary --mode "$MODE" --work "$WORK" --out "$RESULTS" --wall-s $((SECONDS - STARTED))
exit $((failed > 0))
