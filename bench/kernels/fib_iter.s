; fib_iter: iterative 64-bit Fibonacci, fib(N) mod 2^64.
; Parameters: 0x1000 N (u64, below 2^32).
; Result: HL = fib(N) mod 2^64.
        PUBLIC main
main:
        LD HL, params
        LD64 BC, (HL)           ; remaining steps
        LD DE, 0                ; a
        LD A, 1                 ; b
        CPI BC, 0
        JR eq, done
step:
        ADD64 IX, DE, A         ; t = a + b
        MOV DE, A               ; a = b
        MOV A, IX               ; b = t
        DEC BC
        CPI BC, 0
        JR ne, step
done:
        MOV HL, DE
        RET

        ORG 0x1000
params: DQ 90                   ; N
        DQ 1                    ; repetitions (unused)
