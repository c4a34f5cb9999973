#!/usr/bin/env bash
# Runs every test: unit tests, the emulator/client API tests, and the integration tests that
# mount the filesystem for real through the kernel and drive it with ls, cp, rsync, stat...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --all-targets --features mount-tests
cargo test --features mount-tests -- --test-threads=2
# Independent suites (pjdfstest, restic, tar) against a real mount of the emulator.
scripts/suites.sh
