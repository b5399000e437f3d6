#!/usr/bin/env bash
# Regenerate every figure the docs quote, one after another. Run it on a
# quiet machine (nothing else running); it takes about an hour on 2 cores.
#
#   bash bench/readme_figures.sh [PYTHON_3_12_OR_NEWER]
#
# python3 (with gilfree installed: pip install -e ".[test,plot]") measures the
# GIL-only figures; the second interpreter (default: CI's .ci-venv-3.13) adds
# the subinterpreter backend; FT_PYTHON (default: CI's .ci-venv-3.13t) is a
# free-threaded build with gilfree. Everything lands in bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
old=python3
new=${1:-.ci-venv-3.13/bin/python}
export PYTHONUNBUFFERED=1

cc -O2 bench/cpu_clock.c -o /tmp/gilfree_cpu_clock && /tmp/gilfree_cpu_clock > "$out/cpu-clock.txt"
"$old" bench/kernel_table.py --rounds 7 --seconds 0.3 > "$out/kernels-3.11.md"
"$old" bench/honesty_figures.py > "$out/honesty-3.11.txt"
"$old" bench/gil_verdicts.py > "$out/gil-verdicts-3.11.txt"

for py in "$old" "$new"; do
    v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    # The verdicts, the noise, the article, and the demo with its time.
    bash bench/verdict_figures.sh "$py"
    # A benchmark that misses its target fails its assertion; its figures are
    # recorded all the same (the README reports them), so go on.
    "$py" -m pytest bench/test_bench_backends.py bench/test_bench_meter.py -q \
        --benchmark-columns=median,rounds --benchmark-json="$out/bench-$v.json" \
        > "$out/bench-$v.txt" || echo "some benchmark missed its target: see $out/bench-$v.txt"
done

"$old" -m pytest bench/test_bench_dask.py -q --benchmark-columns=median,rounds \
    --benchmark-json="$out/dask-3.11.json" > "$out/dask-3.11.txt"

"$new" -m gilfree sweep -k python,cython-gil,cython-nogil,numpy -b threads,processes,interpreters \
    -w 1,2,4 --seconds 0.5 --no-progress --format json -o "$out/sweep-3.13.json" \
    --plot "$out/sweep-3.13.png" > "$out/sweep-3.13.txt"
"$old" bench/sigint_latency.py --rounds 5 --backends threads,processes,dask > "$out/sigint-3.11.txt"
"$new" bench/sigint_latency.py --rounds 5 --backends threads,processes,interpreters \
    > "$out/sigint-3.13.txt"
"$new" -m gilfree check hashlib:sha256 "b'x'*2**27" --no-progress > "$out/check-sha256-3.13.txt"
"$new" -m gilfree check json:dumps "list(range(2*10**6))" --no-progress > "$out/check-json-3.13.txt"
# Free-threaded CPython: three builds side by side in one run (the GIL build,
# the free-threaded one, and the same with PYTHON_GIL=1), and the benchmark
# that holds the targets. CI's .ci-venv-3.13t has gilfree on the build that
# scripts/free-threaded-python makes.
ft=${FT_PYTHON:-.ci-venv-3.13t/bin/python}
"$new" -m gilfree run -k python,cython-gil -b threads -w 2 --seconds 0.5 --max-time 120 \
    --python "$new" --python "$ft" --python "PYTHON_GIL=1 $ft" --no-progress \
    --format json -o "$out/free-threaded-3.13t.json" > "$out/free-threaded-3.13t.txt"
"$ft" -m pytest bench/test_bench_free_threaded.py -q --benchmark-columns=median,rounds \
    --benchmark-json="$out/bench-3.13t.json" > "$out/bench-3.13t.txt" \
    || echo "a free-threaded benchmark missed its target: see $out/bench-3.13t.txt"
echo "all figures written to $out/"
