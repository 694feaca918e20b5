; Division and remainder with an immediate divisor (through A, or IX for A itself);
; the last one divides by an immediate zero: LD A, 0 runs, then DIVU traps.
;= trap: DIV0 line 18
;= regs: HL=14 DE=0xFFFFFFF2 A=0 BC=2 IX=0xFFFFFFFE

main:   LD HL, #100
        DIVU HL, #7             ; A = 7, HL = 14
        LD DE, #-100
        DIVS DE, #7             ; DE = -14 as 32 bits: 0xFFFFFFF2
        LD BC, #100
        REMU BC, #7             ; BC = 2
        LD IX, #-100
        REMS IX, #7             ; IX = -2 as 32 bits: 0xFFFFFFFE
        LD A, #1000
        DIVU64 A, #3            ; IX = 3, A = 333
        REMS64 A, #-10          ; IX = -10, A = 3
        LD IX, #0xFFFFFFFE
        DIVU BC, #0             ; A = 0, then DIV0
        RET
