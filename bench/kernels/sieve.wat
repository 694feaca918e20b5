;; sieve: WebAssembly twin of sieve.s. memory.fill (FILL) sets a[0..N) = 1 at 0x10000,
;; byte stores cross out multiples, a byte loop counts. Parameters: 0x1000 N.
;; Result: the number of primes below N.
(module
  (memory (export "memory") 512 512)
  (func (export "main") (result i64)
    (local $n i32) (local $end i32) (local $i i32) (local $j i32) (local $p i32) (local $count i64)
    (local.set $n (i32.wrap_i64 (i64.load (i32.const 0x1000))))
    (memory.fill (i32.const 0x10000) (i32.const 1) (local.get $n))
    (local.set $end (i32.add (local.get $n) (i32.const 0x10000)))
    (local.set $i (i32.const 2))
    (block $counting
      (loop $outer
        (local.set $j (i32.add (i32.mul (local.get $i) (local.get $i)) (i32.const 0x10000)))
        (br_if $counting (i32.ge_u (local.get $j) (local.get $end)))
        (if (i32.load8_u (i32.add (local.get $i) (i32.const 0x10000)))
          (then
            (loop $inner
              (i32.store8 (local.get $j) (i32.const 0))
              (local.set $j (i32.add (local.get $j) (local.get $i)))
              (br_if $inner (i32.lt_u (local.get $j) (local.get $end))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (local.set $p (i32.const 0x10002))
    (local.set $count (i64.const 0))
    (block $done
      (loop $countloop
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $count (i64.add (local.get $count) (i64.load8_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $countloop)))
    (local.get $count)))
