/* fnv1a: C twin of fnv1a.s. */
#include "harness.h"

uint64_t kernel(uint64_t n, uint64_t reps) {
    uint8_t *buf = mem;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    uint64_t h = 0xCBF29CE484222325ull;
    for (uint64_t r = 0; r < reps; r++)
        for (uint64_t i = 0; i < n; i++) {
            h ^= buf[i];
            h *= 0x100000001B3ull;
        }
    return h;
}
