#!/usr/bin/env bash
# sepconv's pointwise GEMM beside the `gemm` and `matrixmultiply` crates on MobileNet v1
# 1.0-224's 13 pointwise shapes, interleaved round by round (bench-harness/benches/versus.rs):
# on AVX2, with the crates held to AVX2 on an AVX-512 CPU (scripts/hide-avx512.c, where the
# CPU has CPUID faulting), and on AVX-512 where the CPU has it (the crates then pick their
# AVX-512 kernels). One Markdown table per ISA.
#
#   scripts/compare-gemm-crates.sh [ROUNDS] [FILTER]      (defaults: 15 rounds, every layer)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-15}
filter=${2:-}
. scripts/compare-common.sh
compare_setup "the gemm crate"
compare_header "the gemm and matrixmultiply crates; $rounds rounds"
versus=$(cargo bench -q -p sepconv-bench --bench versus --no-run --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "versus" and m["executable"]:
        print(m["executable"])')
for isa in $isas; do
    echo
    pre=""
    [ "$isa" = avx2 ] && [ -n "$hide" ] && pre="$PWD/$hide"
    LD_PRELOAD=$pre "$versus" --isa "$isa" --rounds "$rounds" ${filter:+"$filter"} 2>&1 | grep -v '^hide-avx512:'
done
