;; memcopy: WebAssembly twin of memcopy.s. A = 0x10000 (S+1 bytes), B = A+S+64.
;; A[i] = 7*i; then REPS times (counted down in memory at 0x1008): memory.copy of
;; A[0..S) to B (LDIR) and a byte loop B[0..S) -> A[1..S+1). Result: h over A[0..S]
;; with h = rotl(h, 5) ^ byte.
(module
  (memory (export "memory") 512 512)
  (func (export "main") (result i64)
    (local $s i32) (local $p i32) (local $q i32) (local $end i32) (local $v i32)
    (local $reps i64) (local $h i64)
    (local.set $s (i32.wrap_i64 (i64.load (i32.const 0x1000))))
    (local.set $p (i32.const 0x10000))
    (local.set $end (i32.add (i32.const 0x10000) (local.get $s)))
    (local.set $v (i32.const 0))
    (block $inited
      (br_if $inited (i32.ge_u (local.get $p) (local.get $end)))
      (loop $init
        (i32.store8 (local.get $p) (local.get $v))
        (local.set $v (i32.add (local.get $v) (i32.const 7)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br_if $init (i32.lt_u (local.get $p) (local.get $end)))))
    (block $sum
      (loop $pass
        (local.set $reps (i64.load (i32.const 0x1008)))
        (br_if $sum (i32.eqz (i32.wrap_i64 (local.get $reps))))
        (i64.store (i32.const 0x1008)
                   (i64.extend_i32_u (i32.sub (i32.wrap_i64 (local.get $reps)) (i32.const 1))))
        (local.set $s (i32.wrap_i64 (i64.load (i32.const 0x1000))))
        (local.set $q (i32.add (i32.add (i32.const 0x10000) (local.get $s)) (i32.const 64)))
        (memory.copy (local.get $q) (i32.const 0x10000) (local.get $s))     ;; LDIR
        (local.set $p (local.get $q))
        (local.set $end (i32.add (local.get $p) (local.get $s)))
        (local.set $q (i32.const 0x10001))
        (br_if $pass (i32.ge_u (local.get $p) (local.get $end)))
        (loop $copy
          (i32.store8 (local.get $q) (i32.load8_u (local.get $p)))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (local.set $q (i32.add (local.get $q) (i32.const 1)))
          (br_if $copy (i32.lt_u (local.get $p) (local.get $end))))
        (br $pass)))
    (local.set $end (i32.add (i32.const 0x10001) (i32.wrap_i64 (i64.load (i32.const 0x1000)))))
    (local.set $p (i32.const 0x10000))
    (local.set $h (i64.const 0))
    (loop $sumloop
      (local.set $h (i64.xor (i64.rotl (local.get $h) (i64.const 5)) (i64.load8_u (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $sumloop (i32.lt_u (local.get $p) (local.get $end))))
    (local.get $h)))
