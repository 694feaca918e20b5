/* fib_iter: C twin of fib_iter.s. */
#include "harness.h"

uint64_t kernel(uint64_t n, uint64_t reps) {
    (void)reps;
    uint64_t a = 0, b = 1;
    for (uint32_t i = (uint32_t)n; i != 0; i--) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}
