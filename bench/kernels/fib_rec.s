; fib_rec: naive recursive Fibonacci with CALL/RET; n and the first partial
; result are saved on a software stack (IX, 16-byte frames).
; Parameters: 0x1000 N (u64, at most about 1000: the call depth is N).
; Result: HL = fib(N) mod 2^64.
STACK   EQU 0x10000
        PUBLIC main
main:
        LD HL, params
        LD64 HL, (HL)           ; n
        LD IX, STACK
        LD DE, 16               ; frame size, constant
        CALL fib
        RET
fib:                            ; HL = n -> HL = fib(n)
        CPI HL, 2
        JR ltu, base
        ADD64 IX, IX, DE        ; push a frame
        ST64 (IX-16), HL        ; save n
        DEC HL
        CALL fib
        ST64 (IX-8), HL         ; save fib(n-1)
        LD64 HL, (IX-16)
        DEC HL
        DEC HL
        CALL fib
        LD64 A, (IX-8)
        ADD64 HL, HL, A
        SUB64 IX, IX, DE        ; pop the frame
base:
        RET

        ORG 0x1000
params: DQ 20                   ; N
        DQ 1                    ; repetitions (unused)
