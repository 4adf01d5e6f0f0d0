/*
 * LD_PRELOAD library that hides AVX-512 from the CPUID instruction of the process it is loaded
 * into, so that a library which picks its kernels by CPUID (XNNPACK through cpuinfo, ONNX
 * Runtime's MLAS) runs its AVX2 + FMA kernels on an AVX-512 machine: the baseline for
 * `sepconv-bench mobilenet --isa avx2` on the same core.
 *
 * How: Linux's CPUID faulting (`arch_prctl(ARCH_SET_CPUID, 0)`, CPU flag `cpuid_fault`) makes
 * every later CPUID of this thread, and of the threads it creates, raise SIGSEGV; the handler
 * re-enables CPUID for a moment, executes it, clears the AVX-512 feature bits of leaf 7
 * (subleaf 0: EBX, ECX, EDX; subleaf 1: EAX's AVX512_BF16) and steps over the instruction.
 * A fault that is not a CPUID is re-raised with the default action. Startup code that ran
 * before the constructor (the dynamic loader, glibc's ifunc choice) saw the real CPUID; that is
 * memcpy and friends, not the kernels being compared.
 *
 *   cc -O2 -shared -fPIC -o /tmp/hide-avx512.so scripts/hide-avx512.c
 *   LD_PRELOAD=/tmp/hide-avx512.so python3 scripts/baselines-mobilenet-v1.py 1
 *
 * Prints one line to stderr when it is active, and exits the process with status 3 when CPUID
 * faulting is unavailable (no `cpuid_fault`), rather than let a run pass as AVX2-only.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_SET_CPUID 0x1012

static void set_cpuid(int enabled) { syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void on_segv(int sig, siginfo_t *info, void *ctx) {
    ucontext_t *uc = ctx;
    greg_t *r = uc->uc_mcontext.gregs;
    const uint8_t *ip = (const uint8_t *)r[REG_RIP];
    (void)info;
    if (ip[0] != 0x0f || ip[1] != 0xa2) { /* not CPUID: a real fault */
        signal(sig, SIG_DFL);
        return; /* the instruction faults again, now with the default action */
    }
    uint32_t leaf = (uint32_t)r[REG_RAX], sub = (uint32_t)r[REG_RCX];
    uint32_t a, b, c, d;
    set_cpuid(1);
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(sub));
    set_cpuid(0);
    if (leaf == 7 && sub == 0) {
        /* EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31. */
        b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
               (1u << 30) | (1u << 31));
        /* ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14. */
        c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        /* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, FP16 23. */
        d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23));
    } else if (leaf == 7 && sub == 1) {
        a &= ~(1u << 5); /* AVX512_BF16 */
    }
    r[REG_RAX] = a;
    r[REG_RBX] = b;
    r[REG_RCX] = c;
    r[REG_RDX] = d;
    r[REG_RIP] += 2;
}

__attribute__((constructor)) static void hide_avx512(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "hide-avx512: CPUID faulting unavailable (no cpuid_fault); not hiding\n");
        exit(3);
    }
    fprintf(stderr, "hide-avx512: AVX-512 hidden from CPUID in this process\n");
}
