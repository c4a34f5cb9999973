#!/usr/bin/env bash
# The main job: install what is needed, build, start the embedded emulator with sample data
# and mount it at MOUNTPOINT (default /tmp/altinn). Ctrl-C unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mnt="${1:-/tmp/altinn}"
mkdir -p "$mnt"
cargo build --release
exec target/release/altinnfs demo "$mnt"
