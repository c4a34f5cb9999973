#!/usr/bin/env bash
# Build the Debian package target/debian/altinnfs_VERSION_ARCH.deb from a staged tree with
# dpkg-deb (no extra tool needed; cargo-deb would do the same from Cargo.toml metadata).
#
#   scripts/package.sh                  cargo build --release, then package
#   BIN=target/debug/altinnfs scripts/package.sh   package that binary as it is (tests)
#
# The package carries /usr/bin/altinnfs (on every PATH mount(8) and mount.fuse3 use, so
# `mount -t fuse.altinnfs` and fstab lines work without /usr/local), the man page, bash/zsh/fish
# completions, the systemd template unit altinnfs@.service (instance NAME reads
# /etc/altinnfs/NAME.conf) and an example configuration. It depends on fuse3 (fusermount3,
# mount.fuse3).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=${OUT_DIR:-target/debian}
BIN=${BIN:-}
if [[ -z $BIN ]]; then
    cargo build --release --locked 2>/dev/null || cargo build --release
    BIN=${CARGO_TARGET_DIR:-target}/release/altinnfs
fi
[[ -x $BIN ]] || { echo "package.sh: $BIN is not an executable" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "package.sh: dpkg-deb is missing (apt-get install dpkg)" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
# The newest glibc symbol version the binary needs is the libc6 it depends on.
glibc=$(objdump -T "$BIN" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1 || true)
glibc=${glibc:-2.31}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -D -m 755 "$BIN" "$root/usr/bin/altinnfs"
strip --strip-unneeded "$root/usr/bin/altinnfs" 2>/dev/null || true
install -d -m 755 "$root/usr/share/man/man1"
gzip -9n <man/altinnfs.1 >"$root/usr/share/man/man1/altinnfs.1.gz"
chmod 644 "$root/usr/share/man/man1/altinnfs.1.gz"
install -d -m 755 "$root/usr/share/bash-completion/completions" \
    "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
"$BIN" completions bash >"$root/usr/share/bash-completion/completions/altinnfs"
"$BIN" completions zsh >"$root/usr/share/zsh/vendor-completions/_altinnfs"
"$BIN" completions fish >"$root/usr/share/fish/vendor_completions.d/altinnfs.fish"
install -D -m 644 "packaging/altinnfs@.service" "$root/usr/lib/systemd/system/altinnfs@.service"
install -D -m 644 packaging/myapp.conf "$root/usr/share/doc/altinnfs/examples/myapp.conf"
install -D -m 644 README.md "$root/usr/share/doc/altinnfs/README.md"
printf 'altinnfs\n\nCopyright: the altinnfs authors\nLicense: MIT\n' >"$root/usr/share/doc/altinnfs/copyright"
install -d -m 755 "$root/DEBIAN"
for s in postinst prerm postrm; do
    install -m 755 "packaging/$s" "$root/DEBIAN/$s"
done
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: altinnfs
Version: $version
Architecture: $arch
Maintainer: altinnfs maintainers <altinnfs@invalid>
Installed-Size: $size
Depends: libc6 (>= $glibc), fuse3
Suggests: ca-certificates
Section: utils
Priority: optional
Homepage: https://github.com/altinn
Description: mount an Altinn 3 app as a filesystem (FUSE)
 altinnfs shows the instances and data elements of an Altinn 3 app as
 directories and files: read, write, copy and delete them with ordinary
 tools. Includes a systemd template unit (altinnfs@NAME reads
 /etc/altinnfs/NAME.conf) and the "altinnfs unsent" and "altinnfs status"
 commands for operators.
CONTROL
find "$root" -type d -exec chmod 755 {} +
mkdir -p "$OUT_DIR"
deb=$OUT_DIR/altinnfs_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
