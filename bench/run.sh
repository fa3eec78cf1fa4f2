#!/usr/bin/env bash
# swarmsync against Syncthing, an rsync daemon and `cp`, on loopback inside a private
# network namespace, in one run. See docs/BENCHMARKS.md for what it measures and how.
#
#   sudo bench/run.sh                 # reduced scale (BENCH_SCALE=0.25), ~15 min on 2 cores
#   sudo BENCH_SCALE=1 bench/run.sh   # the issue's full datasets (4 x 256 MiB; 20,000 files)
#
# Environment (defaults in brackets):
#   BENCH_SCALE [0.25]    dataset scale: large = 4 files x 256 MiB x SCALE,
#                         small = 20,000 x SCALE files of 1-64 KiB in 200 x SCALE dirs
#   BENCH_ROUNDS [3]      interleaved rounds (medians are reported)
#   BENCH_PAUSE [5]       seconds of pause after `sync` before every timer
#   BENCH_CASES ["large small edit latency swarm small-trap"]  the cases of a round:
#                         large, small: initial sync of the datasets;
#                         edit: 100 B inserted in the middle of one `large` file;
#                         latency: a 4 KiB file saved on A -> on B (5 samples per round);
#                         swarm: one empty peer, three full ones behind tbf caps, each in
#                           its own namespace (bench/swarm.py);
#                         small-trap: `small` right after a tree was deleted (the old
#                           ext4 recently_deleted trap, kept to show what it costs)
#   BENCH_DATASETS        the older switch: alone, it selects among large and small
#   BENCH_SWARM_CAP [100mbit]  each full peer's uplink in `swarm`
#   BENCH_SETTLE [365]    seconds between the last run's deletion of its trees and this
#                         run's first round (ext4 without a journal skips inodes freed
#                         < 60 s ago, < 360 s once their inode-table block is dirty)
#   BENCH_LAT_SAMPLES [5] BENCH_LAT_DELAY1 [1] (latency also with Syncthing's watcher
#                         delay at 1 s, besides its default 10 s)
#   BENCH_TOOLS ["swarmsync syncthing rsync rsync-fsync cp"]
#   BENCH_BASE_REV=<rev>  also run that committed revision, as the tool
#                         `swarmsync-base`, interleaved in the same rounds (`large`,
#                         `small`): an A/B the machine's drift cannot blur
#   BENCH_ROOT [/var/tmp/swarmsync-bench]   datasets, scratch trees, logs, results
#   BENCH_SEED [20261201] dataset seed
#   BENCH_TIMEOUT [3600]  bound on the whole comparison, seconds
#   BENCH_OUT [$BENCH_ROOT]  where results.md, results.json and conditions.txt go
#   BENCH_NO_BUILD=1      skip `cargo build --release`
#   BENCH_REV=<rev>       build that committed revision (e.g. HEAD) from a `git archive`
#                         export under $BENCH_ROOT/src-<rev> instead of the working tree
#                         (the working tree is shared and may hold someone's half-done
#                         edit); its target dir is $BENCH_ROOT/target-<rev>, seeded from
#                         the newest other one (remove old ones: ~1 GB each)
#
# Results: a markdown table on stdout and in $BENCH_ROOT/results.md (raw: results.json).
# Exits non-zero if any tree failed to verify byte for byte.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
export BENCH_SCALE=${BENCH_SCALE:-0.25}
export BENCH_ROOT=${BENCH_ROOT:-/var/tmp/swarmsync-bench}
SEED=${BENCH_SEED:-20261201}
NS=swarmsync-bench-$$
OUTDIR=${BENCH_OUT:-$BENCH_ROOT}
mkdir -p "$OUTDIR"

if [[ $(id -u) -ne 0 ]]; then
    echo "bench/run.sh needs root (network namespace, nftables, apt-get)" >&2
    exit 2
fi

# --- tools
need=()
command -v syncthing >/dev/null || need+=(syncthing)
command -v rsync >/dev/null || need+=(rsync)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v b3sum >/dev/null || need+=(b3sum)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
    echo "installing: ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2; }
fi

# --- build
# Each committed revision gets its own export and its own target directory: cargo
# names the workspace's artifacts without their path, and `git archive` dates every
# file at its commit, so in a shared target directory an older export's build was
# "fresh" with a newer one's artifacts (and ran the newer code).
build_rev() { # prints the path of the binary of revision $1
    local src=$BENCH_ROOT/src-$1 target=$BENCH_ROOT/target-$1 seed
    if [[ ! -d $src ]]; then
        mkdir -p "$src.part"
        git -C "$REPO" archive "$1" | tar -x -C "$src.part"
        mv "$src.part" "$src"
    fi
    if [[ ! -d $target ]]; then
        # Seeded with another build's dependencies; the export, dated now, is newer
        # than every artifact copied, so its own crates are built again.
        seed=$(ls -dt "$BENCH_ROOT"/target-* 2>/dev/null | head -1 || true)
        if [[ -n $seed ]]; then
            cp -a "$seed" "$target.part"
        elif [[ -d $REPO/target/release ]]; then
            mkdir -p "$target.part" && cp -a "$REPO/target/release" "$target.part/release"
        fi
        find "$src" -exec touch {} +
        mkdir -p "$target.part" && mv "$target.part" "$target"
    fi
    if [[ -z ${BENCH_NO_BUILD:-} ]]; then
        (cd "$src" && CARGO_TARGET_DIR=$target cargo build --release --bin swarmsync >&2)
    fi
    echo "$target/release/swarmsync"
}
if [[ -n ${BENCH_BASE_REV:-} ]]; then
    base_rev=$(git -C "$REPO" rev-parse --short "$BENCH_BASE_REV")
    SWARMSYNC_BASE_BIN=$(build_rev "$base_rev")
    export SWARMSYNC_BASE_BIN
    [[ " ${BENCH_TOOLS:-swarmsync} " == *" swarmsync-base "* ]] ||
        export BENCH_TOOLS="${BENCH_TOOLS:-swarmsync syncthing rsync rsync-fsync cp} swarmsync-base"
fi
if [[ -n ${BENCH_REV:-} ]]; then
    rev=$(git -C "$REPO" rev-parse --short "$BENCH_REV")
    SWARMSYNC_BIN=$(build_rev "$rev")
    export SWARMSYNC_BIN
else
    [[ -n ${BENCH_NO_BUILD:-} ]] || (cd "$REPO" && cargo build --release --bin swarmsync >&2)
    export SWARMSYNC_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/swarmsync
fi

# --- datasets (reused when their manifest matches)
mkdir -p "$BENCH_ROOT/data"
cases=${BENCH_CASES:-${BENCH_DATASETS:-large small edit latency swarm small-trap}}
datasets=()
[[ " $cases " =~ \ (large|edit|swarm)\  ]] && datasets+=(large)
[[ " $cases " =~ \ (small|small-trap)\  ]] && datasets+=(small)
for ds in "${datasets[@]}"; do
    python3 bench/gen_data.py "$BENCH_ROOT/data/$ds-$(python3 -c "print(f'{float(\"$BENCH_SCALE\"):g}')")" "$ds" "$BENCH_SCALE" "$SEED"
done

# --- the namespace: only `lo`, so nothing can leave the machine (`swarm` adds four
# namespaces $NS-{s0,s1,s2,e} bridged inside this one, no route out; the harness removes
# them, and this trap too if it could not)
export BENCH_NS=$NS
cleanup() {
    local pids n all
    all=("$NS" $(ip netns list 2>/dev/null | awk -v p="$NS-" 'index($1, p) == 1 {print $1}'))
    for n in "${all[@]}"; do
        pids=$(ip netns pids "$n" 2>/dev/null || true)
        # Everything in these namespaces was started by this script.
        [[ -z $pids ]] || kill $pids 2>/dev/null || true
    done
    sleep 2
    for n in "${all[@]}"; do
        pids=$(ip netns pids "$n" 2>/dev/null || true)
        [[ -z $pids ]] || kill -9 $pids 2>/dev/null || true
        ip netns delete "$n" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
    echo "fs: $(df -T "$BENCH_ROOT" | awk 'NR==2{print $2" on "$1}')"
    if [[ -n ${BENCH_REV:-} ]]; then
        echo "swarmsync: $rev (committed, built from a clean export), $("$SWARMSYNC_BIN" --version)"
    else
        echo "swarmsync: working tree at $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' with uncommitted changes'), $("$SWARMSYNC_BIN" --version)"
    fi
    [[ -z ${base_rev:-} ]] || echo "swarmsync-base: $base_rev (committed, built from a clean export)"
    echo "syncthing: $(syncthing --version | awk '{print $2}')"
    echo "rsync: $(rsync --version | head -1 | awk '{print $3}')"
    echo "load before: $(uptime | sed 's/.*load average: //')"
} | tee "$OUTDIR/conditions.txt"

status=0
timeout --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-3600}" \
    ip netns exec "$NS" python3 "$REPO/bench/harness.py" || status=$?
echo "load after: $(uptime | sed 's/.*load average: //')" | tee -a "$OUTDIR/conditions.txt"
exit $status
