#!/usr/bin/env bash
# Runs the AVX-512 tests for real under an emulator: the CI machine (Zen3) has no AVX-512, so each
# test binary is booted in Bochs with a Skylake-X CPU (AVX-512 F/CD/BW/DQ/VL) by
# ../shared/tools/avx512-emu/avx512-run (see its README). About 150x slower than native.
#
# What runs, with SEPCONV_REQUIRE_ISAS=avx512 (an AVX-512 test that would SKIP fails instead) and
# PROPTEST_CASES=16, each in its own emulator boot with its own timeout:
#   * every test named `*avx512*` in the kernels test binaries: today those of ops_vs_reference
#     (every operator and every registered AVX-512 kernel against the f64 reference on
#     guard-paged buffers: proptest, tile edges of the GEMM and depthwise kernels, NaN/Inf,
#     subnormals, thread counts; 14 tests) and avx512_kernels (every GEMM edge-tile shape, the
#     12x32 kernel's tall tiles, every depthwise channel tail; 3 tests);
#   * api_errors and dispatch_env whole (error paths, packed weights across ISAs, SEPCONV_ISA
#     forcing avx512 in a child process).
# Bochs is single-threaded, so the boots run `AVX512_JOBS` at a time (default: one per CPU).
# Fails when a boot fails or times out, prints SKIP, or runs no test.
# Left out, for time: the portable and avx2 tests (they run natively in CI), the lib unit tests
# but those named `*avx512*`, doctests and benches, and large proptest case counts (native runs
# use 300-1500 per op).
#
# Runtime. Each boot costs 10-25 s before the test starts. Until session 16 each binary ran in
# one boot: on the 2-core Cascade Lake VM ops_vs_reference took 583-764 s in quiet phases, but
# about 1500 s in a slow one, when it hit the 1500 s timeout (CI of b5edc24). One boot per test,
# two at a time (session 17, same VM, a quiet phase): 464 s in all, gemm_tile_edges 346 s (its
# depths follow the 8x32 tile's KC = 1024) while the 19 other boots ran beside it (9-79 s each).
#
#   scripts/test-avx512.sh
#   AVX512_RUN=/path/to/avx512-run  PROPTEST_CASES=n  AVX512_TIMEOUT=sec  AVX512_JOBS=n  (overrides)
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
timeout="${AVX512_TIMEOUT:-1200}"
jobs="${AVX512_JOBS:-$(nproc)}"
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

# The jobs, one emulator boot each: api_errors and dispatch_env whole (cheap, mostly boot), and
# every `*avx512*` test of the other binaries on its own, so each test has its own timeout and a
# slow one cannot starve the rest of a binary.
jobs_file=$(mktemp)
while read -r name exe; do
  case "$name" in
    api_errors | dispatch_env) echo "$name $exe -" >>"$jobs_file" ;;
    *)
      # (The list is captured first: under `pipefail`, `grep` quitting early could SIGPIPE the
      # lister and silently drop a test.)
      list=$("$exe" --list --format terse 2>/dev/null) || { echo "test-avx512: cannot list $name" >&2; exit 1; }
      sed -n 's/^\(.*avx512.*\): test$/\1/p' <<<"$list" | while read -r test; do
        echo "$name $exe $test" >>"$jobs_file"
      done
      ;;
  esac
done <<<"$bins"
echo "== avx512: $(wc -l <"$jobs_file") emulator boots, $jobs at a time, PROPTEST_CASES=$cases, timeout ${timeout}s each"

logdir=$(mktemp -d)
# One boot: its output to $logdir/N.log, its exit status to $logdir/N.rc, a line when it ends.
run_job() {
  local n=$1 name=$2 exe=$3 test=$4 t0 rc=0
  local args=(--test-threads=1)
  [ "$test" = - ] || args=("$test" --exact --test-threads=1)
  t0=$(date +%s)
  "$run" -t "$timeout" -e SEPCONV_REQUIRE_ISAS=avx512 -e PROPTEST_CASES="$cases" \
    "$exe" "${args[@]}" >"$logdir/$n.log" 2>&1 || rc=$?
  echo "$rc" >"$logdir/$n.rc"
  echo "== avx512: $name ${test/#-/(all tests)} exit $rc in $(($(date +%s) - t0))s"
}
n=0
while read -r name exe test; do
  n=$((n + 1))
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_job "$n" "$name" "$exe" "$test" </dev/null &
done <"$jobs_file"
wait

# Every boot must pass, print no SKIP and run at least one test; the binaries that hold the
# AVX-512 tests must all have run.
failed=0
ran=0
ran_bins=""
n=0
while read -r name exe test; do
  n=$((n + 1))
  log="$logdir/$n.log"
  label="$name ${test/#-/(all tests)}"
  rc=$(cat "$logdir/$n.rc" 2>/dev/null || echo "missing")
  passed=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed.*/\1/p' "$log" | tail -1)
  why=""
  if [ "$rc" != 0 ]; then
    why="FAILED (exit status $rc)"
  elif grep -q SKIP "$log"; then
    why="printed SKIP: a test did not really run"
  elif [ "${passed:-0}" -eq 0 ]; then
    why="ran no tests"
  fi
  if [ -n "$why" ]; then
    echo "== avx512: $label $why; its output:" >&2
    cat "$log" >&2
    failed=1
  else
    echo "ok   $label ($passed passed)"
    ran=$((ran + passed))
    ran_bins="$ran_bins $name"
  fi
done <"$jobs_file"
rm -rf "$logdir" "$jobs_file"
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
