;; strcase: WebAssembly twin of strcase.s. Fill N bytes at 0x10000 with
;; (x >> 32) & 0x7F from xorshift64; REPS passes (counted down in memory at 0x1008)
;; flip the case of ASCII letters in place and count them; result h over the buffer
;; with h = rotl(h, 5) ^ byte, starting from the count. Counters are 32-bit as in ZASM.
(module
  (memory (export "memory") 512 512)
  (func (export "main") (result i64)
    (local $n i32) (local $p i32) (local $c i32) (local $count i32) (local $ch i32)
    (local $x i64) (local $reps i64) (local $h i64)
    (local.set $n (i32.wrap_i64 (i64.load (i32.const 0x1000))))
    (local.set $p (i32.const 0x10000))
    (local.set $x (i64.const 0x9E3779B97F4A7C15))
    (local.set $c (local.get $n))
    (block $filled
      (br_if $filled (i32.eqz (local.get $c)))
      (loop $gen
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
        (i64.store8 (local.get $p) (i64.and (i64.shr_u (local.get $x) (i64.const 32)) (i64.const 0x7F)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br_if $gen (local.tee $c (i32.sub (local.get $c) (i32.const 1))))))
    (local.set $count (i32.const 0))
    (block $finish
      (loop $pass
        (local.set $reps (i64.load (i32.const 0x1008)))
        (br_if $finish (i32.eqz (i32.wrap_i64 (local.get $reps))))
        (i64.store (i32.const 0x1008)
                   (i64.extend_i32_u (i32.sub (i32.wrap_i64 (local.get $reps)) (i32.const 1))))
        (local.set $c (i32.wrap_i64 (i64.load (i32.const 0x1000))))
        (local.set $p (i32.const 0x10000))
        (br_if $pass (i32.eqz (local.get $c)))
        (loop $scan
          (local.set $ch (i32.load8_u (local.get $p)))
          (block $next
            (block $flip
              (if (i32.lt_u (local.get $ch) (i32.const 0x61))          ;; 'a'
                (then
                  (br_if $next (i32.lt_u (local.get $ch) (i32.const 0x41)))   ;; 'A'
                  (br_if $next (i32.gt_u (local.get $ch) (i32.const 0x5A)))   ;; 'Z'
                  (br $flip)))
              (br_if $next (i32.gt_u (local.get $ch) (i32.const 0x7A))))     ;; 'z'
            (i32.store8 (local.get $p) (i32.xor (local.get $ch) (i32.const 0x20)))
            (local.set $count (i32.add (local.get $count) (i32.const 1))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br_if $scan (local.tee $c (i32.sub (local.get $c) (i32.const 1)))))
        (br $pass)))
    (local.set $c (i32.wrap_i64 (i64.load (i32.const 0x1000))))
    (local.set $p (i32.const 0x10000))
    (local.set $h (i64.extend_i32_u (local.get $count)))
    (block $out
      (br_if $out (i32.eqz (local.get $c)))
      (loop $sum
        (local.set $h (i64.xor (i64.rotl (local.get $h) (i64.const 5)) (i64.load8_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br_if $sum (local.tee $c (i32.sub (local.get $c) (i32.const 1))))))
    (local.get $h)))
