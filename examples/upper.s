; upper.s: copy the input to the output, turning ASCII a-z into A-Z.
;   IN reads up to DE bytes into memory at HL and returns the count in HL
;   (0 at the end of the input).

        PUBLIC main

BUFSIZE EQU 256
buffer: RESB BUFSIZE

main:   LD HL, buffer
        LD DE, BUFSIZE
        IN
        CPI HL, 0
        JR eq, done
        MOV IX, HL                      ; IX = bytes read
        LD BC, buffer                   ; BC = pointer
        LD A, 0                         ; A  = index
        LD HL, 32                       ; difference between 'a' and 'A'

char:   LD8U DE, (BC)
        CPI DE, 'a'
        JR lt, keep
        CPI DE, 'z'
        JR gt, keep
        SUB DE, DE, HL
        ST8 (BC), DE
keep:   INC BC
        INC A
        CP A, IX
        JR ltu, char

        LD HL, buffer                   ; write the chunk back out
        MOV DE, IX
        OUT
        JR main
done:   RET
