# Area "copy": a whole app copied out of the mount by the tools users run (cp -r, tar c,
# rsync -a), each on a fresh mount with an empty blob cache, at LATENCY_MS per request (the
# emulator's latency fault), ÷ 16 parallel curl downloads of the same elements (sourced by
# bench/run.sh). The curl side gets its element list before the clock starts; the mount's
# time includes its listing (ceil(instances/100) query pages).

# 16 curl processes at once (xargs -P 16), each fetching its share of the elements over one
# kept-alive connection, as a download script would. The element list is made once
# (copy_list); each round downloads into a fresh directory.
copy_list() { # -> N_ELEMENTS, curl config files under $WORK/curl16-cfg
  list_elements >"$WORK/elements.txt"
  N_ELEMENTS=$(wc -l <"$WORK/elements.txt")
  rm -rf "$WORK/curl16-cfg"; mkdir -p "$WORK/curl16-cfg"
  awk -v dir="$WORK/curl16" -v cfg="$WORK/curl16-cfg" \
    '{ name = $2; gsub("/", "_", name); f = cfg "/" (NR % 16) ".cfg"
       printf "url = \"%s\"\noutput = \"%s/%s\"\n", $1, dir, name >> f }' "$WORK/elements.txt"
}

copy_baseline() { # -> t_curl16, COPY_BYTES
  rm -rf "$WORK/curl16"; mkdir -p "$WORK/curl16"
  local t0
  t0=$(now)
  ls "$WORK"/curl16-cfg/*.cfg | xargs -P 16 -n 1 curl -fs -H "$AUTH" -K \
    || echo "curl baseline: some downloads failed" >&2
  t_curl16=$(calc "$(now) - $t0")
  COPY_BYTES=$(du -sb "$WORK/curl16" | cut -f1)
  [ "$(find "$WORK/curl16" -type f | wc -l)" -eq "$N_ELEMENTS" ] || echo "curl baseline: not every element downloaded" >&2
}

# TOOL: run one copy tool over the app's party directories on a fresh mount -> sets
# t_copy, rss_copy, gets_copy (element GETs the server saw).
copy_with() {
  local tool=$1 mnt="$WORK/mntc" dest="$WORK/copy-$1" t0 parties
  rm -rf "$dest"; mkdir -p "$dest"
  stats_reset
  mount_fs "$mnt" --cache-name "copy-$tool"
  t0=$(now)
  parties=$(cd "$mnt" && ls -d [0-9]*)
  case "$tool" in
    cp) (cd "$mnt" && cp -r $parties "$dest/") ;;
    tar) (cd "$mnt" && tar cf - $parties | cat >"$dest/app.tar") ;; # a pipe: GNU tar skips reading for /dev/null
    rsync) (cd "$mnt" && rsync -a $parties "$dest/") ;;
  esac
  t_copy=$(calc "$(now) - $t0")
  rss_copy=$(peak_rss_mib "$FS_PID")
  gets_copy=$(( $(stat_count blob_downloads) + $(stat_count app_data_gets) ))
  umount_fs "$mnt"
}

# ROUNDS rounds, each the curl baseline then every tool on a fresh mount (interleaved, so a
# busy VM slows all alike); the medians count, and a tool's GETs per element is its worst
# round.
area_copy() {
  echo "== copy: sample app of $COPY_INSTANCES instances at ${LATENCY_MS} ms per request, $ROUNDS rounds" >&2
  start_emulator copy --sample --sample-instances "$COPY_INSTANCES"
  new_token
  set_faults "{\"latency_ms\": $LATENCY_MS}"
  copy_list
  local tools="cp tar rsync" tool round curls=()
  declare -A times rss gets
  for round in $(seq 1 "$ROUNDS"); do
    copy_baseline
    curls+=("$t_curl16")
    for tool in $tools; do
      copy_with "$tool"
      times[$tool]="${times[$tool]:-} $t_copy"
      rss[$tool]=$(calc "max(${rss[$tool]:-0}, $rss_copy)")
      gets[$tool]=$(( gets_copy > ${gets[$tool]:-0} ? gets_copy : ${gets[$tool]:-0} ))
    done
  done
  local curl16 label name t
  curl16=$(median "${curls[@]}")
  label="app ($N_ELEMENTS elements, $(r "$COPY_BYTES/1e6") MB) at ${LATENCY_MS} ms"
  row "copy $label: 16 parallel curl" "$(r "$curl16") s" 1.00
  for tool in $tools; do
    case "$tool" in cp) name="cp -r" ;; tar) name="tar c" ;; rsync) name="rsync -a" ;; esac
    # shellcheck disable=SC2086 # the times are a space-separated list
    t=$(median ${times[$tool]})
    row "copy $label: $name" "$(r "$t") s" "$(r "$curl16/$t")" ">= 0.8 (curl16 ÷ it)" "${rss[$tool]}"
    row "  $name: element GETs per element" "${gets[$tool]}" "$(r "${gets[$tool]}/$N_ELEMENTS")" "1.00"
  done
  set_faults '{}'
  stop_emulator
}
