; fnv1a: checksum kernel. Fill a buffer of N bytes from xorshift64, then hash it
; REPS times with 64-bit FNV-1a (the hash state carries over between passes).
; Parameters: 0x1000 N (u64, bytes), 0x1008 REPS (u64, consumed by the run).
; Result: HL = the hash.
ARR     EQU 0x10000
PRIME   EQU 0x100000001B3
BASIS   EQU 0xCBF29CE484222325
SEED    EQU 0x9E3779B97F4A7C15
        PUBLIC main
main:
        LD HL, params
        LD64 BC, (HL)           ; N
        LD HL, ARR
        LD IX, ARR
        ADD64 IX, IX, BC        ; IX = end of the buffer
        LD A, SEED
        CP HL, IX
        JR geu, hashing
gen:
        SLA64 DE, A, 13         ; x ^= x << 13
        XOR64 A, A, DE
        SRL64 DE, A, 7          ; x ^= x >> 7
        XOR64 A, A, DE
        SLA64 DE, A, 17         ; x ^= x << 17
        XOR64 A, A, DE
        ST8 (HL), A             ; buf[i] = (uint8_t)x
        INC HL
        CP HL, IX
        JR ltu, gen
hashing:
        LD A, BASIS
pass:
        LD HL, reps
        LD64 BC, (HL)
        CPI BC, 0
        JR eq, finish
        DEC BC
        ST64 (HL), BC
        LD HL, ARR
        LD BC, PRIME
        CP HL, IX
        JR geu, pass
hash:
        LD8U64 DE, (HL)
        XOR64 A, A, DE          ; h ^= byte
        MUL64 A, A, BC          ; h *= prime
        INC HL
        CP HL, IX
        JR ltu, hash
        JR pass
finish:
        MOV HL, A
        RET

        ORG 0x1000
params: DQ 1000                 ; N
reps:   DQ 1                    ; REPS
