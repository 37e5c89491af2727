#!/usr/bin/env bash
# Compare two builds of the engine on this noisy shared machine: alternate
# runs of benches/engine_loop.py with an old build (installed with
# `pip install --no-deps --target OLD_DIR .` from the commit before a change)
# and the installed build, ROUNDS times, and print each run's median epoch
# (k rows/s) and the new/old ratio per round.  Judge by the ratios' median:
# 2-thread runs of one build swing by +-20% here from minute to minute.
#
#   bash benches/ab_builds.sh /tmp/old 8 float32 1 2 --rows 2000 --epochs 5
set -euo pipefail
if [ $# -lt 5 ]; then
    echo "usage: $0 OLD_DIR ROUNDS DTYPE BATCH THREADS [engine_loop.py options]" >&2
    exit 2
fi
old_dir=$1
rounds=$2
shift 2
loop="$(dirname "$0")/engine_loop.py"
median_epoch() {   # k rows/s of the median epoch of one engine_loop.py run
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ${1:+PYTHONPATH=$1} python "$loop" "${@:2}" |
        grep -oE "[0-9]+k rows/s" | sed 's/k rows\/s//' | sort -n |
        awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
olds="" news="" ratios=""
for _ in $(seq "$rounds"); do
    o=$(median_epoch "$old_dir" "$@")
    n=$(median_epoch "" "$@")
    olds="$olds $o"
    news="$news $n"
    ratios="$ratios $(awk -v a="$o" -v b="$n" 'BEGIN {printf "%.3f", b / a}')"
done
echo "old k rows/s:$olds"
echo "new k rows/s:$news"
echo "new/old:     $ratios"
echo "median new/old: $(echo $ratios | tr ' ' '\n' | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')"
