; strcase: byte-wise string work. Fill N bytes with 7-bit characters from
; xorshift64 ((x >> 32) & 0x7F), then REPS passes that flip the case of every ASCII
; letter in place and count the letters flipped. Result: HL = h over the final
; buffer with h = rotl(h, 5) ^ byte, starting from the letter count.
; Parameters: 0x1000 N (u64, below 2^32), 0x1008 REPS (u64, consumed by the run).
ARR     EQU 0x10000
SEED    EQU 0x9E3779B97F4A7C15
        PUBLIC main
main:
        LD HL, params
        LD64 BC, (HL)           ; N
        LD HL, ARR
        LD IX, 0x7F
        LD A, SEED
        CPI BC, 0
        JR eq, scan_all
gen:
        SLA64 DE, A, 13
        XOR64 A, A, DE
        SRL64 DE, A, 7
        XOR64 A, A, DE
        SLA64 DE, A, 17
        XOR64 A, A, DE
        SRL64 DE, A, 32
        AND64 DE, DE, IX
        ST8 (HL), DE            ; buf[i] = (x >> 32) & 0x7F
        INC HL
        DEC BC
        CPI BC, 0
        JR ne, gen
scan_all:
        LD IX, 0                ; letters flipped
pass:
        LD HL, reps
        LD64 A, (HL)
        CPI A, 0
        JR eq, finish
        DEC A
        ST64 (HL), A
        LD HL, params
        LD64 BC, (HL)           ; bytes left
        LD HL, ARR
        LD DE, 0x20
        CPI BC, 0
        JR eq, pass
scan:
        LD8U A, (HL)
        CPI A, 'a'
        JR ltu, not_lower
        CPI A, 'z'
        JR gtu, next
        JR flip
not_lower:
        CPI A, 'A'
        JR ltu, next
        CPI A, 'Z'
        JR gtu, next
flip:
        XOR A, A, DE
        ST8 (HL), A
        INC IX
next:
        INC HL
        DEC BC
        CPI BC, 0
        JR ne, scan
        JR pass
finish:
        LD HL, params
        LD64 BC, (HL)
        LD HL, ARR
        MOV DE, IX
        CPI BC, 0
        JR eq, out
sum:
        LD8U64 A, (HL)
        ROL64 DE, DE, 5
        XOR64 DE, DE, A
        INC HL
        DEC BC
        CPI BC, 0
        JR ne, sum
out:
        MOV HL, DE
        RET

        ORG 0x1000
params: DQ 1000                 ; N
reps:   DQ 1                    ; REPS
