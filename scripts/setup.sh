#!/usr/bin/env bash
# Installs what altinnfs needs from Debian on a fresh machine: fuse3 (fusermount3), and the
# tools the tests drive the mount with. Safe to run again: it skips what is already there.
set -euo pipefail
pkgs=(fuse3 attr rsync jq curl ca-certificates pkg-config bindfs man-db groff-base)
# The independent suites (scripts/suites.sh): restic, fio, stress-ng; libacl1-dev builds
# pjdfstest (only with ALTINNFS_PJDFSTEST=1).
pkgs+=(restic fio stress-ng libacl1-dev python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing (modprobe fuse, or run the container with --device /dev/fuse)" >&2; exit 1; }
echo "setup: ok"
