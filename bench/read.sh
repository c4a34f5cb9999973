# Area "read": sequential read of a big attachment through the mount ÷ curl of the same blob
# ÷ a bindfs passthrough of the blob file, and time to first byte (sourced by bench/run.sh).

upload_big() { # -> BIG_ID, BLOB (the emulator's file), t_curl_post_big
  head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$WORK/big.bin"
  local t0
  t0=$(now)
  BIG_ID=$(curl -fs -H "$AUTH" -H "Content-Type: application/octet-stream" \
    -H 'Content-Disposition: attachment; filename="big.bin"' -X POST -T "$WORK/big.bin" \
    "$EMU_URL/$APP/instances/$INST/data/other" | jq -r .newDataElementId)
  t_curl_post_big=$(calc "$(now) - $t0")
  BLOB=$(find "$EMU_DATA/blobs" -name "$BIG_ID" | head -1)
}

# Seconds from open() to the first byte of FILE, timed inside one process like curl's
# time_starttransfer (a `head` started per round would add its own exec time to the mount's).
first_byte_s() {
  python3 -c 'import os, sys, time
t = time.perf_counter()
fd = os.open(sys.argv[1], os.O_RDONLY)
os.read(fd, 1)
print(time.perf_counter() - t)' "$1"
}

# One round of the three reads -> appends to d_runs, ttfb_d, ttfb_f, f_runs, b_runs, cpu_runs
# (the daemon's CPU seconds, user + system, for the read alone); rss_read.
# altinnfs gets a fresh mount (and an empty blob cache) for each read, so every read is a real
# HTTP download.
read_round() {
  local file="$WORK/mnt/$PARTY/$GUID/other/big.bin" tt total t0 c0 b0 j0
  read -r b0 j0 < <(cpu_ticks)
  read -r tt total < <(curl -fs -H "$AUTH" -o /dev/null -w '%{time_starttransfer} %{time_total}\n' \
    "$EMU_URL/storage/api/v1/instances/$INST/data/$BIG_ID")
  d_runs+=("$total"); ttfb_d+=("$tt"); busy_d+=("$(busy_cores_since "$b0" "$j0")")

  mount_fs "$WORK/mnt"
  stat "$file" >/dev/null
  ttfb_f+=("$(first_byte_s "$file")")
  umount_fs "$WORK/mnt"
  mount_fs "$WORK/mnt"
  stat "$file" >/dev/null
  warm_pages $((2 * BIG_MIB))
  c0=$(cpu_s "$FS_PID")
  read -r b0 j0 < <(cpu_ticks)
  t0=$(now)
  dd if="$file" of=/dev/null bs=1M status=none
  f_runs+=("$(calc "$(now) - $t0")"); busy_f+=("$(busy_cores_since "$b0" "$j0")")
  cpu_runs+=("$(calc "$(cpu_s "$FS_PID") - $c0")")
  rss_read=$(peak_rss_mib "$FS_PID")
  # A second reader of the unchanged file: from the pages the first one left (auto_cache).
  reread_runs+=("$(timed_dd "$file" 1M)")
  umount_fs "$WORK/mnt"

  small_read_round
  if mount_knows --direct-io; then direct_io_round; fi

  mkdir -p "$WORK/bind"
  bindfs "$(dirname "$BLOB")" "$WORK/bind"
  warm_pages $((2 * BIG_MIB))
  read -r b0 j0 < <(cpu_ticks)
  t0=$(now)
  dd if="$WORK/bind/$BIG_ID" of=/dev/null bs=1M status=none
  b_runs+=("$(calc "$(now) - $t0")"); busy_b+=("$(busy_cores_since "$b0" "$j0")")
  fusermount3 -u "$WORK/bind" || true
}

# dd of FILE with reads of BS bytes -> seconds
timed_dd() {
  local t0
  t0=$(now)
  dd if="$1" of=/dev/null bs="$2" status=none
  calc "$(now) - $t0"
}

# The same read with 10 KiB reads (tar's record size), through a fresh mount: readahead's
# side of the trade-off that --direct-io makes. -> appends to small_runs
small_read_round() {
  local file="$WORK/mnt/$PARTY/$GUID/other/big.bin"
  mount_fs "$WORK/mnt"
  stat "$file" >/dev/null
  small_runs+=("$(timed_dd "$file" 10k)")
  umount_fs "$WORK/mnt"
}

# The read through a mount with --direct-io (files opened read-only bypass the page cache),
# with 1 MiB and with 10 KiB reads. -> appends to dio_runs, dio_small_runs
direct_io_round() {
  local file="$WORK/mnt/$PARTY/$GUID/other/big.bin"
  mount_fs "$WORK/mnt" --direct-io
  stat "$file" >/dev/null
  dio_runs+=("$(timed_dd "$file" 1M)")
  umount_fs "$WORK/mnt"
  mount_fs "$WORK/mnt" --direct-io
  stat "$file" >/dev/null
  dio_small_runs+=("$(timed_dd "$file" 10k)")
  umount_fs "$WORK/mnt"
}

# MiB/s of the median of RUNS... for BIG_MIB
mib_s() { calc "$BIG_MIB / $(median "$@")"; }

# Rows of the direct-io and small-read sides (where the binary has --direct-io).
read_option_rows() { # DIRECT (curl's MiB/s) FS (altinnfs's MiB/s)
  local small reread
  small=$(mib_s "${small_runs[@]}")
  reread=$(mib_s "${reread_runs[@]}")
  row "seq read ${BIG_MIB} MiB again, same mount (kept pages): altinnfs" "$(r "$reread") MiB/s" "$(r "$reread/$1")" "(÷ curl)"
  row "seq read ${BIG_MIB} MiB in 10 KiB reads (tar's size): altinnfs" "$(r "$small") MiB/s" "$(r "$small/$1")" "(÷ curl)"
  [ ${#dio_runs[@]} -gt 0 ] || return 0
  local dio dio_small
  dio=$(mib_s "${dio_runs[@]}"); dio_small=$(mib_s "${dio_small_runs[@]}")
  row "seq read ${BIG_MIB} MiB: altinnfs --direct-io" "$(r "$dio") MiB/s" "$(r "$dio/$1")" "(÷ curl; default ÷ it: $(r "$2/$dio"))"
  row "seq read ${BIG_MIB} MiB in 10 KiB reads: altinnfs --direct-io" "$(r "$dio_small") MiB/s" "$(r "$dio_small/$1")" "(÷ curl)"
}

# The three reads run ROUNDS times, interleaved, and the median of each counts: on a VM the
# host's caches make single runs noisy. The emulator's blob is warm in the page cache for all
# three, so the ratios measure the transports, not the disk.
area_read() {
  echo "== read: ${BIG_MIB} MiB, $ROUNDS rounds" >&2
  main_app
  upload_big
  cat "$BLOB" >/dev/null
  d_runs=(); f_runs=(); b_runs=(); ttfb_d=(); ttfb_f=(); cpu_runs=(); busy_d=(); busy_f=(); busy_b=()
  small_runs=(); dio_runs=(); dio_small_runs=(); reread_runs=()
  for _ in $(seq 1 "$ROUNDS"); do read_round; done
  echo "read rounds (s): direct ${d_runs[*]} | altinnfs ${f_runs[*]} | bindfs ${b_runs[*]}" >&2
  echo "altinnfs daemon CPU per read (s): ${cpu_runs[*]}" >&2
  local direct fs bind ttfb_direct ttfb_fs
  direct=$(calc "$BIG_MIB / $(median "${d_runs[@]}")")
  fs=$(calc "$BIG_MIB / $(median "${f_runs[@]}")")
  bind=$(calc "$BIG_MIB / $(median "${b_runs[@]}")")
  ttfb_direct=$(median "${ttfb_d[@]}"); ttfb_fs=$(median "${ttfb_f[@]}")
  row "seq read ${BIG_MIB} MiB: direct HTTP GET (curl)" "$(r "$direct") MiB/s" 1.00
  row "seq read ${BIG_MIB} MiB: through altinnfs" "$(r "$fs") MiB/s" "$(r "$fs/$direct")" ">= 0.85 (÷ curl)" "$rss_read"
  row "seq read ${BIG_MIB} MiB: bindfs passthrough" "$(r "$bind") MiB/s" "$(r "$fs/$bind")" ">= 0.8 (altinnfs ÷ it)"
  # The daemon's CPU per GiB: the reader, the daemon and the server share the machine's
  # cores, so this is the lever for the rows above, and steadier than wall time on a busy VM.
  row "seq read: altinnfs daemon CPU per GiB" "$(r "$(median "${cpu_runs[@]}") * 1024 / $BIG_MIB") s" "" "(lower is better)"
  # Whether a side is bound by CPU: cores busy (of $(nproc)) while it read, whole machine.
  row "seq read: cores busy, curl / altinnfs / bindfs (of $(nproc))" "$(r "$(median "${busy_d[@]}")") / $(r "$(median "${busy_f[@]}")") / $(r "$(median "${busy_b[@]}")")"
  read_option_rows "$direct" "$fs"
  row "time to first byte: direct" "$(r "$ttfb_direct*1000") ms" 1.00
  row "time to first byte: altinnfs" "$(r "$ttfb_fs*1000") ms" "$(r "$ttfb_fs/max($ttfb_direct,0.0001)")" "<= curl + 2 ms"
  row "peak RSS: sequential read" "$rss_read MiB" "" "<= 128 MiB"
  echo "(curl POST of the ${BIG_MIB} MiB setup file took $(r "$t_curl_post_big")s)" >&2
}
