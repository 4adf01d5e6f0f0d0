#!/usr/bin/env bash
# CI regression check: the short benchmark suite, then each row's efficiency (GFLOP/s over the FMA
# peak measured in the same run) against the baseline recorded on this kind of machine
# (reports/baselines/*.json, one per machine; `compare` picks the one whose CPU model, caches and
# ISAs match, and when none does compares % of each row's roofline bound against the first,
# amd-epyc-zen3.json: see bench-harness/src/compare.rs). Fails when a row lost more than
# the threshold. Single-row noise between separate runs on this shared 2-core machine reaches
# ~19%, so the threshold is 25% (see reports/README.md for how to update the baseline on purpose).
#
# When a row looks regressed, the suite runs once more and each row counts at its best over the
# two runs: interference from other tenants only adds time, so a row slowed by a burst of it
# recovers. A neighbour busy for minutes slows every run, though (CI on 7d577df: GEMM rows 20-33%
# below the baseline in three runs while the FMA probe read the usual peak). So if rows are still
# below, the verdict is paired: the baseline's own revision is rebuilt from git and both builds
# run the suite in alternating runs, each row at its best per side, until no row is below or six
# pairs have run. That compares the code, not the machine's mood (here a neighbour's phases of
# 15-60 s take AVX2 depthwise rows from 38 to 25 GFLOP/s, any build); only a row slower than the
# baseline's code in every pair fails. SEPCONV_BENCH_PAIRED=1 goes straight to the paired check.
set -euo pipefail
cd "$(dirname "$0")/.."
tgt="${CARGO_TARGET_DIR:-target}"
mkdir -p "$tgt"
tgt="$(cd "$tgt" && pwd)"
out="$tgt/bench-ci"
threshold="${SEPCONV_BENCH_THRESHOLD:-0.25}"
cargo build --release -q -p sepconv-bench
new_bin="$tgt/release/sepconv-bench"
baselines=(reports/baselines/*.json)

"$new_bin" report --ci --out "$out"
if [ "${SEPCONV_BENCH_PAIRED:-0}" != 1 ]; then
  if "$new_bin" compare "$out/results.json" "${baselines[@]}" --threshold "$threshold"; then
    exit 0
  fi
  echo "== rows below the baseline: measuring the suite again"
  "$new_bin" report --ci --out "$out-rerun1"
  if "$new_bin" compare "$out/results.json" "${baselines[@]}" --threshold "$threshold" \
    --rerun "$out-rerun1/results.json"; then
    exit 0
  fi
fi

rev="$("$new_bin" compare "$out/results.json" "${baselines[@]}" --baseline-revision)"
echo "== paired check: this build against the baseline's revision $rev, alternating runs"
src="$tgt/ci-baseline-src"
rm -rf "$src" && mkdir -p "$src"
if ! git archive "$rev" | tar -x -C "$src"; then
  echo "cannot read revision $rev from git (a shallow clone?): the comparison above stands"
  exit 1
fi
CARGO_TARGET_DIR="$tgt/ci-baseline-build" cargo build --release -q -p sepconv-bench \
  --manifest-path "$src/Cargo.toml"
old_bin="$tgt/ci-baseline-build/release/sepconv-bench"
base_runs=()
new_runs=()
pairs=6
for i in $(seq 1 "$pairs"); do
  (cd "$src" && "$old_bin" report --ci --out "$out-base$i")
  "$new_bin" report --ci --out "$out-new$i"
  base_runs+=("$out-base$i/results.json")
  [ "$i" -eq 1 ] || new_runs+=(--rerun "$out-new$i/results.json")
  if "$new_bin" compare "$out-new1/results.json" "${base_runs[@]}" --threshold "$threshold" \
    --paired "${new_runs[@]}"; then
    exit 0
  fi
  if [ "$i" -lt "$pairs" ]; then
    echo "== paired: rows still below, another pair of runs ($((i + 1)) of $pairs)"
  fi
done
exit 1
