# Area "write": cp of a file into the mount ÷ curl POST of the same file, and create-and-close
# of many small files ÷ a curl POST loop (sourced by bench/run.sh).

# CPU seconds (user + system) a process has used so far: robust to a busy machine, where
# wall times swing.

write_curl_once() { # $1 round; appends to curl_times
  local t0
  warm_pages $((2 * WRITE_MIB))
  t0=$(now)
  curl -fs -H "$AUTH" -H "Content-Type: application/octet-stream" \
    -H "Content-Disposition: attachment; filename=\"curl-write-$1.bin\"" -X POST -T "$WORK/write.bin" \
    "$EMU_URL/$APP/instances/$INST/data/other" >/dev/null
  curl_times+=("$(calc "$(now) - $t0")")
}

write_fs_once() { # $1 round; appends to fs_times, fs_cpu
  local t0 c0
  warm_pages $((2 * WRITE_MIB))
  c0=$(cpu_s "$FS_PID"); t0=$(now)
  cp "$WORK/write.bin" "$WORK/mntw/$PARTY/$GUID/other/fs-write-$1.bin"
  fs_times+=("$(calc "$(now) - $t0")")
  fs_cpu+=("$(calc "$(cpu_s "$FS_PID") - $c0")")
}

write_big() { # -> t_curl_write, t_fs_write, cpu_fs_write (medians of $ROUNDS), rss_write
  local i curl_times=() fs_times=() fs_cpu=()
  head -c $((WRITE_MIB * 1024 * 1024)) /dev/urandom >"$WORK/write.bin"
  mount_fs "$WORK/mntw"
  ls "$WORK/mntw/$PARTY/$GUID/other" >/dev/null
  # Alternate the two sides and their order, each writing a new element: one slow disk
  # flush or busy neighbour then moves one sample, not the ratio. Before each side, pages
  # are written and freed: on this VM, memory untouched for a while costs ~10x more to fill
  # (free page reporting, DAMON), and whichever side ran second would otherwise reuse the
  # pages the first one just freed.
  for i in $(seq 1 "$ROUNDS"); do
    if ((i % 2)); then
      write_curl_once "$i"; write_fs_once "$i"
    else
      write_fs_once "$i"; write_curl_once "$i"
    fi
  done
  t_curl_write=$(median "${curl_times[@]}")
  t_fs_write=$(median "${fs_times[@]}")
  cpu_fs_write=$(median "${fs_cpu[@]}")
  rss_write=$(peak_rss_mib "$FS_PID")
}

# Each side writes into an instance of its own: an instance's element count affects the
# server's cost per POST. Uses the mount write_big left up.
write_small() { # -> t_curl_small, t_fs_small, rss_small
  local inst2 inst3 dir t0
  inst2=$(echo "$ACTIVE_IDS" | sed -n 2p); inst3=$(echo "$ACTIVE_IDS" | sed -n 3p)
  dir="$WORK/mntw/${inst3%%/*}/${inst3##*/}/other"
  echo "small file" >"$WORK/small.txt"
  t0=$(now)
  for i in $(seq 1 "$SMALL_FILES"); do
    curl -fs -H "$AUTH" -H "Content-Type: text/plain" -H "Content-Disposition: attachment; filename=\"c$i.txt\"" \
      --data-binary @"$WORK/small.txt" "$EMU_URL/$APP/instances/$inst2/data/other" >/dev/null
  done
  t_curl_small=$(calc "$(now) - $t0")
  ls "$dir" >/dev/null
  t0=$(now)
  for i in $(seq 1 "$SMALL_FILES"); do echo "small file" >"$dir/f$i.txt"; done
  t_fs_small=$(calc "$(now) - $t0")
  rss_small=$(peak_rss_mib "$FS_PID")
}

area_write() {
  echo "== write: ${WRITE_MIB} MiB, $SMALL_FILES small files" >&2
  main_app
  write_big
  write_small
  umount_fs "$WORK/mntw"
  row "write ${WRITE_MIB} MiB: curl POST (median of $ROUNDS)" "$(r "$t_curl_write") s" 1.00
  row "write ${WRITE_MIB} MiB: cp into altinnfs (median of $ROUNDS)" "$(r "$t_fs_write") s" "$(r "$t_curl_write/$t_fs_write")" ">= 0.6 (curl ÷ it)" "$rss_write"
  row "write ${WRITE_MIB} MiB: daemon CPU per cp (median)" "$(r "$cpu_fs_write") s"
  row "$SMALL_FILES small files: curl POST loop" "$(r "$SMALL_FILES/$t_curl_small") /s" 1.00
  row "$SMALL_FILES small files: create+close in altinnfs" "$(r "$SMALL_FILES/$t_fs_small") /s" "$(r "$t_curl_small/$t_fs_small")" "" "$rss_small"
  row "peak RSS: after writes" "$rss_small MiB" "" "<= 128 MiB"
}
