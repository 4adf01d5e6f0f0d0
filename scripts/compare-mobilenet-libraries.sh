#!/usr/bin/env bash
# sepconv's MobileNet v1 1.0-224 (batch 1, one thread by default) beside XNNPACK and ONNX Runtime on this
# machine, in alternating rounds: `sepconv-bench mobilenet` on AVX2 (and AVX-512 where the CPU
# has it), then scripts/baselines-mobilenet-v1.py as the libraries find the CPU, then, on an
# AVX-512 CPU with CPUID faulting, the same script with AVX-512 hidden from CPUID
# (scripts/hide-avx512.c), so the libraries run their AVX2 kernels: the like-for-like baseline
# for sepconv's AVX2 build. Ends with the per-round ratios (sepconv median / the faster library's
# median on the same ISA, then the same for the minima) and their medians.
#
#   python3 -m venv /tmp/venv
#   /tmp/venv/bin/pip install ai-edge-litert tflite onnx onnxruntime numpy
#   PYTHON=/tmp/venv/bin/python scripts/compare-mobilenet-libraries.sh [ROUNDS] [RUNS] [THREADS] | tee LOG
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
runs=${2:-200}
threads=${3:-1}
py=${PYTHON:-python3}
. scripts/compare-common.sh
compare_setup "the libraries"
compare_header "$threads thread(s)"
for r in $(seq "$rounds"); do
    echo "== round $r $(date -u +%T)"
    for isa in $isas; do
        "$bench" mobilenet --isa "$isa" --runs "$runs" --threads "$threads" 2>&1 | grep -E "end-to-end|^FMA peak" |
            sed "s/^/sepconv $isa: /"
    done
    "$py" scripts/baselines-mobilenet-v1.py --runs "$runs" "$threads" 2>&1 | grep -E "thread|agree" |
        sed "s/^/libraries as-is: /"
    if [ -n "$hide" ]; then
        LD_PRELOAD=$PWD/$hide "$py" scripts/baselines-mobilenet-v1.py --runs "$runs" "$threads" 2>&1 |
            grep -E "thread|agree|hide" | sed "s/^/libraries avx2: /"
    fi
done | tee "$log"
"$py" - "$log" <<'EOF'
import re, statistics, sys
rounds, cur = [], None
for line in open(sys.argv[1]):
    if line.startswith("== round"):
        cur = {}
        rounds.append(cur)
        continue
    m = re.search(r"sepconv (\w+): end-to-end.*median ([\d.]+) ms, min ([\d.]+) ms", line)
    if m:
        cur["sepconv " + m.group(1)] = (float(m.group(2)), float(m.group(3)))
    m = re.search(r"libraries (as-is|avx2): (XNNPACK|ONNX).*?thread\(s\): median\s+([\d.]+) ms"
                  r"\s+min\s+([\d.]+)", line)
    if m:
        key = "avx2" if m.group(1) == "avx2" else ("avx512" if "sepconv avx512" in cur else "avx2")
        cur.setdefault("lib " + key, {})[m.group(2)] = (float(m.group(3)), float(m.group(4)))
# Medians answer the question asked; on a shared machine whose neighbours come and go within a
# round, the minima (interference only adds time) are the steadier comparison, so both are shown.
for what, i in (("median", 0), ("min", 1)):
    print(f"\nper round: sepconv {what} / the faster library's {what}, same ISA")
    for isa in ("avx2", "avx512"):
        ratios = [r["sepconv " + isa][i] / min(v[i] for v in r["lib " + isa].values())
                  for r in rounds if "sepconv " + isa in r and "lib " + isa in r]
        if ratios:
            print(f"  {isa}: " + " ".join(f"{x:.3f}" for x in ratios)
                  + f"  (median {statistics.median(ratios):.3f})")
EOF
