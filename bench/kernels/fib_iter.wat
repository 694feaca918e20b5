;; fib_iter: WebAssembly twin of fib_iter.s (iterative 64-bit Fibonacci, N steps).
;; Parameters: 0x1000 N (u64; the step counter is 32-bit, as DEC/CPI are in ZASM).
;; Result: fib(N) mod 2^64.
(module
  (memory (export "memory") 512 512)
  (func (export "main") (result i64)
    (local $n i32) (local $a i64) (local $b i64) (local $t i64)
    (local.set $n (i32.wrap_i64 (i64.load (i32.const 0x1000))))
    (local.set $a (i64.const 0))
    (local.set $b (i64.const 1))
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $step
        (local.set $t (i64.add (local.get $a) (local.get $b)))
        (local.set $a (local.get $b))
        (local.set $b (local.get $t))
        (br_if $step (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    (local.get $a)))
