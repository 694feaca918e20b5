;; mulhash: WebAssembly twin of mulhash.s (two 64-bit multiplies per step).
;; x = x*M; x ^= x >> 29; x += c; acc += ((x >> 32) ^ x) * M, for c = N down to 1
;; (a 32-bit counter, as DEC/CPI are in ZASM). Parameters: 0x1000 N. Result: acc.
(module
  (memory (export "memory") 512 512)
  (func (export "main") (result i64)
    (local $c i32) (local $x i64) (local $t i64) (local $acc i64)
    (local.set $c (i32.wrap_i64 (i64.load (i32.const 0x1000))))
    (local.set $x (i64.const 0x12345678))
    (local.set $acc (i64.const 0))
    (block $done
      (br_if $done (i32.eqz (local.get $c)))
      (loop $step
        (local.set $x (i64.mul (local.get $x) (i64.const 0x5851F42D4C957F2D)))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 29))))
        (local.set $x (i64.add (local.get $x) (i64.extend_i32_u (local.get $c))))
        (local.set $t (i64.xor (i64.shr_u (local.get $x) (i64.const 32)) (local.get $x)))
        (local.set $acc (i64.add (local.get $acc) (i64.mul (local.get $t) (i64.const 0x5851F42D4C957F2D))))
        (br_if $step (local.tee $c (i32.sub (local.get $c) (i32.const 1))))))
    (local.get $acc)))
