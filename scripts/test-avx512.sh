#!/usr/bin/env bash
# Runs the AVX-512 tests for real under an emulator: the CI machine (Zen3) has no AVX-512, so each
# test binary is booted in Bochs with a Skylake-X CPU (AVX-512 F/CD/BW/DQ/VL) by
# ../shared/tools/avx512-emu/avx512-run (see its README). About 150x slower than native.
#
# What runs, each binary in its own emulator boot, with SEPCONV_REQUIRE_ISAS=avx512 (an AVX-512
# test that would SKIP fails instead) and PROPTEST_CASES=16:
#   * every kernels test binary that has tests named `*avx512*`, filtered to them: today
#     ops_vs_reference (every operator and every registered AVX-512 kernel against the f64
#     reference on guard-paged buffers: proptest, tile edges of the GEMM and depthwise kernels,
#     NaN/Inf, thread counts; 11 tests) and avx512_kernels (every GEMM edge-tile shape, the 12x32
#     kernel's tall tiles, every depthwise channel tail; 3 tests);
#   * api_errors and dispatch_env whole (error paths, packed weights across ISAs, SEPCONV_ISA
#     forcing avx512 in a child process).
# Fails when a binary fails, prints SKIP, or runs no test.
# Left out, for time: the portable and avx2 tests (they run natively in CI), the lib unit tests,
# doctests and benches, and large proptest case counts (native runs use 300-1500 per op).
#
# Runtime on the 2-core Zen3 (shared): about 10 min of emulation (ops_vs_reference about 8 min,
# most of it gemm_tile_edges, whose depths follow the 8x32 tile's KC = 1024; api_errors,
# dispatch_env and avx512_kernels 15-40 s each, mostly boot), plus the build (about 40 s incremental, about 2 min from a warm registry).
# On the 2-core Cascade Lake VM, with the two 8-way-L1 depthwise variants: 12 min (ops_vs_reference
# 583 s), as each operator's tests run only over the variants it can reach; with the third AVX-512
# GEMM kernel (12x32, session 13) 17.6 min (ops_vs_reference 764 s, avx512_kernels 208 s, since
# trimmed to fewer row counts).
#
#   scripts/test-avx512.sh
#   AVX512_RUN=/path/to/avx512-run  PROPTEST_CASES=n  AVX512_TIMEOUT=sec   (overrides)
set -euo pipefail
cd "$(dirname "$0")/.."

# The runner sits in the shared tools folder beside the checkout (../shared); a clone elsewhere
# falls back to the workplace's copy.
run="${AVX512_RUN:-}"
if [ -z "$run" ]; then
  for cand in ../shared/tools/avx512-emu/avx512-run /work/shared/tools/avx512-emu/avx512-run; do
    if [ -x "$cand" ]; then run="$cand"; break; fi
  done
fi
if [ -z "$run" ] || [ ! -x "$run" ]; then
  echo "test-avx512: emulator runner $run not found (set AVX512_RUN)" >&2
  exit 1
fi
cases="${PROPTEST_CASES:-16}"
timeout="${AVX512_TIMEOUT:-1500}"
target=x86_64-unknown-linux-gnu
start=$(date +%s)

echo "== avx512: building static test binaries"
# The emulator boots a kernel whose init runs one static binary.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"
# Test executables from cargo's JSON messages (`"executable":null` for non-test artifacts); the
# name is the file name without its hash.
bins=$(cargo test --release --target "$target" -p sepconv --tests --no-run --message-format=json |
  grep -o '"executable":"[^"]*"' | sed 's/^"executable":"\(.*\)"$/\1/' |
  while read -r exe; do echo "$(basename "$exe" | sed 's/-[0-9a-f]*$//') $exe"; done)
[ -n "$bins" ] || { echo "test-avx512: no test binaries built" >&2; exit 1; }

failed=0
ran=0
ran_bins=""
logdir=$(mktemp -d)
while read -r name exe; do
  case "$name" in
    api_errors | dispatch_env) filter=() ;;
    *)
      # Only binaries with AVX-512 tests are worth a boot.
      # (The list is captured first: under `pipefail`, `grep -q` quitting at its first match
      # could SIGPIPE the lister and silently drop a binary.)
      list=$("$exe" --list --format terse 2>/dev/null) || { echo "test-avx512: cannot list $name" >&2; exit 1; }
      if ! grep -q 'avx512.*: test$' <<<"$list"; then
        continue
      fi
      filter=(avx512)
      ;;
  esac
  log="$logdir/$name.log"
  t0=$(date +%s)
  echo "== avx512: $name ${filter[*]:-(all tests)} under the emulator (PROPTEST_CASES=$cases)"
  rc=0
  "$run" -t "$timeout" -e SEPCONV_REQUIRE_ISAS=avx512 -e PROPTEST_CASES="$cases" \
    "$exe" "${filter[@]}" --test-threads=1 >"$log" 2>&1 || rc=$?
  cat "$log"
  passed=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed.*/\1/p' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    echo "test-avx512: $name FAILED (exit status $rc)" >&2
    failed=1
  elif grep -q SKIP "$log"; then
    echo "test-avx512: $name printed SKIP: a test did not really run" >&2
    failed=1
  elif [ "${passed:-0}" -eq 0 ]; then
    echo "test-avx512: $name ran no tests" >&2
    failed=1
  else
    ran=$((ran + passed))
    ran_bins="$ran_bins $name"
  fi
  echo "== avx512: $name done in $(($(date +%s) - t0))s"
done <<<"$bins"
rm -rf "$logdir"
# The binaries that hold the AVX-512 tests must all have run.
for want in avx512_kernels ops_vs_reference api_errors dispatch_env; do
  case " $ran_bins " in
    *" $want "*) ;;
    *) echo "test-avx512: $want did not run" >&2; failed=1 ;;
  esac
done

if [ "$failed" -ne 0 ]; then
  echo "== avx512: FAILED after $(($(date +%s) - start))s" >&2
  exit 1
fi
echo "== avx512: $ran tests passed under emulation in $(($(date +%s) - start))s"
