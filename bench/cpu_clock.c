/* The CPU facts behind the README's "one iteration per cycle" claim.
 *
 *   cc -O2 bench/cpu_clock.c -o /tmp/cpu_clock && /tmp/cpu_clock
 *
 * 1. A chain of dependent `add reg, reg` (1-cycle latency on every x86-64
 *    core) gives the clock. A chain of `imul` (3 cycles) cross-checks it.
 * 2. The countdown written as plain `n -= 1` (compiled to `sub reg, 1`):
 *    cores that fold small immediates in the register renamer run it faster
 *    than one per cycle, which is why gilfree hides the decrement amount.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static long long countdown_immediate(long long n) {
    while (n > 0) {
        n -= 1;
        __asm__ volatile("" : "+r"(n));
    }
    return n;
}

int main(int argc, char **argv) {
    long long n = argc > 1 ? atoll(argv[1]) : 200000000LL;
    long long x = 1, y = 3;
    __asm__ volatile("" : "+r"(y));

    double t = now();
    for (long long i = 0; i < n; i++)
        __asm__ volatile("add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\t"
                         "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0"
                         : "+r"(x) : "r"(y));
    double s = now() - t;
    double ghz = 8.0 * n / s / 1e9;
    printf("add reg,reg chain: %.4f ns each -> clock %.2f GHz (x=%lld)\n", s / (8.0 * n) * 1e9, ghz, x);

    x = 3;
    t = now();
    for (long long i = 0; i < n; i++)
        __asm__ volatile("imul %1,%0\n\timul %1,%0\n\timul %1,%0\n\timul %1,%0"
                         : "+r"(x) : "r"(y));
    s = now() - t;
    printf("imul chain:        %.4f ns each -> clock %.2f GHz at 3 cycles (x=%lld)\n",
           s / (4.0 * n) * 1e9, 3 * 4.0 * n / s / 1e9, x);

    long long m = 5 * n;
    t = now();
    long long left = countdown_immediate(m);
    s = now() - t;
    printf("n -= 1 (sub reg,1): %.4f ns per iteration = %.2f iterations per cycle (left=%lld)\n",
           s / m * 1e9, m / s / 1e9 / ghz, left);
    return 0;
}
