; call.s: functions with CALL and RET. Registers are global, so arguments and
; results travel in registers by convention: here HL = address, DE = length.

        PUBLIC main
        PUBLIC square

line1:  DB "calling a function", 10
line2:  DB "7 squared is "
answer: DB 0, 0, 10

main:   LD HL, line1
        LD DE, 19
        CALL print
        LD HL, 7
        CALL square                     ; HL = 49
        LD IX, 10
        DIVU DE, HL, IX                 ; tens digit
        REMU BC, HL, IX                 ; units digit
        LD A, '0'
        ADD DE, DE, A
        ADD BC, BC, A
        LD IX, answer
        ST8 (IX), DE
        ST8 (IX+1), BC
        LD HL, line2
        LD DE, 16                       ; "7 squared is " plus the answer and newline
        CALL print
        RET

; print: write DE bytes from HL to the output
print:  OUT
        RET

; square: HL = HL * HL (also exported, so a host can call it directly)
square: MUL64 HL, HL, HL
        RET
