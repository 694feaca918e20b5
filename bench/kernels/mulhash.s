; mulhash: 64-bit multiply-heavy mixing loop (two MUL64 per step).
; x = x*M; x ^= x >> 29; x += c; acc += ((x >> 32) ^ x) * M, for c = N down to 1.
; Parameters: 0x1000 N (u64, below 2^32). Result: HL = acc.
MULT    EQU 0x5851F42D4C957F2D
        PUBLIC main
main:
        LD HL, params
        LD64 HL, (HL)           ; c = N
        LD DE, 0x12345678       ; x
        LD A, 0                 ; acc
        LD IX, MULT
        CPI HL, 0
        JR eq, done
step:
        MUL64 DE, DE, IX
        SRL64 BC, DE, 29
        XOR64 DE, DE, BC
        ADD64 DE, DE, HL
        SRL64 BC, DE, 32
        XOR64 BC, BC, DE
        MUL64 BC, BC, IX
        ADD64 A, A, BC
        DEC HL
        CPI HL, 0
        JR ne, step
done:
        MOV HL, A
        RET

        ORG 0x1000
params: DQ 1000                 ; N
        DQ 1                    ; repetitions (unused)
