/* Timing harness shared by the C twins of the ZASM benchmark kernels.
 *
 * usage: KERNEL N REPS TRIALS  -> prints "<checksum> <best nanoseconds>"
 * The kernel is called through a volatile function pointer with run-time
 * arguments and its result is printed and checked across trials, so gcc cannot
 * fold or drop the work. Guest memory is modelled by one zeroed 64 MiB block.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MEM_BYTES (64u << 20)

static uint8_t *mem;
uint64_t kernel(uint64_t n, uint64_t reps);
static uint64_t (*volatile kernel_ptr)(uint64_t, uint64_t) = kernel;

static inline uint64_t rotl64(uint64_t x, unsigned k) { return (x << k) | (x >> (64 - k)); }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s N REPS TRIALS\n", argv[0]);
        return 2;
    }
    uint64_t n = strtoull(argv[1], NULL, 0), reps = strtoull(argv[2], NULL, 0);
    long trials = strtol(argv[3], NULL, 0);
    mem = calloc(1, MEM_BYTES);
    if (!mem) return 3;
    uint64_t best = UINT64_MAX, first = 0;
    for (long t = 0; t < trials; t++) {
        uint64_t t0 = now_ns();
        uint64_t r = kernel_ptr(n, reps);
        uint64_t dt = now_ns() - t0;
        if (t == 0) first = r;
        else if (r != first) { fprintf(stderr, "checksum changed between trials\n"); return 4; }
        if (dt < best) best = dt;
    }
    printf("%llu %llu\n", (unsigned long long)first, (unsigned long long)best);
    return 0;
}
