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
mkdir -p "$WORK"
# Seconds each part may take: GPU sizes, or the rehearsal's on 2 CPU cores.
PARTS="train zero3 lora evaluate serve pipeline"
declare -A LIMIT
if [ "$MODE" = gpu ]; then
  LIMIT=([train]=150 [zero3]=75 [lora]=60 [evaluate]=60 [serve]=90 [pipeline]=150)
else
  LIMIT=([train]=300 [zero3]=240 [lora]=240 [evaluate]=240 [serve]=300 [pipeline]=480)
fi

run_part() {  # one part under its limit (on a GPU also under what is left of the budget); its output in its own log
  local part=$1 limit=${LIMIT[$1]} left=$((BUDGET_S - (SECONDS - STARTED)))
  if [ "$MODE" = gpu ] && [ "$left" -lt 60 ]; then
    echo "part $part: skipped, $left s of the budget left"
    return
  fi
  [ "$MODE" = gpu ] && [ "$limit" -gt "$left" ] && limit=$left
  echo "part $part: up to $limit s"
  timeout --kill-after=10 "$limit" "$PYTHON" bench/gpu/kit.py "$part" --mode "$MODE" --work "$WORK" >"$WORK/$part.log" 2>&1
  local status=$?
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    printf '{"ok": false, "error": "timed out after %s s"}\n' "$limit" > "$WORK/$part.json"
  fi
  grep -h "^part $part:" "$WORK/$part.log" | tail -1 || echo "part $part: exit $status"
}

if [ "$MODE" = gpu ]; then
  # one after another: each part has the GPU to itself, so its figures are its own
  for part in $PARTS; do run_part "$part"; done
else
  # the rehearsal in two lanes: its parts mostly wait (process and cluster start-ups), and its figures mean nothing
  (for part in pipeline zero3 evaluate; do run_part "$part"; done) &
  (for part in train lora serve; do run_part "$part"; done) &
  wait
fi
for part in $PARTS; do
  [ -f "$WORK/$part.log" ] && { echo "===== part $part"; cat "$WORK/$part.log"; } >>"$LOG"
done
# The summary exits non-zero when a part did not run to its end.
"$PYTHON" bench/gpu/kit.py summary --mode "$MODE" --work "$WORK" --out "$RESULTS" --wall-s $((SECONDS - STARTED))
