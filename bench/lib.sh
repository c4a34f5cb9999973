# Helpers shared by bench/run.sh and its area scripts (sourced, not run). They expect $BIN,
# $APP and $WORK to be set, and append to PIDS/MOUNTS so run.sh's trap cleans up.

now() { date +%s.%N; }
calc() { python3 -c "from math import *; print($1)"; }
r() { calc "f'{($1):.2f}'"; }
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Whether `altinnfs mount` knows a flag: the bench runs against older and newer binaries.
mount_knows() { "$BIN" mount --help 2>/dev/null | grep -q -- "$1"; }

start_emulator() { # NAME EMULATOR-ARGS... -> sets EMU_URL, EMU_PID, EMU_DATA
  local name=$1 port
  shift
  port=$(free_port)
  EMU_DATA=$WORK/$name-data
  "$BIN" emulator --listen 127.0.0.1:$port --data "$EMU_DATA" "$@" \
    >"$WORK/$name-emulator.log" 2>&1 &
  EMU_PID=$!
  PIDS+=("$EMU_PID")
  EMU_URL=http://127.0.0.1:$port
  for _ in $(seq 1 1200); do curl -fs "$EMU_URL/_emulator/stats" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "emulator $name did not start" >&2; cat "$WORK/$name-emulator.log" >&2; exit 1
}

stop_emulator() { kill "$EMU_PID" 2>/dev/null || true; wait "$EMU_PID" 2>/dev/null || true; }

new_token() { # -> sets TOKEN_FILE, AUTH (for the running emulator)
  TOKEN_FILE=$WORK/token
  "$BIN" token --url "$EMU_URL" --org ttd >"$TOKEN_FILE"
  chmod 600 "$TOKEN_FILE"
  AUTH="Authorization: Bearer $(cat "$TOKEN_FILE")"
}

# MOUNTPOINT [--cache-name NAME] [MOUNT-ARGS...] -> sets FS_PID. Every mount gets its own spool
# and, where the binary has an index, its own index directory under $WORK (never the user's
# ~/.cache, which would make a run warm from the last one); pass the same --cache-name to
# remount on a warm index.
mount_fs() {
  local mnt=$1 name cache=()
  shift
  name=$(basename "$mnt")
  if [ "${1:-}" = --cache-name ]; then name=$2; shift 2; fi
  mount_knows --cache-dir && cache=(--cache-dir "$WORK/index-$name")
  mkdir -p "$mnt"
  "$BIN" mount "$APP" "$mnt" --app-url "$EMU_URL/$APP" --platform-url "$EMU_URL" \
    --token-file "$TOKEN_FILE" --spool-dir "$WORK/spool-$(basename "$mnt")" "${cache[@]}" \
    --foreground "$@" >>"$WORK/$(basename "$mnt").log" 2>&1 &
  FS_PID=$!
  PIDS+=("$FS_PID")
  MOUNTS+=("$mnt")
  for _ in $(seq 1 600); do mountpoint -q "$mnt" && return 0; sleep 0.1; done
  echo "mount $mnt did not come up" >&2; cat "$WORK/$(basename "$mnt").log" >&2; exit 1
}

umount_fs() { # MOUNTPOINT: unmount, wait for the daemon, drop its spool (the blob cache)
  fusermount3 -u "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
  wait "$FS_PID" 2>/dev/null || true
  rm -rf "$WORK/spool-$(basename "$1")"
}

# Peak resident memory of a live process (the kernel's high-water mark, VmHWM), in MiB.
peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# CPU seconds (user + system) a live process has used: steadier than wall time on a shared VM.
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }

stat_count() { curl -fs "$EMU_URL/_emulator/stats" | jq -r ".$1 // 0"; }
stats_reset() { curl -fs -X POST "$EMU_URL/_emulator/stats/reset" >/dev/null; }
set_faults() { curl -fs -X POST -H 'Content-Type: application/json' -d "$1" "$EMU_URL/_emulator/faults" >/dev/null; }

# Every data element of the app as "URL PARTY/GUID/ID" lines, following `next` (untimed).
list_elements() {
  local url="$EMU_URL/storage/api/v1/instances?appId=$APP&size=100" page
  while [ -n "$url" ]; do
    page=$(curl -fs -H "$AUTH" "$url")
    echo "$page" | jq -r --arg base "$EMU_URL/storage/api/v1/instances" \
      '.instances[] | .id as $i | .data[] | "\($base)/\($i)/data/\(.id) \($i)/\(.id)"'
    url=$(echo "$page" | jq -r '.next // empty')
  done
}

# The result table: rows are collected as the areas run and printed at the end, aligned by
# characters (the labels hold ÷ and µ), or as Markdown with --markdown.
ROWS=()
row() { # MEASURE VALUE [RATIO] [GOAL] [PEAK-RSS-MIB]
  ROWS+=("$1"$'\t'"$2"$'\t'"${3:-}"$'\t'"${4:-}"$'\t'"${5:+$5 MiB}")
}
print_table() { # [markdown]
  printf '%s\n' "${ROWS[@]}" | python3 -c '
import sys
head = ["measure", "value", "ratio", "goal", "peak RSS"]
rows = [l.rstrip("\n").split("\t") for l in sys.stdin if l.strip()]
if sys.argv[1] == "markdown":
    for r in [head, ["---"] * 5] + rows:
        print("| " + " | ".join(r) + " |")
    sys.exit()
w = [max(len(r[i]) for r in [head] + rows) for i in range(5)]
line = lambda r: "  ".join(c.ljust(w[i]) if i in (0, 3) else c.rjust(w[i]) for i, c in enumerate(r))
print(); print(line(head)); print(line(["-" * n for n in w]))
for r in rows: print(line(r))
' "${1:-text}"
}

# Write and free $1 MiB of pages, so the timed step that follows starts from warm memory
# whatever ran before it: on this VM, memory left free for a while is handed back to the
# host (free page reporting) and costs ~10x more to fill again.
# Busy and total jiffies of the whole machine so far (/proc/stat), as "BUSY TOTAL".
cpu_ticks() { awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }
# Cores the machine kept busy since the "BUSY TOTAL" given, out of all of them.
busy_cores_since() { # BUSY TOTAL
  local b t
  read -r b t < <(cpu_ticks)
  calc "($b - $1) / max($t - $2, 1) * $(nproc)"
}

warm_pages() {
  head -c $(($1 * 1024 * 1024)) /dev/zero >"$WORK/warm.bin"
  rm -f "$WORK/warm.bin"
}
