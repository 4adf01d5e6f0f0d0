#!/usr/bin/env bash
# sepconv's MobileNet v1 1.0-224 layer by layer (batch 1, one thread) beside ONNX Runtime's: where
# each one wins. Alternating rounds of `sepconv-bench mobilenet --fuse 0` (each layer's median
# time inside whole inferences) and scripts/baselines-mobilenet-v1.py --layers (ONNX Runtime's
# profiler: each node's kernel time, median over the runs), on AVX2 (ONNX Runtime held to AVX2
# with scripts/hide-avx512.c on an AVX-512 CPU with CPUID faulting) and, where the CPU has it,
# AVX-512. Prints one Markdown table per ISA: per layer the median over rounds of each side's
# median, sepconv / ONNX Runtime, and both as % of the FMA peak `sepconv-bench` measured.
# (XNNPACK runs the whole graph as one LiteRT delegate node: no per-layer times from Python;
# scripts/compare-mobilenet-libraries.sh compares end-to-end latency with it.)
#
#   python3 -m venv /tmp/venv
#   /tmp/venv/bin/pip install ai-edge-litert tflite onnx onnxruntime numpy
#   PYTHON=/tmp/venv/bin/python scripts/compare-mobilenet-layers.sh [ROUNDS] [RUNS] | tee LOG
#   FUSE=auto ...   (sepconv's default fusion of the first layers instead of layer by layer)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
runs=${2:-100}
fuse=${FUSE:-0}
py=${PYTHON:-python3}
. scripts/compare-common.sh
compare_setup "ONNX Runtime (its AVX2 rows compare against its widest ISA)"
compare_header "1 thread; --fuse $fuse; $rounds rounds of $runs runs"
for r in $(seq "$rounds"); do
    for isa in $isas; do
        echo "== round $r $isa"
        "$bench" mobilenet --isa "$isa" --runs "$runs" --fuse "$fuse" 2>&1 | sed "s/^/sepconv: /"
        pre=""
        [ "$isa" = avx2 ] && [ -n "$hide" ] && pre="$PWD/$hide"
        LD_PRELOAD=$pre "$py" scripts/baselines-mobilenet-v1.py --layers --runs "$runs" 1 2>&1 |
            sed "s/^/ort: /"
    done
done >"$log"
"$py" - "$log" <<'EOF'
import re, statistics, sys
data = {}  # isa -> {"sepconv"|"ort": {layer: [ms per round]}, "peak": [...], "mflop": {...}}
isa = None
for line in open(sys.argv[1]):
    m = re.match(r"== round \d+ (\w+)", line)
    if m:
        isa = m.group(1)
        d = data.setdefault(isa, {"sepconv": {}, "ort": {}, "peak": [], "mflop": {}, "order": []})
        continue
    if line.startswith("sepconv: FMA peak"):
        d["peak"].append(float(re.search(r"FMA peak ([\d.]+)", line).group(1)))
    elif line.startswith("sepconv: "):
        t = line.split()[1:]
        # A layer row: name, shape..., MFLOP, median ms, share %, GFLOP/s, % peak.
        if len(t) >= 6 and re.fullmatch(r"[a-z_0-9]+", t[0]) and t[0] not in ("layer", "sum") \
                and all(re.fullmatch(r"[\d.]+", v) for v in t[-5:]):
            d["mflop"][t[0]] = float(t[-5])
            d["sepconv"].setdefault(t[0], []).append(float(t[-4]))
            if t[0] not in d["order"]:
                d["order"].append(t[0])
    elif line.startswith("ort: layer "):
        _, _, name, ms = line.split()
        d["ort"].setdefault(name, []).append(float(ms))
    elif line.startswith("ort: ") and ("Error" in line or "Traceback" in line):
        sys.exit("baselines-mobilenet-v1.py failed: " + line)
for isa, d in data.items():
    peak = statistics.median(d["peak"])
    print(f"\n### {isa}: sepconv `--isa {isa}` vs ONNX Runtime"
          f"{' held to AVX2' if isa == 'avx2' else ''}; FMA peak {peak:.1f} GFLOP/s\n")
    print("| layer | MFLOP | sepconv ms | ONNX Runtime ms | sepconv / ORT | sepconv % peak"
          " | ORT % peak |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    tot = [0.0, 0.0]
    names = d["order"] + [n for n in d["ort"] if n not in d["order"]]
    for n in names:
        s = statistics.median(d["sepconv"][n]) if n in d["sepconv"] else None
        o = statistics.median(d["ort"][n]) if n in d["ort"] else None
        tot[0] += s or 0.0
        tot[1] += o or 0.0
        fl = d["mflop"].get(n, 0.0)
        pct = lambda ms: f"{100 * fl / ms / peak:.1f}" if ms and fl > 0.1 else ""
        fmt = lambda ms: f"{ms:.4f}" if ms is not None else "-"
        ratio = f"{s / o:.2f}" if s and o else ""
        print(f"| {n} | {fl:.2f} | {fmt(s)} | {fmt(o)} | {ratio} | {pct(s)} | {pct(o)} |")
    print(f"| **sum** | | {tot[0]:.3f} | {tot[1]:.3f} | {tot[0] / tot[1]:.2f} | | |")
EOF
