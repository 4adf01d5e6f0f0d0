#!/usr/bin/env bash
# CI regression check: the short benchmark suite, then each row's efficiency (GFLOP/s over the FMA
# peak measured in the same run) against the baseline recorded on this kind of machine
# (reports/baselines/*.json, one per machine; `compare` picks the one whose CPU model, caches and
# ISAs match, and when none does compares % of each row's roofline bound against the first,
# amd-epyc-zen3.json: see bench-harness/src/compare.rs). Fails when a row lost more than
# the threshold. Single-row noise between separate runs on this shared 2-core machine reaches
# ~19%, so the threshold is 25% (see reports/README.md for how to update the baseline on purpose).
#
# When a row looks regressed, the suite runs again (up to twice) and each row counts at its best
# over the runs: interference from other tenants only adds time, so a row slowed by it recovers
# in a rerun, while a real regression is slow in every run.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${CARGO_TARGET_DIR:-target}/bench-ci"
threshold="${SEPCONV_BENCH_THRESHOLD:-0.25}"
bench() { cargo run --release -q -p sepconv-bench -- "$@"; }
bench report --ci --out "$out"
reruns=()
for attempt in 1 2 3; do
  if bench compare "$out/results.json" reports/baselines/*.json --threshold "$threshold" "${reruns[@]}"; then
    exit 0
  fi
  [ "$attempt" -lt 3 ] || break
  echo "== rows below the baseline: measuring the suite again (rerun $attempt of 2)"
  bench report --ci --out "$out-rerun$attempt"
  reruns+=(--rerun "$out-rerun$attempt/results.json")
done
exit 1
