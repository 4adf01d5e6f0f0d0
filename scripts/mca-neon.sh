#!/usr/bin/env bash
# Static performance model of the NEON inner loops (no ARM hardware needed).
#
# Builds the kernels crate for aarch64 with `--emit asm` and the `mca-markers` feature (which puts
# `LLVM-MCA-BEGIN/END <kernel>` comments inside the inner loops), cuts out the whole loop that holds
# each marker (from the loop's label to the branch back to it: the markers only locate the loop,
# the compiler may move instructions across them), and feeds it to llvm-mca-22 for Neoverse N1
# and Cortex-A76. Of a kernel's instances (edge tiles, channel tails) it keeps the full one: the
# GEMM loop with the most FMAs, the depthwise loop with whole-vector (q) loads.
#
# Prints, per loop and CPU: instructions, FMAs and loads per iteration, the simulated cycles per
# iteration, the predicted FMA-pipe utilisation (FMAs / (FMA pipes x cycles)) and loads per FMA.
#
# Models: neoverse-n1 (the Cortex-A76 microarchitecture: 2 x 128-bit FMA pipes), neoverse-n2
# (2 pipes), neoverse-v1 (4 pipes). LLVM 22 has no Cortex-A76 model of its own: `-mcpu=cortex-a76`
# schedules with the Cortex-A57 model (2 x 64-bit FP pipes, a q-register FMA occupies both), so
# it halves the FMA throughput of an A76 (FMA-bound loops look 2x slower); printed for comparison
# only.
#
#   scripts/mca-neon.sh            CPUS="neoverse-n1 cortex-a76 neoverse-n2 neoverse-v1" (default)
#   KEEP=1 scripts/mca-neon.sh     also prints the extracted loops
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ci-common.sh

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  ${SUDO:-} dpkg --add-architecture arm64
  unset SEPCONV_APT_UPDATED
fi
apt_install rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross llvm-22 python3

export RUSTC=/usr/bin/rustc
export PATH="/usr/bin:$PATH"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/aarch64-mca"
CPUS="${CPUS:-neoverse-n1 cortex-a76 neoverse-n2 neoverse-v1}"
# FMA pipes per core (128-bit).
pipes() { case "$1" in neoverse-v1 | neoverse-v2 | cortex-x1 | apple-*) echo 4 ;; *) echo 2 ;; esac; }

/usr/bin/cargo rustc -q -p sepconv --lib --release --target aarch64-unknown-linux-gnu \
  --features mca-markers -- --emit asm -C codegen-units=1
asm=$(ls -t "$CARGO_TARGET_DIR"/aarch64-unknown-linux-gnu/release/deps/sepconv-*.s | head -1)
out="$CARGO_TARGET_DIR/mca"
rm -rf "$out"
mkdir -p "$out"

# Cut the loops: writes $out/<kernel>.s for each marked kernel and prints their names.
python3 - "$asm" "$out" >"$out/names" <<'EOF'
import re, sys
asm, out = sys.argv[1], sys.argv[2]
lines = open(asm).read().splitlines()
label = re.compile(r'^(\.LBB\w+):')
instr = re.compile(r'^\s+([a-z][\w.]*)\b')
loops = {}
for i, l in enumerate(lines):
    m = re.search(r'LLVM-MCA-BEGIN (\S+)', l)
    if not m:
        continue
    name = m.group(1)
    # The loop: the nearest label above the marker ...
    j = i
    while j >= 0 and not label.match(lines[j]):
        j -= 1
    head = label.match(lines[j]).group(1)
    # ... to the first branch back to it below the marker.
    k = i
    while not re.match(r'^\s+(b(\.\w+)?|cbn?z|tbn?z)\s+([^,]+,\s*)*' + re.escape(head) + r'\s*(//.*)?$', lines[k]):
        k += 1
    body = []
    for l in lines[j + 1:k + 1]:
        l = l.split('//')[0].rstrip()
        if instr.match(l) and not l.strip().startswith('.'):
            body.append(l)
        elif label.match(l):
            sys.exit(f'{name}: the loop at {head} is not one basic block')
    loops.setdefault(name, []).append(body)

def ops(body, pat):
    return sum(1 for l in body if re.match(r'\s+(' + pat + r')\s', l))

for name, bodies in sorted(loops.items()):
    if name.startswith('gemm'):
        best = max(bodies, key=lambda b: ops(b, 'fmla'))
    else:
        # The full channel block: q loads only (the tails use lane / d / s loads).
        full = [b for b in bodies if not any(re.search(r'\bld1\b|\[\d\]|\s[ds]\d+, \[', l) for l in b)]
        best = max(full or bodies, key=lambda b: ops(b, 'fmla'))
    open(f'{out}/{name}.s', 'w').write('\n'.join(best) + '\n')
    print(name)
EOF

printf '%-28s %-12s %6s %5s %6s %11s %9s %9s\n' loop cpu instrs fmas loads cycles/iter fma-util loads/fma
while read -r name; do
  f="$out/$name.s"
  [ -n "${KEEP:-}" ] && { echo "== $name"; cat "$f"; }
  fmas=$(grep -cE '^\s+fmla\s' "$f" || true)
  loads=$(grep -cE '^\s+ld(r|p|1|1r)\s' "$f" || true)
  # ldp loads two registers: count it twice.
  ldps=$(grep -cE '^\s+ldp\s+q' "$f" || true)
  loads=$((loads + ldps))
  for cpu in $CPUS; do
    rep=$(llvm-mca-22 -mtriple=aarch64 -mcpu="$cpu" -iterations=1000 -timeline=false -bottleneck-analysis=false "$f")
    iters=$(awk '/^Iterations:/ {print $2}' <<<"$rep")
    cycles=$(awk '/^Total Cycles:/ {print $3}' <<<"$rep")
    instrs=$(awk '/^Instructions:/ {print $2}' <<<"$rep")
    awk -v n="$name" -v c="$cpu" -v it="$iters" -v cy="$cycles" -v ins="$instrs" -v f="$fmas" -v l="$loads" -v p="$(pipes "$cpu")" \
      'BEGIN { cpi = cy / it; printf "%-28s %-12s %6d %5d %6d %11.2f %8.1f%% %9.2f\n", n, c, ins / it, f, l, cpi, 100 * f / (p * cpi), l / f }'
  done
done <"$out/names"
echo "(llvm-mca-22 -mtriple=aarch64 -mcpu=<cpu> -iterations=1000 on $out/<loop>.s; fma-util = FMAs / (FMA pipes x cycles): 4 pipes on neoverse-v1, 2 on the others; cortex-a76 uses LLVM's Cortex-A57 model)"
