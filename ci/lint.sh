#!/usr/bin/env bash
# Formatting and lints (host and both bare-metal targets); .ci/run runs this, then `cargo xtask test`.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy (host crates)"
cargo clippy --quiet -p tantalum-core -p tantalum-config -p xtask --all-targets -- -D warnings
echo "==> cargo clippy (aarch64 hypervisor)"
cargo clippy --quiet -p tantalum-aarch64 -p chanping --target aarch64-unknown-none-softfloat -- -D warnings
echo "==> cargo clippy (aarch64 partitions and SDK)"
cargo clippy --quiet --target aarch64-unknown-none -p tantalum-guest \
    $(ls partitions | grep -v '^sdk$' | sed 's/^/-p partition-/') -- -D warnings
echo "==> cargo clippy (x86_64)"
cargo clippy --quiet -p tantalum-x86_64 --target x86_64-unknown-none -- -D warnings
echo "==> cargo clippy (x86_64 SDK and partitions)"
cargo clippy --quiet --target x86_64-unknown-none -p tantalum-guest -p partition-hello -p partition-pipeline -- -D warnings
