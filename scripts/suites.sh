#!/usr/bin/env bash
# Independent test suites against a real mount of the local emulator (issue 6): pjdfstest,
# a restic backup round trip, and a tar round trip. Each ends with a plain summary line
# `NAME: N passed, N failed`; the script exits non-zero on unexpected failures only. Expected
# failures (with a one-line reason each) are in tests/suites/pjdfstest.toml and
# tests/suites/EXPECTED_FAILURES.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${ALTINNFS_BIN:-$ROOT/target/debug/altinnfs}
[ -x "$BIN" ] || cargo build --bin altinnfs
TOOLS=$ROOT/target/tools
if [ ! -x "$TOOLS/bin/pjdfstest" ]; then
  cargo install pjdfstest --locked --root "$TOOLS" >/dev/null 2>&1 || echo "suites: cannot install pjdfstest"
fi

WORK=$(mktemp -d /tmp/altinnfs-suites.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
EMU_PID=""
MNT_PID=""
cleanup() {
  fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
  [ -n "$MNT_PID" ] && { kill "$MNT_PID" 2>/dev/null; wait "$MNT_PID" 2>/dev/null; }
  [ -n "$EMU_PID" ] && { kill "$EMU_PID" 2>/dev/null; wait "$EMU_PID" 2>/dev/null; }
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$BIN" emulator --listen 127.0.0.1:$PORT --data "$WORK/data" --sample >"$WORK/emulator.log" 2>&1 &
EMU_PID=$!
for _ in $(seq 100); do curl -sf "$URL/health" >/dev/null 2>&1 && break; sleep 0.1; done
( umask 077; "$BIN" token --url "$URL" --org ttd >"$WORK/token" )
"$BIN" mount ttd/altinnfs-demo "$MNT" --app-url "$URL/ttd/altinnfs-demo" --platform-url "$URL" \
  --token-file "$WORK/token" --spool-dir "$WORK/spool" --log-file "$WORK/altinnfs.log" \
  --log-level info --foreground >/dev/null 2>&1 &
MNT_PID=$!
for _ in $(seq 300); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || { echo "suites: the mount did not come up"; cat "$WORK/altinnfs.log"; exit 1; }

UNEXPECTED=0
SUMMARY=()
summary() { SUMMARY+=("$1: $2 passed, $3 failed"); echo "$1: $2 passed, $3 failed"; }

# A fresh instance of its own: mkdir in a party directory creates one (the name is an alias).
fresh_instance() { mkdir "$MNT/510001/$1" && echo "$MNT/510001/$1"; }

# ---------------------------------------------------------------- pjdfstest
pjd() {
  local exe=$TOOLS/bin/pjdfstest cfg=$ROOT/tests/suites/pjdfstest.toml
  local dir
  dir=$(fresh_instance pjdfstest)/other
  if [ ! -x "$exe" ]; then summary pjdfstest 0 1; UNEXPECTED=1; return; fi
  (cd "$WORK" && timeout 600 "$exe" -c "$cfg" -p "$dir" open unlink mkdir rmdir truncate ftruncate \
    >"$WORK/pjdfstest.out" 2>&1)
  local rc=$?
  local line
  line=$(grep -E '^Summary:' "$WORK/pjdfstest.out" | tail -1)
  if [ -n "$line" ]; then
    # Summary: F failed, S skipped, P passed, E expected failures, T total
    local f p e
    f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")
    e=$(sed -E 's/.* ([0-9]+) expected.*/\1/' <<<"$line")
    echo "pjdfstest: $line"
    echo "pjdfstest: $e expected failures (tests/suites/EXPECTED_FAILURES.md)"
    summary pjdfstest "$p" "$f"
    [ "$f" -eq 0 ] || UNEXPECTED=1
  else
    # The harness itself could not start: its first step is mkdir of a temporary directory
    # inside the given path, and a data type directory has no subdirectories (EPERM, SPEC §2).
    # Listed in EXPECTED_FAILURES.md as `pjdfstest::<harness>`.
    echo "pjdfstest: harness did not start (exit $rc): $(head -1 "$WORK/pjdfstest.out")"
    if grep -q 'Operation not permitted.*\.tmp' "$WORK/pjdfstest.out"; then
      echo "pjdfstest: expected failure: <harness> (mkdir in a data type directory is EPERM)"
      summary pjdfstest 0 0
    else
      summary pjdfstest 0 1
      UNEXPECTED=1
    fi
  fi
}

# ---------------------------------------------------------------- restic
restic_suite() {
  local pass=0 fail=0
  if ! command -v restic >/dev/null; then summary restic 0 1; UNEXPECTED=1; return; fi
  export RESTIC_REPOSITORY=$WORK/restic-repo RESTIC_PASSWORD=altinnfs-suites
  # A bounded subtree keeps the run short: three parties of the sample.
  local parties
  parties=$(ls "$MNT" | grep -E '^[0-9]+$' | head -3)
  local src=()
  for p in $parties; do src+=("$MNT/$p"); done
  step() { if "$@" >>"$WORK/restic.out" 2>&1; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "restic: FAILED: $*"; fi; }
  step restic init
  step restic backup --json "${src[@]}"
  step restic check --read-data
  step restic restore latest --target "$WORK/restore"
  local ok=1
  for p in $parties; do
    diff -r "$MNT/$p" "$WORK/restore$MNT/$p" >>"$WORK/restic.out" 2>&1 || ok=0
  done
  if [ $ok = 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "restic: FAILED: diff -r restore vs mount"; fi
  # A second backup finds nothing new or changed (stable inodes, mtimes, sizes).
  local j
  j=$(restic backup --json "${src[@]}" 2>>"$WORK/restic.out" | grep '"message_type":"summary"')
  local nf cf
  nf=$(jq -r '.files_new' <<<"$j" 2>/dev/null)
  cf=$(jq -r '.files_changed' <<<"$j" 2>/dev/null)
  echo "restic: second backup: $nf new, $cf changed, $(jq -r '.total_files_processed' <<<"$j" 2>/dev/null) files, $(jq -r '.total_bytes_processed' <<<"$j" 2>/dev/null) bytes"
  if [ "$nf" = 0 ] && [ "$cf" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "restic: FAILED: second backup not incremental"; fi
  summary restic $pass $fail
  [ $fail -eq 0 ] || UNEXPECTED=1
}

# ---------------------------------------------------------------- tar
tar_suite() {
  local pass=0 fail=0
  local src=$WORK/tar-src dst
  dst=$(fresh_instance tarsuite)/other
  mkdir -p "$src"
  for i in $(seq 1 40); do head -c $((i * 3001)) /dev/urandom >"$src/file-$i.bin"; done
  printf 'hello\n' >"$src/hello.txt"
  # Into the mount with tar x (as the README advises), out with tar c.
  if (cd "$src" && tar cf - .) | (cd "$dst" && tar xf - --no-same-owner --no-same-permissions -m) 2>>"$WORK/tar.out"; then
    pass=$((pass + 1)); else fail=$((fail + 1)); echo "tar: FAILED: tar x onto the mount"; fi
  local opts=(--sort=name --mtime=@0 --owner=0 --group=0 --mode=644 --numeric-owner)
  local a b
  a=$(cd "$src" && tar cf - "${opts[@]}" --exclude=. ./* | sha256sum)
  b=$(cd "$dst" && tar cf - "${opts[@]}" --exclude=. ./* | sha256sum)
  if [ "$a" = "$b" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "tar: FAILED: tar c of the mount differs from tar c of the source"; fi
  mkdir -p "$WORK/tar-out"
  (cd "$dst" && tar cf - .) | (cd "$WORK/tar-out" && tar xf -)
  if diff -r "$src" "$WORK/tar-out" >>"$WORK/tar.out" 2>&1; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "tar: FAILED: diff -r after tar out"; fi
  echo "tar: $(du -sb "$src" | cut -f1) bytes compared"
  summary tar $pass $fail
  [ $fail -eq 0 ] || UNEXPECTED=1
}

pjd
restic_suite
tar_suite

mountpoint -q "$MNT" || { echo "suites: the mount went away"; UNEXPECTED=1; }
echo "----"
printf '%s\n' "${SUMMARY[@]}"
exit $UNEXPECTED
