# Area "find": `find` over a synthetic app (the emulator derives N instances on demand), cold
# at FIND_SMALL and FIND_INSTANCES instances, then a warm remount of the big one with nothing
# changed, then one change made by someone else and the poll that should bring it, and the size
# of the index per instance; then the bindfs floor (floor.sh) and cold and warm walks at
# LATENCY_MS per request (sourced by bench/run.sh).

# `find` over the mount in the background while the daemon's RSS is polled: a walk whose
# daemon grows past RSS_ABORT_MIB is stopped (the machine may be shared), and its rows say so.
find_once() { # CACHE-NAME [MOUNT-ARGS...] -> t_find, entries, req_total, req_queries, req_cursor, rss_find, cpu_find, aborted
  local mnt="$WORK/mntfind" t0 walker t_mount
  stats_reset
  # mount_fs waits until the mountpoint answers a stat, and the root's first answer waits for
  # the first listing: that wait is part of a cold walk (t_total), not of `find` (t_find).
  t_mount=$(now)
  mount_fs "$mnt" --cache-name "$@" "${PAGE_ARGS[@]}"
  aborted=""
  t0=$(now)
  find "$mnt" -printf '\n' >"$WORK/find.out" & # one byte per entry
  walker=$!
  while kill -0 "$walker" 2>/dev/null; do
    if [ "$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$FS_PID/status")" -gt "$RSS_ABORT_MIB" ]; then
      kill "$walker" 2>/dev/null; aborted=1; break
    fi
    sleep 0.2
  done
  wait "$walker" 2>/dev/null || true
  t_find=$(calc "$(now) - $t0")
  t_total=$(calc "$(now) - $t_mount")
  entries=$(stat -c %s "$WORK/find.out")
  req_total=$(stat_count total); req_queries=$(stat_count queries)
  req_cursor=$(stat_count cursor_queries)
  # FIND_STATS_DIR=DIR in the environment keeps each walk's request counters (per path).
  [ -z "${FIND_STATS_DIR:-}" ] || curl -fs "$EMU_URL/_emulator/stats" >"$FIND_STATS_DIR/$1-$(date +%s).json"
  rss_find=$(peak_rss_mib "$FS_PID")
  cpu_find=$(cpu_s "$FS_PID")
  umount_fs "$mnt"
  if [ -n "$aborted" ]; then
    entries="$entries (stopped: RSS > $RSS_ABORT_MIB MiB)"
    t_find="$(r "$t_find") s (stopped)"
  fi
}

# The poller asks what changed once per --poll-interval (default 30 s, SPEC §7.2) however long
# the mount is up: those queries are the price of time, not of `find`. The rows say how many
# there were (cursor queries past STARTUP-POLLS: a warm mount's first poll is its freshness
# check, and find pays for it) and hold the goal against the rest.
poll_rows() { # LABEL GOAL STARTUP-POLLS
  local timed=$((req_cursor > $3 ? req_cursor - $3 : 0))
  row "$1: timed polls (1 per 30 s while mounted)" "$timed"
  row "$1: requests of find, timed polls aside" "$((req_total - timed))" "" "<= $2" "$rss_find"
}

find_rows() { # N [TIME-NOTE]
  local n=$1 label="find over $1 instances" goal
  goal=$(calc "ceil($n / $PAGE_SIZE) + 3")
  row "$label: entries" "$entries"
  row "$label: requests (queries)" "$req_total ($req_queries)" "" "" "$rss_find"
  poll_rows "$label" "$goal" 0
  if [ -n "$aborted" ]; then
    row "$label: time" "$t_find" "" "" "$rss_find"
    return 0
  fi
  row "$label: time${2:-}" "$(r "$t_find") s" "" "" "$rss_find"
  row "$label: time per instance${2:-}" "$(r "$t_find * 1e6 / $n") µs" "" "" "$rss_find"
  row "$label: daemon CPU per instance${2:-}" "$(r "$cpu_find * 1e6 / $n") µs"
  row "$label: peak RSS" "$rss_find MiB" "" "<= 128 MiB"
}

# One element added by a user of the instance's party (/_emulator/act, which the server does not
# count): how long until `ls` shows it, with the metadata TTL so long that only the poller can
# bring it, and the requests the mount made meanwhile (the poll). CHANGE_TTL=1 in the
# environment checks the row itself on a mount without a poller (the TTL brings the change).
change_poll() {
  local label="one change elsewhere (poll every $POLL_INTERVAL s)"
  if ! mount_knows --poll-interval; then
    row "$label: requests of the next poll" "n/a" "" "1 query"
    row "$label: ls shows it after" "n/a" "" "<= 1 interval"
    return 0
  fi
  local mnt="$WORK/mntfind" inst dir t0 seen=""
  inst=$(curl -fs -H "$AUTH" "$EMU_URL/storage/api/v1/instances?appId=$APP&size=1" | jq -r '.instances[0].id')
  dir="$mnt/$inst/attachment"
  mount_fs "$mnt" --cache-name find-big --poll-interval "$POLL_INTERVAL" --metadata-ttl "$CHANGE_TTL"
  ls "$dir" >/dev/null
  sleep "$POLL_INTERVAL"
  stats_reset
  head -c 3000 /dev/urandom >"$WORK/change.pdf"
  curl -fs -X POST -H 'Content-Type: application/pdf' --data-binary @"$WORK/change.pdf" \
    "$EMU_URL/_emulator/act/instances/$inst/data?dataType=attachment&filename=bench-change.pdf" >/dev/null
  t0=$(now)
  while [ "$(calc "$(now) - $t0 < 3 * $POLL_INTERVAL")" = True ]; do
    # shellcheck disable=SC2010 # ls is the point: readdir through the mount, as a user sees it
    if ls "$dir" | grep -qx bench-change.pdf; then seen=$(calc "$(now) - $t0"); break; fi
    sleep 0.1
  done
  local req rss
  req="$(stat_count total) ($(stat_count queries) queries)"
  rss=$(peak_rss_mib "$FS_PID")
  umount_fs "$mnt"
  curl -fs -H "$AUTH" "$EMU_URL/storage/api/v1/instances/$inst" \
    | jq -e '[.data[].filename] | index("bench-change.pdf")' >/dev/null \
    || echo "change_poll: the server does not show the added element" >&2
  row "$label: requests until ls shows it" "$req" "" "1 query" "$rss"
  if [ -n "$seen" ]; then
    row "$label: ls shows it after" "$(r "$seen") s" "$(r "$seen / $POLL_INTERVAL")" "<= 1 interval"
  else
    row "$label: ls shows it after" "not in $((3 * POLL_INTERVAL)) s" "" "<= 1 interval"
  fi
}

# The size of the metadata index a cold walk left (the file and its WAL), per instance.
index_row() { # N CACHE-NAME
  local dir="$WORK/index-$2" bytes
  [ -d "$dir" ] || return 0
  bytes=$(find "$dir" -name 'index.sqlite*' -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  row "find over $1 instances: index size per instance" "$(calc "round($bytes / $1)") bytes"
}

# Cold and warm walks at LATENCY_MS per request on their own emulator (own stats and index),
# so the warm ÷ cold ratio shows what the index saves where each request costs a round trip;
# on loopback both walks cost about the same FUSE requests and the ratio stays near 1.
find_latency() { # N
  local label="find over $1 instances at $LATENCY_MS ms per request" cold t0
  # --storage-ms N: each query page also takes N ms of Storage's own time (a big app's
  # Storage under load), where the first listing costs far more than the walk.
  [ "$STORAGE_MS" = 0 ] || label="$label and $STORAGE_MS ms more per query page"
  t0=$(now)
  start_emulator find-lat --synthetic-instances "$1"
  new_token
  # The emulator sleeps LATENCY_MS before every request it answers: query pages and any
  # instance or blob request alike. Only its token, health and /_emulator routes are exempt.
  set_faults "{\"latency_ms\": $LATENCY_MS, \"query_delay_ms\": $STORAGE_MS}"
  find_once find-lat
  row "$label, cold: requests (queries)" "$req_total ($req_queries)" "" "" "$rss_find"
  local cold_total=$t_total
  if [ -n "$aborted" ]; then
    row "$label, cold: time" "$t_find" "" "" "$rss_find"
  else
    cold=$t_find
    row "$label, cold: time" "$(r "$t_find") s" "" "" "$rss_find"
    row "$label, cold: mount and find" "$(r "$t_total") s" "" "" "$rss_find"
  fi
  find_once find-lat
  row "$label, warm remount: requests (queries)" "$req_total ($req_queries)" "" "<= 5" "$rss_find"
  if [ -n "$cold" ] && [ -z "$aborted" ]; then
    row "$label, warm remount: time ÷ cold" "$(r "$t_find") s" "$(r "$t_find / $cold")" "<= 0.25" "$rss_find"
    row "$label, warm remount: mount and find ÷ cold" "$(r "$t_total") s" "$(r "$t_total / $cold_total")" "<= 0.25" "$rss_find"
  else
    row "$label, warm remount: time ÷ cold" "$t_find" "" "<= 0.25" "$rss_find"
  fi
  # The first listing in 4 slices side by side, on an index of its own (cold again).
  if mount_knows --list-parallel; then
    find_once find-lat-par --list-parallel 4
    row "$label, cold, --list-parallel 4: requests (queries)" "$req_total ($req_queries)" "" "" "$rss_find"
    if [ -z "$aborted" ] && [ -n "$cold" ]; then
      row "$label, cold, --list-parallel 4: mount and find" "$(r "$t_total") s" "$(r "$t_total / $cold_total")" "(÷ one after another)" "$rss_find"
    fi
  fi
  set_faults '{}'
  stop_emulator
  echo "(find at $LATENCY_MS ms: both walks took $(r "$(now) - $t0") s)" >&2
}

# The small walk is the yardstick of the big one (time per instance, 200,000 ÷ 10,000), and a
# 3-second walk swings with the machine (286-348 µs per instance in four runs of one build):
# --rounds cold walks, each on an index of its own, and the median time and CPU count.
small_walks() { # -> as find_once, with t_find and cpu_find the medians
  local i times=() cpus=()
  for i in $(seq 1 "$ROUNDS"); do
    find_once "find-small-$i"
    [ -z "$aborted" ] || return 0
    times+=("$t_find"); cpus+=("$cpu_find")
  done
  t_find=$(median "${times[@]}")
  cpu_find=$(median "${cpus[@]}")
}

area_find() {
  echo "== find: $FIND_SMALL and $FIND_INSTANCES synthetic instances${FIND_LATENCY_MS:+ (big walks at $FIND_LATENCY_MS ms per request)}" >&2
  local small_per="" cold=""
  start_emulator find-small --synthetic-instances "$FIND_SMALL"
  new_token
  small_walks
  [ -n "$aborted" ] || small_per=$(calc "$t_find / $FIND_SMALL")
  local small_entries=$entries warm_per=""
  # The tree's shape for the bindfs floor (floor.sh), unless the walk was stopped.
  [ -n "$aborted" ] || floor_list find-small-1
  local small_cpu_per
  small_cpu_per=$(calc "$cpu_find / $FIND_SMALL")
  find_rows "$FIND_SMALL" " (median of $ROUNDS cold walks)"
  stop_emulator

  start_emulator find --synthetic-instances "$FIND_INSTANCES"
  new_token
  # FIND_LATENCY_MS=N in the environment: the emulator adds N ms to every request of the big
  # walks (cold and warm), the ratio on a real network instead of loopback.
  [ "${FIND_LATENCY_MS:-0}" = 0 ] || set_faults "{\"latency_ms\": $FIND_LATENCY_MS}"
  find_once find-big
  find_rows "$FIND_INSTANCES"
  index_row "$FIND_INSTANCES" find-big
  [ -n "$aborted" ] || cold=$t_find
  local cold_cpu=$cpu_find cold_total=$t_total
  if [ -n "$cold" ] && [ -n "$small_per" ]; then
    row "find: time per instance, $FIND_INSTANCES ÷ $FIND_SMALL" "" \
      "$(r "$cold / $FIND_INSTANCES / $small_per")" "<= 1.0"
    row "find: daemon CPU per instance, $FIND_INSTANCES ÷ $FIND_SMALL" "" \
      "$(r "$cpu_find / $FIND_INSTANCES / $small_cpu_per")"
  fi
  find_once find-big
  local warm="find over $FIND_INSTANCES, warm remount, nothing changed"
  row "$warm: requests" "$req_total ($req_queries)" "" "" "$rss_find"
  poll_rows "$warm" 5 1
  if [ -n "$cold" ] && [ -z "$aborted" ]; then
    row "$warm: time ÷ cold" "$(r "$t_find") s" "$(r "$t_find / $cold")" "<= 0.25" "$rss_find"
    row "$warm: mount and find ÷ cold" "$(r "$t_total") s" "$(r "$t_total / $cold_total")" "<= 0.25" "$rss_find"
    warm_per=$(calc "$t_find / $FIND_INSTANCES")
    row "$warm: daemon CPU ÷ cold" "$(r "$cpu_find") s" "$(r "$cpu_find / $cold_cpu")"
  else
    row "$warm: time ÷ cold" "$t_find" "" "<= 0.25" "$rss_find"
  fi
  [ "${FIND_LATENCY_MS:-0}" = 0 ] || set_faults '{}'
  change_poll
  stop_emulator
  [ -z "$small_per" ] || floor_rows "$FIND_SMALL" "$small_per" "$warm_per" "$small_entries"
  find_latency "${FIND_LATENCY_INSTANCES:-$FIND_SMALL}"
}
