; loop.s: add up 1..100 in a loop and print the total (5050) in decimal.

        PUBLIC main

digits: RESB 24                         ; scratch buffer for the decimal text

main:   LD A, 0                         ; A  = running total
        LD BC, 1                        ; BC = counter
        LD IX, 1                        ; constant 1
next:   ADD64 A, A, BC
        ADD64 BC, BC, IX
        CPI BC, 100
        JR leu, next                    ; loop while BC <= 100 (unsigned)

; turn A into decimal digits, written backwards from the end of the buffer
        LD HL, digits+23                ; one past the last digit slot
        LD IX, 10
        ST8 (HL), IX                    ; newline (10) after the digits
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
        RET
