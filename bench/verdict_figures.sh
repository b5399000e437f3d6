#!/usr/bin/env bash
# The figures of "Trustworthy speedups on a noisy machine", for one interpreter.
# Run it on a quiet machine (nothing else running); about 10 minutes on 2 cores.
#
#   bash bench/verdict_figures.sh [PYTHON]      (default: python3)
#
# Writes bench/results/{verdicts,noise,article,demo,demo-time,answer-speed,
# answer-speed-noise}-X.Y.txt and demo-X.Y.jsonl (the demo's every timing,
# readable with gilfree show).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
out=bench/results
v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export PYTHONUNBUFFERED=1
# A missed target is recorded all the same (the summary line says MISSED).
"$py" bench/verdict_stability.py --runs 10 > "$out/verdicts-$v.txt" || true
"$py" bench/verdict_stability.py --noise --cells 42 > "$out/noise-$v.txt" || true
"$py" -m gilfree demo --article --no-progress > "$out/article-$v.txt"
"$py" -c 'import subprocess, sys, time
t = time.perf_counter()
with open(sys.argv[1], "w") as f:
    subprocess.run([sys.executable, "-m", "gilfree", "demo", "--no-progress",
                    "--json", sys.argv[2]], check=True, stdout=f)
print(f"gilfree demo (defaults): {time.perf_counter() - t:.1f} s")' "$out/demo-$v.txt" \
    "$out/demo-$v.jsonl" \
    > "$out/demo-time-$v.txt"
# How fast demo and check answer, and whether their words hold, quiet and
# with a CPU hog.
"$py" bench/answer_speed.py --demo-runs 10 --check-runs 3 > "$out/answer-speed-$v.txt"
"$py" bench/answer_speed.py --demo-runs 3 --check-runs 2 --noise > "$out/answer-speed-noise-$v.txt"
echo "written: $out/{verdicts,noise,article,demo,demo-time,answer-speed,answer-speed-noise}-$v.txt"
