#!/usr/bin/env bash
# Install altinnfs: the binary in $PREFIX/bin (default /usr/local/bin, which is on the default
# PATH that mount(8)/mount.fuse3 use, so `mount -t fuse.altinnfs` and /etc/fstab entries find it),
# the man page in $PREFIX/share/man/man1 and bash completions.
#
#   scripts/install.sh                 build (cargo build --release) and install
#   scripts/install.sh --no-build      install target/release/altinnfs as it is
#   scripts/install.sh --uninstall     remove what this installs
#
# Environment: PREFIX (default /usr/local), DESTDIR (staging root for packaging), BIN (the
# binary to install; default target/release/altinnfs), BASH_COMPLETION_DIR (default
# /etc/bash_completion.d when PREFIX is /usr/local, else $PREFIX/share/bash-completion/completions).
set -euo pipefail

cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
BIN=${BIN:-target/release/altinnfs}
if [[ $PREFIX == /usr/local ]]; then
    COMPDIR=${BASH_COMPLETION_DIR:-/etc/bash_completion.d}
else
    COMPDIR=${BASH_COMPLETION_DIR:-$PREFIX/share/bash-completion/completions}
fi
build=1
action=install
for a in "$@"; do
    case $a in
    --no-build) build=0 ;;
    --uninstall) action=uninstall ;;
    -h | --help)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install.sh: unknown argument $a (try --help)" >&2
        exit 2
        ;;
    esac
done

SUDO=""
if [[ -z $DESTDIR && $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi

bin_dst="$DESTDIR$PREFIX/bin/altinnfs"
man_dst="$DESTDIR$PREFIX/share/man/man1/altinnfs.1"
comp_dst="$DESTDIR$COMPDIR/altinnfs"

if [[ $action == uninstall ]]; then
    $SUDO rm -f "$bin_dst" "$man_dst" "$comp_dst"
    echo "install.sh: removed $bin_dst, $man_dst, $comp_dst"
    exit 0
fi

if [[ $build == 1 && $BIN == target/release/altinnfs ]]; then
    command -v cargo >/dev/null || {
        echo "install.sh: cargo is missing (https://rustup.rs), or give --no-build with BIN=..." >&2
        exit 1
    }
    cargo build --release --locked 2>/dev/null || cargo build --release
fi
[[ -x $BIN ]] || {
    echo "install.sh: $BIN is not an executable (build it first, or set BIN)" >&2
    exit 1
}
"$BIN" --version >/dev/null || {
    echo "install.sh: $BIN does not run" >&2
    exit 1
}

$SUDO install -D -m 755 "$BIN" "$bin_dst"
$SUDO install -D -m 644 man/altinnfs.1 "$man_dst"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$BIN" completions bash >"$tmp"
$SUDO install -D -m 644 "$tmp" "$comp_dst"
if [[ -z $DESTDIR ]] && command -v mandb >/dev/null; then
    $SUDO mandb -q "$PREFIX/share/man" 2>/dev/null || true
fi
echo "install.sh: installed $("$bin_dst" --version) as $bin_dst; man page $man_dst; completions $comp_dst"

# What mounting needs at run time.
if [[ -z $DESTDIR ]]; then
    command -v fusermount3 >/dev/null || echo "install.sh: note: fusermount3 is missing (apt-get install fuse3)" >&2
    [[ -x /sbin/mount.fuse3 || -x /usr/sbin/mount.fuse3 ]] ||
        echo "install.sh: note: mount.fuse3 is missing, so 'mount -t fuse.altinnfs' and fstab entries will not work (apt-get install fuse3)" >&2
    [[ -e /dev/fuse ]] || echo "install.sh: note: /dev/fuse is missing (modprobe fuse)" >&2
fi
