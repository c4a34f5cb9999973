#!/usr/bin/env bash
# altinnfs benchmarks: one machine, one run, a table of ratios. Not a test: nothing here fails
# on a slow number; the goals are printed beside the measurements, and each row that ran a
# mount shows the daemon's peak RSS (VmHWM of that mount's process).
#
#   bench/run.sh [--only read,write,find,copy] [--bin PATH] [--rounds N]
#                [--big-mib N] [--write-mib N] [--small-files N]
#                [--find-instances N] [--find-small N] [--page-size N] [--poll-interval S]
#                [--rss-abort-mib N]
#                [--copy-instances N] [--latency-ms N] [--storage-ms N] [--markdown]
#
# read:  sequential read of a big attachment through the mount ÷ curl GET of the same blob,
#        and ÷ the same bytes through a bindfs passthrough; time to first byte ÷ curl; the
#        same file read again on the same mount (kept pages), in 10 KiB reads (tar's size),
#        and through a --direct-io mount in 1 MiB and in 10 KiB reads.
# write: cp of a file into the mount ÷ curl POST (medians of --rounds, sides alternating); small
#        files created+closed ÷ a curl loop.
# find:  `find` over a synthetic app of --find-small (10,000) and --find-instances (200,000)
#        instances, cold: requests (goal ceil(N/page)+3), time per instance, peak RSS; a warm
#        remount with nothing changed (goal <= 5 requests, <= 1/4 of the cold time); one
#        element added by someone else (/_emulator/act): the requests until `ls` shows it
#        and whether it shows within one --poll-interval (n/a on a mount without the flag).
#        A walk whose daemon passes --rss-abort-mib (2048) is stopped, and its rows say so.
#        The floor: the small walk's tree as empty local files, walked through bindfs (median
#        of --rounds), and each walk per instance ÷ it. Cold and warm remount walks over
#        --find-small instances at --latency-ms per request: warm ÷ cold where each request
#        costs a round trip (--storage-ms N adds N ms of Storage's own time to each query page
#        of those walks), and a cold one with --list-parallel 4. The --find-small walk is the
#        median of --rounds cold walks.
# copy:  cp -r, tar c and rsync -a of the whole sample app (--copy-instances, several hundred
#        elements), each on a fresh mount, ÷ 16 parallel curl downloads (xargs -P 16) of the
#        same elements, all at --latency-ms (default 20) added by the emulator to every request;
#        --rounds rounds, interleaved, and the median of each counts.
#
# --bin PATH (or ALTINNFS_BIN) runs a built binary instead of `cargo build --release`.
# Quick check of one area: bench/run.sh --only find --find-small 2000 --find-instances 20000
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=read,write,find,copy
BIN=${ALTINNFS_BIN:-}
ROUNDS=${ROUNDS:-3}
BIG_MIB=1024
WRITE_MIB=256
SMALL_FILES=1000
FIND_SMALL=10000
FIND_INSTANCES=200000
PAGE_SIZE=100
PAGE_ARGS=()
POLL_INTERVAL=2
RSS_ABORT_MIB=2048
CHANGE_TTL=${CHANGE_TTL:-3600}
COPY_INSTANCES=260
LATENCY_MS=20
STORAGE_MS=0
TABLE=text
while [ $# -gt 0 ]; do
  case "$1" in
    --only) ONLY=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --big-mib) BIG_MIB=$2; shift 2 ;;
    --write-mib) WRITE_MIB=$2; shift 2 ;;
    --small-files) SMALL_FILES=$2; shift 2 ;;
    --find-instances) FIND_INSTANCES=$2; shift 2 ;;
    --find-small) FIND_SMALL=$2; shift 2 ;;
    --page-size) PAGE_SIZE=$2; PAGE_ARGS=(--page-size "$2"); shift 2 ;;
    --poll-interval) POLL_INTERVAL=$2; shift 2 ;;
    --rss-abort-mib) RSS_ABORT_MIB=$2; shift 2 ;;
    --copy-instances) COPY_INSTANCES=$2; shift 2 ;;
    --latency-ms) LATENCY_MS=$2; shift 2 ;;
    --storage-ms) STORAGE_MS=$2; shift 2 ;;
    --markdown) TABLE=markdown; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for area in ${ONLY//,/ }; do
  case "$area" in read|write|find|copy) ;; *) echo "unknown area $area (read, write, find, copy)" >&2; exit 2 ;; esac
done
wants() { [[ ",$ONLY," == *",$1,"* ]]; }

scripts/setup.sh >/dev/null
if [ -z "$BIN" ]; then
  cargo build --release -q
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/altinnfs
fi
APP=ttd/altinnfs-demo
WORK=$(mktemp -d /tmp/altinnfs-bench.XXXXXX)
chmod 700 "$WORK"
PIDS=()
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do
    if mountpoint -q "$m"; then fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; fi
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for part in lib main_app read write find floor copy; do source "bench/$part.sh"; done

echo "== altinnfs bench: $BIN; areas $ONLY" >&2
if wants read; then area_read; fi
if wants write; then area_write; fi
if [ -n "$MAIN_APP_UP" ]; then stop_emulator; fi
if wants find; then area_find; fi
if wants copy; then area_copy; fi
print_table "$TABLE"
