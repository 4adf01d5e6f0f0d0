#!/usr/bin/env bash
# Runs the whole workspace test suite for aarch64 under qemu-user (NEON, portable).
#
# Installs what it needs if missing: Debian's rustc-web/cargo-web (1.96, which ships the aarch64
# standard library; rustup's toolchain has none), the aarch64 cross linker and qemu-user.
# Test binaries are linked statically: dynamically linked ones hang at their first thread under
# qemu here.
#
#   scripts/test-aarch64.sh [extra cargo test args]
#   SEPCONV_REQUIRE_ISAS (default: portable,neon) turns a skipped ISA into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ci-common.sh

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  ${SUDO:-} dpkg --add-architecture arm64
  unset SEPCONV_APT_UPDATED
fi
apt_install rustc-web cargo-web rust-web-clippy libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user

export RUSTC=/usr/bin/rustc
# Debian's cargo, rustc and clippy-driver (1.96) first on PATH, not rustup's.
export PATH="/usr/bin:$PATH"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/aarch64-cross"
# The SEPCONV_ISA tests spawn the test binary again: through the emulator.
export SEPCONV_TEST_RUNNER=qemu-aarch64
export SEPCONV_REQUIRE_ISAS="${SEPCONV_REQUIRE_ISAS:-portable,neon}"
# Emulation is ~10-30x slower: fewer random cases, release build.
export PROPTEST_CASES="${PROPTEST_CASES:-64}"

echo "== aarch64: clippy"
/usr/bin/cargo clippy --workspace --all-targets --target aarch64-unknown-linux-gnu -- -D warnings
echo "== aarch64: tests under qemu-aarch64 (SEPCONV_REQUIRE_ISAS=$SEPCONV_REQUIRE_ISAS, PROPTEST_CASES=$PROPTEST_CASES)"
/usr/bin/cargo test --workspace --release --target aarch64-unknown-linux-gnu "$@"

echo "== aarch64: the benchmark report under qemu (proves the harness runs there; it marks itself EMULATED)"
# A few layers with tiny time budgets: emulated times mean nothing, the point is that it runs.
SEPCONV_EMULATOR=qemu-aarch64 /usr/bin/cargo run --release --target aarch64-unknown-linux-gnu -q \
  -p sepconv-bench -- report --ci --budget-ms 5 --probe-ms 20 --rounds 1 r224_dw1 \
  --out "$CARGO_TARGET_DIR/bench-emulated"
grep -q "EMULATED RUN" "$CARGO_TARGET_DIR/bench-emulated/roofline.md"
