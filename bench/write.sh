# Area "write": cp of a file into the mount ÷ curl POST of the same file, and create-and-close
# of many small files ÷ a curl POST loop (sourced by bench/run.sh).

write_big() { # -> t_curl_write, t_fs_write, rss_write
  head -c $((WRITE_MIB * 1024 * 1024)) /dev/urandom >"$WORK/write.bin"
  local t0
  t0=$(now)
  curl -fs -H "$AUTH" -H "Content-Type: application/octet-stream" \
    -H 'Content-Disposition: attachment; filename="curl-write.bin"' -X POST -T "$WORK/write.bin" \
    "$EMU_URL/$APP/instances/$INST/data/other" >/dev/null
  t_curl_write=$(calc "$(now) - $t0")
  mount_fs "$WORK/mntw"
  ls "$WORK/mntw/$PARTY/$GUID/other" >/dev/null
  t0=$(now)
  cp "$WORK/write.bin" "$WORK/mntw/$PARTY/$GUID/other/fs-write.bin"
  t_fs_write=$(calc "$(now) - $t0")
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
  row "write ${WRITE_MIB} MiB: curl POST" "$(r "$t_curl_write") s" 1.00
  row "write ${WRITE_MIB} MiB: cp into altinnfs" "$(r "$t_fs_write") s" "$(r "$t_curl_write/$t_fs_write")" ">= 0.6 (curl ÷ it)" "$rss_write"
  row "$SMALL_FILES small files: curl POST loop" "$(r "$SMALL_FILES/$t_curl_small") /s" 1.00
  row "$SMALL_FILES small files: create+close in altinnfs" "$(r "$SMALL_FILES/$t_fs_small") /s" "$(r "$t_curl_small/$t_fs_small")" "" "$rss_small"
  row "peak RSS: after writes" "$rss_small MiB" "" "<= 128 MiB"
}
