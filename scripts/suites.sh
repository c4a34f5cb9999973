#!/usr/bin/env bash
# Independent test suites against a real mount of the local emulator (issue 6): a restic backup
# round trip, a tar round trip, fsx, fio and stress-ng. Each ends with a plain summary line
# `NAME: N passed, N failed` (stress-ng adds `, N expected-fail`); the last line is
# `suites: N passed, N failed` (suites), and the script exits non-zero on unexpected failures
# only. Expected failures (with a one-line reason each) are in tests/suites/EXPECTED_FAILURES.md.
#
# pjdfstest cannot run on Altinn's layout (EXPECTED_FAILURES.md) and is not installed by
# default; ALTINNFS_PJDFSTEST=1 installs and runs it anyway (tests/suites/pjdfstest.toml).
# SUITES="fsx fio" runs only the named suites (default: all).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${ALTINNFS_BIN:-$ROOT/target/debug/altinnfs}
[ -x "$BIN" ] || cargo build --bin altinnfs
TOOLS=$ROOT/target/tools
SUITES=${SUITES:-restic tar fsx fio stress-ng}
want() { [[ " $SUITES " == *" $1 "* ]]; }
if [ "${ALTINNFS_PJDFSTEST:-0}" = 1 ] && [ ! -x "$TOOLS/bin/pjdfstest" ]; then
  cargo install pjdfstest --locked --root "$TOOLS" >/dev/null 2>&1 || echo "suites: cannot install pjdfstest"
fi
if want fsx && [ ! -x "$TOOLS/bin/fsx" ]; then
  cargo install fsx --version 0.3.2 --locked --root "$TOOLS" >/dev/null 2>&1 || echo "suites: cannot install fsx"
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
SUITES_PASSED=0
SUITES_FAILED=0
summary() {
  local line="$1: $2 passed, $3 failed${4:+, $4 expected-fail}"
  SUMMARY+=("$line")
  echo "$line"
  if [ "$3" -eq 0 ]; then SUITES_PASSED=$((SUITES_PASSED + 1)); else SUITES_FAILED=$((SUITES_FAILED + 1)); fi
}

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

# ---------------------------------------------------------------- fsx
# Random pread/pwrite/truncate/mmap with close/reopen (each close uploads the spool, so PUTs
# happen mid-run) on one file in other/ of a fresh instance. fsx checks every read against its
# model; afterwards the same seed is replayed on a local file, and the file as read back
# through the mount (caches dropped) and the server's stored blob must equal it byte for byte.
fsx_suite() {
  local pass=0 fail=0 exe=$TOOLS/bin/fsx cfg=$ROOT/tests/suites/fsx.toml
  local n=${FSX_OPS:-2000} seed=${FSX_SEED:-20261}
  if [ ! -x "$exe" ]; then summary fsx 0 1; UNEXPECTED=1; return; fi
  local inst dir
  inst=$(fresh_instance fsx)
  dir=$inst/other
  mkdir -p "$WORK/fsx-local" "$WORK/fsx-art"
  ck() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "fsx: FAILED: $1"; fi; }
  ck "fsx -N $n -S $seed on the mount" \
    '(cd "$WORK" && timeout 300 "$exe" -f "$cfg" -N "$n" -S "$seed" -P "$WORK/fsx-art" "$dir/fsx.bin" >"$WORK/fsx.out" 2>&1) && grep -q "A-OK" "$WORK/fsx.out"'
  (cd "$WORK" && "$exe" -f "$cfg" -N "$n" -S "$seed" -P "$WORK/fsx-local" "$WORK/fsx-local/fsx.bin" >"$WORK/fsx-local.out" 2>&1)
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
  ck "read back through the mount == local replay" 'cmp "$WORK/fsx-local/fsx.bin" "$dir/fsx.bin"'
  local guid id
  guid=$(jq -r '.id' "$inst/instance.json" | cut -d/ -f2)
  id=$(getfattr --only-values -n user.altinn.id "$dir/fsx.bin" 2>/dev/null)
  ck "server blob == local replay" 'cmp "$WORK/fsx-local/fsx.bin" "$WORK/data/blobs/ttd/altinnfs-demo/$guid/data/$id"'
  ck "one data element (no duplicates from the reopen uploads)" \
    '[ "$(jq "[.data[] | select(.dataType == \"other\")] | length" "$inst/instance.json")" = 1 ]'
  echo "fsx: $n operations, seed $seed, final size $(stat -c %s "$WORK/fsx-local/fsx.bin") bytes"
  summary fsx $pass $fail
  [ $fail -eq 0 ] || UNEXPECTED=1
}

# ---------------------------------------------------------------- fio
# Small files: 200 x 16 KiB written with crc32c verify headers, then read back and verified in
# a second run (a mismatch is job error 84). Names end in `.bin` (filename_format), since a
# data element needs an extension. Then one sequential 1 MiB read of a pre-created 64 MiB file.
fio_suite() {
  local pass=0 fail=0
  if ! command -v fio >/dev/null; then summary fio 0 1; UNEXPECTED=1; return; fi
  local dir
  dir=$(fresh_instance fio)/other
  local small=(--name=small --directory="$dir" '--filename_format=f$jobnum.$filenum.bin'
    --nrfiles=200 --filesize=16k --bs=16k --ioengine=psync --verify=crc32c --verify_state_save=0)
  run_fio() {
    local what=$1; shift
    if fio "$@" --output="$WORK/fio-$what.out" >/dev/null 2>&1 && grep -q 'err= 0' "$WORK/fio-$what.out"; then
      pass=$((pass + 1))
    else
      fail=$((fail + 1)); echo "fio: FAILED: $what"; grep -E 'err=|verify' "$WORK/fio-$what.out" | head -5
    fi
  }
  run_fio small-write "${small[@]}" --rw=write --do_verify=0 --create_on_open=1
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
  if [ "$(ls "$dir" | grep -c '^f0\..*\.bin$')" = 200 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "fio: FAILED: 200 files listed"; fi
  run_fio small-verify "${small[@]}" --rw=read
  head -c 64M /dev/urandom >"$WORK/seq.bin"
  cp "$WORK/seq.bin" "$dir/seq.bin"
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
  run_fio seq-read --name=seqread --directory="$dir" --filename=seq.bin --rw=read --bs=1M --size=64M \
    --ioengine=psync --invalidate=1
  grep -E '^ *(READ|WRITE):' "$WORK"/fio-*.out | sed -E 's/.*fio-([a-z-]+)\.out: */fio: \1: /; s/, [0-9.]+[kMG]?B\/s-.*//'
  if cmp -s "$WORK/seq.bin" "$dir/seq.bin"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "fio: FAILED: 64 MiB file differs"; fi
  summary fio $pass $fail
  [ $fail -eq 0 ] || UNEXPECTED=1
}

# ---------------------------------------------------------------- stress-ng
# One stressor per run, 5 s, --verify, temp path in other/ of a fresh instance. fstat is
# pointed at the mount (--fstat-dir; its default is /dev); open creates extension-less temp
# names in the temp path (EINVAL, as it must be) besides its /dev and /proc opens. The
# stressors that make a scratch directory first are expected failures (EXPECTED_FAILURES.md):
# they must fail at exactly that mkdir with EPERM. getdent reads /proc, /dev, /sys and never
# the temp path, so it is not run.
stress_suite() {
  local pass=0 fail=0 xfail=0
  if ! command -v stress-ng >/dev/null; then summary stress-ng 0 1; UNEXPECTED=1; return; fi
  local dir
  dir=$(fresh_instance stressng)/other
  for i in 1 2 3 4 5 6 7 8; do printf 'file %s\n' "$i" >"$dir/s$i.txt"; done
  sng() {
    local name=$1 expect=$2; shift 2
    local out=$WORK/stress-$name.out
    timeout 60 stress-ng --temp-path "$dir" "--$name" 1 -t 5s --verify --metrics-brief "$@" >"$out" 2>&1
    local rc=$?
    if [ "$expect" = ok ]; then
      if [ $rc -eq 0 ]; then
        pass=$((pass + 1)); echo "stress-ng: $name ok ($(grep -E "metrc: .* $name +[0-9]" "$out" | head -1 | awk '{print $5}') bogo ops)"
      else
        fail=$((fail + 1)); echo "stress-ng: FAILED: $name (exit $rc)"; grep -E 'fail|error' "$out" | head -3
      fi
    elif [ $rc -eq 2 ] && grep -qE "$name: mkdir .*tmp-stress-ng-$name-.*errno=1" "$out"; then
      xfail=$((xfail + 1)); echo "stress-ng: expected failure: $name (mkdir of its scratch directory is EPERM)"
    else
      fail=$((fail + 1)); echo "stress-ng: FAILED: $name was expected to fail at its scratch mkdir (exit $rc)"
      grep -E 'fail|error' "$out" | head -3
    fi
  }
  sng fstat ok --fstat-dir "$dir"
  sng open ok
  sng hdd xfail --hdd-opts wr-seq,rd-seq
  sng touch xfail
  sng filename xfail
  sng dentry xfail
  sng access xfail
  # The files it was given are untouched.
  local ok=1
  for i in 1 2 3 4 5 6 7 8; do [ "$(cat "$dir/s$i.txt")" = "file $i" ] || ok=0; done
  if [ $ok = 1 ] && [ "$(ls "$dir" | wc -l)" = 8 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "stress-ng: FAILED: the directory changed: $(ls "$dir" | head)"; fi
  summary stress-ng $pass $fail $xfail
  [ $fail -eq 0 ] || UNEXPECTED=1
}

if [ "${ALTINNFS_PJDFSTEST:-0}" = 1 ]; then
  pjd
else
  echo "pjdfstest: not run: it needs a scratch directory and extension-less file names (EXPECTED_FAILURES.md)"
fi
want restic && restic_suite
want tar && tar_suite
want fsx && fsx_suite
want fio && fio_suite
want stress-ng && stress_suite

mountpoint -q "$MNT" || { echo "suites: the mount went away"; UNEXPECTED=1; SUITES_FAILED=$((SUITES_FAILED + 1)); }
echo "----"
printf '%s\n' "${SUMMARY[@]}"
echo "suites: $SUITES_PASSED passed, $SUITES_FAILED failed"
exit $UNEXPECTED
