#!/usr/bin/env bash
# Static performance model of the x86 inner loops (AVX2 and AVX-512) with llvm-mca (LLVM 22: older
# CPU models are too old), for CPUs a given machine may not have: Zen 3 (AVX2: the CI machine the
# AVX2 targets are written for), Skylake / Cascade Lake, Ice Lake-SP, Sapphire / Emerald Rapids
# (Golden Cove) and Zen 4 (AVX-512).
#
# 1. Builds the kernels crate with `--features mca-markers --emit asm` (one codegen unit): the
#    GEMM depth loops (each GEMM kernel's lean loop at a general depth) and the two depthwise
#    interior loops carry `# LLVM-MCA-BEGIN/END <kernel>` comments around one iteration's body.
# 2. Cuts each whole loop out of the assembly: from the loop label just before BEGIN to the
#    backward branch to that label after END, so the address updates and the branch that the
#    compiler schedules outside the markers are counted too. It checks that the cut is one loop
#    (one branch back to its own head; others only leave it) and prints its FMA count (the
#    unroll tells what to expect: GEMM 6 rows x 2 vectors x 8 steps = 96 (AVX2),
#    14 rows x 1 vector x 8 steps = 112, 8 rows x 2 vectors x 8 steps = 128 and, for the
#    12 x 32 tile's inline-assembly block, 12 x 2 x 8 = 192; depthwise 4 outputs x 9 taps x
#    2 vectors = 72 at stride 1 and 2).
#    Each loop is modelled only on the CPUs of its ISA (AVX2 loops on all of them).
# 3. Runs llvm-mca-22 on each loop per CPU and reports cycles per iteration, FMAs, loads (MayLoad
#    instructions, FMAs with a memory operand included), loads per FMA, and the predicted FMA-port
#    utilisation: sum of the FMAs' reciprocal throughputs (the model's FMA peak for that CPU) /
#    predicted cycles per iteration.
#
#   scripts/mca-x86.sh            (needs llvm-mca-22: Debian package llvm-22)
#   MCA_WORK=DIR                  (keep the cut loops and llvm-mca's reports in DIR)
#   LLVM_MCA=/path/to/llvm-mca  MCA_CPUS="skylake-avx512 znver4"   (overrides)
#   MCA_AVX2_CPUS="znver3 skylake"   (AVX2-only CPUs: they model the AVX2 loops only; MCA_CPUS
#                                     model every loop)
set -euo pipefail
cd "$(dirname "$0")/.."

mca="${LLVM_MCA:-llvm-mca-22}"
if ! command -v "$mca" >/dev/null; then
  . scripts/ci-common.sh
  apt_install llvm-22
fi
cpus="${MCA_CPUS:-skylake-avx512 icelake-server sapphirerapids znver4}"
avx2_cpus="${MCA_AVX2_CPUS:-znver3 skylake}"
dir="${CARGO_TARGET_DIR:-target}/mca"
work=${MCA_WORK:-$(mktemp -d)}
[ -n "${MCA_WORK:-}" ] || trap 'rm -rf "$work"' EXIT

echo "== mca: building the kernels with --emit asm --features mca-markers" >&2
CARGO_TARGET_DIR="$dir" cargo rustc --quiet --release -p sepconv --lib --features mca-markers \
  -- --emit asm -C codegen-units=1
asm=$(ls -t "$dir"/release/deps/sepconv-*.s | head -1)

regions=(gemm_f32_6x16_avx2 dwconv3x3_f32_c16_avx2 dwconv3x3s2_f32_c16_avx2
  gemm_f32_14x16_avx512 gemm_f32_8x32_avx512 gemm_f32_12x32_avx512
  dwconv3x3_f32_c32_avx512 dwconv3x3s2_f32_c32_avx512)
for r in "${regions[@]}"; do
  # The loop from its head label to the backward branch to it, without directives and markers.
  awk -v r="$r" '
    /^\.LBB[0-9_]+:/ { if (!inloop) { label = $0; sub(/:.*/, "", label) } }
    !inloop && $0 ~ ("LLVM-MCA-BEGIN " r "$") { inloop = 1; head = label; print head ":"; next }
    inloop {
      if ($0 ~ /^[ \t]*\./ || $0 ~ /^[ \t]*#/ || $0 ~ /^[ \t]*$/ || $0 ~ /^\.Ltmp[0-9]+:/) next
      print
      if ($0 ~ /^[ \t]*j[a-z]+[ \t]/) {
        n = split($0, f, /[ \t]+/)
        if (f[n] == head) exit 0
      }
    }
  ' "$asm" >"$work/$r.s"
  if ! tail -1 "$work/$r.s" | grep -qE "j[a-z]+[[:space:]]+$(head -1 "$work/$r.s" | tr -d ':')$"; then
    echo "mca: could not cut the loop of $r out of $asm" >&2
    exit 1
  fi
  # One back edge; other branches may only leave the loop (llvm-mca takes them as not taken: the
  # AVX2 GEMM loop's once-per-8-steps prefetch of the next panel is laid out as such a branch).
  head=$(head -1 "$work/$r.s" | tr -d ':')
  back=$(grep -cE "^[[:space:]]*j[a-z]+[[:space:]]+$head\$" "$work/$r.s")
  if [ "$back" -ne 1 ]; then
    echo "mca: the loop of $r has $back branches back to its head (expected one)" >&2
    exit 1
  fi
  echo "loop $r: $(grep -cvE '^\.?[A-Za-z0-9_.$]+:' "$work/$r.s") instructions," \
    "$(grep -c 'vfmadd' "$work/$r.s") FMAs, back edge: $(tail -1 "$work/$r.s" | tr -s '[:space:]' ' ')"
done

printf '\n%-15s %-28s %8s %8s %5s %6s %9s %9s\n' cpu loop instr cyc/iter fma loads loads/fma fma-util
avx2_regions=()
for r in "${regions[@]}"; do
  [[ $r == *_avx2 ]] && avx2_regions+=("$r")
done
# Every loop on MCA_CPUS, the AVX2 loops only on the AVX2-only CPUs.
for cpu in $avx2_cpus $cpus; do
  loops=("${regions[@]}")
  [[ " $avx2_cpus " == *" $cpu "* ]] && loops=("${avx2_regions[@]}")
  for r in "${loops[@]}"; do
    "$mca" -mcpu="$cpu" -iterations=500 "$work/$r.s" >"$work/$r.$cpu.txt" 2>&1 || {
      cat "$work/$r.$cpu.txt" >&2
      exit 1
    }
    awk -v cpu="$cpu" -v r="$r" '
      /^Iterations:/ { it = $2 }
      /^Instructions:/ { ins = $2 }
      /^Total Cycles:/ { cyc = $3 }
      /^\[1\] +\[2\] +\[3\] +\[4\]/ { info = 1; next }
      info && /^[ \t]*$/ { info = 0 }
      info {
        rthr = substr($0, 15, 7) + 0
        load = substr($0, 22, 7) ~ /\*/
        text = substr($0, 43)
        if (load) loads++
        if (text ~ /^vfmadd/) { fma++; fmart += rthr }
      }
      END {
        c = cyc / it
        printf "%-15s %-28s %8d %8.2f %5d %6d %9.2f %8.1f%%\n", cpu, r, ins / it, c, fma, loads,
          loads / fma, 100 * fmart / c
      }
    ' "$work/$r.$cpu.txt"
  done
done
