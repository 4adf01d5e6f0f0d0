#!/usr/bin/env bash
# CI check of the helper scripts that CI does not otherwise run: every shell script and Python
# script parses, scripts/hide-avx512.c compiles without warnings, and, where this CPU has
# AVX-512 and CPUID faulting, the preload really hides AVX-512 from CPUID (a probe program
# reads leaf 7's AVX512F bit with and without it). The library baselines themselves need pip
# packages and are not run here.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in scripts/*.sh .ci/run; do
    bash -n "$f"
done
python3 - scripts/*.py <<'EOF'
import ast, sys
for f in sys.argv[1:]:
    ast.parse(open(f).read(), f)
print(f"{len(sys.argv) - 1} Python scripts parse")
EOF
# The timing helper the baseline scripts share runs (it needs nothing outside the standard library).
python3 -c 'import sys; sys.path.insert(0, "scripts"); from timing import timed
calls = []
med, lo, hi = timed(lambda: calls.append(1), runs=5, warm=2)
assert len(calls) == 7 and 0 <= lo <= med <= hi, (calls, med, lo, hi)
print("timing.timed OK")'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$tmp/hide-avx512.so" scripts/hide-avx512.c
cat > "$tmp/avx512f.c" <<'EOF'
#include <cpuid.h>
#include <stdio.h>
int main(void) {
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    printf("%u\n", (b >> 16) & 1);
    return 0;
}
EOF
cc -O2 -o "$tmp/avx512f" "$tmp/avx512f.c"
if grep -qw avx512f /proc/cpuinfo && grep -qw cpuid_fault /proc/cpuinfo; then
    plain=$("$tmp/avx512f")
    hidden=$(LD_PRELOAD="$tmp/hide-avx512.so" "$tmp/avx512f" 2>/dev/null)
    echo "AVX512F in CPUID: $plain plain, $hidden under hide-avx512.so"
    [ "$plain" = 1 ] && [ "$hidden" = 0 ]
else
    echo "SKIP hide-avx512 run: this CPU lacks AVX-512 or CPUID faulting (it compiled)"
fi
echo "scripts OK"
