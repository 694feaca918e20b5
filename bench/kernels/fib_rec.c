/* fib_rec: C twin of fib_rec.s (plain recursion). */
#include "harness.h"

__attribute__((noinline)) static uint64_t fib(uint64_t n) {
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

uint64_t kernel(uint64_t n, uint64_t reps) {
    (void)reps;
    return fib(n);
}
