; sieve: count the primes below N with the sieve of Eratosthenes (one byte per number).
; Parameters (guest memory, written by the runner before each run):
;   0x1000  N (u64), the sieve size; the byte array lives at ARR .. ARR+N
; Result: HL = number of primes below N.
ARR     EQU 0x10000
        PUBLIC main
main:
        LD HL, params
        LD64 IX, (HL)           ; IX = N
        LD HL, ARR
        MOV BC, IX
        LD A, 1
        FILL                    ; a[0..N) = 1
        LD DE, ARR
        ADD64 IX, IX, DE        ; IX = ARR + N (end address)
        LD BC, 2                ; i = 2
outer:
        MUL64 DE, BC, BC        ; i*i
        LD A, ARR
        ADD64 DE, DE, A         ; DE = &a[i*i]
        CP DE, IX
        JR geu, count           ; stop when i*i >= N
        ADD64 HL, BC, A
        LD8U HL, (HL)           ; a[i]
        CPI HL, 0
        JR eq, next
        LD A, 0
inner:
        ST8 (DE), A             ; a[j] = 0
        ADD64 DE, DE, BC        ; j += i
        CP DE, IX
        JR ltu, inner
next:
        INC BC
        JR outer
count:
        LD DE, ARR+2
        LD HL, 0
countloop:
        CP DE, IX
        JR geu, done
        LD8U64 A, (DE)
        ADD64 HL, HL, A
        INC DE
        JR countloop
done:
        RET

        ORG 0x1000
params: DQ 1000                 ; N
        DQ 1                    ; repetitions (unused)
