/* memcopy: C twin of memcopy.s (memmove for LDIR, then a byte loop). */
#include "harness.h"

uint64_t kernel(uint64_t s, uint64_t reps) {
    uint8_t *a = mem, *b = mem + s + 64;
    for (uint64_t i = 0; i < s; i++)
        a[i] = (uint8_t)(7 * i);
    for (uint64_t r = 0; r < reps; r++) {
        memmove(b, a, s);
        for (uint64_t i = 0; i < s; i++)
            a[1 + i] = b[i];
    }
    uint64_t h = 0;
    for (uint64_t i = 0; i < s + 1; i++)
        h = rotl64(h, 5) ^ a[i];
    return h;
}
