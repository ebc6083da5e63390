# shellcheck shell=bash
# The fio part of scripts/bench: runs the job files next to this one (one per figure, the same
# workloads as the reference suite people compare with) on a directory, and prints one line per
# figure: name, bandwidth, IOPS, p99 completion latency.
#
# Sourced by scripts/bench, which calls `fio_figures DIR SIZE`; also runs on its own, on any
# mounted directory:  bash scripts/bench.d/fio.sh DIR [SIZE]   (as root: cold reads drop caches)
#
#   SIZE                  size of the file the sequential and 4k-read figures use (default 1g)
#   DFS_BENCH_JOB_SIZE    size of randwrite-4k's file and of each of seqwrite-4j's four (256m)
#   DFS_BENCH_RUNTIME     seconds randread-4k and randwrite-4k run (20)
# Smaller values give a quick check that everything runs; the defaults are the reference's.
# The job files read these through the environment: BENCH_DIR, BENCH_SIZE, BENCH_JOB_SIZE and
# BENCH_RUNTIME.

BENCH_D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The figures in the order they run (the reads use the file seqwrite-1m writes), each with
# whether the page cache is dropped first (`cold`) or not (`warm`).
FIO_FIGURES=(
  "seqwrite-1m  cold"
  "seqread-1m   cold"
  "seqread-warm warm"
  "randread-4k  cold"
  "randwrite-4k warm"
  "seqwrite-4j  warm"
)

# Writes dirty pages back and empties the page cache (needs root; without it, does nothing).
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

# fio_figures DIR SIZE: runs every figure in a fresh directory under DIR, then removes it.
fio_figures() {
  local dir=$1 size=$2 work line name cache status=0
  command -v fio >/dev/null || { echo "fio is not installed" >&2; return 1; }
  work=$(mktemp -d "$dir/dfs-bench-fio.XXXXXX") || return 1
  for line in "${FIO_FIGURES[@]}"; do
    read -r name cache <<<"$line"
    [ "$cache" = cold ] && drop_caches
    if ! BENCH_DIR=$work BENCH_SIZE=$size BENCH_JOB_SIZE=${DFS_BENCH_JOB_SIZE:-256m} \
      BENCH_RUNTIME=${DFS_BENCH_RUNTIME:-20} \
      fio --output-format=json --output="$work/$name.json" "$BENCH_D/$name.fio" >"$work/$name.err" 2>&1; then
      echo "fio $name failed on $dir:" >&2
      cat "$work/$name.err" >&2
      status=1
      break
    fi
    fio_summary "$name" <"$work/$name.json" || { status=1; break; }
  done
  rm -rf "$work"
  return $status
}

# fio_summary NAME < fio's JSON: the figure's line. A figure is its read side if it read more
# than it wrote, else its write side; bandwidth and IOPS add up over jobs, p99 is the worst job's.
fio_summary() {
  python3 -c '
import json, sys
name = sys.argv[1]; jobs = json.load(sys.stdin)["jobs"]
side = "read" if sum(j["read"]["bw"] for j in jobs) >= sum(j["write"]["bw"] for j in jobs) else "write"
bw = sum(j[side]["bw"] for j in jobs) / 1024; iops = sum(j[side]["iops"] for j in jobs)
p99 = max(j[side]["clat_ns"]["percentile"].get("99.000000", 0) for j in jobs) / 1000
print(f"{name:14s} {bw:9.1f} MiB/s {iops:10.0f} IOPS  p99 {p99:9.0f} us")' "$1"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  [ -n "${1:-}" ] || { echo "usage: $0 DIR [SIZE]" >&2; exit 2; }
  fio_figures "$1" "${2:-1g}"
fi
