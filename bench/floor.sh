# Part of area "find": the floor of a walk through FUSE. The same tree as the small walk, as
# empty files, walked through a bindfs passthrough: what `find` costs when each request is
# answered at once from local, cached inodes, so reviewers can judge altinnfs's walks against
# it rather than against zero. bindfs (high-level libfuse, one thread by default) makes a
# syscall on the local tree per request, so a filesystem answering from memory can beat it:
# a reference walk, not a hard lower bound (sourced by bench/run.sh).

# The mounted tree's shape (a warm remount on CACHE-NAME, untimed), one "TYPE PATH" record per
# entry, NUL-separated (names could hold newlines). A separate walk keeps find_once unchanged.
floor_list() { # CACHE-NAME -> $WORK/floor-tree.list, t_floor_list
  local mnt="$WORK/mntfind" t0
  t0=$(now)
  mount_fs "$mnt" --cache-name "$1" "${PAGE_ARGS[@]}"
  find "$mnt" -mindepth 1 -printf '%y %P\0' >"$WORK/floor-tree.list"
  umount_fs "$mnt"
  t_floor_list=$(calc "$(now) - $t0")
}

# Directories as directories, everything else as an empty file: find reads no content. On a
# tmpfs where we may mount one (root): this VM's ext4 takes ~0.3 ms per create (minutes at the
# default size), and the walk reads only cached inodes either way.
floor_make_tree() { # DIR
  rm -rf "$1"; mkdir -p "$1"
  if mount -t tmpfs -o mode=700 altinnfs-floor "$1" 2>/dev/null; then MOUNTS+=("$1"); fi
  python3 - "$WORK/floor-tree.list" "$1" <<'EOF'
import os, sys
root = os.fsencode(sys.argv[2])
for rec in open(sys.argv[1], "rb").read().split(b"\0"):
    if not rec:
        continue
    path = os.path.join(root, rec[2:])
    if rec[:1] == b"d":
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
EOF
}

# A fresh bindfs mount (empty kernel caches, like a fresh altinnfs mount), walked exactly as
# find_once walks altinnfs. The tree was just written, so the disk is not read.
floor_walk() { # TREE -> t_bind, bind_entries
  local bind="$WORK/floor-bind" t0
  mkdir -p "$bind"
  MOUNTS+=("$bind")
  bindfs "$1" "$bind"
  t0=$(now)
  find "$bind" -printf '\n' >"$WORK/floor.out"
  t_bind=$(calc "$(now) - $t0")
  bind_entries=$(stat -c %s "$WORK/floor.out")
  fusermount3 -u "$bind" || umount -l "$bind" || true
}

# N COLD-PER-INSTANCE WARM-PER-INSTANCE ENTRIES: the per-instance times in seconds (empty when
# that walk was stopped), ENTRIES what the cold altinnfs walk saw. The warm walk ran at
# FIND_INSTANCES, so the ratios compare time per instance.
floor_rows() {
  local n=$1 cold_per=$2 warm_per=$3 tree="$WORK/floor-tree" per t0
  t0=$(now)
  floor_make_tree "$tree"
  local walks=()
  for _ in $(seq 1 "$ROUNDS"); do floor_walk "$tree"; walks+=("$t_bind"); done
  echo "floor: bindfs walks (s): ${walks[*]}" >&2
  t_bind=$(median "${walks[@]}") # bindfs walks vary by 2x on this shared VM
  if mountpoint -q "$tree"; then umount "$tree"; fi
  rm -rf "$tree" "$WORK/floor-tree.list"
  echo "(floor: listing, tree and $ROUNDS bindfs walks took $(r "$t_floor_list + $(now) - $t0") s)" >&2
  [ "$bind_entries" = "$4" ] || echo "floor: bindfs walk saw $bind_entries entries, altinnfs $4" >&2
  per=$(calc "$t_bind / $n")
  local label="find floor: bindfs passthrough of a local tree like $n instances"
  row "$label: time" "$(r "$t_bind") s"
  row "$label: time per instance" "$(r "$per * 1e6") µs"
  [ -z "$warm_per" ] || row "find over $FIND_INSTANCES, warm remount: per instance ÷ bindfs floor" \
    "$(r "$warm_per * 1e6") µs" "$(r "$warm_per / $per")"
  [ -z "$cold_per" ] || row "find over $n instances, cold: per instance ÷ bindfs floor" \
    "$(r "$cold_per * 1e6") µs" "$(r "$cold_per / $per")"
}
