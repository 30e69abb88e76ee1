#!/usr/bin/env bash
# The offline bundle for a GPU machine that reaches no package index (bench/gpu/run.sh installs it).
#
#   bench/gpu/pack.sh                  # wheels for the device's Python 3.12 -> .gpu-bundle/part1, part2, ...
#   bench/gpu/pack.sh --python 3.11    # the same bundle for this machine's Python: the rehearsal's (--cpu)
#
# Needs pip's index and a Python with torch (DeepSpeed's wheel is built against it, with no op
# compiled: the ops DeepSpeed would compile are never used by rt-ray). Prints each part's size;
# each is at most 60 MiB, so that one device call can carry it beside the working tree (64 MiB).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON_VERSION=3.12
OUT=.gpu-bundle
PART_MIB=58
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PYTHON_VERSION="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --part-mib) PART_MIB="$2"; shift 2 ;;
    *) echo "pack.sh: unknown argument $1 (--python X.Y, --out DIR, --part-mib N)" >&2; exit 2 ;;
  esac
done
PY="${PACK_PYTHON:-python3}"
DEEPSPEED=$(grep -E '^deepspeed' bench/gpu/deepspeed.txt)

rm -rf "$OUT"
mkdir -p "$OUT/all"
# Every manylinux tag the device's glibc accepts: pip matches a platform tag exactly.
PLATFORMS=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for minor in $(seq 17 39); do PLATFORMS+=(--platform "manylinux_2_${minor}_x86_64"); done

echo "building DeepSpeed's wheel ($DEEPSPEED): pure Python, its ops compiled only if ever used"
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$OUT/all" "$DEEPSPEED"
echo "downloading the closure of bench/gpu/requirements.txt for CPython $PYTHON_VERSION"
"$PY" -m pip download --quiet --only-binary=:all: --implementation cp --python-version "$PYTHON_VERSION" \
  "${PLATFORMS[@]}" -d "$OUT/all" -r bench/gpu/requirements.txt 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$PY" bench/gpu/bundle.py split "$OUT" --part-mib "$PART_MIB"
rm -rf "$OUT/all"
tree_mib=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
for part in "$OUT"/part*; do
  part_mib=$(du -cb "$part"/*.whl | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
  echo "one device call carrying $part sends $(awk "BEGIN {printf \"%.1f\", $part_mib + $tree_mib}") MiB (the tree: $tree_mib MiB)"
done
