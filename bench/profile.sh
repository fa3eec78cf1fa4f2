#!/usr/bin/env bash
# Profiles the two swarmsync peers of one benchmark case with `perf record
# --call-graph dwarf` and prints the top symbols of each side (self time, and
# inclusive time of swarmsync's own functions). Runs through bench/run.sh, so in the
# same private network namespace and with the same datasets.
#
#   sudo bench/profile.sh                        # small at scale 0.1, one round
#   sudo BENCH_DATASETS=large BENCH_SCALE=0.25 bench/profile.sh
#
# perf data: $BENCH_ROOT/run/perf-{src,dst}-DATASET-SCALE.data; the case's numbers (not
# results: perf slows the peers) go to $BENCH_ROOT/profile/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_ROOT=${BENCH_ROOT:-/var/tmp/swarmsync-bench}
export BENCH_PERF=1 BENCH_ROUNDS=${BENCH_ROUNDS:-1} BENCH_TOOLS=swarmsync
export BENCH_DATASETS=${BENCH_DATASETS:-small} BENCH_SCALE=${BENCH_SCALE:-0.1}
export BENCH_OUT=$BENCH_ROOT/profile
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y linux-perf >&2
bench/run.sh >&2 || echo "(the profiled run failed; reporting what perf captured)" >&2
scale=$(python3 -c "print(f'{float(\"$BENCH_SCALE\"):g}')")
for ds in $BENCH_DATASETS; do
    for side in src dst; do
        data=$BENCH_ROOT/run/perf-$side-$ds-$scale.data
        [[ -f $data ]] || continue
        echo "=== $ds $side: self time, top 25"
        perf report -i "$data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
            grep '%' | head -25 || true
        echo "=== $ds $side: inclusive time, swarmsync's own functions, top 40"
        perf report -i "$data" --children --sort symbol --stdio -g none 2>/dev/null |
            grep '%' | grep -E '(daemon|engine|index|scan|net|channel|wire|record|keys|swarmsync)::' |
            head -40 || true
    done
done
