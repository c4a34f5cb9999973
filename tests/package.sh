#!/usr/bin/env bash
# Build the .deb (scripts/package.sh), unpack it into a scratch root (dpkg -x) and check it:
#   1. the files, their modes, and that the binary, man page and completions work;
#   2. the systemd unit: its settings, and `systemd-analyze verify` when available (the unit's
#      binary path rewritten into the scratch root, MANPATH pointed at the package's man page);
#   3. with root and /dev/fuse: in a private mount namespace whose /usr/bin is overlaid with the
#      package's (nothing in /usr/local), `mount -t fuse.altinnfs` through mount.fuse3 against
#      the emulator, `altinnfs status`, umount; then the unit's own ExecStartPre/ExecStart/
#      ExecStartPost/ExecStopPost command lines, run by hand with an /etc/altinnfs/NAME.conf,
#      as systemd would (systemd is not PID 1 here, so `systemctl start` itself is not run).
#
#   tests/package.sh                 package target/debug/altinnfs (fast)
#   BIN=path tests/package.sh        package that binary; BIN= (empty) builds --release
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN-${CARGO_TARGET_DIR:-target}/debug/altinnfs}
fail() { echo "package test: FAIL: $*" >&2; exit 1; }
ok() { echo "package test: ok: $*"; }

deb=$(BIN=$BIN scripts/package.sh | tail -1)
[[ -f $deb ]] || fail "no .deb built"
ok "built $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb -f "$deb" Package | grep -qx altinnfs || fail "control: Package"
dpkg-deb -f "$deb" Depends | grep -q fuse3 || fail "control: Depends lacks fuse3"

scratch=$(mktemp -d)
cleanup() { [[ -n ${emu_pid:-} ]] && kill "$emu_pid" 2>/dev/null; rm -rf "$scratch"; }
trap cleanup EXIT
root=$scratch/root
dpkg -x "$deb" "$root"
for f in usr/bin/altinnfs usr/share/man/man1/altinnfs.1.gz \
    usr/share/bash-completion/completions/altinnfs usr/share/zsh/vendor-completions/_altinnfs \
    usr/share/fish/vendor_completions.d/altinnfs.fish usr/lib/systemd/system/altinnfs@.service \
    usr/share/doc/altinnfs/examples/myapp.conf usr/share/doc/altinnfs/copyright; do
    [[ -s $root/$f ]] || fail "missing or empty: /$f"
done
[[ $(stat -c %a "$root/usr/bin/altinnfs") == 755 ]] || fail "/usr/bin/altinnfs is not 0755"
[[ -z $(find "$root" -path "$root/usr/local*") ]] || fail "something lands in /usr/local"
"$root/usr/bin/altinnfs" --version | grep -q altinnfs || fail "the binary does not run"
zcat "$root/usr/share/man/man1/altinnfs.1.gz" | grep -q '^\.TH' || fail "man page"
bash -n "$root/usr/share/bash-completion/completions/altinnfs" || fail "bash completion syntax"
grep -q unsent "$root/usr/share/bash-completion/completions/altinnfs" || fail "completion lacks unsent"
ok "files: binary, man page, completions, unit, example config"

unit=$root/usr/lib/systemd/system/altinnfs@.service
for want in 'EnvironmentFile=/etc/altinnfs/%i.conf' 'Restart=on-failure' \
    'After=network-online.target' 'Wants=network-online.target' 'Before=remote-fs.target' \
    'ExecStopPost=-/bin/fusermount3 -uzq ${MOUNTPOINT}' 'ExecStart=/usr/bin/altinnfs mount'; do
    grep -qF -- "$want" "$unit" || fail "unit lacks $want"
done
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$scratch/units"
    sed "s#/usr/bin/altinnfs#$root/usr/bin/altinnfs#" "$unit" >"$scratch/units/altinnfs@myapp.service"
    out=$(MANPATH=$root/usr/share/man systemd-analyze verify "$scratch/units/altinnfs@myapp.service" 2>&1) ||
        fail "systemd-analyze verify: $out"
    [[ -z $out ]] || fail "systemd-analyze verify warns: $out"
    ok "systemd-analyze verify altinnfs@myapp.service: clean"
else
    echo "package test: skip: systemd-analyze not installed"
fi

if [[ $(id -u) -ne 0 || ! -e /dev/fuse ]] || ! command -v unshare >/dev/null || ! command -v mount.fuse3 >/dev/null; then
    echo "package test: skip: the mount checks need root, /dev/fuse, unshare and fuse3"
    exit 0
fi
bin=$root/usr/bin/altinnfs
"$bin" emulator --listen 127.0.0.1:0 --data "$scratch/emu" --sample >"$scratch/emu.out" 2>"$scratch/emu.err" &
emu_pid=$!
for _ in $(seq 100); do [[ $(wc -l <"$scratch/emu.out") -ge 3 ]] && break; sleep 0.1; done
base=$(sed -n 1p "$scratch/emu.out")
app_url=$(sed -n 2p "$scratch/emu.out")
[[ $base == http* ]] || fail "emulator did not start: $(cat "$scratch/emu.err")"
(umask 077 && "$bin" token --url "$base" --org ttd >"$scratch/token")
mkdir -p "$scratch/mnt" "$scratch/etc"
cat >"$scratch/etc/test.conf" <<CONF
APP=ttd/altinnfs-demo
MOUNTPOINT=$scratch/mnt
OPTIONS="--app-url $app_url --platform-url $base --token-file $scratch/token"
CONF

# Everything below runs in a private mount namespace: /usr/bin gains the package's binary.
export scratch root base app_url unit
unshare -m --propagation private bash -euo pipefail <<'NS'
fail() { echo "package test: FAIL: $*" >&2; exit 1; }
mount -t overlay overlay -o "lowerdir=$root/usr/bin:/usr/bin" /usr/bin
mount -t tmpfs tmpfs /var/cache   # the unit's spool (/var/cache/altinnfs/NAME), private here
mnt=$scratch/mnt
opts="app_url=$app_url,platform_url=$base,token_file=$scratch/token,spool_dir=$scratch/spool,_netdev"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin mount -t fuse.altinnfs ttd/altinnfs-demo "$mnt" -o "$opts" ||
    fail "mount -t fuse.altinnfs"
findmnt -n -t fuse.altinnfs "$mnt" >/dev/null || fail "not mounted as fuse.altinnfs"
[[ -n $(ls "$mnt") ]] || fail "the mount lists nothing"
altinnfs status "$mnt" --spool-dir "$scratch/spool" | grep -q 'ttd/altinnfs-demo' || fail "status"
umount "$mnt"
! findmnt -n "$mnt" >/dev/null || fail "still mounted after umount"
echo "package test: ok: mount -t fuse.altinnfs via mount.fuse3 with /usr/bin only, status, umount"

# The unit's command lines, as systemd runs them for altinnfs@test with /etc/altinnfs/test.conf.
set -a; . "$scratch/etc/test.conf"; set +a
line() { sed -n "s/^$1=-\{0,1\}//p" "$unit" | sed 's/%i/test/g; s/\$\$/$/g'; }
mkdir -p /var/cache/altinnfs/test
eval "$(line ExecStartPre)" || true
eval "$(line ExecStart) &"
pid=$!
eval "$(line ExecStartPost)" || fail "ExecStartPost: not mounted"
[[ -n $(ls "$MOUNTPOINT") ]] || fail "unit mount lists nothing"
kill -TERM "$pid"   # what systemctl stop does
wait "$pid" || fail "altinnfs exited non-zero on SIGTERM"
eval "$(line ExecStopPost)" || true
! findmnt -n "$MOUNTPOINT" >/dev/null || fail "still mounted after stop"
echo "package test: ok: the unit's ExecStartPre/ExecStart/ExecStartPost/stop/ExecStopPost with a NAME.conf"
NS
ok "all"
