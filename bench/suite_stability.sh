#!/usr/bin/env bash
# The test suite's own stability, measured: the README's test command run
# RUNS times in a row from a clean checkout of HEAD, with a CPU hog taking one
# core for a second and giving it back for a second (tests/noise.py), then the
# slow tier SLOW_RUNS times in a row without it. Each run's outcome line and
# wall time go to bench/results/suite-stability-X.Y.txt.
#
# Usage: bash bench/suite_stability.sh [python3] [RUNS] [SLOW_RUNS]
set -uo pipefail
py=${1:-python3}
runs=${2:-5}
slow_runs=${3:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
out="$root/bench/results/suite-stability-$v.txt"
work=$(mktemp -d)
trap 'kill "$hog" 2>/dev/null; rm -rf "$work"' EXIT
git clone -q "$root" "$work/gilfree"
cd "$work/gilfree"
"$py" -m venv .venv
.venv/bin/python -m pip install -q -e ".[test]" >/dev/null 2>&1 || { echo "install failed"; exit 1; }
{
    echo "Machine: $(.venv/bin/python -c 'import sys; sys.path.insert(0, "bench"); from _machine import describe; print(describe())')"
    echo "Commit: $(git rev-parse --short HEAD)"
    echo "The README's test command (python -m pytest), $runs runs in a row, a CPU hog on one core 1 s on, 1 s off:"
} > "$out"
.venv/bin/python -c "
import sys; sys.path.insert(0, 'tests')
from noise import _LOOP; exec(_LOOP)" 1 1 &
hog=$!
for i in $(seq "$runs"); do
    start=$SECONDS
    log=$(.venv/bin/python -m pytest -q -p no:cacheprovider 2>&1)
    echo "run $i: $(echo "$log" | tail -1) (wall $((SECONDS - start)) s)" | tee -a "$out"
    echo "$log" | grep -E "^FAILED" | sed 's/^/    /' | tee -a "$out"
done
kill "$hog"
echo "The slow tier (python -m pytest -m slow), $slow_runs runs in a row, no hog:" >> "$out"
for i in $(seq "$slow_runs"); do
    start=$SECONDS
    log=$(.venv/bin/python -m pytest -q -p no:cacheprovider -m slow 2>&1)
    echo "slow run $i: $(echo "$log" | tail -1) (wall $((SECONDS - start)) s)" | tee -a "$out"
    echo "$log" | grep -E "^FAILED" | sed 's/^/    /' | tee -a "$out"
done
echo "written: $out"
