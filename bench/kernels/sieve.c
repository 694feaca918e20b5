/* sieve: C twin of sieve.s (same algorithm, same byte array, same count). */
#include "harness.h"

uint64_t kernel(uint64_t n, uint64_t reps) {
    (void)reps;
    uint8_t *a = mem;
    memset(a, 1, n);
    for (uint64_t i = 2; i * i < n; i++)
        if (a[i])
            for (uint64_t j = i * i; j < n; j += i)
                a[j] = 0;
    uint64_t count = 0;
    for (uint64_t i = 2; i < n; i++)
        count += a[i];
    return count;
}
