;; fib_rec: WebAssembly twin of fib_rec.s (naive recursive Fibonacci). As in ZASM, n
;; and the first partial result are saved in 16-byte frames of a software stack in
;; linear memory (from 0x10000 up); $sp plays the part of the global register IX.
;; Parameters: 0x1000 N (u64). Result: fib(N) mod 2^64.
(module
  (memory (export "memory") 512 512)
  (global $sp (mut i32) (i32.const 0x10000))
  (func $fib (param $n i64) (result i64)
    (local $r i64)
    (if (i32.lt_u (i32.wrap_i64 (local.get $n)) (i32.const 2))
      (then (return (local.get $n))))
    (global.set $sp (i32.add (global.get $sp) (i32.const 16)))      ;; push a frame
    (i64.store (i32.sub (global.get $sp) (i32.const 16)) (local.get $n))
    (local.set $r (call $fib (i64.sub (local.get $n) (i64.const 1))))
    (i64.store (i32.sub (global.get $sp) (i32.const 8)) (local.get $r))
    (local.set $r (call $fib (i64.sub (i64.load (i32.sub (global.get $sp) (i32.const 16)))
                                      (i64.const 2))))
    (local.set $r (i64.add (local.get $r) (i64.load (i32.sub (global.get $sp) (i32.const 8)))))
    (global.set $sp (i32.sub (global.get $sp) (i32.const 16)))      ;; pop the frame
    (local.get $r))
  (func (export "main") (result i64)
    (global.set $sp (i32.const 0x10000))
    (call $fib (i64.load (i32.const 0x1000)))))
