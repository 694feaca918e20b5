/* strcase: C twin of strcase.s. */
#include "harness.h"

uint64_t kernel(uint64_t n, uint64_t reps) {
    uint8_t *buf = mem;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)((x >> 32) & 0x7F);
    }
    uint32_t count = 0;
    for (uint64_t r = 0; r < reps; r++)
        for (uint32_t i = 0; i < (uint32_t)n; i++) {
            uint8_t c = buf[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
                buf[i] = c ^ 0x20;
                count++;
            }
        }
    uint64_t h = count;
    for (uint32_t i = 0; i < (uint32_t)n; i++)
        h = rotl64(h, 5) ^ buf[i];
    return h;
}
