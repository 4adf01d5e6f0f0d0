# Shared set-up of the comparison scripts (sourced, not run): builds `sepconv-bench`
# and sets `bench` (its path), `isas` (avx2, and avx512 where this CPU has it) and `hide` (the
# LD_PRELOAD library that hides AVX-512 from CPUID, built from scripts/hide-avx512.c, where the
# CPU has AVX-512 and Linux's CPUID faulting; else empty) and `log` (a temporary file, removed
# on exit). `compare_setup WHO` names in its warning what cannot be held to AVX2 without CPUID
# faulting; `compare_header WHAT` prints the run's first line: the machine, sepconv's revision,
# then WHAT.
compare_setup() {
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    cargo build --release -q -p sepconv-bench
    bench=target/release/sepconv-bench
    isas=avx2
    hide=""
    if grep -qw avx512f /proc/cpuinfo; then
        isas="avx2 avx512"
        if grep -qw cpuid_fault /proc/cpuinfo; then
            hide=target/hide-avx512.so
            cc -O2 -Wall -shared -fPIC -o "$hide" scripts/hide-avx512.c
        else
            echo "no cpuid_fault: $1 cannot be held to AVX2 here"
        fi
    fi
}

compare_header() {
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) CPUs;" \
        "sepconv $(git rev-parse --short HEAD); $1"
}
