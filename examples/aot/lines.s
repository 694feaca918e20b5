; lines.s: count the lines of the input (newline bytes, as wc -l counts them),
;   print the number in decimal and return it in HL (the AOT example's second module).

        PUBLIC main

CHUNK   EQU 4096

count:  DQ 0
digits: RESB 24                         ; the decimal text, built backwards

main:   LD A, 0                         ; A = lines so far
        LD HL, CHUNK
        ALLOC                           ; HL = buffer address (0: no memory)
        CPI HL, 0
        JR eq, print
        MOV IX, HL                      ; IX = buffer
read:   MOV HL, IX
        LD DE, CHUNK
        IN                              ; HL = bytes read, 0 at the end
        CPI HL, 0
        JR eq, print
        ADD64 DE, IX, HL                ; DE = end of the chunk
        MOV BC, IX                      ; BC = pointer
scan:   CP BC, DE
        JR geu, read
        LD8U HL, (BC)
        INC BC
        CPI HL, 10
        JR ne, scan
        INC A
        JR scan

print:  LD HL, count
        ST64 (HL), A
        LD HL, digits+23                ; the newline goes last
        LD IX, 10
        ST8 (HL), IX
digit:  REMU64 DE, A, IX                ; DE = A mod 10
        DIVU64 A, A, IX                 ; A  = A / 10
        LD BC, '0'
        ADD64 DE, DE, BC
        DEC HL
        ST8 (HL), DE
        CPI A, 0
        JR ne, digit
        LD DE, digits+24                ; length = end - start
        SUB64 DE, DE, HL
        OUT
        LD HL, count
        LD64 HL, (HL)                   ; HL = the number of lines
        RET
