; memcopy: LDIR block copies and a byte-loop copy.
; A = ARR (S+1 bytes), B = ARR+S+64 (S bytes). A[i] = 7*i mod 256; then REPS times:
; LDIR A[0..S) -> B, and a byte loop B[0..S) -> A[1..S+1) (so every pass moves
; the data). Result: HL = h over A[0..S] with h = rotl(h, 5) ^ byte.
; Parameters: 0x1000 S (u64), 0x1008 REPS (u64 >= 1, consumed by the run).
ARR     EQU 0x10000
        PUBLIC main
main:
        LD HL, params
        LD64 BC, (HL)           ; S
        LD HL, ARR
        LD IX, ARR
        ADD64 IX, IX, BC        ; end of A[0..S)
        LD A, 0
        LD DE, 7
        CP HL, IX
        JR geu, pass
init:
        ST8 (HL), A             ; A[i] = 7*i
        ADD A, A, DE
        INC HL
        CP HL, IX
        JR ltu, init
pass:
        LD HL, reps
        LD64 A, (HL)
        CPI A, 0
        JR eq, sum
        DEC A
        ST64 (HL), A
        LD HL, params
        LD64 BC, (HL)           ; S
        LD HL, ARR              ; source A
        ADD64 DE, HL, BC
        LD A, 64
        ADD64 DE, DE, A         ; destination B = ARR + S + 64
        LDIR
        MOV HL, DE              ; byte loop source: B
        ADD64 IX, HL, BC        ; its end
        LD DE, ARR+1            ; destination A+1
        CP HL, IX
        JR geu, pass
copy:
        LD8U A, (HL)
        ST8 (DE), A
        INC HL
        INC DE
        CP HL, IX
        JR ltu, copy
        JR pass
sum:
        LD HL, params
        LD64 BC, (HL)
        LD IX, ARR+1
        ADD64 IX, IX, BC        ; end of A[0..S]
        LD HL, ARR
        LD BC, 0
sumloop:
        LD8U64 A, (HL)
        ROL64 BC, BC, 5
        XOR64 BC, BC, A
        INC HL
        CP HL, IX
        JR ltu, sumloop
        MOV HL, BC
        RET

        ORG 0x1000
params: DQ 1000                 ; S
reps:   DQ 1                    ; REPS
