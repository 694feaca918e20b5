;; fnv1a: WebAssembly twin of fnv1a.s. Fill N bytes at 0x10000 from xorshift64, then
;; REPS passes of 64-bit FNV-1a (the hash carries over); REPS is counted down in
;; memory at 0x1008 as the ZASM kernel does. Result: the hash.
(module
  (memory (export "memory") 512 512)
  (func (export "main") (result i64)
    (local $p i32) (local $end i32) (local $x i64) (local $h i64) (local $reps i64)
    (local.set $p (i32.const 0x10000))
    (local.set $end (i32.add (i32.const 0x10000) (i32.wrap_i64 (i64.load (i32.const 0x1000)))))
    (local.set $x (i64.const 0x9E3779B97F4A7C15))
    (block $filled
      (br_if $filled (i32.ge_u (local.get $p) (local.get $end)))
      (loop $gen
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
        (i64.store8 (local.get $p) (local.get $x))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br_if $gen (i32.lt_u (local.get $p) (local.get $end)))))
    (local.set $h (i64.const 0xCBF29CE484222325))
    (block $finish
      (loop $pass
        (local.set $reps (i64.load (i32.const 0x1008)))
        (br_if $finish (i32.eqz (i32.wrap_i64 (local.get $reps))))
        (i64.store (i32.const 0x1008)
                   (i64.extend_i32_u (i32.sub (i32.wrap_i64 (local.get $reps)) (i32.const 1))))
        (local.set $p (i32.const 0x10000))
        (br_if $pass (i32.ge_u (local.get $p) (local.get $end)))
        (loop $hash
          (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load8_u (local.get $p)))
                                 (i64.const 0x100000001B3)))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br_if $hash (i32.lt_u (local.get $p) (local.get $end))))
        (br $pass)))
    (local.get $h)))
