#!/usr/bin/env bash
# CI regression check: the short benchmark suite, then each row's efficiency (GFLOP/s over the FMA
# peak measured in the same run) against reports/baseline.json. Fails when a row lost more than
# the threshold. Single-row noise between separate runs on this shared 2-core machine reaches
# ~19%, so the threshold is 25% (see reports/README.md for how to update the baseline on purpose).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${CARGO_TARGET_DIR:-target}/bench-ci"
cargo run --release -q -p sepconv-bench -- report --ci --out "$out"
cargo run --release -q -p sepconv-bench -- compare "$out/results.json" reports/baseline.json \
  --threshold "${SEPCONV_BENCH_THRESHOLD:-0.25}"
