"""LLVM IR samples shared by the JIT infrastructure tests (not a test module)."""

from __future__ import annotations

import random

MASK64 = (1 << 64) - 1

SIMPLE_IR = r"""
define i64 @add_mul(i64 %a, i64 %b) {
  %s = add i64 %a, %b
  %t = mul i64 %s, 3
  ret i64 %t
}

define i64 @sum_to(i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %acc = phi i64 [ 0, %entry ], [ %acc1, %loop ]
  %acc1 = add i64 %acc, %i
  %i1 = add i64 %i, 1
  %done = icmp ugt i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  ret i64 %acc1
}
"""

PROBE_IR = r"""
@counter = global i64 7
@ext_data = external global i64
declare i64 @ext_fn(i64)

define internal i64 @f_inc(i64 %x) {
  %r = add i64 %x, 1
  ret i64 %r
}
define internal i64 @f_dbl(i64 %x) {
  %r = mul i64 %x, 2
  ret i64 %r
}
@fn_table = internal constant [2 x ptr] [ptr @f_inc, ptr @f_dbl]

; jump table (.rodata, PC32 entries)
define i64 @switchy(i64 %x) {
entry:
  switch i64 %x, label %d [ i64 0, label %a  i64 1, label %b  i64 2, label %c
                            i64 3, label %e  i64 4, label %f  i64 5, label %h ]
a: ret i64 100
b: ret i64 211
c: ret i64 322
e: ret i64 433
f: ret i64 544
h: ret i64 655
d: ret i64 -1
}

; constant pool (.rodata.cst8)
define double @scale(double %x) {
  %r = fmul double %x, 3.25
  %s = fadd double %r, 0.125
  ret double %s
}

; extern call (PLT32 -> stub), extern data (GOTPCREL), writable global (PC32)
define i64 @use_externs(i64 %x) {
  %v = call i64 @ext_fn(i64 %x)
  %d = load i64, ptr @ext_data
  %c = load i64, ptr @counter
  %c1 = add i64 %c, 1
  store i64 %c1, ptr @counter
  %s = add i64 %v, %d
  %t = add i64 %s, %c
  ret i64 %t
}

; table of function pointers (.data.rel.ro, R_X86_64_64 / ABS64)
define i64 @via_table(i64 %i, i64 %x) {
  %p = getelementptr [2 x ptr], ptr @fn_table, i64 0, i64 %i
  %f = load ptr, ptr %p
  %r = call i64 %f(i64 %x)
  ret i64 %r
}
"""


def probe_expected_switch(x: int) -> int:
    """What ``@switchy`` returns."""
    return {0: 100, 1: 211, 2: 322, 3: 433, 4: 544, 5: 655}.get(x, -1)


def big_ir(n_ops: int, seed: int = 1) -> tuple[str, list[tuple[str, int]]]:
    """A straight-line-plus-branches function ``i64 @big(ptr %m, i64 %x)`` of about
    ``n_ops`` LLVM instructions over an 8-slot i64 array, and the operations used
    (for :func:`big_reference`)."""
    rng = random.Random(seed)
    lines = ["define i64 @big(ptr %m, i64 %x) {", "entry:"]
    ops: list[tuple[str, int]] = []
    cur = "%x"
    block = "entry"
    n = 0
    k = 0
    while n < n_ops:
        kind = rng.choice(["add", "mul", "xor", "load", "store", "shl", "branch"])
        imm = rng.randrange(1, 1 << 16)
        k += 1
        if kind in ("add", "mul", "xor"):
            lines.append(f"  %v{k} = {kind} i64 {cur}, {imm}")
            cur = f"%v{k}"
            n += 1
        elif kind == "shl":
            lines.append(f"  %v{k} = shl i64 {cur}, {imm % 63}")
            cur = f"%v{k}"
            n += 1
            imm %= 63
        elif kind == "load":
            slot = imm % 8
            lines += [
                f"  %p{k} = getelementptr i64, ptr %m, i64 {slot}",
                f"  %l{k} = load i64, ptr %p{k}",
                f"  %v{k} = add i64 {cur}, %l{k}",
            ]
            cur = f"%v{k}"
            n += 3
            imm = slot
        elif kind == "store":
            slot = imm % 8
            lines += [f"  %p{k} = getelementptr i64, ptr %m, i64 {slot}", f"  store i64 {cur}, ptr %p{k}"]
            n += 2
            imm = slot
        else:
            lines += [
                f"  %c{k} = icmp ult i64 {cur}, {imm << 40}",
                f"  br i1 %c{k}, label %t{k}, label %j{k}",
                f"t{k}:",
                f"  %a{k} = add i64 {cur}, 12345",
                f"  br label %j{k}",
                f"j{k}:",
                f"  %v{k} = phi i64 [ {cur}, %{block} ], [ %a{k}, %t{k} ]",
            ]
            block = f"j{k}"
            cur = f"%v{k}"
            n += 5
            imm <<= 40
        ops.append((kind, imm))
    lines += [f"  ret i64 {cur}", "}"]
    return "\n".join(lines) + "\n", ops


def big_reference(ops: list[tuple[str, int]], x: int, mem: list[int]) -> int:
    """Python model of ``@big``; updates ``mem`` (8 u64 slots) in place."""
    cur = x & MASK64
    for kind, imm in ops:
        if kind == "add":
            cur = (cur + imm) & MASK64
        elif kind == "mul":
            cur = (cur * imm) & MASK64
        elif kind == "xor":
            cur ^= imm
        elif kind == "shl":
            cur = (cur << imm) & MASK64
        elif kind == "load":
            cur = (cur + mem[imm]) & MASK64
        elif kind == "store":
            mem[imm] = cur
        else:
            if cur < imm:
                cur = (cur + 12345) & MASK64
    return cur
