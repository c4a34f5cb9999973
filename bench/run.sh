#!/usr/bin/env bash
# altinnfs benchmarks: one machine, one run, a table of ratios. Not a test: nothing here fails
# on a slow number; the goals are printed beside the measurements.
#
#   bench/run.sh [--big-mib N] [--find-instances N] [--write-mib N] [--small-files N]
#
# Read:  sequential read of a big attachment through the mount ÷ direct HTTP GET (curl) of the
#        same blob, and ÷ the same bytes through a bindfs passthrough mount; time to first byte
#        through the mount ÷ direct; `find` over many instances (requests, seconds); peak RSS.
# Write: cp of a file into the mount ÷ curl POST of the same file; create-and-close of many
#        small files per second ÷ a curl POST loop.
set -euo pipefail
cd "$(dirname "$0")/.."
BIG_MIB=1024
FIND_INSTANCES=10000
WRITE_MIB=256
SMALL_FILES=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --big-mib) BIG_MIB=$2; shift 2 ;;
    --find-instances) FIND_INSTANCES=$2; shift 2 ;;
    --write-mib) WRITE_MIB=$2; shift 2 ;;
    --small-files) SMALL_FILES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/setup.sh >/dev/null
cargo build --release -q
BIN=$PWD/target/release/altinnfs
APP=ttd/altinnfs-demo
WORK=$(mktemp -d /tmp/altinnfs-bench.XXXXXX)
chmod 700 "$WORK"
PIDS=()
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

start_emulator() { # NAME INSTANCES -> sets EMU_URL, EMU_PID, EMU_DATA
  local name=$1 n=$2 port
  port=$(free_port)
  EMU_DATA=$WORK/$name-data
  "$BIN" emulator --listen 127.0.0.1:$port --data "$EMU_DATA" --sample --sample-instances "$n" \
    >"$WORK/$name-emulator.log" 2>&1 &
  EMU_PID=$!
  PIDS+=("$EMU_PID")
  EMU_URL=http://127.0.0.1:$port
  for _ in $(seq 1 600); do curl -fs "$EMU_URL/_emulator/stats" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "emulator $name did not start" >&2; cat "$WORK/$name-emulator.log" >&2; exit 1
}

mount_fs() { # MOUNTPOINT TOKENFILE -> sets FS_PID
  local mnt=$1 tok=$2
  mkdir -p "$mnt"
  "$BIN" mount "$APP" "$mnt" --app-url "$EMU_URL/$APP" --platform-url "$EMU_URL" \
    --token-file "$tok" --spool-dir "$WORK/spool-$(basename "$mnt")" --foreground \
    >"$WORK/$(basename "$mnt").log" 2>&1 &
  FS_PID=$!
  PIDS+=("$FS_PID")
  MOUNTS+=("$mnt")
  for _ in $(seq 1 300); do mountpoint -q "$mnt" && return 0; sleep 0.1; done
  echo "mount $mnt did not come up" >&2; cat "$WORK/$(basename "$mnt").log" >&2; exit 1
}

peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
stat_count() { curl -fs "$EMU_URL/_emulator/stats" | jq -r ".$1 // 0"; }

echo "== setting up (big file ${BIG_MIB} MiB, ${FIND_INSTANCES} instances for find)" >&2
start_emulator main 20
TOKEN_FILE=$WORK/token
"$BIN" token --url "$EMU_URL" --org ttd >"$TOKEN_FILE"
chmod 600 "$TOKEN_FILE"
TOKEN=$(cat "$TOKEN_FILE")
AUTH="Authorization: Bearer $TOKEN"
INST=$(curl -fs -H "$AUTH" "$EMU_URL/storage/api/v1/instances?appId=$APP&size=100" \
  | jq -r '[.instances[] | select(.status.isArchived != true and .process.currentTask != null)][0].id')
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$WORK/big.bin" 2>/dev/null \
  || dd if=/dev/urandom of="$WORK/big.bin" bs=1M count="$BIG_MIB" status=none
t0=$(now)
BIG_ID=$(curl -fs -H "$AUTH" -H "Content-Type: application/octet-stream" \
  -H 'Content-Disposition: attachment; filename="big.bin"' -X POST -T "$WORK/big.bin" \
  "$EMU_URL/$APP/instances/$INST/data/other" | jq -r .newDataElementId)
t_curl_post_big=$(calc "$(now) - $t0")

# The three sequential reads run ROUNDS times, interleaved, and the median of each counts: on a
# VM the host's caches make single runs noisy. The emulator's blob is warm in the page cache
# for all three, so the ratios measure the transports, not the disk. altinnfs gets a fresh
# mount (and an empty blob cache) each round, so every round is a real HTTP download.
ROUNDS=${ROUNDS:-3}
PARTY=${INST%%/*}; GUID=${INST##*/}
FILE="$WORK/mnt/$PARTY/$GUID/other/big.bin"
BLOB=$(find "$EMU_DATA/blobs" -name "$BIG_ID" | head -1)
mkdir -p "$WORK/bind"
cat "$BLOB" >/dev/null
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
d_runs=(); f_runs=(); b_runs=(); ttfb_d=(); ttfb_f=()
for round in $(seq 1 "$ROUNDS"); do
  read -r tt total < <(curl -fs -H "$AUTH" -o /dev/null -w '%{time_starttransfer} %{time_total}\n' \
    "$EMU_URL/storage/api/v1/instances/$INST/data/$BIG_ID")
  d_runs+=("$total"); ttfb_d+=("$tt")

  rm -rf "$WORK/spool-mnt"
  mount_fs "$WORK/mnt" "$TOKEN_FILE"
  stat "$FILE" >/dev/null
  t0=$(now)
  head -c 1 "$FILE" >/dev/null
  ttfb_f+=("$(calc "$(now) - $t0")")
  fusermount3 -u "$WORK/mnt"; wait "$FS_PID" 2>/dev/null || true
  rm -rf "$WORK/spool-mnt"
  mount_fs "$WORK/mnt" "$TOKEN_FILE"
  stat "$FILE" >/dev/null
  t0=$(now)
  dd if="$FILE" of=/dev/null bs=1M status=none
  f_runs+=("$(calc "$(now) - $t0")")
  rss_read=$(peak_rss_mib "$FS_PID")
  if [ "$round" -lt "$ROUNDS" ]; then fusermount3 -u "$WORK/mnt"; wait "$FS_PID" 2>/dev/null || true; fi

  bindfs "$(dirname "$BLOB")" "$WORK/bind"
  t0=$(now)
  dd if="$WORK/bind/$BIG_ID" of=/dev/null bs=1M status=none
  b_runs+=("$(calc "$(now) - $t0")")
  fusermount3 -u "$WORK/bind" || true
done
total_direct=$(median "${d_runs[@]}"); ttfb_direct=$(median "${ttfb_d[@]}")
t_fs=$(median "${f_runs[@]}"); ttfb_fs=$(median "${ttfb_f[@]}")
t_bind=$(median "${b_runs[@]}")
direct_mibs=$(calc "$BIG_MIB / $total_direct")
fs_mibs=$(calc "$BIG_MIB / $t_fs")
bind_mibs=$(calc "$BIG_MIB / $t_bind")
echo "read rounds (s): direct ${d_runs[*]} | altinnfs ${f_runs[*]} | bindfs ${b_runs[*]}" >&2

# --- writes: cp into the mount vs curl POST
head -c $((WRITE_MIB * 1024 * 1024)) "$WORK/big.bin" >"$WORK/write.bin"
t0=$(now)
curl -fs -H "$AUTH" -H "Content-Type: application/octet-stream" \
  -H 'Content-Disposition: attachment; filename="curl-write.bin"' -X POST -T "$WORK/write.bin" \
  "$EMU_URL/$APP/instances/$INST/data/other" >/dev/null
t_curl_write=$(calc "$(now) - $t0")
t0=$(now)
cp "$WORK/write.bin" "$WORK/mnt/$PARTY/$GUID/other/fs-write.bin"
t_fs_write=$(calc "$(now) - $t0")
rss_write=$(peak_rss_mib "$FS_PID")

# --- many small files: create-and-close through the mount vs a curl loop, each into an
# instance of its own (an instance's element count affects the server's cost per POST)
ACTIVE=$(curl -fs -H "$AUTH" "$EMU_URL/storage/api/v1/instances?appId=$APP&size=100" \
  | jq -r '[.instances[] | select(.status.isArchived != true and .process.currentTask != null)] | .[1].id, .[2].id')
INST2=$(echo "$ACTIVE" | sed -n 1p); INST3=$(echo "$ACTIVE" | sed -n 2p)
P3=${INST3%%/*}; G3=${INST3##*/}
echo "small file" >"$WORK/small.txt"
t0=$(now)
for i in $(seq 1 "$SMALL_FILES"); do
  curl -fs -H "$AUTH" -H "Content-Type: text/plain" -H "Content-Disposition: attachment; filename=\"c$i.txt\"" \
    --data-binary @"$WORK/small.txt" "$EMU_URL/$APP/instances/$INST2/data/other" >/dev/null
done
t_curl_small=$(calc "$(now) - $t0")
ls "$WORK/mnt/$P3/$G3/other" >/dev/null
t0=$(now)
for i in $(seq 1 "$SMALL_FILES"); do
  echo "small file" >"$WORK/mnt/$P3/$G3/other/f$i.txt"
done
t_fs_small=$(calc "$(now) - $t0")
fusermount3 -u "$WORK/mnt"; wait "$FS_PID" 2>/dev/null || true
kill "$EMU_PID" 2>/dev/null || true

# --- find over many instances
start_emulator find "$FIND_INSTANCES"
"$BIN" token --url "$EMU_URL" --org ttd >"$TOKEN_FILE"
curl -fs -X POST "$EMU_URL/_emulator/stats/reset" >/dev/null
mount_fs "$WORK/mntfind" "$TOKEN_FILE"
t0=$(now)
entries=$(find "$WORK/mntfind" | wc -l)
t_find=$(calc "$(now) - $t0")
find_requests=$(stat_count total)
rss_find=$(peak_rss_mib "$FS_PID")

r() { calc "round($1, 2)"; }
printf '\n%-52s %12s %12s %8s\n' "measure" "value" "ratio" "goal"
printf '%-52s %12s %12s %8s\n' "----------------------------------------------------" "------------" "------------" "--------"
printf '%-52s %10s/s %12s %8s\n' "seq read ${BIG_MIB} MiB: direct HTTP GET (curl)" "$(r $direct_mibs)MiB" "1.00" ""
printf '%-52s %10s/s %12s %8s\n' "seq read ${BIG_MIB} MiB: through altinnfs" "$(r $fs_mibs)MiB" "$(r "$fs_mibs/$direct_mibs")" ">= 0.85"
printf '%-52s %10s/s %12s %8s\n' "seq read ${BIG_MIB} MiB: bindfs passthrough" "$(r $bind_mibs)MiB" "$(r "$fs_mibs/$bind_mibs")" ">= 0.70"
printf '%-52s %11ss %12s %8s\n' "time to first byte: direct" "$(r $ttfb_direct)" "1.00" ""
printf '%-52s %11ss %12s %8s\n' "time to first byte: altinnfs" "$(r $ttfb_fs)" "$(r "$ttfb_fs/max($ttfb_direct,0.0001)")" ""
printf '%-52s %12s %12s %8s\n' "find over $FIND_INSTANCES instances: entries" "$entries" "" ""
printf '%-52s %12s %12s %8s\n' "find over $FIND_INSTANCES instances: HTTP requests" "$find_requests" "" "<= 103"
printf '%-52s %11ss %12s %8s\n' "find over $FIND_INSTANCES instances: time" "$(r $t_find)" "" ""
printf '%-52s %11ss %12s %8s\n' "write ${WRITE_MIB} MiB: curl POST" "$(r $t_curl_write)" "1.00" ""
printf '%-52s %11ss %12s %8s\n' "write ${WRITE_MIB} MiB: cp into altinnfs" "$(r $t_fs_write)" "$(r "$t_curl_write/$t_fs_write")" ">= 0.8"
printf '%-52s %10s/s %12s %8s\n' "$SMALL_FILES small files: curl POST loop" "$(r "$SMALL_FILES/$t_curl_small")" "1.00" ""
printf '%-52s %10s/s %12s %8s\n' "$SMALL_FILES small files: create+close in altinnfs" "$(r "$SMALL_FILES/$t_fs_small")" "$(r "$t_curl_small/$t_fs_small")" ""
printf '%-52s %10sMiB %12s %8s\n' "peak RSS: sequential read" "$rss_read" "" "<= 128"
printf '%-52s %10sMiB %12s %8s\n' "peak RSS: after writes" "$rss_write" "" "<= 128"
printf '%-52s %10sMiB %12s %8s\n' "peak RSS: find" "$rss_find" "" "<= 128"
echo "(curl POST of the ${BIG_MIB} MiB setup file took $(r $t_curl_post_big)s)"
