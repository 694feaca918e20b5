/* mulhash: C twin of mulhash.s. */
#include "harness.h"

uint64_t kernel(uint64_t n, uint64_t reps) {
    (void)reps;
    const uint64_t m = 0x5851F42D4C957F2Dull;
    uint64_t x = 0x12345678, acc = 0;
    for (uint32_t c = (uint32_t)n; c != 0; c--) {
        x *= m;
        x ^= x >> 29;
        x += c;
        acc += ((x >> 32) ^ x) * m;
    }
    return acc;
}
